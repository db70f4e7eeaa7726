//! Tracking (R-AFF-1..7, R-REP-1..2): campaigns, clicks in batches with their
//! report counters, sign-ups once per customer, the networks partners signed
//! in from, and the report's rows and hours.

use std::sync::Arc;

use partnerd_domain::Timestamp;
use partnerd_store::{
    Campaign, NewCampaign, NewClick, NewSession, NewSignup, ReportHour, ReportRange, ReportRow,
    Store, StoreError, Subject,
};

use crate::fixtures::*;

/// 2023-11-15T00:00:00Z: a day's beginning, so hours and days of the clicks are plain.
const D0: i64 = 1_700_006_400_000;
const HOUR: i64 = 3_600_000;

/// The UTC hour (since the epoch) `n` hours after `D0`.
fn hour(n: i64) -> i64 {
    D0 / HOUR + n
}

/// `n` hours and `minutes` after `D0`.
fn at_hour(n: i64, minutes: i64) -> Timestamp {
    Timestamp::from_millis(D0 + n * HOUR + minutes * 60_000)
}

fn new_campaign(partner_id: i64, name: &str, slug: &str, created_at: Timestamp) -> NewCampaign {
    NewCampaign {
        partner_id,
        name: name.into(),
        slug: slug.into(),
        trial_days: Some(60),
        discount_percent: Some(20),
        custom: Some("newsletter".into()),
        landing_url: Some("https://www.example.com/pricing".into()),
        created_at,
    }
}

/// A click of `visitor` (a browser unless `agent` says `bot`).
fn click(
    id: i64,
    partner_id: i64,
    campaign_id: Option<i64>,
    at: Timestamp,
    term: Option<&str>,
    agent: &'static str,
    visitor: &str,
) -> NewClick {
    NewClick {
        id,
        partner_id,
        campaign_id,
        at,
        utm_term: term.map(str::to_owned),
        subs: [
            Some(format!("s1-{id}")),
            None,
            None,
            None,
            Some("s5".into()),
        ],
        referrer_host: Some("blog.example.org".into()),
        agent,
        network: format!("net-{visitor}"),
        visitor: format!("visitor-{visitor}"),
        own_session: false,
    }
}

fn everything(partner_id: Option<i64>) -> ReportRange {
    ReportRange {
        partner_id,
        from_hour: hour(-1000),
        to_hour: hour(1000),
    }
}

fn row(campaign: &str, term: &str, clicks: i64, bots: i64, unique: i64, signups: i64) -> ReportRow {
    ReportRow {
        utm_campaign: campaign.into(),
        utm_term: term.into(),
        clicks,
        bot_clicks: bots,
        unique_visitors: unique,
        signups,
    }
}

fn hour_row(n: i64, clicks: i64, bots: i64, unique: i64, signups: i64) -> ReportHour {
    ReportHour {
        hour: hour(n),
        clicks,
        bot_clicks: bots,
        unique_visitors: unique,
        signups,
    }
}

fn signup(
    customer: &str,
    partner: Option<i64>,
    campaign: Option<&Campaign>,
    at: Timestamp,
) -> NewSignup {
    NewSignup {
        customer_id: customer.into(),
        partner_id: partner,
        referred_partner_id: partner,
        campaign_id: campaign.map(|c| c.id),
        click_id: Some(1),
        utm_campaign: Some(campaign.map_or("default_link".to_owned(), |c| c.slug.clone())),
        utm_term: campaign.and_then(|c| c.custom.clone()),
        trial_days: campaign.and_then(|c| c.trial_days),
        discount_percent: campaign.and_then(|c| c.discount_percent),
        reason: if partner.is_some() {
            "last_click"
        } else {
            "expired"
        }
        .into(),
        review: false,
        commission_rate: partner.map(|_| 20),
        created_at: at,
    }
}

