//! The tracking hot path and attribution (R-AFF-1..7, R-REP-1..2).
//!
//! The redirect reads nothing from the database on the hot path: partners and
//! their campaigns come from [`TrackingCache`] (read-through on a miss, fresh
//! within [`CACHE_TTL`], so a removal reaches every node within seconds), and
//! clicks go to [`ClickWriter`], which commits many per transaction (group
//! commit) and answers each redirect only after the commit holding its click.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use partnerd_domain::tracking::{self, Agent, ClickFacts, PartnerFacts, Reason};
use partnerd_domain::{Email, FieldErrors, ProgramSettings, PublicPartnerId, Timestamp};
use partnerd_store::{
    BlockingClickWriter, Campaign, NewAudit, NewCampaign, NewClick, NewSignup, Signup, Store,
    TrackingPartner,
};
use sha2::Digest as _;
use tokio::sync::{mpsc, oneshot};

use crate::crypto::{Keys, constant_time_eq};
use crate::{App, AppResult};

/// How long a cached partner (or settings) is trusted before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(3);
/// Unknown ids are remembered too, so random ids cannot turn into database reads;
/// the map is cleared when it grows past this many entries.
const CACHE_MAX_ENTRIES: usize = 200_000;
/// Most clicks one transaction holds: under a flood the writer commits batches
/// this large, where a commit's fixed cost (WAL frames, checkpoints) is spread
/// thin; when the queue is short it commits whatever is waiting at once.
pub const MAX_BATCH: usize = 4096;
/// Clicks queued for the writer before a redirect waits to queue its own.
const QUEUE: usize = 64 * 1024;

/// A signed referral token: which partner, campaign and click, and when.
/// `{partner}.{campaign}.{click}.{seconds}.{signature}`, URL-safe, so it travels
/// in a cookie, a query parameter and Stripe's `client_reference_id` (≤ 200 chars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralToken {
    pub partner: String,
    pub campaign_id: Option<i64>,
    pub click_id: i64,
    pub clicked_at_seconds: i64,
}

impl ReferralToken {
    /// One string from the start: the payload, then its signature appended.
    pub fn encode(&self, keys: &Keys) -> String {
        use std::fmt::Write as _;
        let mut token = String::with_capacity(96);
        let _ = write!(
            token,
            "{}.{}.{}.{}",
            self.partner,
            self.campaign_id.unwrap_or(0),
            self.click_id,
            self.clicked_at_seconds
        );
        let signature = keys.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature[..16], &mut token);
        token
    }

    /// The token's claims if the signature is ours; `None` for anything
    /// malformed, tampered with or signed by another key.
    pub fn decode(value: &str, keys: &Keys) -> Option<Self> {
        if value.len() > 200 {
            return None;
        }
        let (payload, signature) = value.rsplit_once('.')?;
        let expected = URL_SAFE_NO_PAD.encode(&keys.sign(payload.as_bytes())[..16]);
        if !constant_time_eq(&expected, signature) {
            return None;
        }
        let mut parts = payload.split('.');
        let partner = PublicPartnerId::parse(parts.next()?)?.to_string();
        let campaign: i64 = parts.next()?.parse().ok()?;
        let click_id = parts.next()?.parse().ok()?;
        let clicked_at_seconds = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            partner,
            campaign_id: (campaign > 0).then_some(campaign),
            click_id,
            clicked_at_seconds,
        })
    }
}

/// Time-ordered click ids: milliseconds since 2024 in the high bits, then 8 bits
/// of this process (random, so several nodes rarely collide and a collision is
/// refused by the primary key, not silently merged), then a 14-bit sequence.
pub struct ClickIds {
    node: i64,
    state: Mutex<(i64, i64)>,
}

const ID_EPOCH_MS: i64 = 1_704_067_200_000;

impl ClickIds {
    pub fn new() -> Self {
        Self {
            node: i64::from(rand::random::<u8>()),
            state: Mutex::new((0, 0)),
        }
    }

