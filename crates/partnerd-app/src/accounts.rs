//! Accounts, sessions and the program's settings and terms (R-ACC-1..3, R-ACC-5).
//!
//! Each function validates everything first and then makes one atomic store
//! call, so a refused request changes nothing. Log-in and reset answer the
//! same for known and unknown emails, and are throttled per account and per
//! network (a keyed hash of the address, never the address itself).

use std::collections::BTreeMap;

use partnerd_domain::errors::clean_text;
use partnerd_domain::{
    Email, FieldErrors, PartnerProfile, ProgramSettings, PublicPartnerId, StaffRole, Timestamp,
};
use partnerd_store::{
    NewApiKey, NewAudit, NewPartner, NewPasswordReset, NewSession, NewStaff, Partner,
    PartnerUpdate, Removal, Staff, StoreError, Subject, Terms,
};

use crate::crypto::{hash_password, random_token, sha256_hex, verify_password};
use crate::{App, AppError, AppResult};

/// Sign-in kinds: partners use `/login`, staff `/admin/login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    Partner,
    Staff,
}

/// A limit on attempts within a window.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: i64,
    pub window_seconds: i64,
}

/// Failed log-ins per account: enough for typos, too few to guess.
pub const LOGIN_PER_ACCOUNT: Limit = Limit {
    max: 5,
    window_seconds: 15 * 60,
};
/// Failed log-ins per network: a whole office may share one address.
pub const LOGIN_PER_NETWORK: Limit = Limit {
    max: 30,
    window_seconds: 15 * 60,
};
pub const SIGNUP_PER_NETWORK: Limit = Limit {
    max: 10,
    window_seconds: 3600,
};
pub const RESET_PER_ACCOUNT: Limit = Limit {
    max: 3,
    window_seconds: 3600,
};
pub const RESET_PER_NETWORK: Limit = Limit {
    max: 20,
    window_seconds: 3600,
};

pub const PARTNER_SESSION_SECONDS: i64 = 14 * 86_400;
pub const STAFF_SESSION_SECONDS: i64 = 12 * 3600;
pub const RESET_LINK_SECONDS: i64 = 3600;

/// The default Terms and Conditions, published as version 1 on a new database
/// so sign-up always has a version to accept; admins replace it in the console.
const DEFAULT_TERMS: &str = "These are the program's Terms and Conditions. The vendor has not published its own text yet.\n\n\
1. You promote the vendor's product honestly and never by spam.\n\
2. You do not refer yourself or your own company.\n\
3. Commission is paid as described on the program's pages and may be reversed for refunds and chargebacks.\n\
4. The vendor may remove a partner who breaks these terms, giving the reason.";

#[derive(Debug, Clone, Default)]
pub struct SignupInput {
    pub name: String,
    pub email: String,
    pub password: String,
    pub company: String,
    pub website: String,
    pub accept_terms: bool,
}

/// A new session: the cookie value (shown once, never stored) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSessionToken {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// Whoever a session belongs to, loaded fresh on each request.
#[derive(Debug, Clone)]
pub enum SignedIn {
    Partner {
        partner: Partner,
        csrf_token: String,
        terms_outdated: bool,
    },
    Staff {
        staff: Staff,
        csrf_token: String,
    },
}

impl SignedIn {
    pub fn csrf_token(&self) -> &str {
        match self {
            Self::Partner { csrf_token, .. } | Self::Staff { csrf_token, .. } => csrf_token,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Partner { partner, .. } => &partner.name,
            Self::Staff { staff, .. } => &staff.name,
        }
    }

    pub fn subject(&self) -> Subject {
        match self {
            Self::Partner { partner, .. } => Subject::Partner(partner.id),
            Self::Staff { staff, .. } => Subject::Staff(staff.id),
        }
    }

    /// How the audit log names this person.
    pub fn actor_label(&self) -> String {
        match self {
            Self::Partner { partner, .. } => format!("partner:{}", partner.public_id),
            Self::Staff { staff, .. } => format!("staff:{} ({})", staff.id, staff.email),
        }
    }
}

fn throttle_key(scope: &str, value: &str) -> String {
    format!("{scope}:{}", &sha256_hex(value)[..32])
}