conformance!(
    campaigns_are_unique_per_partner_listed_newest_first_and_loaded_with_their_partner,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        let bob = add_partner(&*store, "bob", at(0)).await;
        let spring = store
            .create_campaign(
                new_campaign(ann.id, "Spring Sale", "spring-sale-t60-d20", at(10)),
                audit("campaign.create", "partner:pub-ann"),
            )
            .await
            .unwrap();
        assert_eq!(
            (
                spring.partner_id,
                spring.name.as_str(),
                spring.slug.as_str()
            ),
            (ann.id, "Spring Sale", "spring-sale-t60-d20")
        );
        assert_eq!(
            (
                spring.trial_days,
                spring.discount_percent,
                spring.custom.as_deref()
            ),
            (Some(60), Some(20), Some("newsletter"))
        );
        assert_eq!(
            (spring.landing_url.as_deref(), spring.created_at),
            (Some("https://www.example.com/pricing"), at(10).millis())
        );
        let entry = last_audit(&*store).await;
        assert_eq!(entry.action, "campaign.create");
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "campaign": spring.id, "slug": "spring-sale-t60-d20" })
        );
        // The basic fields only.
        let plain = NewCampaign {
            trial_days: None,
            discount_percent: None,
            custom: None,
            landing_url: None,
            ..new_campaign(ann.id, "Plain", "plain", at(20))
        };
        let plain = store
            .create_campaign(plain, audit("campaign.create", "partner:pub-ann"))
            .await
            .unwrap();
        assert_eq!(
            (
                plain.trial_days,
                plain.discount_percent,
                plain.custom.as_deref(),
                plain.landing_url.as_deref()
            ),
            (None, None, None, None)
        );
        // Same time as `plain`: the later id first.
        let third = store
            .create_campaign(
                new_campaign(ann.id, "Third", "third", at(20)),
                audit("campaign.create", "partner:pub-ann"),
            )
            .await
            .unwrap();

        // The same slug again for Ann: refused, nothing written.
        let before = totals(&*store).await;
        let err = store
            .create_campaign(
                new_campaign(ann.id, "Spring   Sale", "spring-sale-t60-d20", at(30)),
                audit("campaign.create", "partner:pub-ann"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { field: "name" }),
            "{err:?}"
        );
        assert_eq!(totals(&*store).await, before);
        // The same slug for Bob is his own.
        let bobs = store
            .create_campaign(
                new_campaign(bob.id, "Spring Sale", "spring-sale-t60-d20", at(40)),
                audit("campaign.create", "partner:pub-bob"),
            )
            .await
            .unwrap();

        let listed = store.list_campaigns(ann.id).await.unwrap();
        assert_eq!(listed, vec![third.clone(), plain.clone(), spring.clone()]);
        assert_eq!(
            store.list_campaigns(bob.id).await.unwrap(),
            vec![bobs.clone()]
        );
        assert!(store.list_campaigns(999_999).await.unwrap().is_empty());

        let loaded = store
            .tracking_partner("pub-ann")
            .await
            .unwrap()
            .expect("Ann");
        assert_eq!(loaded.partner.id, ann.id);
        assert_eq!(loaded.campaigns, listed);
        assert!(
            store
                .tracking_partner("pub-nobody")
                .await
                .unwrap()
                .is_none()
        );
        // A removed partner is still found, as removed (the redirect refuses it).
        store
            .remove_partner(
                bob.id,
                partnerd_store::Removal::Violation {
                    reason: "spam".into(),
                },
                audit("partner.remove", "partner:pub-bob"),
                at(50),
            )
            .await
            .unwrap();
        let gone = store
            .tracking_partner("pub-bob")
            .await
            .unwrap()
            .expect("Bob");
        assert!(gone.partner.is_removed());
        assert_eq!(gone.campaigns, vec![bobs]);
    }
);

