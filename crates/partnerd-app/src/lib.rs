//! partnerd's use cases over a [`Store`], a [`Clock`] and a [`Mailer`].
//!
//! The web layer and the CLI call these functions; they hold no HTTP types.
//! Each use case validates its input with the domain's parsers, then makes one
//! atomic store call, so a refused request writes nothing.

use std::sync::Arc;

use partnerd_store::Store;

pub mod accounts;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod errors;
pub mod jobs;
pub mod mail;
pub mod money;
pub mod outbound;
pub mod payouts;
pub mod paypal;
pub mod report;
pub mod resources;
pub mod stripe;
pub mod stripe_events;
pub mod tracking;
pub mod webhooks;
pub mod withdrawals;

pub use clock::{Clock, FakeClock, SystemClock};
pub use config::Config;
pub use errors::{AppError, AppResult};
pub use mail::Mailer;

/// Everything a use case needs, shared by the web handlers, the job runner and the CLI.
///
/// One `Arc`: every request clones the app a few times (router state, middleware,
/// extractors), and a clone per field would be a dozen reference counts bouncing
/// between the CPUs on the redirect's hot path instead of one.
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// What [`App`] holds.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    pub mailer: Option<Arc<Mailer>>,
    /// Keys every node shares, loaded from the database at start.
    pub keys: Arc<crypto::Keys>,
    /// The redirect's read-through cache of partners and settings.
    pub tracking_cache: Arc<tracking::TrackingCache>,
    pub click_ids: Arc<tracking::ClickIds>,
    /// Group commit for clicks.
    pub click_writer: tracking::ClickWriter,
    /// Group commit for billing events (payments, refunds, chargebacks).
    pub billing_writer: money::BillingWriter,
    /// PayPal Payouts, when `[paypal]` is configured (one client: it caches the token).
    pub paypal: Option<Arc<paypal::PayPalClient>>,
}

impl App {
    /// Builds the application over an open, migrated store.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> AppResult<Self> {
        let keys = crypto::Keys::load(store.as_ref()).await?;
        let mailer = match &config.smtp {
            Some(smtp) => Some(Arc::new(Mailer::new(smtp)?)),
            None => None,
        };
        let paypal = payouts::paypal_client(&config)?;
        let tracking_cache: Arc<tracking::TrackingCache> = Arc::default();
        Ok(Self(Arc::new(AppState {
            paypal,
            click_writer: tracking::ClickWriter::start(store.clone()),
            billing_writer: money::BillingWriter::start(
                store.clone(),
                clock.clone(),
                tracking_cache.clone(),
            ),
            store,
            clock,
            config: Arc::new(config),
            mailer,
            keys: Arc::new(keys),
            tracking_cache,
            click_ids: Arc::default(),
        })))
    }

    pub fn now(&self) -> partnerd_domain::Timestamp {
        self.clock.now()
    }
}