impl App {
    /// Seeds what a new database needs: version 1 of the Terms.
    pub async fn ensure_defaults(&self) -> AppResult<()> {
        if self.store.current_terms().await?.is_none() {
            let audit = NewAudit::new(self.now(), "system", "terms.publish", "terms");
            self.store
                .publish_terms(DEFAULT_TERMS, audit, self.now())
                .await?;
        }
        Ok(())
    }

    pub async fn settings(&self) -> AppResult<ProgramSettings> {
        Ok(self.store.load_settings().await?)
    }

    async fn check_limit(&self, key: &str, limit: Limit) -> AppResult<()> {
        let hits = self
            .store
            .throttle_count(key, self.now(), limit.window_seconds)
            .await?;
        if hits >= limit.max {
            return Err(AppError::Throttled {
                retry_after_seconds: limit.window_seconds,
            });
        }
        Ok(())
    }

    async fn hit(&self, key: &str, limit: Limit) -> AppResult<()> {
        self.store
            .throttle_hit(key, self.now(), limit.window_seconds)
            .await?;
        Ok(())
    }

    /// R-ACC-1: anyone can sign up and use the panel at once.
    pub async fn sign_up(
        &self,
        input: &SignupInput,
        network: &str,
    ) -> AppResult<(Partner, NewSessionToken)> {
        let network_key = throttle_key("signup-network", network);
        self.check_limit(&network_key, SIGNUP_PER_NETWORK).await?;
        let settings = self.settings().await?;
        let terms = self.store.current_terms().await?;
        let mut errors = FieldErrors::new();
        let profile =
            PartnerProfile::parse(&input.name, &input.company, &input.website, &mut errors);
        let email = errors.check("email", Email::parse(&input.email));
        let password = errors.check(
            "password",
            settings
                .password_policy()
                .check(&input.password, &[&input.email, &input.name]),
        );
        if !input.accept_terms {
            errors.add("accept_terms", "must be accepted to join the program");
        }
        if let Some(email) = &email
            && self.store.find_partner_by_email(email).await?.is_some()
        {
            // Counted like a sign-up, so the answer cannot be used to test many
            // addresses for accounts.
            self.hit(&network_key, SIGNUP_PER_NETWORK).await?;
            errors.add(
                "email",
                "is already registered: sign in or reset your password",
            );
        }
        errors.clone().into_result()?;
        let (Some(profile), Some(email), Some(password)) = (profile, email, password) else {
            return Err(AppError::Invalid(errors));
        };
        self.hit(&network_key, SIGNUP_PER_NETWORK).await?;
        let public_id = PublicPartnerId::generate(&mut rand::rngs::OsRng);
        let new = NewPartner {
            public_id: public_id.to_string(),
            email: email.clone(),
            password_hash: Some(hash_password(password.expose())?),
            profile,
            terms_version: terms.map_or(0, |t| t.version),
            created_at: self.now(),
            audit: NewAudit::new(
                self.now(),
                format!("partner:{public_id}"),
                "partner.signup",
                format!("partner:{public_id}"),
            ),
        };
        let partner = self.create_partner_with_emails(new).await?;
        let session = self
            .start_session_from(Subject::Partner(partner.id), Some(network))
            .await?;
        Ok((partner, session))
    }

    /// A partner created by the vendor's systems through the API (R-ACC-1): no
    /// password yet, so they get a link to set one; they accept the Terms at
    /// their first sign-in (R-ACC-5).
    pub async fn create_partner_for_api(
        &self,
        actor: &str,
        email: &str,
        name: &str,
    ) -> AppResult<Partner> {
        let mut errors = FieldErrors::new();
        let email = errors.check("email", Email::parse(email));
        let profile = PartnerProfile::parse(name, "", "", &mut errors);
        errors.clone().into_result()?;
        let (Some(email), Some(profile)) = (email, profile) else {
            return Err(AppError::Invalid(errors));
        };
        let public_id = PublicPartnerId::generate(&mut rand::rngs::OsRng);
        let new = NewPartner {
            public_id: public_id.to_string(),
            email: email.clone(),
            password_hash: None,
            profile,
            terms_version: 0,
            created_at: self.now(),
            audit: NewAudit::new(
                self.now(),
                actor,
                "partner.create",
                format!("partner:{public_id}"),
            ),
        };
        let partner = self.create_partner_with_emails(new).await?;
        self.send_reset_link(
            Subject::Partner(partner.id),
            &partner.name,
            &email,
            "Set your password",
        )
        .await?;
        Ok(partner)
    }