conformance!(
    clicks_in_batches_roll_up_into_exact_report_rows_and_hours,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        let bob = add_partner(&*store, "bob", at(0)).await;
        let spring = store
            .create_campaign(
                new_campaign(ann.id, "Spring", "spring", at(0)),
                audit("campaign.create", "partner:pub-ann"),
            )
            .await
            .unwrap();
        let s = Some(spring.id);
        let first = vec![
            click(1, ann.id, None, at_hour(0, 5), None, "browser", "v1"),
            click(2, ann.id, None, at_hour(1, 0), None, "browser", "v1"),
            click(3, ann.id, None, at_hour(1, 30), None, "browser", "v2"),
            click(4, ann.id, None, at_hour(1, 45), None, "bot", "crawler"),
            click(5, ann.id, s, at_hour(2, 0), Some("kw"), "browser", "v1"),
            click(6, bob.id, None, at_hour(2, 10), None, "browser", "v1"),
        ];
        store.record_clicks(&first).await.unwrap();
        let second = vec![
            // V1 again the same day: a click, not a new visitor.
            click(7, ann.id, None, at_hour(3, 0), None, "browser", "v1"),
            click(8, ann.id, None, at_hour(3, 20), None, "browser", "v3"),
            // A visitor first seen in an earlier hour than this batch's others.
            click(9, ann.id, None, at_hour(0, 50), None, "browser", "v4"),
            // The next UTC day: V1 is a visitor of that day too.
            click(10, ann.id, None, at_hour(25, 0), None, "browser", "v1"),
            click(11, ann.id, s, at_hour(25, 0), Some("kw"), "bot", "crawler"),
            // The same visitor on another row is counted there too.
            click(12, ann.id, s, at_hour(25, 1), None, "browser", "v1"),
        ];
        store.record_clicks(&second).await.unwrap();

        assert_eq!(
            store.report_rows(everything(Some(ann.id))).await.unwrap(),
            vec![
                row("default_link", "", 7, 1, 5, 0),
                // Most clicks first, then by campaign and term.
                row("spring", "", 1, 0, 1, 0),
                row("spring", "kw", 1, 1, 1, 0),
            ]
        );
        assert_eq!(
            store.report_hours(everything(Some(ann.id))).await.unwrap(),
            vec![
                hour_row(0, 2, 0, 2, 0),
                hour_row(1, 2, 1, 1, 0),
                hour_row(2, 1, 0, 1, 0),
                hour_row(3, 2, 0, 1, 0),
                hour_row(25, 2, 1, 2, 0),
            ]
        );
        // A range of hours: from included, to excluded.
        let some_hours = ReportRange {
            partner_id: Some(ann.id),
            from_hour: hour(1),
            to_hour: hour(3),
        };
        assert_eq!(
            store.report_hours(some_hours).await.unwrap(),
            vec![hour_row(1, 2, 1, 1, 0), hour_row(2, 1, 0, 1, 0)]
        );
        assert_eq!(
            store.report_rows(some_hours).await.unwrap(),
            vec![
                row("default_link", "", 2, 1, 1, 0),
                row("spring", "kw", 1, 0, 1, 0)
            ]
        );
        // Bob's click is his; the whole program has both.
        assert_eq!(
            store.report_rows(everything(Some(bob.id))).await.unwrap(),
            vec![row("default_link", "", 1, 0, 1, 0)]
        );
        let program = store.report_rows(everything(None)).await.unwrap();
        assert_eq!(program[0], row("default_link", "", 8, 1, 6, 0));
        assert_eq!(program.iter().map(|r| r.clicks).sum::<i64>(), 10);
        assert!(
            store
                .report_rows(ReportRange {
                    partner_id: Some(ann.id),
                    from_hour: hour(100),
                    to_hour: hour(200)
                })
                .await
                .unwrap()
                .is_empty()
        );

        // Each click is kept as recorded.
        let stored = store.get_click(5).await.unwrap().expect("click 5");
        assert_eq!(
            (stored.id, stored.partner_id, stored.campaign_id, stored.at),
            (5, ann.id, Some(spring.id), at_hour(2, 0).millis())
        );
        assert_eq!(
            (
                stored.utm_term.as_deref(),
                stored.agent.as_str(),
                stored.network.as_str(),
                stored.own_session
            ),
            (Some("kw"), "browser", "net-v1", 0)
        );
        assert_eq!(store.get_click(4).await.unwrap().unwrap().agent, "bot");
        assert!(store.get_click(999).await.unwrap().is_none());
        let own = NewClick {
            own_session: true,
            ..click(13, ann.id, None, at_hour(26, 0), None, "browser", "ann")
        };
        store.record_clicks(&[own]).await.unwrap();
        assert_eq!(store.get_click(13).await.unwrap().unwrap().own_session, 1);

        // An empty batch changes nothing.
        let before = store.report_rows(everything(None)).await.unwrap();
        store.record_clicks(&[]).await.unwrap();
        assert_eq!(store.report_rows(everything(None)).await.unwrap(), before);
    }
);