    pub fn next(&self, now: Timestamp) -> i64 {
        let mut state = self.state.lock().expect("click id lock");
        let ms = (now.millis() - ID_EPOCH_MS).max(state.0);
        let (ms, seq) = if ms == state.0 {
            if state.1 + 1 >= 1 << 14 {
                (ms + 1, 0)
            } else {
                (ms, state.1 + 1)
            }
        } else {
            (ms, 0)
        };
        *state = (ms, seq);
        (ms << 22) | (self.node << 14) | seq
    }
}

impl Default for ClickIds {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone)]
struct Cached<T> {
    loaded: Instant,
    value: T,
}

/// Partners by public id and the program settings, for the redirect.
#[derive(Default)]
pub struct TrackingCache {
    partners: RwLock<HashMap<String, Cached<Option<Arc<TrackingPartner>>>>>,
    settings: RwLock<Option<Cached<Arc<ProgramSettings>>>>,
}

impl TrackingCache {
    pub async fn partner(
        &self,
        store: &dyn Store,
        public_id: &str,
    ) -> AppResult<Option<Arc<TrackingPartner>>> {
        if let Some(hit) = self.partners.read().expect("cache lock").get(public_id)
            && hit.loaded.elapsed() < CACHE_TTL
        {
            return Ok(hit.value.clone());
        }
        let value = store.tracking_partner(public_id).await?.map(Arc::new);
        let mut map = self.partners.write().expect("cache lock");
        if map.len() >= CACHE_MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            public_id.to_owned(),
            Cached {
                loaded: Instant::now(),
                value: value.clone(),
            },
        );
        Ok(value)
    }

    /// Reads a partner again, for a campaign slug the cache does not know: it may
    /// be a campaign made a moment ago on another node. Like an unknown partner id,
    /// an unknown slug costs one read; known ones never do.
    pub async fn refresh(
        &self,
        store: &dyn Store,
        public_id: &str,
    ) -> AppResult<Option<Arc<TrackingPartner>>> {
        self.evict(public_id);
        self.partner(store, public_id).await
    }

    /// Drops a partner at once on this node (after a change made here).
    pub fn evict(&self, public_id: &str) {
        self.partners.write().expect("cache lock").remove(public_id);
    }

    /// Drops the cached settings, so the next read loads them.
    pub fn forget_settings(&self) {
        *self.settings.write().expect("cache lock") = None;
    }

    /// The program settings, trusted for [`CACHE_TTL`].
    pub async fn settings(&self, store: &dyn Store) -> AppResult<Arc<ProgramSettings>> {
        if let Some(hit) = self.settings.read().expect("cache lock").as_ref()
            && hit.loaded.elapsed() < CACHE_TTL
        {
            return Ok(hit.value.clone());
        }
        let value = Arc::new(store.load_settings().await?);
        *self.settings.write().expect("cache lock") = Some(Cached {
            loaded: Instant::now(),
            value: value.clone(),
        });
        Ok(value)
    }
}

type Pending = (NewClick, oneshot::Sender<bool>);

/// Group commit for clicks: one writer drains the queue into one transaction at
/// a time; each sender learns whether its click was committed.
///
/// On SQLite the writer is a thread of its own that calls the store directly
/// (`Store::blocking_click_writer`). Through the runtime, every batch took two
/// thread hand-offs (writer task → blocking pool → writer task) before the
/// redirects could be woken; under a flood of small batches those hand-offs
/// cost more than the batch's statements. On PostgreSQL a batch is a network
/// round trip, and the writer is a task.
#[derive(Clone)]
pub struct ClickWriter {
    queue: mpsc::Sender<Pending>,
}

