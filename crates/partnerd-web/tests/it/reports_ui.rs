//! The campaign builder and the UTM report pages (R-AFF-2, R-REP-1, R-REP-2):
//! validation with 422 and nothing written, saved links, clicks through `/r`
//! showing up in the report at once, the formula-safe CSV, and who may see
//! which report.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use partnerd_store::Subject;

use crate::helpers::{Client, Resp, TestApp, on_both_backends};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// A click on a partner link from a person's browser (no cookies of ours).
async fn click(t: &TestApp, path: &str) -> Resp {
    let request = Request::builder()
        .uri(path)
        .header(header::USER_AGENT, BROWSER)
        .body(Body::empty())
        .expect("build the click");
    let r = t.client().send_request(request).await;
    assert_eq!(r.status, StatusCode::FOUND, "{path}: {}", r.body);
    r
}

async fn public_id(t: &TestApp, partner_id: i64) -> String {
    t.get_partner(partner_id).await.public_id
}

/// The text of the table cell `data-col="{col}"` in the report row of `campaign`.
fn report_cell(body: &str, campaign: &str, col: &str) -> Option<String> {
    let row = body
        .split(&format!("<tr data-campaign=\"{campaign}\">"))
        .nth(1)?;
    let row = row.split("</tr>").next()?;
    let cell = row.split(&format!("data-col=\"{col}\">")).nth(1)?;
    Some(cell.split('<').next()?.trim().to_owned())
}

async fn campaign_count(t: &TestApp, partner_id: i64) -> usize {
    t.store
        .list_campaigns(partner_id)
        .await
        .expect("list campaigns")
        .len()
}

/// A form's fields.
type Fields<'a> = &'a [(&'a str, &'a str)];

async fn create(panel: &mut Client, fields: Fields<'_>) -> Resp {
    panel.post_form("/panel/campaigns", fields).await
}

on_both_backends!(
    the_builder_rerenders_each_error_with_422_and_writes_nothing,
    |t: TestApp| async move {
        let partner = t.partner("Bea Builder").await;
        let mut panel = t.signed_in(partner.subject).await;
        let page = panel.get("/panel/campaigns").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body
                .contains("<script src=\"/assets/panel.js\" defer></script>")
        );
        // Without JavaScript the server's preview and the plain links are there.
        assert!(
            page.body.contains("id=\"preview-slug\">campaign<"),
            "{}",
            page.body
        );
        assert!(page.body.contains("utm_campaign=campaign"));
        assert!(page.body.contains("default_link"));
        let audit_before = t.audit().await.len();

        let cases: [(Fields, &str, &str); 4] = [
            (
                &[("name", "Evil"), ("landing_url", "https://evil.test/phish")],
                "landing_url",
                "https://evil.test/phish",
            ),
            (
                &[("name", "Odd Trial"), ("trial_days", "45")],
                "trial_days",
                "Odd Trial",
            ),
            (&[("name", "   "), ("custom", "kw-kept")], "name", "kw-kept"),
            (
                &[("name", "Wordy"), ("discount_percent", "lots")],
                "discount_percent",
                "Wordy",
            ),
        ];
        for (fields, field, refilled) in cases {
            let r = create(&mut panel, fields).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{fields:?}: {}",
                r.body
            );
            assert_eq!(r.field_errors(), vec![field.to_owned()], "{fields:?}");
            assert!(r.body.contains("aria-invalid=\"true\""), "{fields:?}");
            assert!(
                r.body.contains(refilled),
                "{fields:?}: the typed value is kept"
            );
            assert!(r.body.contains("The campaign was not saved"));
        }
        let r = create(
            &mut panel,
            &[("name", "Evil"), ("landing_url", "https://evil.test/")],
        )
        .await;
        assert!(r.body.contains("must be on example.com"), "{}", r.body);
        let r = create(&mut panel, &[("name", "Odd"), ("trial_days", "45")]).await;
        assert!(r.body.contains("14 days, 30 days or 60 days"), "{}", r.body);
        // The re-rendered preview follows what was typed.
        let r = create(
            &mut panel,
            &[
                ("name", "Spring Sale"),
                ("trial_days", "45"),
                ("custom", "kw"),
            ],
        )
        .await;
        assert!(r.body.contains("spring-sale-t45"), "{}", r.body);

        assert_eq!(campaign_count(&t, partner.id).await, 0, "nothing was saved");
        assert_eq!(t.audit().await.len(), audit_before, "nothing was logged");
    }
);