/// Every report over every range of hours `0..=50` (rows and hours, Ann's and
/// the program's), to compare what the report shows before and after settling.
async fn every_report(store: &dyn Store, ann: i64) -> Vec<(Vec<ReportRow>, Vec<ReportHour>)> {
    let mut reports = Vec::new();
    for partner_id in [Some(ann), None] {
        for from in 0..=50 {
            for to in (from..=50).step_by(7).chain([50]) {
                let range = ReportRange {
                    partner_id,
                    from_hour: hour(from),
                    to_hour: hour(to),
                };
                reports.push((
                    store.report_rows(range).await.unwrap(),
                    store.report_hours(range).await.unwrap(),
                ));
            }
        }
    }
    reports
}

conformance!(
    settling_report_hours_changes_no_report_and_keeps_late_counts,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        let bob = add_partner(&*store, "bob", at(0)).await;
        let spring = store
            .create_campaign(
                new_campaign(ann.id, "Spring", "spring", at(0)),
                audit("campaign.create", "partner:pub-ann"),
            )
            .await
            .unwrap();
        let s = Some(spring.id);
        // Clicks over two UTC days and a bit, so whole days and end hours both occur.
        let clicks: Vec<NewClick> = (0..48)
            .map(|i| {
                let (partner, campaign, term) = match i % 4 {
                    0 => (ann.id, None, None),
                    1 => (ann.id, s, Some("kw")),
                    2 => (ann.id, s, None),
                    _ => (bob.id, None, None),
                };
                let agent = if i % 5 == 0 { "bot" } else { "browser" };
                let visitor = format!("v{}", i % 6);
                click(
                    i + 1,
                    partner,
                    campaign,
                    at_hour(i, i % 60),
                    term,
                    agent,
                    &visitor,
                )
            })
            .collect();
        store.record_clicks(&clicks).await.unwrap();
        let unsettled = every_report(&*store, ann.id).await;

        // Nothing before the first click: nothing to settle.
        assert_eq!(store.settle_report_hours(hour(0), 24).await.unwrap(), 0);
        // Part of the first day, in steps of at most 5 hours, oldest first.
        let mut moved = 0;
        loop {
            let step = store.settle_report_hours(hour(30), 5).await.unwrap();
            assert!(
                step <= 5 * 2,
                "at most 5 hours of (at most two rows an hour) moved"
            );
            if step == 0 {
                break;
            }
            moved += step;
        }
        assert_eq!(moved, 30, "one counter row per click in hours 0..30");
        assert_eq!(every_report(&*store, ann.id).await, unsettled);

        // A late click for a settled hour counts at once, and again once settled.
        let settled_rows = store.report_rows(everything(Some(ann.id))).await.unwrap();
        let late = click(100, ann.id, None, at_hour(3, 59), None, "browser", "late");
        store.record_clicks(&[late]).await.unwrap();
        let one_more = store.report_rows(everything(Some(ann.id))).await.unwrap();
        let default = |rows: &[ReportRow]| {
            rows.iter()
                .find(|r| r.utm_campaign == "default_link" && r.utm_term.is_empty())
                .map(|r| (r.clicks, r.unique_visitors))
        };
        let before = default(&settled_rows).expect("Ann's default link row");
        assert_eq!(default(&one_more), Some((before.0 + 1, before.1 + 1)));
        let with_late = every_report(&*store, ann.id).await;
        assert_ne!(with_late, unsettled);
        while store.settle_report_hours(hour(1000), 24).await.unwrap() > 0 {}
        assert_eq!(every_report(&*store, ann.id).await, with_late);
        assert_eq!(store.settle_report_hours(hour(1000), 24).await.unwrap(), 0);
    }
);