impl ClickWriter {
    pub fn start(store: Arc<dyn Store>) -> Self {
        if let Some(writer) = store.blocking_click_writer() {
            return Self::on_a_thread(writer);
        }
        let (queue, receiver) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            let mut batches = Batches::new(receiver);
            while batches.next().await {
                let outcome = store.record_clicks(&batches.clicks).await;
                batches.answer(outcome);
            }
        });
        Self { queue }
    }

    /// The writer on a thread of its own, which ends when the last sender goes.
    fn on_a_thread(writer: Arc<dyn BlockingClickWriter>) -> Self {
        let (queue, receiver) = mpsc::channel::<Pending>(QUEUE);
        std::thread::Builder::new()
            .name("partnerd-clicks".into())
            .spawn(move || {
                let mut batches = Batches::new(receiver);
                while batches.blocking_next() {
                    let outcome = writer.record_clicks(&batches.clicks);
                    batches.answer(outcome);
                }
            })
            .expect("starting the click writer's thread");
        Self { queue }
    }

    /// Queues a click and waits for the commit that holds it.
    pub async fn record(&self, click: NewClick) -> bool {
        let (done, committed) = oneshot::channel();
        if self.queue.send((click, done)).await.is_err() {
            return false;
        }
        committed.await.unwrap_or(false)
    }
}

/// The click writer's batches: what is queued, up to [`MAX_BATCH`] clicks, and
/// who waits for each.
struct Batches {
    receiver: mpsc::Receiver<Pending>,
    taken: Vec<Pending>,
    clicks: Vec<NewClick>,
    waiting: Vec<oneshot::Sender<bool>>,
}

impl Batches {
    fn new(receiver: mpsc::Receiver<Pending>) -> Self {
        Self {
            receiver,
            taken: Vec::with_capacity(MAX_BATCH),
            clicks: Vec::with_capacity(MAX_BATCH),
            waiting: Vec::with_capacity(MAX_BATCH),
        }
    }

    /// Waits for the next batch; false once every sender is gone.
    async fn next(&mut self) -> bool {
        self.receiver.recv_many(&mut self.taken, MAX_BATCH).await > 0 && self.split()
    }

    /// [`Batches::next`] on a thread outside the runtime.
    fn blocking_next(&mut self) -> bool {
        self.receiver.blocking_recv_many(&mut self.taken, MAX_BATCH) > 0 && self.split()
    }

    fn split(&mut self) -> bool {
        for (click, done) in self.taken.drain(..) {
            self.clicks.push(click);
            self.waiting.push(done);
        }
        true
    }

    /// Tells every waiting redirect whether the batch was committed.
    fn answer(&mut self, outcome: partnerd_store::StoreResult<()>) {
        let committed = match outcome {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(%err, clicks = self.clicks.len(), "could not record clicks");
                false
            }
        };
        self.clicks.clear();
        for done in self.waiting.drain(..) {
            let _ = done.send(committed);
        }
    }
}

/// A click as the web layer saw it.
#[derive(Debug, Clone, Default)]
pub struct ClickRequest {
    pub public_id: String,
    pub slug: Option<String>,
    pub utm_term: Option<String>,
    pub subs: [Option<String>; 5],
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
    pub prefetch: bool,
    pub ip: Option<std::net::IpAddr>,
    /// The public id of the partner signed in to partnerd in this browser, if any.
    pub signed_in_partner: Option<String>,
}

/// Where to send the visitor, and the token to set, if any.
#[derive(Debug, Clone)]
pub struct ClickAnswer {
    pub location: String,
    pub token: Option<String>,
    pub cookie_days: i64,
}

/// Longest value kept from a query parameter; longer ones are cut.
const MAX_PARAM: usize = 200;

fn clip(value: Option<String>) -> Option<String> {
    value
        .map(|v| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(MAX_PARAM)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty())
}

