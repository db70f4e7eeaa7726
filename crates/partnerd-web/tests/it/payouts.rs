//! Withdrawals and payouts (R-PAY-3), driven through the console and the job
//! runner against the PayPal stand-in (a real HTTP server): approval pays
//! exactly once whatever PayPal's faults, every failure status brings the money
//! back and tells the partner, webhooks are verified hints, rejection needs a
//! reason, only admins decide, and the manual path exports PayPal's
//! mass-payment file. After each test the ledger's invariants I1–I8 hold.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use partnerd_app::config::{PayPalSettings, Secret};
use partnerd_app::{Config, jobs};
use partnerd_domain::ledger::{PartnerBalances, PayoutStatus, WithdrawalStatus, check_invariants};
use partnerd_domain::{Currency, Timestamp};
use partnerd_store::money::{
    EventKey, EventOrigin, NewPayment, NewWithdrawal, PayoutProfile, WithdrawalRow,
};
use partnerd_store::{NewAudit, NewSignup, Subject};
use partnerd_testkit::paypal::{Endpoint, Fault, ItemOutcome, PayPalStandIn};

use crate::helpers::{Client, Db, TestApp, on_both_backends};

/// The webhook id PayPal gave the test's `/webhooks/paypal` subscription.
const WEBHOOK_ID: &str = "8PT597110X687430LKGECATA";
const DAY: i64 = 86_400;
/// What a $1,000 payment earns at 20 %.
const COMMISSION: i64 = 20_000;

/// `name::on_sqlite` and `name::on_postgres`, each with a PayPal stand-in of
/// its own and a partnerd configured to pay through it (`timeout` seconds a call).
macro_rules! with_paypal {
    ($name:ident, timeout = $timeout:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                run(Db::Sqlite, $timeout, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if !Db::available().contains(&Db::Postgres) {
                    println!("{}: skipped, PostgreSQL is not configured", module_path!());
                    return;
                }
                run(Db::Postgres, $timeout, $body).await;
            }
        }
    };
}

async fn run<F, Fut>(db: Db, timeout: u64, body: F)
where
    F: FnOnce(TestApp, PayPalStandIn) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let paypal = PayPalStandIn::start()
        .await
        .expect("start the PayPal stand-in");
    let config = Config {
        paypal: Some(PayPalSettings {
            client_id: paypal.client_id().into(),
            client_secret: Secret::new(paypal.client_secret()),
            base_url: paypal.base_url(),
            webhook_id: Some(WEBHOOK_ID.into()),
            timeout_seconds: timeout,
        }),
        ..Config::default()
    };
    let t = TestApp::on(db, config).await;
    body(t, paypal).await;
}

/// A partner with a complete payout profile (PayPal email `{tag}@paypal.test`)
/// and `COMMISSION` of USD available (a payment whose hold has ended).
async fn partner_with_money(t: &TestApp, tag: &str) -> (i64, String) {
    partner_with_money_in(
        t,
        tag,
        Currency::USD,
        &format!("{tag}@paypal.test").to_lowercase(),
    )
    .await
}