conformance!(
    housekeeping_forgets_the_visitors_of_days_before_yesterday_only,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        store
            .record_clicks(&[click(1, ann.id, None, at_hour(0, 5), None, "browser", "v1")])
            .await
            .unwrap();
        let again = |id| click(id, ann.id, None, at_hour(0, 10), None, "browser", "v1");
        // Purged the next day: the day's visitors are still known, V1 counts once.
        store.purge_expired(at_hour(24, 0)).await.unwrap();
        store.record_clicks(&[again(2)]).await.unwrap();
        assert_eq!(
            store.report_rows(everything(Some(ann.id))).await.unwrap(),
            vec![row("default_link", "", 2, 0, 1, 0)]
        );
        // Three days later that day's visitors are gone (a click for it would be
        // counted as a new visitor, which no click stamped now can be).
        store.purge_expired(at_hour(3 * 24, 0)).await.unwrap();
        store.record_clicks(&[again(3)]).await.unwrap();
        assert_eq!(
            store.report_rows(everything(Some(ann.id))).await.unwrap(),
            vec![row("default_link", "", 3, 0, 2, 0)]
        );
    }
);

conformance!(
    a_visitor_of_an_older_day_counts_once_even_after_newer_days,
    |store: Arc<dyn Store>| async move {
        // A clock set back (or a batch held up for days): day 0's visitors are
        // still known while the day's row is kept, though two newer days came since.
        let ann = add_partner(&*store, "ann", at(0)).await;
        let v1 = |id, day: i64| {
            click(
                id,
                ann.id,
                None,
                at_hour(24 * day, 5),
                None,
                "browser",
                "v1",
            )
        };
        store.record_clicks(&[v1(1, 0)]).await.unwrap();
        store.record_clicks(&[v1(2, 5)]).await.unwrap();
        store.record_clicks(&[v1(3, 9)]).await.unwrap();
        store.record_clicks(&[v1(4, 0)]).await.unwrap();
        store.record_clicks(&[v1(5, 5)]).await.unwrap();
        assert_eq!(
            store.report_rows(everything(Some(ann.id))).await.unwrap(),
            vec![row("default_link", "", 5, 0, 3, 0)],
            "one visitor on each of three days"
        );
        // A visitor new to day 0, twice, after day 9: counted once.
        let v2 = |id| click(id, ann.id, None, at_hour(3, 0), None, "browser", "v2");
        store.record_clicks(&[v2(6)]).await.unwrap();
        store.record_clicks(&[v1(7, 9), v2(8)]).await.unwrap();
        assert_eq!(
            store.report_rows(everything(Some(ann.id))).await.unwrap(),
            vec![row("default_link", "", 8, 0, 4, 0)]
        );
    }
);

/// A migrated SQLite store on `dir`'s database, as another process (or a restarted
/// one) opens it.
async fn open_sqlite(dir: &tempfile::TempDir) -> partnerd_store::SqliteStore {
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = partnerd_store::SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// SQLite's click writer keeps the visitors it counted in memory (`SeenVisitors`):
/// another process's writer on the same file, and a restarted one, still count
/// each visitor of a day once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_on_one_file_count_a_visitor_once() {
    let dir = tempfile::tempdir().unwrap();
    let open = || open_sqlite(&dir);
    let (first, second) = (open().await, open().await);
    let ann = add_partner(&first, "ann", at(0)).await;
    let visit = |id, visitor| click(id, ann.id, None, at_hour(2, id), None, "browser", visitor);
    async fn counted(store: &dyn Store, partner_id: i64) -> (i64, i64) {
        let rows = store
            .report_rows(everything(Some(partner_id)))
            .await
            .unwrap();
        (rows[0].clicks, rows[0].unique_visitors)
    }
    first.record_clicks(&[visit(1, "v1")]).await.unwrap();
    second
        .record_clicks(&[visit(2, "v1"), visit(3, "v2")])
        .await
        .unwrap();
    assert_eq!(
        counted(&first, ann.id).await,
        (3, 2),
        "the second writer read the first's v1"
    );
    first
        .record_clicks(&[visit(4, "v2"), visit(5, "v1")])
        .await
        .unwrap();
    assert_eq!(
        counted(&first, ann.id).await,
        (5, 2),
        "and the first the second's v2"
    );
    first.close().await;
    drop(first);
    let restarted = open().await;
    restarted
        .record_clicks(&[visit(6, "v2"), visit(7, "v3")])
        .await
        .unwrap();
    second.record_clicks(&[visit(8, "v3")]).await.unwrap();
    assert_eq!(
        counted(&restarted, ann.id).await,
        (8, 3),
        "after a restart too"
    );
    // The housekeeping's delete, on yet another connection, is seen by both.
    restarted.purge_expired(at_hour(24 * 3, 0)).await.unwrap();
    second.record_clicks(&[visit(9, "v1")]).await.unwrap();
    restarted.record_clicks(&[visit(10, "v1")]).await.unwrap();
    assert_eq!(
        counted(&second, ann.id).await,
        (10, 4),
        "forgotten once, then known again"
    );
}