    /// Creates a partner and queues the welcome and manager emails (R-ACC-2).
    pub async fn create_partner_with_emails(&self, new: NewPartner) -> AppResult<Partner> {
        let app = self.clone();
        let program = self.settings().await?.program_name;
        let base = self.config.public_url();
        let emails = move |manager: Option<&Staff>, partner: &Partner| {
            let mut emails = Vec::new();
            if let Some(to) = &partner.email {
                let manager_line = match manager {
                    Some(m) => format!(
                        "Your affiliate manager is {} ({}). Write to them any time.",
                        m.name, m.email
                    ),
                    None => "An affiliate manager will be assigned to you soon.".to_owned(),
                };
                emails.push(app.email(
                    to,
                    format!("Welcome to the {program}"),
                    format!(
                        "Hi {},\n\nyour partner account is ready: {base}/panel\n\n{manager_line}\n\nYour partner id is {}.\n",
                        partner.name, partner.public_id
                    ),
                ).about(partner.id));
            }
            if let Some(manager) = manager {
                emails.push(app.email(
                    &manager.email,
                    format!("New partner assigned to you: {}", partner.name),
                    format!(
                        "Hi {},\n\n{} ({}) joined the {program} and was assigned to you.\n\n{base}/admin/partners/{}\n",
                        manager.name,
                        partner.name,
                        partner.company.clone().unwrap_or_else(|| "no company given".into()),
                        partner.id
                    ),
                ).about(partner.id));
            }
            emails
        };
        match self.store.create_partner(new, &emails).await {
            Err(StoreError::Conflict { .. }) => Err(AppError::Invalid(FieldErrors::single(
                "email",
                "is already registered: sign in or reset your password",
            ))),
            other => Ok(other?),
        }
    }

    /// Starts a session: a fresh random token each time, so signing in rotates it.
    pub async fn start_session(&self, subject: Subject) -> AppResult<NewSessionToken> {
        self.start_session_from(subject, None).await
    }

    /// A session that remembers the network (keyed daily hash) it began on, so a
    /// sign-up from the partner's own network can be held for review (R-AFF-7).
    pub async fn start_session_from(
        &self,
        subject: Subject,
        network: Option<&str>,
    ) -> AppResult<NewSessionToken> {
        let token = random_token();
        let csrf_token = random_token();
        let lifetime = match subject {
            Subject::Partner(_) => PARTNER_SESSION_SECONDS,
            Subject::Staff(_) => STAFF_SESSION_SECONDS,
        };
        let expires_at = self.now().plus_seconds(lifetime);
        self.store
            .create_session(NewSession {
                token_hash: sha256_hex(&token),
                network: network.map(str::to_owned),
                subject,
                csrf_token: csrf_token.clone(),
                created_at: self.now(),
                expires_at,
            })
            .await?;
        Ok(NewSessionToken {
            token,
            csrf_token,
            expires_at,
        })
    }

    /// Logs in with the same answer for a wrong password and an unknown email.
    pub async fn log_in(
        &self,
        kind: AccountKind,
        email: &str,
        password: &str,
        network: &str,
    ) -> AppResult<NewSessionToken> {
        let account_key = throttle_key("login-account", &email.trim().to_lowercase());
        let network_key = throttle_key("login-network", network);
        self.check_limit(&account_key, LOGIN_PER_ACCOUNT).await?;
        self.check_limit(&network_key, LOGIN_PER_NETWORK).await?;
        let subject_and_hash = match Email::parse(email) {
            Err(_) => None,
            Ok(email) => match kind {
                AccountKind::Partner => self
                    .store
                    .find_partner_by_email(&email)
                    .await?
                    .filter(|p| !p.is_removed())
                    .map(|p| (Subject::Partner(p.id), p.password_hash)),
                AccountKind::Staff => self
                    .store
                    .find_staff_by_email(&email)
                    .await?
                    .map(|s| (Subject::Staff(s.id), Some(s.password_hash))),
            },
        };
        let hash = subject_and_hash.as_ref().and_then(|(_, h)| h.as_deref());
        if !verify_password(hash, password) {
            self.hit(&account_key, LOGIN_PER_ACCOUNT).await?;
            self.hit(&network_key, LOGIN_PER_NETWORK).await?;
            return Err(AppError::BadCredentials);
        }
        let (subject, _) = subject_and_hash.ok_or(AppError::BadCredentials)?;
        self.store.throttle_clear(&account_key).await?;
        self.start_session_from(subject, Some(network)).await
    }