async fn partner_with_money_in(
    t: &TestApp,
    tag: &str,
    currency: Currency,
    paypal_email: &str,
) -> (i64, String) {
    let account = t.partner(&format!("{tag} Partner")).await;
    let store = &t.store;
    let now = t.app.now();
    let customer = format!("cus_{tag}_{}", currency.code());
    store
        .record_signup(NewSignup {
            customer_id: customer.clone(),
            partner_id: Some(account.id),
            referred_partner_id: Some(account.id),
            campaign_id: None,
            click_id: None,
            utm_campaign: Some("default_link".into()),
            utm_term: None,
            trial_days: None,
            discount_percent: None,
            reason: "credited".into(),
            review: false,
            commission_rate: Some(20),
            created_at: now,
        })
        .await
        .expect("credit the customer");
    // Paid 31 days ago: the 30-day hold (R-COM-4) is over.
    let paid_at = Timestamp::from_millis(now.millis() - 31 * DAY * 1000);
    store
        .record_payment(
            NewPayment {
                event: EventKey::new(EventOrigin::Api, format!("payment:in_{customer}")),
                payment_id: format!("in_{customer}"),
                customer_id: customer,
                amount: 100_000,
                currency,
                paid_at,
                subscription_id: None,
            },
            30,
            now,
        )
        .await
        .expect("record the payment");
    store
        .release_due_holds(now, 100)
        .await
        .expect("release holds");
    store
        .save_payout_profile(
            account.id,
            &PayoutProfile {
                paypal_email: Some(paypal_email.into()),
                legal_name: Some(format!("{tag} Legal GmbH")),
                country: Some("DE".into()),
                tax_id: Some("DE123456789".into()),
            },
            NewAudit::new(now, "test", "partner.payout_profile", "partner"),
            Vec::new(),
            now,
        )
        .await
        .expect("save the payout profile");
    let id = format!("wd-{tag}-{}", currency.code()).to_lowercase();
    store
        .request_withdrawal(NewWithdrawal {
            id: id.clone(),
            partner_id: account.id,
            currency,
            minimum: 5_000,
            requested_at: now,
            audit: NewAudit::new(now, "test", "withdrawal.request", "withdrawal"),
        })
        .await
        .expect("request the withdrawal");
    (account.id, id)
}

async fn admin_client(t: &TestApp) -> Client {
    let admin = t.admin().await;
    t.signed_in(admin.subject).await
}

async fn balances(t: &TestApp, partner_id: i64) -> PartnerBalances {
    t.store
        .partner_balances(partner_id)
        .await
        .unwrap()
        .into_iter()
        .next()
        .map(|row| row.balances)
        .unwrap_or_default()
}

async fn withdrawal(t: &TestApp, id: &str) -> WithdrawalRow {
    t.store.get_withdrawal(id).await.unwrap().0
}

async fn payout_status(t: &TestApp, id: &str) -> Option<PayoutStatus> {
    t.store
        .get_withdrawal(id)
        .await
        .unwrap()
        .1
        .map(|p| p.item.status)
}

async fn run_jobs(t: &TestApp) -> usize {
    jobs::run_due(&t.app, "test-worker")
        .await
        .expect("run the jobs")
}

/// Runs the jobs, then lets `seconds` pass and runs them again, `times` times.
async fn run_jobs_over(t: &TestApp, seconds: i64, times: usize) {
    run_jobs(t).await;
    for _ in 0..times {
        t.advance(seconds);
        run_jobs(t).await;
    }
}

