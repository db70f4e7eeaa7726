//! `partnerd demo`: a realistic synthetic program in a fresh database, served
//! like `partnerd serve`.
//!
//! Seeding is a list of steps over one [`Seed`]; each step is an async function
//! that moves a fake clock to the moment things happened and calls the same use
//! cases the web layer calls, so the demo's data (and its audit log) looks like a
//! program that has run for months. To add data (clicks, payments, …) write one
//! more step function and add it to [`seed`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use partnerd_app::config::Secret;
use partnerd_app::{App, Clock, Config, FakeClock, SystemClock};
use partnerd_domain::{Email, PartnerProfile, PublicPartnerId, Timestamp};
use partnerd_store::{NewAudit, NewPartner, Partner, PartnerQuery, Staff, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::DbArgs;
use crate::{ops, server};

/// One password for every demo account; passes the default password policy.
pub const DEMO_PASSWORD: &str = "demo-password-2026";
/// The demo's own data directory, so it never mixes with `./partnerd-data`.
pub const DEMO_DATA_DIR: &str = "./partnerd-demo";
pub const ADMIN_EMAIL: &str = "admin@demo.partnerd.test";
pub const PARTNER_EMAIL: &str = "partner@demo.partnerd.test";

const DAY: i64 = 86_400;
/// How long the demo program has been running.
const PROGRAM_AGE_DAYS: i64 = 270;

/// Staff: (name, email, role, days after launch).
const STAFF: &[(&str, &str, &str, i64)] = &[
    ("Alex Morgan", ADMIN_EMAIL, "admin", 0),
    ("Maya Lindqvist", "maya@demo.partnerd.test", "manager", 1),
    ("Tobias Reyes", "tobias@demo.partnerd.test", "manager", 2),
    ("Priya Raman", "priya@demo.partnerd.test", "manager", 110),
];

/// The manager whose login the demo prints.
const MANAGER_EMAIL: &str = "maya@demo.partnerd.test";

/// A demo partner: name, company (empty for freelancers), email, website.
struct DemoPartner {
    name: &'static str,
    company: &'static str,
    email: &'static str,
    website: &'static str,
}

const fn p(
    name: &'static str,
    company: &'static str,
    email: &'static str,
    website: &'static str,
) -> DemoPartner {
    DemoPartner {
        name,
        company,
        email,
        website,
    }
}

/// Partners in the order they joined.
const PARTNERS: &[DemoPartner] = &[
    p(
        "Sofia Marquez",
        "Northwind Digital",
        "sofia@northwind-digital.example",
        "https://northwind-digital.example/",
    ),
    p(
        "Liam O'Connell",
        "Brightline Consulting",
        "liam@brightline-consulting.example",
        "https://brightline-consulting.example/",
    ),
    p(
        "Aiko Tanaka",
        "",
        "hello@aikotanaka.example",
        "https://aikotanaka.example/",
    ),
    p(
        "Oluwaseun Adeyemi",
        "Lagos Growth Partners",
        "seun@lagosgrowth.example",
        "https://lagosgrowth.example/",
    ),
    p(
        "Mateusz Kowalski",
        "Vistula Software House",
        "mateusz@vistula-software.example",
        "https://vistula-software.example/",
    ),
    p(
        "Emma Schneider",
        "Rheinblick Marketing GmbH",
        "emma.schneider@rheinblick.example",
        "https://www.rheinblick.example/",
    ),
    p(
        "Noah Williams",
        "",
        "noah@noahwrites.example",
        "https://noahwrites.example/",
    ),
    p(
        "Chloé Dubois",
        "Agence Lumière",
        "chloe@agence-lumiere.example",
        "https://agence-lumiere.example/",
    ),
    p(
        "Arjun Mehta",
        "Cloudkite Consulting",
        "arjun@cloudkite.example",
        "https://cloudkite.example/",
    ),
    p(
        "Isabella Rossi",
        "Studio Rossi",
        "isabella@studiorossi.example",
        "https://studiorossi.example/",
    ),
    p(
        "Ethan Brooks",
        "Summit CX Advisors",
        "ethan@summitcx.example",
        "https://summitcx.example/",
    ),
    p(
        "Fatima Al-Sayed",
        "Desert Rose Digital",
        "fatima@desertrose-digital.example",
        "https://desertrose-digital.example/",
    ),
    p(
        "Lucas Oliveira",
        "Atlântico Tech",
        "lucas@atlantico-tech.example",
        "https://atlantico-tech.example/",
    ),
    p(
        "Hannah Becker",
        "",
        "hannah@hannahbecker.example",
        "https://hannahbecker.example/",
    ),
    p(
        "Kwame Mensah",
        "Gold Coast Web Studio",
        "kwame@goldcoastweb.example",
        "https://goldcoastweb.example/",
    ),
    p(
        "Mia Johansson",
        "Nordlys Kommunikation",
        "mia@nordlys.example",
        "https://nordlys.example/",
    ),
    p(
        "Diego Hernández",
        "Cactus Support Ops",
        "diego@cactusops.example",
        "https://cactusops.example/",
    ),
    p(
        "Grace Kim",
        "Seoulful Marketing",
        "grace@seoulful.example",
        "https://seoulful.example/",
    ),
    p(
        "Oliver Bennett",
        "Bennett & Hale Consulting",
        "oliver@bennetthale.example",
        "https://bennetthale.example/",
    ),
    p(
        "Zara Ahmed",
        "",
        "zara@zaraahmed.example",
        "https://zaraahmed.example/",
    ),
    p(
        "Tomáš Novák",
        "Praha Pixel s.r.o.",
        "tomas@prahapixel.example",
        "https://prahapixel.example/",
    ),
    p(
        "Amelia Clarke",
        "Helpdesk Heroes",
        "amelia@helpdeskheroes.example",
        "https://helpdeskheroes.example/",
    ),
    p(
        "Jordan Avery",
        "Brightpath Digital",
        PARTNER_EMAIL,
        "https://brightpath-digital.example/",
    ),
    p(
        "Ravi Shankar",
        "Bluepeak Systems",
        "ravi@bluepeak.example",
        "https://bluepeak.example/",
    ),
    p(
        "Elena Popescu",
        "Carpathia Digital",
        "elena@carpathia-digital.example",
        "https://carpathia-digital.example/",
    ),
    p(
        "Jack Thompson",
        "",
        "jack@jackthompson.example",
        "https://jackthompson.example/",
    ),
    p(
        "Yuki Sato",
        "Sakura CX Consulting",
        "yuki@sakuracx.example",
        "https://sakuracx.example/",
    ),
    p(
        "Nadia Haddad",
        "Cedar Growth Agency",
        "nadia@cedargrowth.example",
        "https://cedargrowth.example/",
    ),
    p(
        "William Foster",
        "Foster Customer Experience",
        "will@fostercx.example",
        "https://fostercx.example/",
    ),
    p(
        "Ingrid Larsen",
        "Fjord Digital AS",
        "ingrid@fjorddigital.example",
        "https://fjorddigital.example/",
    ),
    p(
        "Samuel Okoro",
        "",
        "sam@samuelokoro.example",
        "https://samuelokoro.example/",
    ),
    p(
        "Valentina Costa",
        "Costa & Partners",
        "valentina@costapartners.example",
        "https://costapartners.example/",
    ),
    p(
        "Benjamin Levi",
        "SaaS Growth Advisors",
        "ben@saasadvisors.example",
        "https://saasadvisors.example/",
    ),
    p(
        "Charlotte Martin",
        "Maple Leaf Web Agency",
        "charlotte@mapleleafweb.example",
        "https://mapleleafweb.example/",
    ),
    p(
        "Andrés Gómez",
        "",
        "andres@andresgomez.example",
        "https://andresgomez.example/",
    ),
    p(
        "Leah Goldberg",
        "Conversion Lab",
        "leah@conversionlab.example",
        "https://conversionlab.example/",
    ),
    p(
        "Henrik Nielsen",
        "Copenhagen Support Consulting",
        "henrik@cphsupport.example",
        "https://cphsupport.example/",
    ),
    p(
        "Priyanka Nair",
        "Kerala Web Works",
        "priyanka@keralawebworks.example",
        "https://keralawebworks.example/",
    ),
    p(
        "Daniel Murphy",
        "Emerald Digital",
        "daniel@emeralddigital.example",
        "https://emeralddigital.example/",
    ),
    p(
        "Sara Lindgren",
        "",
        "sara@saralindgren.example",
        "https://saralindgren.example/",
    ),
    p(
        "Kenji Watanabe",
        "Tokyo Growth Labs",
        "kenji@tokyogrowth.example",
        "https://tokyogrowth.example/",
    ),
    p(
        "Olivia Turner",
        "Turner Marketing Co.",
        "olivia@turnermarketing.example",
        "https://turnermarketing.example/",
    ),
    p(
        "Ahmed Hassan",
        "Nile Tech Solutions",
        "ahmed@niletech.example",
        "https://niletech.example/",
    ),
    p(
        "Lucía Fernández",
        "Sol Digital Agency",
        "lucia@soldigital.example",
        "https://soldigital.example/",
    ),
    p(
        "Pieter de Vries",
        "Dutch Chat Experts",
        "pieter@dutchchatexperts.example",
        "https://dutchchatexperts.example/",
    ),
];

/// The partner removed for a violation, so the audit log shows a removal.
const REMOVED: DemoPartner = p(
    "Victor Crane",
    "QuickRank Media",
    "victor@quickrank-media.example",
    "https://quickrank-media.example/",
);
const REMOVAL_REASON: &str = "Bid on the brand name \"Acme Chat\" in paid search and sent the traffic through a \
                              fake coupon page, against sections 1 and 2 of the Terms.";

/// The newest partners are created with their welcome emails, so the Outbox has some.
const WITH_EMAILS: usize = 5;

/// Everything the seeding steps share.
pub struct Seed {
    pub store: Arc<dyn Store>,
    /// The use cases, on a clock the steps move to when each thing happened.
    pub app: App,
    pub clock: FakeClock,
    /// The real time when seeding started; nothing is created after it.
    pub now: Timestamp,
    /// A fixed seed, so every demo looks the same.
    pub rng: StdRng,
    /// The demo password's hash, computed once.
    pub password_hash: String,
    pub admin: Option<Staff>,
    pub managers: Vec<Staff>,
    pub partners: Vec<Partner>,
    /// The credited customers the tracking step made: id, sign-up time, trial days.
    pub customers: Vec<(String, Timestamp, Option<i64>)>,
    /// The bars on a terminal, one line per step; `None` prints a line per step instead.
    progress: Option<MultiProgress>,
}

impl Seed {
    /// When the program launched.
    pub fn launch(&self) -> Timestamp {
        self.now.minus_seconds(PROGRAM_AGE_DAYS * DAY)
    }

    /// Moves the clock to `at`, never past the real now.
    pub fn at(&self, at: Timestamp) {
        self.clock.set(at.min(self.now));
    }

    /// The admin as a signed-in actor, for use cases that need one.
    /// How the audit log names the demo's admin.
    pub fn admin_actor(&self) -> anyhow::Result<String> {
        let staff = self.admin.clone().context("the admin is created first")?;
        Ok(format!("staff:{} ({})", staff.id, staff.email))
    }

    /// A progress bar on a terminal; one line per step otherwise.
    pub fn step(&self, label: &'static str, len: u64) -> Step {
        let bar = if let Some(multi) = &self.progress {
            let bar = multi.add(ProgressBar::new(len));
            let style = ProgressStyle::with_template(
                "{prefix:>18} [{bar:24.cyan/blue}] {pos:>3}/{len:3} {wide_msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label);
            bar
        } else {
            ProgressBar::hidden()
        };
        Step {
            bar,
            label,
            progress: self.progress.is_some(),
        }
    }
}

/// One seeding step's progress.
pub struct Step {
    bar: ProgressBar,
    label: &'static str,
    progress: bool,
}

impl Step {
    pub fn tick(&self, message: impl Into<std::borrow::Cow<'static, str>>) {
        self.bar.set_message(message);
        self.bar.inc(1);
    }

    pub fn done(self, summary: &str) {
        if self.progress {
            self.bar.finish_with_message(summary.to_owned());
        } else {
            eprintln!("demo: {}: {summary}", self.label);
        }
    }
}

/// The seeding steps, in order. Add a step here.
async fn seed(seed: &mut Seed) -> anyhow::Result<()> {
    staff(seed).await.context("seeding the staff")?;
    program_settings(seed)
        .await
        .context("seeding the program settings")?;
    partners(seed).await.context("seeding the partners")?;
    removal(seed).await.context("seeding a removal")?;
    tracking(seed)
        .await
        .context("seeding campaigns, clicks and sign-ups")?;
    money(seed)
        .await
        .context("seeding payments, refunds and commission")?;
    Ok(())
}

/// The Terms, the admin and the affiliate managers.
async fn staff(seed: &mut Seed) -> anyhow::Result<()> {
    let step = seed.step("staff", STAFF.len() as u64 + 1);
    seed.at(seed.launch());
    seed.app.ensure_defaults().await?;
    step.tick("terms");
    for (i, &(name, email, role, days)) in STAFF.iter().enumerate() {
        seed.at(seed
            .launch()
            .plus_days(days)
            .plus_seconds(3600 * 9 + i as i64 * 600));
        // The admin comes from `partnerd admin create`; the admin adds the managers in the console.
        let actor = seed.admin_actor().unwrap_or_else(|_| "cli".to_owned());
        let staff = seed
            .app
            .create_staff(&actor, email, name, role, Some(DEMO_PASSWORD))
            .await?;
        if role == "admin" {
            seed.admin = Some(staff);
        } else {
            seed.managers.push(staff);
        }
        step.tick(name);
    }
    step.done(&format!(
        "1 admin, {} affiliate managers",
        seed.managers.len()
    ));
    Ok(())
}

/// The program's identity, set by the admin on launch day.
async fn program_settings(seed: &mut Seed) -> anyhow::Result<()> {
    let step = seed.step("program settings", 1);
    seed.at(seed.launch().plus_seconds(3600 * 10));
    let form = [
        ("program_name", "Acme Chat Partner Program"),
        ("main_page_url", "https://www.acme-chat.example/"),
        ("allowed_landing_domains", "acme-chat.example"),
        ("brand_color", "#0f766e"),
        ("accent_color", "#f59e0b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let admin = seed.admin_actor()?;
    let settings = seed.app.update_settings(&admin, &form).await?;
    step.tick("saved");
    step.done(&settings.program_name);
    Ok(())
}

/// Partners joining over the months, more of them lately as the program grows.
async fn partners(seed: &mut Seed) -> anyhow::Result<()> {
    let step = seed.step("partners", PARTNERS.len() as u64);
    let terms_version = seed.store.current_terms().await?.map_or(0, |t| t.version);
    let first = seed.launch().plus_days(3);
    let span = seed.now.minus_seconds(DAY).millis() - first.millis();
    let last = PARTNERS.len().saturating_sub(1).max(1);
    for (i, demo) in PARTNERS.iter().enumerate() {
        let f = i as f64 / last as f64;
        // Denser towards now: the program grows.
        let offset = (span as f64 * (1.0 - (1.0 - f).powf(1.6))) as i64;
        let jitter = seed.rng.gen_range(0..6 * 3600 * 1000);
        let at = Timestamp::from_millis(first.millis() + offset - jitter);
        let with_emails = i + WITH_EMAILS >= PARTNERS.len() || demo.email == PARTNER_EMAIL;
        let partner = create_partner(seed, demo, at, terms_version, with_emails).await?;
        seed.partners.push(partner);
        step.tick(demo.name);
    }
    step.done(&format!("{} partners", seed.partners.len()));
    Ok(())
}

/// One partner removed for a violation of the Terms, with the reason.
async fn removal(seed: &mut Seed) -> anyhow::Result<()> {
    let step = seed.step("removed partner", 2);
    let terms_version = seed.store.current_terms().await?.map_or(0, |t| t.version);
    let joined = seed.now.minus_seconds(74 * DAY + 5 * 3600);
    let partner = create_partner(seed, &REMOVED, joined, terms_version, false).await?;
    step.tick("joined");
    seed.at(seed.now.minus_seconds(19 * DAY + 2 * 3600));
    let admin = seed.admin_actor()?;
    seed.app
        .remove_for_violation(&admin, partner.id, REMOVAL_REASON)
        .await?;
    step.tick("removed");
    step.done("1 removed for a violation");
    Ok(())
}

/// Creates a partner as sign-up does, at `at`, with the precomputed password hash.
async fn create_partner(
    seed: &Seed,
    demo: &DemoPartner,
    at: Timestamp,
    terms_version: i64,
    with_emails: bool,
) -> anyhow::Result<Partner> {
    seed.at(at);
    let mut errors = partnerd_domain::FieldErrors::new();
    let profile = PartnerProfile::parse(demo.name, demo.company, demo.website, &mut errors);
    let email = errors.check("email", Email::parse(demo.email));
    let (Some(profile), Some(email)) = (profile, email) else {
        bail!("demo partner {}: {errors}", demo.name);
    };
    let public_id = PublicPartnerId::generate(&mut rand::rngs::OsRng);
    let now = seed.app.now();
    let actor = format!("partner:{public_id}");
    let new = NewPartner {
        public_id: public_id.to_string(),
        email,
        password_hash: Some(seed.password_hash.clone()),
        profile,
        terms_version,
        created_at: now,
        audit: NewAudit::new(now, actor.clone(), "partner.signup", actor),
    };
    if with_emails {
        Ok(seed.app.create_partner_with_emails(new).await?)
    } else {
        Ok(seed.store.create_partner(new, &|_, _| Vec::new()).await?)
    }
}

/// Where the demo lives: its own directory unless a database was named.
fn demo_config(mut config: Config, db: &DbArgs) -> (Config, bool) {
    let explicit = db.database_url.is_some() || db.data_dir.is_some();
    // The configuration file's database is never the demo's: it may be production.
    config.database_url = db.database_url.clone().map(Secret::new);
    config.data_dir = db
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEMO_DATA_DIR));
    // Demo addresses are not real: keep every email in the console's Outbox.
    config.smtp = None;
    (config, explicit)
}

/// Removes the previous demo's database files (the database only, nothing else).
fn wipe(data_dir: &Path) -> anyhow::Result<()> {
    let db = data_dir.join("partnerd.db");
    if db.exists() {
        tracing::info!(
            "wiping the previous demo database in {}",
            data_dir.display()
        );
    }
    for name in ["partnerd.db", "partnerd.db-wal", "partnerd.db-shm"] {
        let file = data_dir.join(name);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", file.display())),
        }
    }
    Ok(())
}

/// Whether the store already holds the demo (then it is served as it is); refuses
/// a database holding anything else.
async fn holds_demo(store: &dyn Store) -> anyhow::Result<bool> {
    if store
        .find_staff_by_email(&Email::from_trusted(ADMIN_EMAIL.to_owned()))
        .await?
        .is_some()
    {
        return Ok(true);
    }
    let partners = store
        .list_partners(&PartnerQuery {
            include_removed: true,
            limit: 1,
            ..PartnerQuery::default()
        })
        .await?;
    if partners.total > 0 || !store.list_staff().await?.is_empty() {
        bail!(
            "the database already holds data that is not the demo's; the demo fills a fresh database: \
             leave out --data-dir/--database-url to use {DEMO_DATA_DIR}, or name an empty one"
        );
    }
    Ok(false)
}

pub async fn run(config: Config, db: &DbArgs, listen: Option<String>) -> anyhow::Result<()> {
    let (mut config, explicit) = demo_config(config, db);
    if let Some(listen) = listen {
        config.listen = listen;
    }
    // Bind first: a busy port fails before the previous demo is wiped.
    let listener = server::bind(&mut config).await?;
    if !explicit {
        wipe(&config.data_dir)?;
    }
    let store = ops::open_store(&config).await?;
    let already = explicit && holds_demo(store.as_ref()).await?;
    if already {
        tracing::info!("the database already holds the demo: serving it as it is");
    } else {
        let started = std::time::Instant::now();
        let hash =
            tokio::task::spawn_blocking(|| partnerd_app::crypto::hash_password(DEMO_PASSWORD))
                .await
                .context("hashing the demo password")??;
        let now = SystemClock.now();
        let clock = FakeClock::at(now);
        let app = App::new(store.clone(), Arc::new(clock.clone()), config.clone()).await?;
        let mut state = Seed {
            store: store.clone(),
            app,
            clock,
            now,
            rng: StdRng::seed_from_u64(2026),
            password_hash: hash,
            admin: None,
            managers: Vec::new(),
            partners: Vec::new(),
            customers: Vec::new(),
            progress: std::io::stderr().is_terminal().then(MultiProgress::new),
        };
        seed(&mut state).await?;
        tracing::info!(
            "demo data ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let app = server::start_app(store, config.clone()).await?;
    print_logins(&server::display_address(&listener), &config, explicit);
    server::run(app, listener).await
}

fn print_logins(address: &str, config: &Config, explicit: bool) {
    let rows = [
        ("Admin console", "/admin/login", ADMIN_EMAIL),
        ("Affiliate manager", "/admin/login", MANAGER_EMAIL),
        ("Partner panel", "/login", PARTNER_EMAIL),
    ];
    println!();
    println!("partnerd demo: the Acme Chat Partner Program is running at {address}");
    println!();
    for (who, path, email) in rows {
        println!(
            "  {who:<18} {:<40} {email:<28} password: {DEMO_PASSWORD}",
            format!("{address}{path}")
        );
    }
    println!();
    if explicit {
        println!(
            "The demo database is {}.",
            ops::redacted(&config.database_url())
        );
    } else {
        println!(
            "The demo database is in {} and is wiped by the next `partnerd demo`.",
            config.data_dir.display()
        );
    }
    println!("Press Ctrl-C to stop.");
    println!();
    // Nothing else writes to standard output; make sure the logins show at once.
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// A campaign partners build (R-AFF-2): name, trial, discount, custom parameter, landing path.
type DemoCampaign = (
    &'static str,
    Option<i64>,
    Option<i64>,
    Option<&'static str>,
    Option<&'static str>,
);

const CAMPAIGNS: &[DemoCampaign] = &[
    (
        "Spring Sale",
        Some(60),
        Some(20),
        Some("spring"),
        Some("pricing"),
    ),
    ("Blog sidebar", None, None, Some("blog"), None),
    (
        "YouTube review",
        Some(30),
        None,
        Some("yt-review"),
        Some("features"),
    ),
    ("Newsletter", None, Some(10), Some("newsletter"), None),
    ("Agency clients", Some(30), Some(10), None, Some("pricing")),
];

/// Keywords ad platforms fill into `utm_term` per click (R-AFF-5).
const AD_TERMS: &[&str] = &[
    "live chat software",
    "chat widget",
    "customer support chat",
    "helpdesk tool",
];

/// Months of clicks on the partners' links, and the sign-ups they brought
/// (R-AFF-1..7, R-REP-2): busier partners, growth towards now, weekday rhythm,
/// bots, returning visitors, and a few percent of visitors signing up.
async fn tracking(seed: &mut Seed) -> anyhow::Result<()> {
    use partnerd_app::tracking::CampaignInput;
    use partnerd_store::{NewClick, NewSignup};

    let partners: Vec<Partner> = seed
        .partners
        .iter()
        .filter(|p| !p.is_removed())
        .cloned()
        .collect();
    let step = seed.step("clicks", partners.len() as u64);
    let settings = seed.store.load_settings().await?;
    let (mut total_clicks, mut total_signups, mut customer) = (0usize, 0usize, 0usize);
    for partner in &partners {
        // Most partners build a campaign or two; a few only share the default link.
        let wanted = seed.rng.gen_range(0..=3usize);
        let mut campaigns = Vec::new();
        for &(name, trial, discount, custom, path) in CAMPAIGNS
            .iter()
            .skip(seed.rng.gen_range(0..CAMPAIGNS.len()))
            .take(wanted)
        {
            let built =
                Timestamp::from_millis(partner.created_at).plus_days(seed.rng.gen_range(1..20));
            seed.at(built);
            let input = CampaignInput {
                name: name.to_owned(),
                trial_days: trial,
                discount_percent: discount,
                custom: custom.map(str::to_owned),
                landing_url: path.map(|p| format!("https://www.acme-chat.example/{p}")),
            };
            let actor = format!("partner:{}", partner.public_id);
            campaigns.push(seed.app.create_campaign(&actor, partner.id, &input).await?);
        }
        // Clicks a day for this partner at the end of the period; lognormal-ish spread.
        let daily = (seed.rng.gen_range(0.0f64..1.0).powi(3) * 60.0 + 0.5).round();
        let joined = partner.created_at.max(seed.launch().millis());
        let days = ((seed.now.millis() - joined) / (DAY * 1000)).max(1);
        let mut clicks = Vec::new();
        let mut signups = Vec::new();
        let visitors: Vec<String> = (0..(daily as usize * 20).max(5))
            .map(|i| format!("{:032x}", seed.rng.r#gen::<u128>() ^ i as u128))
            .collect();
        for day in 0..days {
            let growth = (day + 1) as f64 / days as f64;
            let at_day = joined + day * DAY * 1000;
            let weekday = (at_day / (DAY * 1000) + 4) % 7; // 0 = Monday
            let rhythm = if weekday >= 5 { 0.55 } else { 1.0 };
            let expected = daily * (0.3 + 0.7 * growth) * rhythm;
            let count = (expected + seed.rng.gen_range(-0.5..0.5) * expected.sqrt())
                .round()
                .max(0.0) as usize;
            for _ in 0..count {
                let at = Timestamp::from_millis(at_day + seed.rng.gen_range(0..DAY * 1000))
                    .min(seed.now);
                let campaign = if campaigns.is_empty() || seed.rng.gen_bool(0.35) {
                    None
                } else {
                    Some(&campaigns[seed.rng.gen_range(0..campaigns.len())])
                };
                let bot = seed.rng.gen_bool(0.06);
                let visitor = visitors[seed.rng.gen_range(0..visitors.len())].clone();
                let term = if seed.rng.gen_bool(0.15) {
                    Some(AD_TERMS[seed.rng.gen_range(0..AD_TERMS.len())].to_owned())
                } else {
                    campaign.and_then(|c| c.custom.clone())
                };
                let click = NewClick {
                    id: seed.app.click_ids.next(at),
                    partner_id: partner.id,
                    campaign_id: campaign.map(|c| c.id),
                    at,
                    utm_term: term.clone(),
                    subs: Default::default(),
                    referrer_host: Some(
                        [
                            "www.google.com",
                            "www.youtube.com",
                            "t.co",
                            "www.linkedin.com",
                            "news.ycombinator.com",
                        ][seed.rng.gen_range(0..5)]
                        .to_owned(),
                    ),
                    agent: if bot { "bot" } else { "browser" },
                    network: visitor[..16].to_owned(),
                    visitor: visitor.clone(),
                    own_session: false,
                };
                if !bot && seed.rng.gen_bool(0.035) {
                    let signed_up = at
                        .plus_seconds(seed.rng.gen_range(60..3 * DAY))
                        .min(seed.now);
                    customer += 1;
                    signups.push(NewSignup {
                        customer_id: format!("cus_demo{customer:05}"),
                        partner_id: Some(partner.id),
                        referred_partner_id: Some(partner.id),
                        campaign_id: campaign.map(|c| c.id),
                        click_id: Some(click.id),
                        utm_campaign: Some(
                            campaign.map_or("default_link".to_owned(), |c| c.slug.clone()),
                        ),
                        utm_term: term,
                        trial_days: campaign.and_then(|c| c.trial_days),
                        discount_percent: campaign.and_then(|c| c.discount_percent),
                        reason: "last_click".into(),
                        review: false,
                        commission_rate: Some(settings.commission_rate),
                        created_at: signed_up,
                    });
                }
                clicks.push(click);
            }
        }
        for batch in clicks.chunks(2000) {
            seed.store.record_clicks(batch).await?;
        }
        total_clicks += clicks.len();
        total_signups += signups.len();
        for signup in signups {
            seed.customers.push((
                signup.customer_id.clone(),
                signup.created_at,
                signup.trial_days,
            ));
            seed.store.record_signup(signup).await?;
        }
        step.tick(partner.name.clone());
    }
    step.done(&format!("{total_clicks} clicks, {total_signups} sign-ups"));
    Ok(())
}

/// Plans the demo's customers pay for, in cents a month.
const PLANS: [i64; 5] = [2_900, 4_900, 9_900, 19_900, 49_900];

/// Months of payments by the credited customers, some refunds and a chargeback,
/// booked day by day through the same use case as the API and Stripe (R-COM-1..4),
/// with the hold-release job run as the days pass, so the panel shows held and
/// available commission and the report fills with customers and revenue.
async fn money(seed: &mut Seed) -> anyhow::Result<()> {
    use partnerd_domain::Currency;
    use partnerd_store::money::{
        ChargebackChange, EventKey, EventOrigin, NewCancellation, NewChargeback, NewPayment,
        NewRefund,
    };

    /// One billing event, by when it happens.
    enum Event {
        Payment(NewPayment),
        Refund(NewRefund),
        Chargeback(NewChargeback),
        Cancel(NewCancellation),
    }
    let mut events: Vec<(Timestamp, Event)> = Vec::new();
    let customers = std::mem::take(&mut seed.customers);
    for (customer, signed_up, trial) in &customers {
        // Somewhat under half of the trials convert.
        if !seed.rng.gen_bool(0.45) {
            continue;
        }
        let plan = PLANS[seed.rng.gen_range(0..PLANS.len())];
        let seats = seed.rng.gen_range(1..=3);
        let subscription = format!("sub_{}", &customer[4..]);
        let mut at = signed_up.plus_days(trial.unwrap_or(14));
        let mut month = 0;
        while at < seed.now {
            month += 1;
            let id = format!("in_{}_{month:02}", &customer[4..]);
            events.push((
                at,
                Event::Payment(NewPayment {
                    event: EventKey::new(EventOrigin::Demo, format!("payment:{id}")),
                    payment_id: id.clone(),
                    customer_id: customer.clone(),
                    amount: plan * seats,
                    currency: Currency::USD,
                    paid_at: at,
                    subscription_id: Some(subscription.clone()),
                }),
            ));
            if seed.rng.gen_bool(0.03) {
                // R-COM-3: a partial or full refund a few days later.
                let refunded = if seed.rng.gen_bool(0.5) {
                    plan * seats
                } else {
                    plan * seats / 2
                };
                let refund_id = format!("re_{}", &id[3..]);
                events.push((
                    at.plus_seconds(seed.rng.gen_range(DAY..6 * DAY)),
                    Event::Refund(NewRefund {
                        event: EventKey::new(EventOrigin::Demo, format!("refund:{refund_id}")),
                        refund_id,
                        payment_id: id.clone(),
                        amount: refunded,
                    }),
                ));
            } else if seed.rng.gen_bool(0.004) {
                let dispute = format!("dp_{}", &id[3..]);
                events.push((
                    at.plus_seconds(seed.rng.gen_range(5 * DAY..20 * DAY)),
                    Event::Chargeback(NewChargeback {
                        event: EventKey::new(EventOrigin::Demo, format!("chargeback:{dispute}")),
                        chargeback_id: dispute,
                        payment_id: id.clone(),
                        amount: plan * seats,
                        change: ChargebackChange::Withdrawn,
                    }),
                ));
            }
            // Some customers leave each month.
            if seed.rng.gen_bool(0.07) {
                events.push((
                    at.plus_seconds(seed.rng.gen_range(DAY..20 * DAY)),
                    Event::Cancel(NewCancellation {
                        event: EventKey::new(EventOrigin::Demo, format!("cancel:{subscription}")),
                        subscription_id: subscription.clone(),
                        customer_id: Some(customer.clone()),
                    }),
                ));
                break;
            }
            at = at.plus_days(30);
        }
    }
    events.retain(|(at, _)| *at < seed.now);
    events.sort_by_key(|(at, _)| *at);
    let days = events.first().map_or(0, |(first, _)| {
        (seed.now.millis() - first.millis()) / (DAY * 1000) + 1
    });
    let step = seed.step("payments", days.max(1) as u64);
    let total = events.len();
    let mut events = events.into_iter().peekable();
    let mut day_start = events.peek().map_or(seed.now, |(at, _)| *at);
    // A day at a time: that day's events go to the billing writer together (one
    // commit), then the hold-release job runs at the day's end.
    while events.peek().is_some() {
        let day_end = day_start.plus_seconds(DAY);
        seed.at(day_end.min(seed.now));
        let mut today = tokio::task::JoinSet::new();
        while let Some((_, event)) = events.next_if(|(at, _)| *at < day_end) {
            let app = seed.app.clone();
            today.spawn(async move {
                match event {
                    Event::Payment(p) => app.book_payment(p).await,
                    Event::Refund(r) => app.book_refund(r).await,
                    Event::Chargeback(c) => app.book_chargeback(c).await,
                    Event::Cancel(c) => app.book_cancellation(c).await,
                }
            });
        }
        while let Some(booked) = today.join_next().await {
            booked.context("a booking task failed")??;
        }
        seed.app.release_due_holds().await?;
        step.tick("");
        day_start = day_end;
    }
    seed.at(seed.now);
    seed.app.release_due_holds().await?;
    step.done(&format!("{total} billing events"));
    withdrawals(seed).await
}

/// R-PAY-1..4: the partners with the most available commission gave their payout
/// details and withdrew it; an admin approved and paid most of them (the manual
/// path, since the demo has no PayPal), and one request waits in the queue.
async fn withdrawals(seed: &mut Seed) -> anyhow::Result<()> {
    use partnerd_app::payouts::ManualOutcome;
    use partnerd_app::withdrawals::PayoutProfileInput;

    let admin = seed.admin_actor()?;
    let mut ranked = Vec::new();
    for partner in seed.partners.iter().filter(|p| !p.is_removed()) {
        let available = seed
            .app
            .balances(partner.id)
            .await?
            .iter()
            .find(|b| b.currency.code() == "USD")
            .map_or(0, |b| b.balances.available);
        ranked.push((available, partner.clone()));
    }
    ranked.sort_by_key(|(available, _)| std::cmp::Reverse(*available));
    let chosen: Vec<Partner> = ranked
        .into_iter()
        .filter(|(available, _)| *available >= 5_000)
        .take(8)
        .map(|(_, p)| p)
        .collect();
    let step = seed.step("withdrawals", chosen.len() as u64);
    let (mut paid, mut waiting) = (0, 0);
    for (n, partner) in chosen.iter().enumerate() {
        let input = PayoutProfileInput {
            paypal_email: format!(
                "payouts+{}@demo.partnerd.test",
                partner.public_id.to_lowercase()
            ),
            legal_name: partner.name.clone(),
            country: ["DE", "US", "PL", "GB", "FR"][n % 5].to_owned(),
            tax_id: format!("TAX-{:06}", 100_000 + n * 7_919),
        };
        seed.app.save_payout_profile(partner, &input, "").await?;
        let withdrawal = seed.app.request_withdrawal(partner, "USD").await?;
        step.tick(partner.name.clone());
        if n == 0 {
            // One request left for the admin's queue.
            waiting += 1;
            continue;
        }
        let id = withdrawal.withdrawal.id.clone();
        seed.app.approve_withdrawal(&admin, &id).await?;
        seed.app
            .mark_withdrawal(&admin, &id, ManualOutcome::Paid)
            .await?;
        paid += 1;
    }
    step.done(&format!("{paid} paid, {waiting} waiting for approval"));
    Ok(())
}