/// After a restart, the first batch reads whole every day it counts on, however
/// far apart its clicks are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_restarted_writer_reads_every_day_its_first_batch_counts_on() {
    let dir = tempfile::tempdir().unwrap();
    let open = || open_sqlite(&dir);
    let first = open().await;
    let ann = add_partner(&first, "ann", at(0)).await;
    let visit = |id, day: i64, visitor| {
        click(
            id,
            ann.id,
            None,
            at_hour(24 * day, id),
            None,
            "browser",
            visitor,
        )
    };
    first.record_clicks(&[visit(1, 10, "v1")]).await.unwrap();
    first.record_clicks(&[visit(2, 11, "v2")]).await.unwrap();
    first.close().await;
    drop(first);
    let restarted = open().await;
    restarted
        .record_clicks(&[visit(3, 13, "v9"), visit(4, 11, "v2"), visit(5, 10, "v1")])
        .await
        .unwrap();
    let rows = restarted
        .report_rows(everything(Some(ann.id)))
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![row("default_link", "", 5, 0, 3, 0)],
        "only v9 is new"
    );
}

conformance!(
    a_batch_of_thousands_of_clicks_is_recorded_whole,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        // 2,500 clicks (three statements' worth) by 700 visitors over 5 hours,
        // every tenth a bot, on two terms.
        let clicks: Vec<NewClick> = (0..2500)
            .map(|i: i64| {
                let agent = if i % 10 == 9 { "bot" } else { "browser" };
                let term = if i % 2 == 0 { Some("even") } else { None };
                click(
                    1_000 + i,
                    ann.id,
                    None,
                    at_hour(i % 5, i % 60),
                    term,
                    agent,
                    &format!("v{}", i % 700),
                )
            })
            .collect();
        store.record_clicks(&clicks).await.unwrap();
        let rows = store.report_rows(everything(Some(ann.id))).await.unwrap();
        let browsers = |even: bool| {
            clicks
                .iter()
                .filter(|c| c.agent == "browser" && c.utm_term.is_some() == even)
                .count() as i64
        };
        let bots = |even: bool| {
            clicks
                .iter()
                .filter(|c| c.agent == "bot" && c.utm_term.is_some() == even)
                .count() as i64
        };
        let visitors = |even: bool| {
            clicks
                .iter()
                .filter(|c| c.agent == "browser" && c.utm_term.is_some() == even)
                .map(|c| c.visitor.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .len() as i64
        };
        assert_eq!(
            rows,
            vec![
                row(
                    "default_link",
                    "even",
                    browsers(true),
                    bots(true),
                    visitors(true),
                    0
                ),
                row(
                    "default_link",
                    "",
                    browsers(false),
                    bots(false),
                    visitors(false),
                    0
                ),
            ]
        );
        assert_eq!(
            browsers(true) + browsers(false) + bots(true) + bots(false),
            2500
        );
        let hours = store.report_hours(everything(Some(ann.id))).await.unwrap();
        assert_eq!(hours.len(), 5);
        assert_eq!(
            hours.iter().map(|h| h.clicks + h.bot_clicks).sum::<i64>(),
            2500
        );
        assert_eq!(
            hours.iter().map(|h| h.unique_visitors).sum::<i64>(),
            visitors(true) + visitors(false)
        );
        assert!(store.get_click(1_000).await.unwrap().is_some());
        assert!(store.get_click(3_499).await.unwrap().is_some());

        // The same visitors again in a second batch: clicks, no new visitors.
        let again: Vec<NewClick> = (0..1200)
            .map(|i: i64| {
                click(
                    10_000 + i,
                    ann.id,
                    None,
                    at_hour(6, 0),
                    None,
                    "browser",
                    &format!("v{}", i % 700),
                )
            })
            .collect();
        store.record_clicks(&again).await.unwrap();
        let rows = store.report_rows(everything(Some(ann.id))).await.unwrap();
        let plain = rows.iter().find(|r| r.utm_term.is_empty()).unwrap();
        assert_eq!(plain.clicks, browsers(false) + 1200);
        let seen_plain = visitors(false);
        // Visitors new to the plain row (those who only ever used the term before).
        let newly: std::collections::BTreeSet<String> = again
            .iter()
            .map(|c| c.visitor.clone())
            .filter(|v| {
                !clicks
                    .iter()
                    .any(|c| c.agent == "browser" && c.utm_term.is_none() && &c.visitor == v)
            })
            .collect();
        assert_eq!(plain.unique_visitors, seen_plain + newly.len() as i64);
    }
);