async fn approve(admin: &mut Client, id: &str) {
    let r = admin
        .post_form(&format!("/admin/withdrawals/{id}/approve"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "approve {id}: {}", r.body);
}

/// I1–I8 on everything the store holds.
async fn assert_ledger_sound(t: &TestApp) {
    let snapshot = t.store.ledger_records().await.unwrap();
    let breaches = check_invariants(&snapshot.records());
    assert!(breaches.is_empty(), "{breaches:#?}");
}

async fn partner_email(t: &TestApp, partner_id: i64) -> String {
    t.get_partner(partner_id).await.email.unwrap()
}

with_paypal!(
    an_approved_withdrawal_is_paid_through_paypal_and_the_partner_is_told,
    timeout = 5,
    |t: TestApp, paypal: PayPalStandIn| async move {
        let (partner, id) = partner_with_money(&t, "Ann").await;
        let mut admin = admin_client(&t).await;
        let queue = admin.get("/admin/withdrawals").await;
        assert_eq!(queue.status, StatusCode::OK);
        assert!(queue.body.contains("Ann Partner"), "{}", queue.body);
        assert!(queue.body.contains("200.00 USD"));
        assert!(queue.body.contains("complete"));
        let page = admin.get(&format!("/admin/withdrawals/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.form_action("/admin/withdrawals/"),
            format!("/admin/withdrawals/{id}/approve")
        );

        approve(&mut admin, &id).await;
        assert_eq!(t.last_audit().await.action, "withdrawal.approve");
        // The submission, then the first poll a minute later.
        run_jobs(&t).await;
        let (_, payout) = t.store.get_withdrawal(&id).await.unwrap();
        let payout = payout.unwrap();
        assert_eq!(payout.sender_batch_id, id);
        assert!(payout.payout_batch_id.is_some(), "{payout:?}");
        assert_eq!(
            paypal.batches()[0].sender_batch_id.as_deref(),
            Some(id.as_str())
        );
        assert_eq!(paypal.batches()[0].items[0].value, "200.00");
        t.advance(61);
        run_jobs(&t).await;

        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Paid
        );
        let b = balances(&t, partner).await;
        assert_eq!((b.paid, b.in_flight, b.available), (COMMISSION, 0, 0));
        let counters = paypal.counters();
        assert_eq!((counters.batches_created, counters.items_paid), (1, 1));
        let emails = t.emails_to(&partner_email(&t, partner).await).await;
        let paid: Vec<_> = emails
            .iter()
            .filter(|e| e.subject.starts_with("Your withdrawal was paid"))
            .collect();
        assert_eq!(paid.len(), 1, "{emails:?}");
        assert!(paid[0].body.contains("200.00 USD"));
        // Polling stops at the final status: nothing more runs, nothing changes.
        t.advance(7 * 3600);
        assert_eq!(run_jobs(&t).await, 0);
        let listed = admin.get("/admin/withdrawals?status=paid").await;
        assert!(listed.body.contains("SUCCESS"), "{}", listed.body);
        assert_ledger_sound(&t).await;
    }
);

with_paypal!(
    every_payout_that_does_not_arrive_brings_the_money_back_and_tells_the_partner,
    timeout = 5,
    |t: TestApp, paypal: PayPalStandIn| async move {
        let cases = [
            ("Fay", ItemOutcome::Failed, "FAILED"),
            ("Ray", ItemOutcome::Returned, "RETURNED"),
            ("Bo", ItemOutcome::Blocked, "BLOCKED"),
            ("Rue", ItemOutcome::Refunded, "REFUNDED"),
            ("Rev", ItemOutcome::Reversed, "REVERSED"),
            ("Una", ItemOutcome::UnclaimedThenReturned, "RETURNED"),
        ];
        let mut admin = admin_client(&t).await;
        let mut withdrawals = Vec::new();
        for (tag, outcome, _) in cases {
            let (partner, id) = partner_with_money(&t, tag).await;
            paypal.set_outcome(&format!("{tag}@paypal.test").to_lowercase(), outcome);
            approve(&mut admin, &id).await;
            withdrawals.push((partner, id));
        }
        // Submission and first poll: every item settles; the unclaimed one waits.
        run_jobs_over(&t, 61, 1).await;
        let (_, unclaimed) = &withdrawals[5];
        assert_eq!(
            payout_status(&t, unclaimed).await,
            Some(PayoutStatus::Unclaimed)
        );
        assert_eq!(
            withdrawal(&t, unclaimed).await.withdrawal.status,
            WithdrawalStatus::Approved
        );
        // Thirty days later PayPal returns it; a later poll sees that.
        paypal.expire_unclaimed();
        run_jobs_over(&t, 6 * 3600, 4).await;

        for ((partner, id), (tag, _, status)) in withdrawals.iter().zip(cases) {
            let row = withdrawal(&t, id).await;
            assert_eq!(row.withdrawal.status, WithdrawalStatus::Failed, "{tag}");
            assert_eq!(
                payout_status(&t, id).await.map(|s| s.as_str()),
                Some(status),
                "{tag}"
            );
            let b = balances(&t, *partner).await;
            assert_eq!(
                (b.available, b.in_flight, b.paid),
                (COMMISSION, 0, 0),
                "{tag}"
            );
            let emails = t.emails_to(&partner_email(&t, *partner).await).await;
            let back: Vec<_> = emails
                .iter()
                .filter(|e| e.subject.starts_with("Your payout did not arrive"))
                .collect();
            assert_eq!(back.len(), 1, "{tag}: {emails:?}");
        }
        assert_eq!(paypal.counters().batches_created, cases.len());
        // A day passed: the admin signs in again.
        let staff_id = match t
            .audit()
            .await
            .iter()
            .find(|a| a.action == "withdrawal.approve")
        {
            Some(entry) => entry.actor.clone(),
            None => panic!("no approval in the audit log"),
        };
        let staff_id: i64 = staff_id
            .trim_start_matches("staff:")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut admin = t.signed_in(Subject::Staff(staff_id)).await;
        let failed = admin.get("/admin/withdrawals?status=failed").await;
        for status in ["FAILED", "RETURNED", "BLOCKED", "REFUNDED", "REVERSED"] {
            assert!(failed.body.contains(status), "{status}: {}", failed.body);
        }
        assert_ledger_sound(&t).await;
    }
);

with_paypal!(
    server_errors_are_retried_with_the_same_batch_id_and_pay_once,
    timeout = 5,
    |t: TestApp, paypal: PayPalStandIn| async move {
        let (plain, plain_id) = partner_with_money(&t, "Eve").await;
        let mut admin = admin_client(&t).await;
        // A 500 before PayPal applied anything, then one after it did.
        paypal.fail_next(Endpoint::CreateBatch, 1, Fault::ServerError);
        paypal.fail_next(Endpoint::CreateBatch, 1, Fault::AppliedThenServerError);
        approve(&mut admin, &plain_id).await;
        run_jobs(&t).await;
        assert_eq!(paypal.counters().batches_created, 0);
        assert_eq!(
            payout_status(&t, &plain_id).await,
            Some(PayoutStatus::Pending)
        );
        // The retry: applied, answer lost.
        t.advance(31);
        run_jobs(&t).await;
        assert_eq!(paypal.counters().batches_created, 1);
        let (_, payout) = t.store.get_withdrawal(&plain_id).await.unwrap();
        assert!(
            payout.unwrap().payout_batch_id.is_none(),
            "the answer was lost"
        );
        // The next retry sends the same sender_batch_id: PayPal shows the batch it has.
        run_jobs_over(&t, 61, 3).await;
        let counters = paypal.counters();
        assert_eq!(counters.batches_created, 1);
        assert_eq!(counters.duplicates_refused, 1);
        assert_eq!(counters.items_paid, 1);
        assert_eq!(
            withdrawal(&t, &plain_id).await.withdrawal.status,
            WithdrawalStatus::Paid
        );
        assert_eq!(balances(&t, plain).await.paid, COMMISSION);
        assert_ledger_sound(&t).await;
    }
);

with_paypal!(
    a_timeout_is_retried_with_the_same_batch_id_and_pays_once,
    timeout = 1,
    |t: TestApp, paypal: PayPalStandIn| async move {
        let (partner, id) = partner_with_money(&t, "Tim").await;
        let mut admin = admin_client(&t).await;
        paypal.set_hang(Duration::from_secs(3));
        paypal.fail_next(Endpoint::CreateBatch, 1, Fault::AppliedThenHang);
        approve(&mut admin, &id).await;
        run_jobs(&t).await;
        assert_eq!(paypal.counters().batches_created, 1, "applied, then hung");
        assert_eq!(payout_status(&t, &id).await, Some(PayoutStatus::Pending));
        run_jobs_over(&t, 61, 3).await;
        let counters = paypal.counters();
        assert_eq!(
            (
                counters.batches_created,
                counters.duplicates_refused,
                counters.items_paid
            ),
            (1, 1, 1)
        );
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Paid
        );
        assert_eq!(balances(&t, partner).await.paid, COMMISSION);
        assert_ledger_sound(&t).await;
    }
);

