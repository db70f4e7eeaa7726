//! The admin console: R-ACC-2 (managers), R-ACC-3 (removal), settings,
//! staff, the audit log and the outbox.

use axum::http::StatusCode;
use partnerd_domain::ProgramSettings;
use partnerd_store::Subject;

use crate::helpers::{NEW_PASSWORD, TestApp, on_both_backends, reset_path_in};

on_both_backends!(
    new_partners_go_to_the_manager_with_fewest_partners_ties_by_name_and_the_manager_is_emailed,
    |t: TestApp| async move {
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;

        // No manager yet: the partner waits, and is told so.
        let p1 = t.partner("Pat One").await;
        assert_eq!(t.get_partner(p1.id).await.manager_id, None);
        assert!(
            t.last_email_to(&p1.email)
                .await
                .body
                .contains("An affiliate manager will be assigned to you soon.")
        );
        let mut p1_panel = t.signed_in(p1.subject).await;
        assert!(
            p1_panel
                .get("/panel")
                .await
                .body
                .contains("A manager will be assigned to you soon.")
        );

        // The first manager, added in the console, takes the unassigned partners.
        let r = console
            .post_form(
                "/admin/staff",
                &[
                    ("name", "Zed Manager"),
                    ("email", "zed@vendor.test"),
                    ("role", "manager"),
                ],
            )
            .await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/admin/staff"),
            "{}",
            r.body
        );
        let zed = t
            .store
            .find_staff_by_email(&partnerd_domain::Email::parse("zed@vendor.test").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.get_partner(p1.id).await.manager_id, Some(zed.id));
        assert!(
            p1_panel.get("/panel").await.body.contains("Zed Manager"),
            "the panel names the manager"
        );

        let r = console
            .post_form(
                "/admin/staff",
                &[
                    ("name", "Amy Manager"),
                    ("email", "amy@vendor.test"),
                    ("role", "manager"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let amy = t
            .store
            .find_staff_by_email(&partnerd_domain::Email::parse("amy@vendor.test").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            t.get_partner(p1.id).await.manager_id,
            Some(zed.id),
            "a second manager takes nobody"
        );

        // Amy 0 < Zed 1: Amy. Then 1 = 1: Amy, by name. Then Amy 2 > Zed 1: Zed.
        let p2 = t.partner("Pat Two").await;
        let p3 = t.partner("Pat Three").await;
        let p4 = t.partner("Pat Four").await;
        assert_eq!(
            t.get_partner(p2.id).await.manager_id,
            Some(amy.id),
            "fewest partners"
        );
        assert_eq!(
            t.get_partner(p3.id).await.manager_id,
            Some(amy.id),
            "a tie goes by name"
        );
        assert_eq!(
            t.get_partner(p4.id).await.manager_id,
            Some(zed.id),
            "fewest partners"
        );

        let to_amy = t.emails_to("amy@vendor.test").await;
        let subjects: Vec<&str> = to_amy.iter().map(|e| e.subject.as_str()).collect();
        assert!(
            subjects.contains(&"New partner assigned to you: Pat Two"),
            "{subjects:?}"
        );
        assert!(
            subjects.contains(&"New partner assigned to you: Pat Three"),
            "{subjects:?}"
        );
        let note = to_amy
            .iter()
            .find(|e| e.subject.ends_with("Pat Two"))
            .unwrap();
        assert!(
            note.body.contains(&format!("/admin/partners/{}", p2.id)),
            "{}",
            note.body
        );
        assert!(
            t.emails_to("zed@vendor.test")
                .await
                .iter()
                .any(|e| e.subject == "New partner assigned to you: Pat Four")
        );
        assert!(
            t.last_email_to(&p2.email)
                .await
                .body
                .contains("Your affiliate manager is Amy Manager (amy@vendor.test).")
        );

        // Managers see only their own partners; admins see everyone.
        let mut zed_console = t.signed_in(Subject::Staff(zed.id)).await;
        let mut amy_console = t.signed_in(Subject::Staff(amy.id)).await;
        let list = zed_console.get("/admin/partners").await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(list.body.contains("Pat One") && list.body.contains("Pat Four"));
        assert!(
            !list.body.contains("Pat Two") && !list.body.contains("Pat Three"),
            "{}",
            list.body
        );
        let searched = zed_console.get("/admin/partners?q=pat").await;
        assert!(
            !searched.body.contains("Pat Two"),
            "a search shows another manager's partners"
        );
        let list = amy_console.get("/admin/partners").await;
        assert!(list.body.contains("Pat Two") && list.body.contains("Pat Three"));
        assert!(!list.body.contains("Pat One") && !list.body.contains("Pat Four"));
        let all = console.get("/admin/partners").await;
        for name in ["Pat One", "Pat Two", "Pat Three", "Pat Four"] {
            assert!(all.body.contains(name), "the admin does not see {name}");
        }
        assert_eq!(
            zed_console
                .get(&format!("/admin/partners/{}", p1.id))
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            zed_console
                .get(&format!("/admin/partners/{}", p2.id))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            zed_console.get("/admin/partners/999999").await.status,
            StatusCode::NOT_FOUND
        );
        let home = zed_console.get("/admin").await;
        assert!(home.body.contains("Your partners"));
        assert!(
            !home.body.contains("Recent activity"),
            "a manager sees the audit log on the overview"
        );
        let nav = zed_console.get("/admin").await.body;
        assert!(
            !nav.contains("href=\"/admin/settings\""),
            "a manager is offered the settings"
        );
    }
);

#[tokio::test]
async fn an_admin_reassigns_a_partner_with_an_audit_entry_and_an_email_to_the_new_manager() {
    let t = TestApp::sqlite().await;
    let admin = t.admin().await;
    let mia = t.manager("Mia Manager").await;
    let max = t.manager("Max Manager").await;
    let pat = t.partner("Pat Moving").await;
    assert_eq!(
        t.get_partner(pat.id).await.manager_id,
        Some(max.id),
        "Max 0 = Mia 0, by name"
    );
    let mut console = t.signed_in(admin.subject).await;
    let path = format!("/admin/partners/{}/manager", pat.id);

    let before = t.counts().await;
    for bad in [admin.id.to_string(), "abc".to_owned(), "999999".to_owned()] {
        let r = console.post_form(&path, &[("manager_id", &bad)]).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "manager_id={bad}"
        );
        assert_eq!(r.field_errors(), ["manager_id"]);
    }
    assert_eq!(
        t.counts().await,
        before,
        "a refused reassignment wrote something"
    );
    assert_eq!(t.get_partner(pat.id).await.manager_id, Some(max.id));

    let r = console
        .post_form(&path, &[("manager_id", &mia.id.to_string())])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (
            StatusCode::SEE_OTHER,
            format!("/admin/partners/{}", pat.id).as_str()
        )
    );
    assert_eq!(t.get_partner(pat.id).await.manager_id, Some(mia.id));
    let audit = t.last_audit().await;
    assert_eq!(audit.action, "partner.manager.assign");
    assert_eq!(audit.object, format!("partner:{}", pat.id));
    assert!(audit.actor.starts_with(&format!("staff:{}", admin.id)));
    assert_eq!(
        audit.before.as_deref(),
        Some(format!("{{\"manager_id\":{}}}", max.id).as_str())
    );
    assert_eq!(
        audit.after.as_deref(),
        Some(format!("{{\"manager_id\":{}}}", mia.id).as_str())
    );
    assert_eq!(
        t.last_email_to(&mia.email).await.subject,
        "Partner assigned to you: Pat Moving"
    );
    let page = console.get(&format!("/admin/partners/{}", pat.id)).await;
    assert!(
        page.body.contains(&format!("Mia Manager ({})", mia.email)),
        "{}",
        page.body
    );

    // Managers cannot reassign, not even their own partners.
    let mut mia_console = t.signed_in(mia.subject).await;
    let r = mia_console
        .post_form(&path, &[("manager_id", &max.id.to_string())])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get_partner(pat.id).await.manager_id, Some(mia.id));

    let r = console.post_form(&path, &[("manager_id", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(t.get_partner(pat.id).await.manager_id, None);
}

#[tokio::test]
async fn an_admin_removes_a_partner_for_a_violation_only_with_a_reason() {
    let t = TestApp::sqlite().await;
    let admin = t.admin().await;
    let mia = t.manager("Mia Manager").await;
    let pat = t.partner("Pat Spammer").await;
    let mut partner = t.signed_in(pat.subject).await;
    let mut console = t.signed_in(admin.subject).await;
    let path = format!("/admin/partners/{}/remove", pat.id);
    let reset_link = t.reset_link_for(&pat).await;

    let before = t.counts().await;
    for reason in ["", "   "] {
        let r = console.post_form(&path, &[("reason", reason)]).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason {reason:?}"
        );
        assert_eq!(r.field_errors(), ["reason"]);
    }
    let r = console
        .post_form(&path, &[("reason", &"x".repeat(2001))])
        .await;
    assert_eq!(r.field_errors(), ["reason"]);
    assert_eq!(
        t.counts().await,
        before,
        "a refused removal wrote something"
    );
    assert_eq!(partner.get("/panel").await.status, StatusCode::OK);
    // A manager may not remove, not even their own partner.
    let mut mia_console = t.signed_in(mia.subject).await;
    assert_eq!(
        mia_console
            .post_form(&path, &[("reason", "Spam")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(!t.get_partner(pat.id).await.is_removed());

    let reason = "Sent spam, against section 1 of the Terms";
    let r = console.post_form(&path, &[("reason", reason)]).await;
    assert_eq!(
        (r.status, r.location()),
        (
            StatusCode::SEE_OTHER,
            format!("/admin/partners/{}", pat.id).as_str()
        )
    );
    let removed = t.get_partner(pat.id).await;
    assert_eq!(removed.status, "removed");
    assert_eq!(
        (removed.email, removed.name.as_str()),
        (None, "Removed partner")
    );
    assert_eq!(removed.removal_kind.as_deref(), Some("violation"));
    assert_eq!(removed.removal_reason.as_deref(), Some(reason));
    let audit = t.last_audit().await;
    assert_eq!(audit.action, "partner.remove");
    assert_eq!(audit.object, format!("partner:{}", pat.id));
    assert!(audit.actor.starts_with("staff:"));
    assert!(
        audit.after.unwrap().contains(reason),
        "the audit entry lacks the reason"
    );

    let r = partner.get("/panel").await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/login?next=%2Fpanel")
    );
    assert_eq!(
        t.client().get(&reset_link).await.status,
        StatusCode::CONFLICT,
        "a reset link outlived the removal"
    );
    let page = console.get(&format!("/admin/partners/{}", pat.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(reason) && page.body.contains("removed"));
    assert!(
        !page.body.contains("Remove partner"),
        "a removed partner can be removed again"
    );
    assert!(
        !mia_console
            .get("/admin/partners")
            .await
            .body
            .contains("Removed partner"),
        "managers list removed partners"
    );
    assert_eq!(
        console.post_form(&path, &[("reason", reason)]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn settings_are_validated_as_a_whole_and_each_change_is_audited_with_the_changed_keys() {
    let t = TestApp::sqlite().await;
    let admin = t.admin().await;
    let mia = t.manager("Mia Manager").await;
    let mut console = t.signed_in(admin.subject).await;
    let page = console.get("/admin/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(
            "id=\"commission_rate\" name=\"commission_rate\" class=\"input\" value=\"20\""
        ),
        "{}",
        page.body
    );

    let r = console
        .post_form(
            "/admin/settings",
            &[
                ("commission_rate", "25"),
                ("program_name", "Partner Program"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/admin/settings")
    );
    assert_eq!(t.app.settings().await.unwrap().commission_rate, 25);
    let audit = t.last_audit().await;
    assert_eq!(audit.action, "settings.update");
    assert_eq!(
        audit.before.as_deref(),
        Some("{\"commission_rate\":\"20\"}")
    );
    assert_eq!(audit.after.as_deref(), Some("{\"commission_rate\":\"25\"}"));
    assert!(t.client().get("/").await.body.contains("25% recurring"));

    let saved = t.app.settings().await.unwrap();
    let before = t.counts().await;
    for (form, field) in [
        (
            vec![
                ("commission_rate", "150"),
                ("program_name", "Acme Partners"),
            ],
            "commission_rate",
        ),
        (
            vec![("brand_color", "red;}"), ("program_name", "Acme Partners")],
            "brand_color",
        ),
        (
            vec![
                ("main_page_url", "javascript:alert(1)"),
                ("hold_days", "10"),
            ],
            "main_page_url",
        ),
        (vec![("password_min_length", "6")], "password_min_length"),
    ] {
        let r = console.post_form("/admin/settings", &form).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert_eq!(r.field_errors(), [field], "{form:?}");
        assert!(r.body.contains("Nothing was saved."));
        assert_eq!(
            t.app.settings().await.unwrap(),
            saved,
            "part of a refused form was saved: {form:?}"
        );
    }
    assert_eq!(
        t.counts().await,
        before,
        "a refused form wrote to the audit log"
    );
    assert!(!t.client().get("/").await.body.contains("red;}"));

    // The whole form sent back unchanged saves nothing and logs nothing.
    let form = saved.to_form();
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        console.post_form("/admin/settings", &fields).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(t.counts().await, before, "an unchanged form was audited");

    let mut manager = t.signed_in(mia.subject).await;
    assert_eq!(
        manager
            .post_form("/admin/settings", &[("commission_rate", "50")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(t.app.settings().await.unwrap().commission_rate, 25);
    assert_ne!(saved, ProgramSettings::default());
}

#[tokio::test]
async fn staff_added_in_the_console_get_a_set_your_password_link() {
    let t = TestApp::sqlite().await;
    let admin = t.admin().await;
    let mut console = t.signed_in(admin.subject).await;
    assert_eq!(console.get("/admin/staff").await.status, StatusCode::OK);

    let before = t.counts().await;
    let r = console
        .post_form(
            "/admin/staff",
            &[("name", ""), ("email", "sam@"), ("role", "owner")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = r.field_errors();
    fields.sort();
    assert_eq!(fields, ["email", "name", "role"]);
    assert!(
        r.body.contains("value=\"sam@\""),
        "the form is not re-filled"
    );
    let r = console
        .post_form(
            "/admin/staff",
            &[
                ("name", "Ada Again"),
                ("email", &admin.email.to_uppercase()),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["email"]);
    assert_eq!(
        t.counts().await,
        before,
        "a refused staff form wrote something"
    );

    let r = console
        .post_form(
            "/admin/staff",
            &[
                ("name", "Sam Admin"),
                ("email", "Sam@Vendor.test"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/admin/staff")
    );
    assert!(console.get("/admin/staff").await.body.contains("Sam Admin"));
    let audit = t.last_audit().await;
    assert_eq!(
        (audit.action.as_str(), audit.object.as_str()),
        ("staff.create", "staff:sam@vendor.test")
    );
    let email = t.last_email_to("sam@vendor.test").await;
    assert_eq!(email.subject, "Set your password · Partner Program");
    let link = reset_path_in(&email.body);

    let mut sam = t.client();
    assert_eq!(
        sam.post_form(
            "/admin/login",
            &[("email", "sam@vendor.test"), ("password", NEW_PASSWORD)]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sam.get(&link).await.status, StatusCode::OK);
    let r = sam.post_form(&link, &[("password", NEW_PASSWORD)]).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/admin/login")
    );
    let r = sam
        .post_form(
            "/admin/login",
            &[("email", "sam@vendor.test"), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/admin"));
    let r = sam.get("/admin/settings").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the new admin cannot open the settings"
    );
    let cookie = t
        .client()
        .post_form(
            "/admin/login",
            &[("email", "sam@vendor.test"), ("password", NEW_PASSWORD)],
        )
        .await
        .set_cookie("partnerd_session")
        .unwrap();
    assert!(
        cookie.contains(&format!("Max-Age={}", 12 * 3600)),
        "staff sessions last 12 hours: {cookie}"
    );
}

#[tokio::test]
async fn the_audit_log_and_the_outbox_render_for_admins() {
    let t = TestApp::sqlite().await;
    let admin = t.admin().await;
    let pat = t
        .partner_with("Pat <b>Bold</b>", "pat.bold@example.test")
        .await;
    let mut console = t.signed_in(admin.subject).await;

    let audit = console.get("/admin/audit").await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(
        audit.body.contains("partner.signup")
            && audit.body.contains("staff.create")
            && audit.body.contains("terms.publish")
    );
    let overview = console.get("/admin").await;
    assert!(overview.body.contains("Recent activity") && overview.body.contains("partner.signup"));

    let outbox = console.get("/admin/outbox").await;
    assert_eq!(outbox.status, StatusCode::OK);
    assert!(outbox.body.contains("No SMTP server is configured"));
    assert!(outbox.body.contains("Welcome to the Partner Program"));
    assert!(outbox.body.contains(">kept<"));
    assert!(
        !outbox.body.contains("<b>Bold</b>"),
        "names are not escaped"
    );
    let email = t.last_email_to(&pat.email).await;
    let page = console.get(&format!("/admin/outbox/{}", email.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("your partner account is ready"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Pat &lt;b&gt;Bold&lt;/b&gt;") || page.body.contains("Pat &#60;b&#62;"),
        "{}",
        page.body
    );
    assert_eq!(
        console.get("/admin/outbox/999999").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_staff_member_changes_their_password_only_with_the_current_one() {
    let t = TestApp::sqlite().await;
    let manager = t.manager("Mona Manager").await;
    let mut console = t.login_as(&manager).await;
    let mut other_device = t.login_as(&manager).await;
    assert_eq!(console.get("/admin/account").await.status, StatusCode::OK);

    let wrong = console
        .post_form(
            "/admin/account/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.body.contains("current_password-error"),
        "{}",
        wrong.body
    );

    let done = console
        .post_form(
            "/admin/account/password",
            &[
                ("current_password", &manager.password),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        (done.status, done.location()),
        (StatusCode::SEE_OTHER, "/admin/account")
    );
    assert_eq!(
        console.get("/admin").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        other_device.get("/admin").await.status,
        StatusCode::SEE_OTHER,
        "others end"
    );
    let mut fresh = t.client();
    let r = fresh
        .post_form(
            "/admin/login",
            &[("email", &manager.email), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}