conformance!(
    a_batch_with_a_click_already_recorded_fails_whole_and_writes_nothing,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        store
            .record_clicks(&[
                click(1, ann.id, None, at_hour(0, 0), None, "browser", "v1"),
                click(2, ann.id, None, at_hour(0, 1), None, "browser", "v2"),
            ])
            .await
            .unwrap();
        let rows = store.report_rows(everything(None)).await.unwrap();
        let hours = store.report_hours(everything(None)).await.unwrap();
        // Many new clicks around an id that exists: the whole batch is refused.
        let mut batch: Vec<NewClick> = (0..1500)
            .map(|i: i64| {
                click(
                    100 + i,
                    ann.id,
                    None,
                    at_hour(1, 0),
                    Some("t"),
                    "browser",
                    &format!("n{i}"),
                )
            })
            .collect();
        batch.insert(
            1200,
            click(2, ann.id, None, at_hour(1, 0), None, "browser", "v9"),
        );
        assert!(store.record_clicks(&batch).await.is_err());
        assert_eq!(store.report_rows(everything(None)).await.unwrap(), rows);
        assert_eq!(store.report_hours(everything(None)).await.unwrap(), hours);
        assert!(store.get_click(100).await.unwrap().is_none());
        assert!(store.get_click(1_599).await.unwrap().is_none());
        assert_eq!(
            store.get_click(2).await.unwrap().unwrap().at,
            at_hour(0, 1).millis()
        );
        // Its visitors were not remembered either: they count when they come back.
        store
            .record_clicks(&[click(
                5_000,
                ann.id,
                None,
                at_hour(1, 0),
                Some("t"),
                "browser",
                "n0",
            )])
            .await
            .unwrap();
        let rows = store.report_rows(everything(None)).await.unwrap();
        assert!(
            rows.contains(&row("default_link", "t", 1, 0, 1, 0)),
            "{rows:?}"
        );
    }
);

