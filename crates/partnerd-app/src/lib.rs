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
pub mod outbound;
pub mod paypal;
pub mod report;
pub mod resources;
pub mod stripe;
pub mod tracking;

pub use clock::{Clock, FakeClock, SystemClock};
pub use config::Config;
pub use errors::{AppError, AppResult};
pub use mail::Mailer;

/// Everything a use case needs, shared by the web handlers, the job runner and the CLI.
#[derive(Clone)]
pub struct App {
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
        Ok(Self {
            click_writer: tracking::ClickWriter::start(store.clone()),
            store,
            clock,
            config: Arc::new(config),
            mailer,
            keys: Arc::new(keys),
            tracking_cache: Arc::default(),
            click_ids: Arc::default(),
        })
    }

    pub fn now(&self) -> partnerd_domain::Timestamp {
        self.clock.now()
    }
}