on_both_backends!(
    a_valid_campaign_is_saved_and_listed_with_its_link,
    |t: TestApp| async move {
        let partner = t.partner("Sam Saver").await;
        let id = public_id(&t, partner.id).await;
        let mut panel = t.signed_in(partner.subject).await;
        let r = create(
            &mut panel,
            &[
                ("name", "Spring Sale"),
                ("trial_days", "60"),
                ("discount_percent", ""),
                ("custom", "kw-chat"),
                ("landing_url", "https://www.example.com/pricing"),
            ],
        )
        .await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/panel/campaigns"),
            "{}",
            r.body
        );
        assert!(
            r.set_cookie("partnerd_flash").is_some(),
            "a flash message follows"
        );

        let page = panel.get("/panel/campaigns").await;
        assert_eq!(page.status, StatusCode::OK);
        let link = format!("/r/{id}/spring-sale-t60\"");
        assert!(
            page.body.contains(&link),
            "the list shows {link}: {}",
            page.body
        );
        assert!(
            page.body.contains("Campaign “Spring Sale” saved."),
            "the flash is shown"
        );
        assert!(page.body.contains("60 days") && page.body.contains("kw-chat"));
        assert!(page.body.contains("https://www.example.com/pricing"));
        assert!(
            page.body.contains("data-copy="),
            "copy buttons for JavaScript"
        );
        let saved = t.store.list_campaigns(partner.id).await.unwrap();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].slug, "spring-sale-t60");
        assert_eq!(saved[0].custom.as_deref(), Some("kw-chat"));

        // The same name again makes the same link: refused, named on the field.
        let r = create(
            &mut panel,
            &[("name", "Spring  Sale!"), ("trial_days", "60")],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.field_errors(), vec!["name".to_owned()]);
        assert_eq!(campaign_count(&t, partner.id).await, 1);
    }
);