    pub async fn log_out(&self, token: &str) -> AppResult<()> {
        Ok(self.store.delete_session(&sha256_hex(token)).await?)
    }

    /// The person behind a session cookie, or `None` (expired, revoked, or removed).
    pub async fn signed_in(&self, token: &str) -> AppResult<Option<SignedIn>> {
        let Some(session) = self
            .store
            .find_session(&sha256_hex(token), self.now())
            .await?
        else {
            return Ok(None);
        };
        Ok(match session.subject {
            Subject::Partner(id) => {
                let partner = match self.store.get_partner(id).await {
                    Ok(p) if !p.is_removed() => p,
                    Ok(_) | Err(StoreError::NotFound) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let current = self.store.current_terms().await?.map_or(0, |t| t.version);
                let terms_outdated = partner.terms_version < current;
                Some(SignedIn::Partner {
                    partner,
                    csrf_token: session.csrf_token,
                    terms_outdated,
                })
            }
            Subject::Staff(id) => match self.store.get_staff(id).await {
                Ok(staff) => Some(SignedIn::Staff {
                    staff,
                    csrf_token: session.csrf_token,
                }),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
        })
    }

    /// Sends a reset link to every account (partner, staff) using this email,
    /// and answers the same whether there is one or not. Each request counts
    /// once against the email's and the network's limits.
    pub async fn request_password_reset(&self, email: &str, network: &str) -> AppResult<()> {
        let account_key = throttle_key("reset-account", &email.trim().to_lowercase());
        let network_key = throttle_key("reset-network", network);
        self.check_limit(&account_key, RESET_PER_ACCOUNT).await?;
        self.check_limit(&network_key, RESET_PER_NETWORK).await?;
        self.hit(&account_key, RESET_PER_ACCOUNT).await?;
        self.hit(&network_key, RESET_PER_NETWORK).await?;
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let partner = self
            .store
            .find_partner_by_email(&email)
            .await?
            .filter(|p| !p.is_removed());
        if let Some(partner) = partner {
            self.send_reset_link(
                Subject::Partner(partner.id),
                &partner.name,
                &email,
                "Reset your password",
            )
            .await?;
        }
        if let Some(staff) = self.store.find_staff_by_email(&email).await? {
            self.send_reset_link(
                Subject::Staff(staff.id),
                &staff.name,
                &email,
                "Reset your password",
            )
            .await?;
        }
        Ok(())
    }

    async fn send_reset_link(
        &self,
        subject: Subject,
        name: &str,
        email: &Email,
        heading: &str,
    ) -> AppResult<()> {
        let token = random_token();
        let program = self.settings().await?.program_name;
        let link = format!("{}/password-reset/{token}", self.config.public_url());
        let mut message = self.email(
            email.as_str(),
            format!("{heading} · {program}"),
            format!(
                "Hi {name},\n\nto set a new password, open this link within an hour:\n\n{link}\n\n\
                 If you did not ask for this, ignore this email: your password stays as it is.\n"
            ),
        );
        if let Subject::Partner(id) = subject {
            message = message.about(id);
        }
        let reset = NewPasswordReset {
            token_hash: sha256_hex(&token),
            subject,
            created_at: self.now(),
            expires_at: self.now().plus_seconds(RESET_LINK_SECONDS),
        };
        Ok(self.store.create_password_reset(reset, message).await?)
    }

    /// Whether a reset link is still usable (to show the form or a clear message).
    pub async fn reset_link_is_valid(&self, token: &str) -> AppResult<bool> {
        Ok(self
            .store
            .find_password_reset(&sha256_hex(token), self.now())
            .await?
            .is_some())
    }

    /// Sets a new password from a reset link, once; signs the account out everywhere.
    pub async fn reset_password(&self, token: &str, password: &str) -> AppResult<Subject> {
        let token_hash = sha256_hex(token);
        let Some(subject) = self
            .store
            .find_password_reset(&token_hash, self.now())
            .await?
        else {
            return Err(AppError::Conflict(
                "this reset link has expired or was already used".into(),
            ));
        };
        let context = self.context_words(subject).await?;
        let words: Vec<&str> = context.iter().map(String::as_str).collect();
        let policy = self.settings().await?.password_policy();
        let password = policy
            .check(password, &words)
            .map_err(|e| FieldErrors::single("password", e))?;
        let hash = hash_password(password.expose())?;
        let audit = NewAudit::new(
            self.now(),
            format!("{}:{}", subject.kind(), subject.id()),
            "password.reset",
            "",
        );
        Ok(self
            .store
            .use_password_reset(&token_hash, &hash, self.now(), audit)
            .await?)
    }

    async fn context_words(&self, subject: Subject) -> AppResult<Vec<String>> {
        Ok(match subject {
            Subject::Partner(id) => {
                let p = self.store.get_partner(id).await?;
                vec![p.email.unwrap_or_default(), p.name]
            }
            Subject::Staff(id) => {
                let s = self.store.get_staff(id).await?;
                vec![s.email, s.name]
            }
        })
    }

    fn password_hash_of(who: &SignedIn) -> Option<&str> {
        match who {
            SignedIn::Partner { partner, .. } => partner.password_hash.as_deref(),
            SignedIn::Staff { staff, .. } => Some(&staff.password_hash),
        }
    }

    /// Changes the password after checking the current one; other sessions end.
    pub async fn change_password(
        &self,
        who: &SignedIn,
        current: &str,
        new: &str,
        session_token: &str,
    ) -> AppResult<()> {
        let mut errors = FieldErrors::new();
        if !verify_password(Self::password_hash_of(who), current) {
            errors.add("current_password", "is not your current password");
        }
        let context = self.context_words(who.subject()).await?;
        let words: Vec<&str> = context.iter().map(String::as_str).collect();
        let policy = self.settings().await?.password_policy();
        let password = errors.check("new_password", policy.check(new, &words));
        errors.into_result()?;
        let hash = hash_password(password.expect("checked above").expose())?;
        let audit = NewAudit::new(
            self.now(),
            who.actor_label(),
            "password.change",
            who.actor_label(),
        );
        Ok(self
            .store
            .set_password(
                who.subject(),
                &hash,
                Some(&sha256_hex(session_token)),
                audit,
            )
            .await?)
    }

    /// Changes a partner's email after checking the password; the old address is told.
    pub async fn change_email(
        &self,
        partner: &Partner,
        password: &str,
        new_email: &str,
    ) -> AppResult<()> {
        let mut errors = FieldErrors::new();
        if !verify_password(partner.password_hash.as_deref(), password) {
            errors.add("password", "is not your current password");
        }
        let email = errors.check("email", Email::parse(new_email));
        errors.into_result()?;
        let email = email.expect("checked above");
        let notice = partner.email.as_ref().map(|old| {
            self.email(
                old,
                "Your partner account's email was changed",
                format!(
                    "Hi {},\n\nthe email of your partner account was changed to {email}.\n\
                     If you did not do this, reply to this email at once.\n",
                    partner.name
                ),
            )
            .about(partner.id)
        });
        let actor = format!("partner:{}", partner.public_id);
        let audit = NewAudit::new(self.now(), actor.clone(), "partner.email.change", actor);
        Ok(self
            .store
            .change_partner_email(partner.id, &email, notice, audit)
            .await?)
    }

    pub async fn update_profile(
        &self,
        partner: &Partner,
        name: &str,
        company: &str,
        website: &str,
        time_zone: &str,
    ) -> AppResult<Partner> {
        let mut errors = FieldErrors::new();
        let profile = PartnerProfile::parse(name, company, website, &mut errors);
        let time_zone = errors.check("time_zone", parse_time_zone(time_zone));
        errors.clone().into_result()?;
        let update = PartnerUpdate {
            profile: profile.ok_or(AppError::Invalid(errors))?,
            time_zone: time_zone.unwrap_or_default(),
        };
        let actor = format!("partner:{}", partner.public_id);
        let audit = NewAudit::new(self.now(), actor.clone(), "partner.profile.update", actor);
        Ok(self
            .store
            .update_partner_profile(partner.id, &update, audit)
            .await?)
    }

    /// R-ACC-5: the partner accepts the current Terms.
    pub async fn accept_current_terms(&self, partner: &Partner) -> AppResult<()> {
        let Some(terms) = self.store.current_terms().await? else {
            return Ok(());
        };
        let actor = format!("partner:{}", partner.public_id);
        let audit = NewAudit::new(self.now(), actor.clone(), "terms.accept", actor);
        Ok(self
            .store
            .accept_terms(partner.id, terms.version, audit)
            .await?)
    }

    /// R-ACC-3 (a): the partner asks for deletion, confirming with the password.
    pub async fn delete_own_account(&self, partner: &Partner, password: &str) -> AppResult<()> {
        if !verify_password(partner.password_hash.as_deref(), password) {
            return Err(AppError::Invalid(FieldErrors::single(
                "password",
                "is not your current password",
            )));
        }
        let actor = format!("partner:{}", partner.public_id);
        let audit = NewAudit::new(
            self.now(),
            actor,
            "partner.remove",
            format!("partner:{}", partner.id),
        );
        self.store
            .remove_partner(partner.id, Removal::Requested, audit, self.now())
            .await?;
        // Tracking stops at once on this node, within CACHE_TTL on the others (R-ACC-3).
        self.tracking_cache.evict(&partner.public_id);
        Ok(())
    }

    /// R-ACC-3 (b): an admin removes a partner for a violation, citing the reason.
    /// `actor` names who removes, for the audit log.
    pub async fn remove_for_violation(
        &self,
        actor: &str,
        partner_id: i64,
        reason: &str,
    ) -> AppResult<()> {
        let reason =
            clean_text(reason, 2000, true).map_err(|e| FieldErrors::single("reason", e))?;
        let audit = NewAudit::new(
            self.now(),
            actor,
            "partner.remove",
            format!("partner:{partner_id}"),
        );
        self.store
            .remove_partner(partner_id, Removal::Violation { reason }, audit, self.now())
            .await?;
        if let Ok(partner) = self.store.get_partner(partner_id).await {
            self.tracking_cache.evict(&partner.public_id);
        }
        Ok(())
    }

    /// R-ACC-2: an admin moves a partner to another manager (or none); the new one is told.
    pub async fn reassign_manager(
        &self,
        actor: &str,
        partner_id: i64,
        manager_id: Option<i64>,
    ) -> AppResult<()> {
        let partner = self.store.get_partner(partner_id).await?;
        let mut emails = Vec::new();
        if let Some(id) = manager_id {
            let manager = self
                .store
                .get_staff(id)
                .await
                .map_err(|_| FieldErrors::single("manager_id", "is not a manager"))?;
            if manager.role() != StaffRole::Manager {
                return Err(FieldErrors::single("manager_id", "is not a manager").into());
            }
            emails.push(
                self.email(
                    &manager.email,
                    format!("Partner assigned to you: {}", partner.name),
                    format!(
                        "Hi {},\n\n{} is now your partner.\n\n{}/admin/partners/{}\n",
                        manager.name,
                        partner.name,
                        self.config.public_url(),
                        partner.id
                    ),
                )
                .about(partner.id),
            );
        }
        let audit = NewAudit::new(
            self.now(),
            actor,
            "partner.manager.assign",
            format!("partner:{partner_id}"),
        );
        Ok(self
            .store
            .reassign_manager(partner_id, manager_id, &emails, audit)
            .await?)
    }

    /// Creates a staff account. With a password (the CLI) it is usable at once;
    /// without (the console) the person gets a link to set their own.
    pub async fn create_staff(
        &self,
        actor: &str,
        email: &str,
        name: &str,
        role: &str,
        password: Option<&str>,
    ) -> AppResult<Staff> {
        let mut errors = FieldErrors::new();
        let email = errors.check("email", Email::parse(email));
        let name = errors.check("name", clean_text(name, 100, true));
        let role = errors.check(
            "role",
            StaffRole::parse(role).ok_or("must be admin or manager"),
        );
        let policy = self.settings().await?.password_policy();
        let password = match password {
            Some(p) => errors.check(
                "password",
                policy.check(p, &[email.as_ref().map_or("", |e| e.as_str())]),
            ),
            None => None,
        };
        errors.into_result()?;
        let (email, name, role) = (
            email.expect("checked"),
            name.expect("checked"),
            role.expect("checked"),
        );
        let hash = match &password {
            Some(p) => hash_password(p.expose())?,
            // A hash of a random value nobody knows: unusable until a reset sets one.
            None => hash_password(&random_token())?,
        };
        let new = NewStaff {
            email: email.clone(),
            name: name.clone(),
            role,
            password_hash: hash,
            created_at: self.now(),
        };
        let audit = NewAudit::new(
            self.now(),
            actor,
            "staff.create",
            format!("staff:{}", email),
        );
        // R-ACC-2: partners who waited for a manager learn who theirs is.
        let app = self.clone();
        let program = self.settings().await?.program_name;
        let emails = move |manager: Option<&Staff>, partner: &Partner| {
            let (Some(manager), Some(to)) = (manager, &partner.email) else {
                return Vec::new();
            };
            vec![
                app.email(
                    to,
                    format!("Your affiliate manager at the {program}"),
                    format!(
                        "Hi {},\n\n{} ({}) is now your affiliate manager. Write to them any time.\n",
                        partner.name, manager.name, manager.email
                    ),
                )
                .about(partner.id),
            ]
        };
        let staff = self.store.create_staff(new, &emails, audit).await?;
        if password.is_none() {
            self.send_reset_link(Subject::Staff(staff.id), &name, &email, "Set your password")
                .await?;
        }
        Ok(staff)
    }

    /// Saves settings from the console form; one audit entry with the changed keys.
    pub async fn update_settings(
        &self,
        actor: &str,
        form: &BTreeMap<String, String>,
    ) -> AppResult<ProgramSettings> {
        let before = self.settings().await?;
        let after = before.apply_form(form)?;
        let changed = before.changed_keys(&after);
        if changed.is_empty() {
            return Ok(after);
        }
        let (old, new) = (before.to_form(), after.to_form());
        let pick = |m: &BTreeMap<String, String>| -> serde_json::Value {
            changed
                .iter()
                .map(|k| ((*k).to_owned(), serde_json::Value::String(m[*k].clone())))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let audit = NewAudit::new(self.now(), actor, "settings.update", "settings")
            .before_after(Some(pick(&old)), Some(pick(&new)));
        self.store.save_settings(&after, audit, self.now()).await?;
        // This node uses the new settings at once (others within CACHE_TTL).
        self.tracking_cache.forget_settings();
        Ok(after)
    }

    /// R-ACC-5: publishes a new version of the Terms.
    pub async fn publish_terms(&self, actor: &str, body: &str) -> AppResult<Terms> {
        let body = clean_terms(body).map_err(|e| FieldErrors::single("body", e))?;
        let audit = NewAudit::new(self.now(), actor, "terms.publish", "terms");
        Ok(self.store.publish_terms(&body, audit, self.now()).await?)
    }

    /// A new integration API key; the key itself is returned once and stored hashed.
    pub async fn create_api_key(&self, actor: &str, name: &str) -> AppResult<String> {
        let name = clean_text(name, 100, true).map_err(|e| FieldErrors::single("name", e))?;
        let key = format!("pdk_{}", random_token());
        let new = NewApiKey {
            name,
            key_hash: sha256_hex(&key),
            prefix: key[..12].to_owned(),
            created_at: self.now(),
        };
        let audit = NewAudit::new(self.now(), actor, "api_key.create", "api_key");
        self.store.create_api_key(new, audit).await?;
        Ok(key)
    }

    /// The key's id if the bearer key is valid; looked up on every request, so
    /// a new key works at once.
    pub async fn api_key_id(&self, key: &str) -> AppResult<Option<i64>> {
        Ok(self
            .store
            .find_api_key(&sha256_hex(key))
            .await?
            .map(|k| k.id))
    }
}

/// Terms text: required, up to 100,000 characters; line breaks kept.
fn clean_terms(body: &str) -> Result<String, String> {
    let body = body.trim().replace("\r\n", "\n");
    if body.is_empty() {
        return Err("is required".into());
    }
    if body.chars().count() > 100_000 {
        return Err("must be at most 100000 characters".into());
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(body)
}

/// An IANA zone name as typed (`Europe/Warsaw`), or UTC when empty. Only the
/// shape is checked here; the report converts dates with it.
fn parse_time_zone(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok("UTC".into());
    }
    let ok = raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("must be a time zone such as Europe/Warsaw".into())
    }
}