impl App {
    /// R-AFF-3..5: records a click and says where to send the visitor. Unknown
    /// or removed partners and unknown campaigns go to the main page, untracked.
    pub async fn track_click(&self, request: ClickRequest) -> AppResult<ClickAnswer> {
        let settings = self.tracking_cache.settings(self.store.as_ref()).await?;
        let untracked = || ClickAnswer {
            location: settings.main_page_url.clone(),
            token: None,
            cookie_days: settings.cookie_days,
        };
        if PublicPartnerId::parse(&request.public_id).is_none() {
            return Ok(untracked());
        }
        let Some(target) = self
            .tracking_cache
            .partner(self.store.as_ref(), &request.public_id)
            .await?
        else {
            return Ok(untracked());
        };
        if target.partner.is_removed() {
            return Ok(untracked());
        }
        let mut target = target;
        if let Some(slug) = request.slug.as_deref()
            && slug != tracking::DEFAULT_SLUG
            && tracking::is_valid_slug(slug)
            && !target.campaigns.iter().any(|c| c.slug == slug)
        {
            // A campaign made a moment ago on another node: read the partner through.
            let fresh = self
                .tracking_cache
                .refresh(self.store.as_ref(), &request.public_id)
                .await?;
            match fresh {
                Some(fresh) if !fresh.partner.is_removed() => target = fresh,
                _ => return Ok(untracked()),
            }
        }
        let campaign: Option<&Campaign> = match request.slug.as_deref() {
            None | Some(tracking::DEFAULT_SLUG) => None,
            Some(slug) if !tracking::is_valid_slug(slug) => return Ok(untracked()),
            Some(slug) => match target.campaigns.iter().find(|c| c.slug == slug) {
                Some(c) => Some(c),
                None => return Ok(untracked()),
            },
        };
        let now = self.now();
        let agent = tracking::classify_agent(request.user_agent.as_deref(), request.prefetch);
        let utm_term = clip(request.utm_term).or_else(|| campaign.and_then(|c| c.custom.clone()));
        let network = request.ip.map_or_else(
            || "unknown".to_owned(),
            |ip| self.keys.network_hash(ip, now),
        );
        // SHA-256 of `{network}|{user agent}`, its first 16 bytes in hex.
        let visitor = crate::crypto::hex_string(
            &sha2::Sha256::new()
                .chain_update(&network)
                .chain_update(b"|")
                .chain_update(request.user_agent.as_deref().unwrap_or(""))
                .finalize()[..16],
        );
        let click = NewClick {
            id: self.click_ids.next(now),
            partner_id: target.partner.id,
            campaign_id: campaign.map(|c| c.id),
            at: now,
            utm_term: utm_term.clone(),
            subs: request.subs.map(clip),
            referrer_host: request
                .referrer
                .as_deref()
                .and_then(|r| url::Url::parse(r).ok())
                .and_then(|u| u.host_str().map(str::to_owned)),
            agent: agent.as_str(),
            network,
            visitor,
            own_session: request.signed_in_partner.as_deref()
                == Some(target.partner.public_id.as_str()),
        };
        let click_id = click.id;
        let page = campaign
            .and_then(|c| c.landing_url.clone())
            .unwrap_or_else(|| settings.main_page_url.clone());
        let slug = campaign.map_or(tracking::DEFAULT_SLUG, |c| c.slug.as_str());
        let committed = self.click_writer.record(click).await;
        // Bots are redirected and counted, never given a token (nothing to attribute).
        let token = (committed && agent == Agent::Browser).then(|| {
            ReferralToken {
                partner: target.partner.public_id.clone(),
                campaign_id: campaign.map(|c| c.id),
                click_id,
                clicked_at_seconds: now.millis().div_euclid(1000),
            }
            .encode(&self.keys)
        });
        let referral = token
            .as_deref()
            .map(|t| (settings.referral_param.as_str(), t));
        Ok(ClickAnswer {
            location: tracking::landing_url(&page, slug, utm_term.as_deref(), referral),
            token,
            cookie_days: settings.cookie_days,
        })
    }