on_both_backends!(
    clicks_show_in_the_report_and_the_campaign_list_at_once,
    |t: TestApp| async move {
        let partner = t.partner("Cleo Clicks").await;
        let id = public_id(&t, partner.id).await;
        let mut panel = t.signed_in(partner.subject).await;
        let r = create(
            &mut panel,
            &[
                ("name", "Spring Sale"),
                ("trial_days", "60"),
                ("custom", "kw-chat"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

        let empty = panel.get("/panel/report").await;
        assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
        assert!(empty.body.contains("No clicks in this range"));
        assert!(
            empty.body.contains("role=\"img\""),
            "the chart is drawn for an empty range too"
        );

        let r = click(&t, &format!("/r/{id}/spring-sale-t60")).await;
        assert!(
            r.location().contains("utm_campaign=spring-sale-t60"),
            "{}",
            r.location()
        );
        click(&t, &format!("/r/{id}")).await;

        let report = panel.get("/panel/report").await;
        assert_eq!(report.status, StatusCode::OK, "{}", report.body);
        assert_eq!(
            report_cell(&report.body, "spring-sale-t60", "clicks").as_deref(),
            Some("1"),
            "{}",
            report.body
        );
        assert_eq!(
            report_cell(&report.body, "default_link", "clicks").as_deref(),
            Some("1")
        );
        assert!(report.body.contains("kw-chat"), "grouped by utm_term too");
        assert!(report.body.contains("<svg class=\"chart\""));
        assert!(report.body.contains("aria-label=\"Daily clicks, unique visitors and sign-ups from 2025-12-03 to 2026-01-01: 2 clicks"), "{}", report.body);
        assert!(
            report
                .body
                .contains("href=\"/panel/report.csv?from=2025-12-03&amp;to=2026-01-01\"")
                || report
                    .body
                    .contains("href=\"/panel/report.csv?from=2025-12-03&#38;to=2026-01-01\""),
            "{}",
            report.body
        );
        assert!(
            !report.body.contains(" style=\""),
            "no inline styles under the CSP"
        );

        // Quick ranges and an explicit range.
        assert!(
            report.body.contains("?from=2025-12-26&amp;to=2026-01-01")
                || report.body.contains("?from=2025-12-26&#38;to=2026-01-01")
        );
        let old = panel
            .get("/panel/report?from=2025-11-01&to=2025-11-30")
            .await;
        assert_eq!(old.status, StatusCode::OK);
        assert_eq!(
            report_cell(&old.body, "spring-sale-t60", "clicks"),
            None,
            "no clicks back then"
        );

        // The campaign list shows the last 30 days' figures.
        let list = panel.get("/panel/campaigns").await;
        let row = list
            .body
            .split("spring-sale-t60\"")
            .nth(1)
            .expect("the campaign's row");
        let row = row.split("</tr>").next().unwrap();
        assert!(row.contains("<td class=\"num\">1</td>"), "{row}");
    }
);

on_both_backends!(
    invalid_dates_rerender_the_report_with_422,
    |t: TestApp| async move {
        let partner = t.partner("Dora Dates").await;
        let mut panel = t.signed_in(partner.subject).await;
        for (query, field) in [
            ("from=2026-13-01", "from"),
            ("from=2026-01-02&to=2026-01-01", "from"),
            ("to=yesterday", "to"),
        ] {
            let r = panel.get(&format!("/panel/report?{query}")).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{query}: {}",
                r.body
            );
            assert_eq!(r.field_errors(), vec![field.to_owned()], "{query}");
            assert!(r.body.contains("aria-invalid=\"true\""));
            let csv = panel.get(&format!("/panel/report.csv?{query}")).await;
            assert_eq!(csv.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        }
        let r = panel
            .get("/panel/report?from=2026-01-02&to=2026-01-01")
            .await;
        assert!(
            r.body
                .contains("The start date must not be after the end date."),
            "{}",
            r.body
        );
    }
);

on_both_backends!(
    the_csv_is_formula_safe_and_has_a_totals_row,
    |t: TestApp| async move {
        let partner = t.partner("Cass Csv").await;
        let id = public_id(&t, partner.id).await;
        click(&t, &format!("/r/{id}?utm_term=%3Dcmd()")).await;
        let mut panel = t.signed_in(partner.subject).await;
        let r = panel
            .get("/panel/report.csv?from=2026-01-01&to=2026-01-01")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment; filename=\"utm-report-2026-01-01-2026-01-01.csv\"")
        );
        let lines: Vec<&str> = r.body.lines().collect();
        assert_eq!(
            lines[0],
            "utm_campaign,utm_term,clicks,bot_clicks,unique_visitors,signups,customers,conversion_rate,revenue,commission,currency"
        );
        assert!(
            lines[1].starts_with("\"default_link\",\"'=cmd()\",\"1\",\"0\",\"1\",\"0\""),
            "{}",
            r.body
        );
        assert!(!r.body.contains(",\"=cmd()"), "never a bare formula");
        assert!(
            lines.last().unwrap().starts_with("\"Total\",\"\",\"1\""),
            "{}",
            r.body
        );
        assert_eq!(lines.len(), 3);
    }
);

on_both_backends!(
    reports_are_shown_only_to_whom_they_belong,
    |t: TestApp| async move {
        let a = t.partner("Ann Owner").await;
        let b = t.partner("Ben Other").await;
        let a_id = public_id(&t, a.id).await;
        click(&t, &format!("/r/{a_id}")).await;

        // Partners: their own report only; never the console's.
        let mut b_panel = t.signed_in(b.subject).await;
        let own = b_panel.get("/panel/report").await;
        assert_eq!(own.status, StatusCode::OK);
        assert_eq!(
            report_cell(&own.body, "default_link", "clicks"),
            None,
            "B sees none of A's clicks"
        );
        for path in [
            format!("/admin/partners/{}/report", a.id),
            "/admin/report".to_owned(),
        ] {
            assert_eq!(
                b_panel.get(&path).await.status,
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
        let mut a_panel = t.signed_in(a.subject).await;
        assert_eq!(
            a_panel
                .get(&format!("/admin/partners/{}/report", a.id))
                .await
                .status,
            StatusCode::FORBIDDEN
        );

        // Staff: the program report (UTC), and a partner's report in the partner's time zone.
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let program = console.get("/admin/report").await;
        assert_eq!(program.status, StatusCode::OK, "{}", program.body);
        assert!(program.body.contains("Program report") && program.body.contains("times in UTC"));
        assert_eq!(
            report_cell(&program.body, "default_link", "clicks").as_deref(),
            Some("1")
        );
        assert!(
            !program.body.contains("report.csv"),
            "the export is the partner's"
        );
        let one = console
            .get(&format!("/admin/partners/{}/report", a.id))
            .await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.body);
        assert!(one.body.contains("Report: Ann Owner"));
        assert_eq!(
            report_cell(&one.body, "default_link", "clicks").as_deref(),
            Some("1")
        );
        let partner_page = console.get(&format!("/admin/partners/{}", a.id)).await;
        assert!(
            partner_page
                .body
                .contains(&format!("href=\"/admin/partners/{}/report\"", a.id))
        );

        let manager = t.manager("Mia Manager").await;
        let mut m_console = t.signed_in(Subject::Staff(manager.id)).await;
        let program = m_console.get("/admin/report").await;
        assert_eq!(
            program.status,
            StatusCode::OK,
            "every staff member sees the program report"
        );
        assert!(
            program.body.contains("href=\"/admin/report\""),
            "the console's navigation links it"
        );
    }
);

#[tokio::test]
async fn the_panel_script_is_served_and_the_navigation_links_the_pages() {
    let t = TestApp::sqlite().await;
    let r = t.client().get("/assets/panel.js").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(r.body.contains("function campaignSlug"));
    let partner = t.partner("Nav Partner").await;
    let mut panel = t.signed_in(partner.subject).await;
    let home = panel.get("/panel").await;
    assert!(
        home.body.contains("href=\"/panel/campaigns\"")
            && home.body.contains("href=\"/panel/report\"")
    );
}