conformance!(
    a_sign_up_is_recorded_once_per_customer_and_counts_when_credited,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        let spring = store
            .create_campaign(
                new_campaign(ann.id, "Spring", "spring", at(0)),
                audit("campaign.create", "partner:pub-ann"),
            )
            .await
            .unwrap();
        store
            .record_clicks(&[click(
                1,
                ann.id,
                Some(spring.id),
                at_hour(0, 0),
                Some("newsletter"),
                "browser",
                "v1",
            )])
            .await
            .unwrap();
        assert!(store.find_signup("cus_1").await.unwrap().is_none());

        let (first, created) = store
            .record_signup(signup("cus_1", Some(ann.id), Some(&spring), at_hour(1, 0)))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(
            (
                first.customer_id.as_str(),
                first.partner_id,
                first.referred_partner_id,
                first.campaign_id
            ),
            ("cus_1", Some(ann.id), Some(ann.id), Some(spring.id))
        );
        assert_eq!(
            (
                first.utm_campaign.as_deref(),
                first.utm_term.as_deref(),
                first.trial_days,
                first.discount_percent
            ),
            (Some("spring"), Some("newsletter"), Some(60), Some(20))
        );
        assert_eq!(
            (
                first.reason.as_str(),
                first.review,
                first.commission_rate,
                first.created_at,
                first.click_id
            ),
            ("last_click", 0, Some(20), at_hour(1, 0).millis(), Some(1))
        );
        // A replay, even one saying something else, returns the first row.
        let other = NewSignup {
            review: true,
            ..signup("cus_1", None, None, at_hour(2, 0))
        };
        let (again, created) = store.record_signup(other).await.unwrap();
        assert!(!created);
        assert_eq!(again.id, first.id);
        assert_eq!(
            (again.partner_id, again.reason.as_str(), again.review),
            (Some(ann.id), "last_click", 0)
        );
        let found = store.find_signup("cus_1").await.unwrap().unwrap();
        assert_eq!((found.id, found.created_at), (first.id, first.created_at));

        // Not credited: recorded, not counted. Credited without a campaign: the basic link.
        let (uncredited, created) = store
            .record_signup(NewSignup {
                referred_partner_id: Some(ann.id),
                ..signup("cus_2", None, Some(&spring), at_hour(1, 10))
            })
            .await
            .unwrap();
        assert!(created);
        assert_eq!(
            (uncredited.partner_id, uncredited.referred_partner_id),
            (None, Some(ann.id))
        );
        let (review, _) = store
            .record_signup(NewSignup {
                review: true,
                ..signup("cus_3", Some(ann.id), None, at_hour(1, 20))
            })
            .await
            .unwrap();
        assert_eq!((review.review, review.utm_term), (1, None));

        assert_eq!(
            store.report_rows(everything(Some(ann.id))).await.unwrap(),
            vec![
                row("spring", "newsletter", 1, 0, 1, 1),
                row("default_link", "", 0, 0, 0, 1)
            ]
        );
        assert_eq!(
            store.report_hours(everything(Some(ann.id))).await.unwrap(),
            vec![hour_row(0, 1, 0, 1, 0), hour_row(1, 0, 0, 0, 2)]
        );
    }
);

conformance!(
    the_networks_a_partner_signed_in_from_are_known,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(0)).await;
        let bob = add_partner(&*store, "bob", at(0)).await;
        let session = |token: &str, subject: Subject, network: Option<&str>| NewSession {
            token_hash: token.into(),
            subject,
            network: network.map(str::to_owned),
            csrf_token: format!("csrf-{token}"),
            created_at: T0,
            expires_at: at(86_400_000),
        };
        store
            .create_session(session(
                "t-ann",
                Subject::Partner(ann.id),
                Some("net-office"),
            ))
            .await
            .unwrap();
        store
            .create_session(session("t-ann-2", Subject::Partner(ann.id), None))
            .await
            .unwrap();
        // A staff member with Ann's numeric id, on another network.
        store
            .create_session(session(
                "t-staff",
                Subject::Staff(ann.id),
                Some("net-staff"),
            ))
            .await
            .unwrap();
        assert!(
            store
                .partner_used_network(ann.id, "net-office")
                .await
                .unwrap()
        );
        assert!(
            !store
                .partner_used_network(ann.id, "net-home")
                .await
                .unwrap()
        );
        assert!(
            !store
                .partner_used_network(bob.id, "net-office")
                .await
                .unwrap()
        );
        assert!(
            !store
                .partner_used_network(ann.id, "net-staff")
                .await
                .unwrap()
        );
        assert!(!store.partner_used_network(ann.id, "").await.unwrap());
    }
);