with_paypal!(
    a_crash_between_the_paypal_call_and_recording_its_answer_pays_exactly_once_after_the_restart,
    timeout = 10,
    |t: TestApp, paypal: PayPalStandIn| async move {
        let (partner, id) = partner_with_money(&t, "Cal").await;
        let mut admin = admin_client(&t).await;
        approve(&mut admin, &id).await;
        // PayPal creates the batch and its answer never comes back, because
        // the process running the job dies while waiting for it.
        paypal.set_hang(Duration::from_secs(60));
        paypal.fail_next(Endpoint::CreateBatch, 1, Fault::AppliedThenHang);
        let app = t.app.clone();
        let doomed = tokio::spawn(async move { jobs::run_due(&app, "worker-that-dies").await });
        for _ in 0..500 {
            if paypal.counters().batches_created == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(paypal.counters().batches_created, 1);
        doomed.abort();
        let _ = doomed.await;
        let (_, payout) = t.store.get_withdrawal(&id).await.unwrap();
        assert!(
            payout.unwrap().payout_batch_id.is_none(),
            "nothing was recorded"
        );

        // The restarted process cannot take the job while the dead one's lease runs…
        assert_eq!(jobs::run_due(&t.app, "restarted").await.unwrap(), 0);
        // …and takes it once the lease is over: same sender_batch_id, no new batch.
        t.advance(jobs::LEASE_SECONDS + 1);
        assert_eq!(jobs::run_due(&t.app, "restarted").await.unwrap(), 1);
        run_jobs_over(&t, 61, 3).await;

        let counters = paypal.counters();
        assert_eq!(counters.batches_created, 1);
        assert_eq!(counters.duplicates_refused, 1);
        assert_eq!(counters.items_paid, 1);
        assert_eq!(paypal.batches().len(), 1);
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Paid
        );
        let b = balances(&t, partner).await;
        assert_eq!((b.paid, b.in_flight), (COMMISSION, 0));
        assert_ledger_sound(&t).await;
    }
);