    /// R-AFF-2: a partner's saved link.
    pub async fn create_campaign(
        &self,
        actor: &str,
        partner_id: i64,
        input: &CampaignInput,
    ) -> AppResult<Campaign> {
        let settings = self.settings().await?;
        let mut errors = FieldErrors::new();
        let name = errors.check(
            "name",
            partnerd_domain::errors::clean_text(&input.name, tracking::MAX_CAMPAIGN_NAME, true),
        );
        if let Some(days) = input.trial_days
            && !settings.trial_options.contains(&days)
        {
            errors.add(
                "trial_days",
                format!("must be one of {:?}", settings.trial_options),
            );
        }
        if let Some(percent) = input.discount_percent
            && !settings.discount_options.contains(&percent)
        {
            errors.add(
                "discount_percent",
                format!("must be one of {:?}", settings.discount_options),
            );
        }
        let custom = errors.check(
            "custom",
            partnerd_domain::errors::clean_text(
                input.custom.as_deref().unwrap_or(""),
                tracking::MAX_CUSTOM,
                false,
            ),
        );
        let landing = match input
            .landing_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(raw) => errors
                .check("landing_url", tracking::check_landing_url(raw, &settings))
                .map(Some),
            None => Some(None),
        };
        errors.into_result()?;
        let name = name.expect("checked");
        let slug = tracking::campaign_slug(&name, input.trial_days, input.discount_percent);
        let partner = self.store.get_partner(partner_id).await?;
        let new = NewCampaign {
            partner_id,
            name,
            slug: slug.clone(),
            trial_days: input.trial_days,
            discount_percent: input.discount_percent,
            custom: custom.filter(|c| !c.is_empty()),
            landing_url: landing.flatten(),
            created_at: self.now(),
        };
        let audit = NewAudit::new(
            self.now(),
            actor,
            "campaign.create",
            format!("partner:{}", partner.public_id),
        );
        let campaign = match self.store.create_campaign(new, audit).await {
            Err(partnerd_store::StoreError::Conflict { .. }) => {
                return Err(FieldErrors::single(
                    "name",
                    format!("makes the link {slug}, which you already have"),
                )
                .into());
            }
            other => other?,
        };
        // This node's redirect sees the new link at once; other nodes read an
        // unknown slug through (see `track_click`).
        self.tracking_cache.evict(&partner.public_id);
        Ok(campaign)
    }

    /// The link of a campaign (or the default link).
    pub fn referral_link(&self, public_id: &str, campaign: Option<&Campaign>) -> String {
        match campaign {
            Some(c) => format!("{}/r/{public_id}/{}", self.config.public_url(), c.slug),
            None => format!("{}/r/{public_id}", self.config.public_url()),
        }
    }

    /// R-AFF-4: records a sign-up, credited to the partner of the last click
    /// within `cookie_days` (or of a bare partner id), once per customer.
    /// Returns the stored sign-up and whether this call recorded it (a replay
    /// answers as the first call did).
    pub async fn record_signup(&self, input: &SignupReport) -> AppResult<(Signup, bool)> {
        let mut errors = FieldErrors::new();
        let customer_id = input.customer_id.trim();
        if customer_id.is_empty()
            || customer_id.len() > 200
            || customer_id.chars().any(char::is_control)
        {
            errors.add("customer_id", "is required, at most 200 characters");
        }
        let email = match input
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(raw) => errors.check("email", Email::parse(raw)),
            None => None,
        };
        if input.referral.as_deref().is_some_and(|r| r.len() > 500) {
            errors.add("referral", "must be at most 500 characters");
        }
        errors.into_result()?;
        if let Some(existing) = self.store.find_signup(customer_id).await? {
            // Also on a replay: a crash may have come between the sign-up's
            // commit and the release of what waited for it.
            self.release_stripe_payments(customer_id).await?;
            return Ok((existing, false));
        }
        let settings = self.settings().await?;
        let now = self.now();
        let mut signup = NewSignup {
            customer_id: customer_id.to_owned(),
            partner_id: None,
            referred_partner_id: None,
            campaign_id: None,
            click_id: None,
            utm_campaign: None,
            utm_term: None,
            trial_days: None,
            discount_percent: None,
            reason: Reason::NoClick.as_str().into(),
            review: false,
            commission_rate: None,
            created_at: now,
        };
        let referral = input
            .referral
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let (public_id, token) = match referral {
            None => (None, None),
            Some(r) if PublicPartnerId::parse(r).is_some() => (Some(r.to_owned()), None),
            Some(r) => match ReferralToken::decode(r, &self.keys) {
                Some(token) => (Some(token.partner.clone()), Some(token)),
                None => {
                    signup.reason = Reason::InvalidToken.as_str().into();
                    (None, None)
                }
            },
        };
        if let Some(public_id) = public_id {
            match self.store.tracking_partner(&public_id).await? {
                None => signup.reason = Reason::UnknownPartner.as_str().into(),
                Some(target) => {
                    self.attribute_to(
                        &mut signup,
                        &target,
                        token.as_ref(),
                        email.as_ref(),
                        &settings,
                        now,
                    )
                    .await?
                }
            }
        }
        let recorded = self.store.record_signup(signup).await?;
        // Stripe payments that arrived before the sign-up waited for it.
        self.release_stripe_payments(customer_id).await?;
        Ok(recorded)
    }

    async fn attribute_to(
        &self,
        signup: &mut NewSignup,
        target: &TrackingPartner,
        token: Option<&ReferralToken>,
        email: Option<&Email>,
        settings: &ProgramSettings,
        now: Timestamp,
    ) -> AppResult<()> {
        let partner = &target.partner;
        signup.referred_partner_id = Some(partner.id);
        let click = match token {
            Some(t) => self
                .store
                .get_click(t.click_id)
                .await?
                .filter(|c| c.partner_id == partner.id),
            None => None,
        };
        let facts = click.as_ref().map(|c| ClickFacts {
            clicked_at: Timestamp::from_millis(c.at),
            agent: if c.agent == "bot" {
                Agent::Bot
            } else {
                Agent::Browser
            },
            own_session: c.own_session != 0,
        });
        // A token whose click this node has not stored (yet) still carries its time.
        let facts = facts.or_else(|| {
            token.map(|t| ClickFacts {
                clicked_at: Timestamp::from_millis(t.clicked_at_seconds * 1000),
                agent: Agent::Browser,
                own_session: false,
            })
        });
        let same_email = match (email, &partner.email) {
            (Some(email), Some(own)) => email.as_str() == own,
            _ => false,
        };
        let reason = tracking::attribute(
            facts,
            PartnerFacts {
                removed: partner.is_removed(),
                same_email,
            },
            now,
            settings.cookie_days,
        );
        signup.reason = reason.as_str().into();
        let campaign = token
            .and_then(|t| t.campaign_id)
            .and_then(|id| target.campaigns.iter().find(|c| c.id == id));
        signup.campaign_id = campaign.map(|c| c.id);
        signup.click_id = token.map(|t| t.click_id);
        signup.utm_campaign =
            Some(campaign.map_or(tracking::DEFAULT_SLUG.to_owned(), |c| c.slug.clone()));
        signup.utm_term = click
            .as_ref()
            .and_then(|c| c.utm_term.clone())
            .or_else(|| campaign.and_then(|c| c.custom.clone()));
        // R-AFF-6: the campaign's offer applies to the licence the click brings.
        signup.trial_days = campaign.and_then(|c| c.trial_days);
        signup.discount_percent = campaign.and_then(|c| c.discount_percent);
        if reason.credited() {
            signup.partner_id = Some(partner.id);
            // R-COM-1: the rate is fixed when the customer is credited.
            signup.commission_rate = Some(settings.commission_rate);
            // R-AFF-7: sharing the partner's network is credited but held for review.
            if let Some(click) = &click {
                signup.review = self
                    .store
                    .partner_used_network(partner.id, &click.network)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The campaign builder's fields (R-AFF-2).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    pub name: String,
    pub trial_days: Option<i64>,
    pub discount_percent: Option<i64>,
    pub custom: Option<String>,
    pub landing_url: Option<String>,
}

/// A sign-up as the vendor reports it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupReport {
    pub customer_id: String,
    pub email: Option<String>,
    /// A referral token, or a bare partner id.
    pub referral: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A click writer that holds each batch until told to go on, remembers the
    /// ids of every batch, and fails a batch holding a negative id.
    struct GatedWriter {
        entered: Mutex<std::sync::mpsc::Sender<()>>,
        go: Mutex<std::sync::mpsc::Receiver<()>>,
        batches: Mutex<Vec<Vec<i64>>>,
    }

    impl BlockingClickWriter for GatedWriter {
        fn record_clicks(&self, clicks: &[NewClick]) -> partnerd_store::StoreResult<()> {
            self.entered.lock().unwrap().send(()).unwrap();
            self.go.lock().unwrap().recv().unwrap();
            let ids: Vec<i64> = clicks.iter().map(|c| c.id).collect();
            self.batches.lock().unwrap().push(ids.clone());
            if ids.iter().any(|id| *id < 0) {
                return Err(partnerd_store::StoreError::Invalid("a failing batch"));
            }
            Ok(())
        }
    }

    fn new_click(id: i64) -> NewClick {
        NewClick {
            id,
            partner_id: 1,
            campaign_id: None,
            at: Timestamp::from_millis(1_800_000_000_000),
            utm_term: None,
            subs: Default::default(),
            referrer_host: None,
            agent: "browser",
            network: "n".into(),
            visitor: "v".into(),
            own_session: false,
        }
    }

    /// R-AFF-3's group commit on the writer's own thread: clicks that queue while
    /// a batch commits go into the next one together, each redirect hears its own
    /// batch's outcome, and a failed batch does not stop the writer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_click_writers_thread_commits_what_queued_meanwhile_as_one_batch() {
        let (go, gate) = std::sync::mpsc::channel();
        let (entering, entered) = std::sync::mpsc::channel();
        let entered = Arc::new(Mutex::new(entered));
        let wait_for_a_batch = || {
            let entered = entered.clone();
            tokio::task::spawn_blocking(move || entered.lock().unwrap().recv().unwrap())
        };
        let writer = Arc::new(GatedWriter {
            entered: Mutex::new(entering),
            go: Mutex::new(gate),
            batches: Mutex::new(Vec::new()),
        });
        let clicks = ClickWriter::on_a_thread(writer.clone());
        let first = tokio::spawn({
            let clicks = clicks.clone();
            async move { clicks.record(new_click(1)).await }
        });
        // The first batch is held inside the writer until `go`.
        wait_for_a_batch().await.unwrap();
        let queued: Vec<_> = (2..=9)
            .map(|id| {
                let clicks = clicks.clone();
                let id = if id == 9 { -9 } else { id };
                tokio::spawn(async move { clicks.record(new_click(id)).await })
            })
            .collect();
        while clicks.queue.capacity() > QUEUE - 8 {
            tokio::task::yield_now().await;
        }
        go.send(()).unwrap();
        assert!(first.await.unwrap());
        wait_for_a_batch().await.unwrap();
        go.send(()).unwrap();
        for outcome in queued {
            // The batch with -9 failed, and every click in it with it.
            assert!(!outcome.await.unwrap());
        }
        go.send(()).unwrap();
        assert!(clicks.record(new_click(10)).await, "the writer went on");
        let mut batches = writer.batches.lock().unwrap().clone();
        batches[1].sort_unstable();
        assert_eq!(
            batches,
            vec![vec![1], vec![-9, 2, 3, 4, 5, 6, 7, 8], vec![10]]
        );
    }

    #[test]
    fn click_ids_increase_even_within_one_millisecond() {
        let ids = ClickIds::new();
        let t = Timestamp::from_millis(1_800_000_000_000);
        let a = ids.next(t);
        let b = ids.next(t);
        let c = ids.next(Timestamp::from_millis(t.millis() - 5)); // a clock step back
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a > 0);
    }

    #[test]
    fn tokens_round_trip_and_any_change_breaks_them() {
        let keys = Keys::from_secrets("network", "signing");
        let token = ReferralToken {
            partner: "abcdefghijk".into(),
            campaign_id: Some(7),
            click_id: 42,
            clicked_at_seconds: 1_800_000_000,
        };
        let encoded = token.encode(&keys);
        assert_eq!(ReferralToken::decode(&encoded, &keys), Some(token.clone()));
        assert!(encoded.len() < 100, "{encoded}");
        let other = Keys::from_secrets("network", "another key");
        assert_eq!(
            ReferralToken::decode(&encoded, &other),
            None,
            "another node's key"
        );
        let tampered = encoded.replacen(".7.", ".8.", 1);
        assert_eq!(ReferralToken::decode(&tampered, &keys), None);
        for junk in ["", "forged.token.value", "a.b.c.d.e", &"x".repeat(300)] {
            assert_eq!(ReferralToken::decode(junk, &keys), None, "{junk}");
        }
    }
}
