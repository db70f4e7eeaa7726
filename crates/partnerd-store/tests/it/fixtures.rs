//! Small builders shared by the conformance tests. Times are fixed offsets from [`T0`].

use std::sync::{Arc, Mutex};

use partnerd_domain::{Email, PartnerProfile, StaffRole, Timestamp};
use partnerd_store::{
    AuditEntry, EmailsFor, NewAudit, NewEmail, NewPartner, NewSession, NewStaff, Partner,
    PartnerQuery, Staff, Store, Subject,
};

/// 2023-11-14T22:13:20Z: the suite's "now".
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// `T0` plus `ms` milliseconds.
pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.millis() + ms)
}

pub fn email(address: &str) -> Email {
    Email::parse(address).expect("a valid test address")
}

pub fn audit(action: &str, object: &str) -> NewAudit {
    NewAudit::new(T0, "cli", action, object)
}

/// A partner `tag` with the address `{tag}@partner.test`, created at `created_at`.
pub fn new_partner(tag: &str, created_at: Timestamp) -> NewPartner {
    NewPartner {
        public_id: format!("pub-{tag}"),
        email: email(&format!("{tag}@partner.test")),
        password_hash: Some(format!("hash-{tag}")),
        profile: PartnerProfile {
            name: format!("Partner {tag}"),
            company: Some(format!("{tag} Ltd")),
            website: Some(format!("https://{tag}.example.com/")),
        },
        terms_version: 1,
        created_at,
        audit: NewAudit::new(
            created_at,
            format!("partner:pub-{tag}"),
            "partner.signup",
            "partner:new",
        ),
    }
}

/// An `emails` builder that queues nothing.
pub fn no_emails() -> Box<EmailsFor> {
    Box::new(|_: Option<&Staff>, _: &Partner| Vec::new())
}

/// Who `create_partner` passed to the `emails` builder: the manager's id, and
/// the partner's id and manager as the builder saw them.
pub type Calls = Arc<Mutex<Vec<(Option<i64>, i64, Option<i64>)>>>;

/// An `emails` builder that records its calls and queues one email to the manager
/// (or to `admin@vendor.test` when there is none) and one to the partner.
pub fn welcome_emails(send: bool, calls: Calls) -> Box<EmailsFor> {
    Box::new(move |manager: Option<&Staff>, partner: &Partner| {
        calls
            .lock()
            .unwrap()
            .push((manager.map(|m| m.id), partner.id, partner.manager_id));
        let to_manager =
            manager.map_or_else(|| "admin@vendor.test".to_owned(), |m| m.email.clone());
        vec![
            NewEmail {
                to: to_manager,
                subject: format!("New partner {}", partner.name),
                body: format!("Partner {} signed up.", partner.public_id),
                send,
                created_at: Timestamp::from_millis(partner.created_at),
                partner_id: Some(partner.id),
            },
            NewEmail {
                to: partner.email.clone().unwrap_or_default(),
                subject: "Welcome".into(),
                body: "Welcome to the program.".into(),
                send,
                created_at: Timestamp::from_millis(partner.created_at),
                partner_id: Some(partner.id),
            },
        ]
    })
}

pub fn mail(to: &str, subject: &str, send: bool, created_at: Timestamp) -> NewEmail {
    NewEmail {
        to: to.into(),
        subject: subject.into(),
        body: format!("Body of {subject}"),
        send,
        created_at,
        partner_id: None,
    }
}

pub async fn add_partner(store: &dyn Store, tag: &str, created_at: Timestamp) -> Partner {
    store
        .create_partner(new_partner(tag, created_at), &*no_emails())
        .await
        .expect("create partner")
}

pub async fn add_staff(store: &dyn Store, name: &str, role: StaffRole) -> Staff {
    let address = format!("{}@vendor.test", name.to_lowercase().replace(' ', "."));
    store
        .create_staff(
            NewStaff {
                email: email(&address),
                name: name.into(),
                role,
                password_hash: format!("staff-hash-{name}"),
                created_at: T0,
            },
            &*no_emails(),
            audit("staff.create", "staff:new"),
        )
        .await
        .expect("create staff")
}

pub async fn add_session(
    store: &dyn Store,
    token_hash: &str,
    subject: Subject,
    expires_at: Timestamp,
) {
    store
        .create_session(NewSession {
            token_hash: token_hash.into(),
            network: None,
            subject,
            csrf_token: format!("csrf-{token_hash}"),
            created_at: T0,
            expires_at,
        })
        .await
        .expect("create session");
}

/// Every partner, removed ones included, newest first.
pub fn everyone() -> PartnerQuery {
    PartnerQuery {
        include_removed: true,
        limit: 500,
        ..PartnerQuery::default()
    }
}

/// How many rows the countable tables hold.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Totals {
    pub partners: i64,
    pub outbox: i64,
    pub audit: i64,
    pub staff: usize,
}

pub async fn totals(store: &dyn Store) -> Totals {
    Totals {
        partners: store.list_partners(&everyone()).await.unwrap().total,
        outbox: store.list_outbox(1, 0).await.unwrap().total,
        audit: store.list_audit(1, 0).await.unwrap().total,
        staff: store.list_staff().await.unwrap().len(),
    }
}

/// The newest audit entry.
pub async fn last_audit(store: &dyn Store) -> AuditEntry {
    store
        .list_audit(1, 0)
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("an audit entry")
}

pub fn json(text: &Option<String>) -> serde_json::Value {
    serde_json::from_str(text.as_deref().expect("a JSON document")).expect("valid JSON")
}

/// `public_id`s of a page of partners, in order.
pub fn ids(partners: &[Partner]) -> Vec<&str> {
    partners.iter().map(|p| p.public_id.as_str()).collect()
}

/// All jobs due by `now`, claimed for good (a lease of about 30 years), so a
/// later call returns only jobs that became due since.
pub async fn claim_all(store: &dyn Store, now: Timestamp) -> Vec<partnerd_store::Job> {
    store
        .claim_jobs("inspector", now, 1_000_000_000, 500)
        .await
        .unwrap()
}