/// Posts a PayPal delivery to `/webhooks/paypal` through the router.
async fn deliver(
    client: &mut Client,
    headers: &[(&'static str, String)],
    body: &str,
) -> StatusCode {
    let mut request = Request::builder()
        .method("POST")
        .uri("/webhooks/paypal")
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    client.send_request(request).await.status
}

with_paypal!(
    verified_webhooks_are_hints_delivered_twice_they_pay_once_and_forged_ones_write_nothing,
    timeout = 5,
    |t: TestApp, paypal: PayPalStandIn| async move {
        let (partner, id) = partner_with_money(&t, "Web").await;
        let mut admin = admin_client(&t).await;
        paypal.set_auto_settle(false);
        approve(&mut admin, &id).await;
        run_jobs(&t).await;
        paypal.settle();
        let item_id = paypal.batches()[0].items[0].payout_item_id.clone();
        let webhook = paypal.item_webhook(&item_id, WEBHOOK_ID).unwrap();

        // Changed by one byte: PayPal does not vouch for it; nothing is written.
        let before = t.counts().await;
        let forged = webhook.body.replacen("SUCCESS", "SUCCESs", 1);
        let mut anyone = t.client();
        assert_eq!(
            deliver(&mut anyone, &webhook.headers, &forged).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            deliver(&mut anyone, &[], &webhook.body).await,
            StatusCode::BAD_REQUEST,
            "without PayPal's headers"
        );
        assert_eq!(t.counts().await, before);
        assert_eq!(run_jobs(&t).await, 0, "no poll was enqueued");

        // The genuine delivery, twice: each enqueues a poll now, one payment results.
        for _ in 0..2 {
            assert_eq!(
                deliver(&mut anyone, &webhook.headers, &webhook.body).await,
                StatusCode::OK
            );
        }
        assert_eq!(run_jobs(&t).await, 2);
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Paid
        );
        // The regular poll later finds it paid and books nothing more.
        run_jobs_over(&t, 61, 2).await;
        assert_eq!(balances(&t, partner).await.paid, COMMISSION);
        let emails = t.emails_to(&partner_email(&t, partner).await).await;
        assert_eq!(
            emails
                .iter()
                .filter(|e| e.subject.starts_with("Your withdrawal was paid"))
                .count(),
            1
        );
        // PayPal reverses the payout later; its webhook brings the money back.
        assert!(paypal.set_item_status(&item_id, "REVERSED"));
        let reversal = paypal.item_webhook(&item_id, WEBHOOK_ID).unwrap();
        assert_eq!(
            deliver(&mut anyone, &reversal.headers, &reversal.body).await,
            StatusCode::OK
        );
        run_jobs(&t).await;
        let b = balances(&t, partner).await;
        assert_eq!((b.paid, b.available), (0, COMMISSION));
        assert_eq!(paypal.counters().batches_created, 1);
        assert_ledger_sound(&t).await;
    }
);

on_both_backends!(
    a_rejection_needs_a_reason_and_returns_the_money_with_the_reason_told,
    |t: TestApp| async move {
        let (partner, id) = partner_with_money(&t, "Rex").await;
        let mut admin = admin_client(&t).await;
        let before = t.counts().await;
        let r = admin
            .post_form(
                &format!("/admin/withdrawals/{id}/reject"),
                &[("reason", "  ")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.field_errors(), ["reason"]);
        assert_eq!(t.counts().await, before);
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Requested
        );

        let r = admin
            .post_form(
                &format!("/admin/withdrawals/{id}/reject"),
                &[("reason", "The tax id does not match the legal name.")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let row = withdrawal(&t, &id).await;
        assert_eq!(row.withdrawal.status, WithdrawalStatus::Rejected);
        assert_eq!(
            row.reason.as_deref(),
            Some("The tax id does not match the legal name.")
        );
        let audit = t.last_audit().await;
        assert_eq!(audit.action, "withdrawal.reject");
        assert!(audit.after.unwrap().contains("does not match"));
        let b = balances(&t, partner).await;
        assert_eq!((b.available, b.in_flight), (COMMISSION, 0));
        let email = t.last_email_to(&partner_email(&t, partner).await).await;
        assert!(
            email
                .subject
                .starts_with("Your withdrawal was not approved")
        );
        assert!(
            email
                .body
                .contains("The tax id does not match the legal name.")
        );
        // Decided once: approving it now is refused and changes nothing.
        let r = admin
            .post_form(&format!("/admin/withdrawals/{id}/approve"), &[])
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(payout_status(&t, &id).await, None);
        assert_ledger_sound(&t).await;
    }
);

on_both_backends!(
    managers_and_partners_cannot_see_or_decide_withdrawals,
    |t: TestApp| async move {
        let (partner, id) = partner_with_money(&t, "Pam").await;
        let manager = t.manager("Mo Manager").await;
        for subject in [Subject::Staff(manager.id), Subject::Partner(partner)] {
            let mut client = t.signed_in(subject).await;
            for path in [
                "/admin/withdrawals".to_owned(),
                format!("/admin/withdrawals/{id}"),
                "/admin/withdrawals.csv?currency=USD".to_owned(),
            ] {
                assert_eq!(
                    client.get(&path).await.status,
                    StatusCode::FORBIDDEN,
                    "{path}"
                );
            }
            for (action, fields) in [
                ("approve", vec![]),
                ("reject", vec![("reason", "no")]),
                ("mark", vec![("outcome", "paid")]),
            ] {
                let r = client
                    .post_form(&format!("/admin/withdrawals/{id}/{action}"), &fields)
                    .await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{action}");
            }
        }
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Requested
        );
        // The console's menu shows the page to admins only.
        let mut staff = t.signed_in(Subject::Staff(manager.id)).await;
        assert!(
            !staff
                .get("/admin")
                .await
                .body
                .contains("/admin/withdrawals")
        );
        let mut admin = admin_client(&t).await;
        assert!(
            admin
                .get("/admin")
                .await
                .body
                .contains("/admin/withdrawals")
        );
        assert_ledger_sound(&t).await;
    }
);

on_both_backends!(
    without_paypal_approved_withdrawals_wait_for_the_mass_payment_file_and_are_marked_by_hand,
    |t: TestApp| async move {
        let (ann, ann_id) = partner_with_money(&t, "Ann").await;
        let (bob, bob_id) = partner_with_money(&t, "Bob").await;
        // A PayPal address that a spreadsheet would run as a formula.
        let (_, eve_id) =
            partner_with_money_in(&t, "Eve", Currency::USD, "=HYPERLINK(\"x\")@paypal.test").await;
        let (_, eur_id) = partner_with_money_in(&t, "Eu", Currency::EUR, "eu@paypal.test").await;
        let (_, waiting_id) =
            partner_with_money_in(&t, "Wai", Currency::GBP, "wai@paypal.test").await;
        let mut admin = admin_client(&t).await;
        for id in [&ann_id, &bob_id, &eve_id, &eur_id] {
            approve(&mut admin, id).await;
        }
        // No PayPal: no job, they stay approved.
        assert_eq!(run_jobs(&t).await, 0);
        assert_eq!(
            withdrawal(&t, &ann_id).await.withdrawal.status,
            WithdrawalStatus::Approved
        );
        let page = admin.get("/admin/withdrawals?status=approved").await;
        assert!(page.body.contains("USD part 1"), "{}", page.body);
        assert!(page.body.contains("EUR part 1"));
        assert!(
            !page.body.contains("GBP"),
            "only approved ones: {}",
            page.body
        );

        let r = admin
            .get("/admin/withdrawals.csv?currency=USD&part=1")
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
        assert!(
            r.header("content-disposition")
                .unwrap()
                .contains("USD-1.csv")
        );
        let lines: Vec<&str> = r.body.lines().collect();
        assert_eq!(lines.len(), 3, "{}", r.body);
        assert_eq!(
            lines[0],
            format!(
                "\"ann@paypal.test\",\"200.00\",\"USD\",\"{ann_id}\",\"Partner Program payout {ann_id}\""
            )
        );
        assert!(lines[1].starts_with(&format!(
            "\"bob@paypal.test\",\"200.00\",\"USD\",\"{bob_id}\""
        )));
        assert!(
            lines[2].starts_with("\"'=HYPERLINK(\"\"x\"\")@paypal.test\","),
            "the formula is defused: {}",
            lines[2]
        );
        let eur = admin.get("/admin/withdrawals.csv?currency=EUR").await;
        assert_eq!(eur.body.lines().count(), 1);
        assert!(eur.body.contains("\"EUR\""));
        assert!(!eur.body.contains("USD"));
        let none = admin
            .get("/admin/withdrawals.csv?currency=USD&part=2")
            .await;
        assert_eq!((none.status, none.body.as_str()), (StatusCode::OK, ""));

        // After the mass payment: Ann's arrived, Bob's bounced.
        let r = admin
            .post_form(
                &format!("/admin/withdrawals/{ann_id}/mark"),
                &[("outcome", "paid")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(t.last_audit().await.action, "withdrawal.mark");
        let r = admin
            .post_form(
                &format!("/admin/withdrawals/{bob_id}/mark"),
                &[("outcome", "failed")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = admin
            .post_form(
                &format!("/admin/withdrawals/{bob_id}/mark"),
                &[("outcome", "maybe")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(balances(&t, ann).await.paid, COMMISSION);
        let b = balances(&t, bob).await;
        assert_eq!((b.available, b.paid, b.in_flight), (COMMISSION, 0, 0));
        assert!(
            t.last_email_to(&partner_email(&t, ann).await)
                .await
                .subject
                .starts_with("Your withdrawal was paid")
        );
        assert!(
            t.last_email_to(&partner_email(&t, bob).await)
                .await
                .subject
                .starts_with("Your payout did not arrive")
        );
        // Marked ones leave the file, and cannot be marked again.
        let r = admin.get("/admin/withdrawals.csv?currency=USD").await;
        assert_eq!(r.body.lines().count(), 1);
        let r = admin
            .post_form(
                &format!("/admin/withdrawals/{ann_id}/mark"),
                &[("outcome", "failed")],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(balances(&t, ann).await.paid, COMMISSION);
        assert_eq!(
            withdrawal(&t, &waiting_id).await.withdrawal.status,
            WithdrawalStatus::Requested
        );
        assert_ledger_sound(&t).await;
    }
);

with_paypal!(
    a_payout_whose_polls_ran_out_is_settled_by_the_daily_reconciliation,
    timeout = 5,
    |t: TestApp, paypal: PayPalStandIn| async move {
        // R-PAY-3: PayPal unreachable for days used up the poll chain; the
        // reconciliation polls once more and the payout ends paid, once.
        let (partner, id) = partner_with_money(&t, "Rae").await;
        let mut admin = admin_client(&t).await;
        approve(&mut admin, &id).await;
        run_jobs(&t).await;
        let (_, payout) = t.store.get_withdrawal(&id).await.unwrap();
        assert!(payout.unwrap().payout_batch_id.is_some());
        // The chain is gone (as after its last failed attempt).
        let polls_left = t
            .sql_scalar(
                "select count(*) from jobs where kind = 'paypal_poll' and status = 'queued'",
            )
            .await;
        assert!(polls_left >= 1);
        sqlx_delete_polls(&t).await;
        t.advance(3 * DAY);
        run_jobs(&t).await;
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Approved,
            "nothing polls it any more"
        );
        assert_eq!(t.app.reconcile_payouts().await.unwrap(), 1);
        run_jobs(&t).await;
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Paid
        );
        let b = balances(&t, partner).await;
        assert_eq!((b.paid, b.in_flight), (COMMISSION, 0));
        assert_eq!(paypal.counters().batches_created, 1);
        // Paid withdrawals are not polled again.
        assert_eq!(t.app.reconcile_payouts().await.unwrap(), 0);
        assert_ledger_sound(&t).await;
    }
);

/// Deletes the pending poll jobs, as if their attempts had run out.
async fn sqlx_delete_polls(t: &TestApp) {
    // Both engines run the whole delete on the first row RETURNING hands back.
    t.sql_scalar("delete from jobs where kind = 'paypal_poll' returning cast(1 as bigint)")
        .await;
}

with_paypal!(
    a_paypal_payout_whose_answer_was_lost_cannot_be_paid_by_hand_as_well,
    timeout = 1,
    |t: TestApp, paypal: PayPalStandIn| async move {
        // R-PAY-3, never paid twice: PayPal applied the batch but its answer was
        // lost, so the withdrawal looks unsent; it stays out of the mass-payment
        // file and the manual marks, and PayPal's own status settles it.
        let (_partner, id) = partner_with_money(&t, "Sol").await;
        let mut admin = admin_client(&t).await;
        approve(&mut admin, &id).await;
        paypal.fail_next(Endpoint::CreateBatch, 1, Fault::AppliedThenServerError);
        run_jobs(&t).await;
        let (_, payout) = t.store.get_withdrawal(&id).await.unwrap();
        let payout = payout.unwrap();
        assert_eq!(payout.via, "paypal");
        assert!(payout.payout_batch_id.is_none(), "the answer was lost");
        assert!(t.app.unsent_payouts().await.unwrap().is_empty());
        let r = admin
            .post_form(
                &format!("/admin/withdrawals/{id}/mark"),
                &[("outcome", "failed")],
            )
            .await;
        assert_ne!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Approved
        );
        // The retry finds the batch PayPal made and the poll settles it: one payment.
        run_jobs_over(&t, 3_600, 3).await;
        assert_eq!(
            withdrawal(&t, &id).await.withdrawal.status,
            WithdrawalStatus::Paid
        );
        assert_eq!(paypal.counters().batches_created, 1);
        assert_ledger_sound(&t).await;
    }
);
