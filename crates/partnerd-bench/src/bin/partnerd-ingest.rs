//! `partnerd-ingest`: batched click ingest and report latency over a large, seeded
//! database, through the store and app APIs partnerd itself uses.
//!
//! 1. Seeds a fresh database (SQLite by default) with `--partners` partners and
//!    `--clicks` clicks spread over the last `--days` days, in time order, through
//!    `Store::record_clicks` in batches of `--seed-batch`: one *heavy* partner holds
//!    `--heavy-partner-clicks`, one *light* partner `--light-partner-clicks`, the rest
//!    is spread evenly over the other partners. Clicks use the default link and a few
//!    `utm_term`s per partner, 6 % are bots, visitors come back (also on the same
//!    day, which the unique-visitor counting must see through).
//! 2. Measures batched ingest into that table: `--measure-batches` calls of
//!    `record_clicks` with `--batch` fresh clicks each (now, random partners), each
//!    call timed alone; clicks/s is the clicks over the summed call times.
//! 3. Measures the report (`App::report`, what `GET /api/v1/partners/{id}/report` and
//!    the partner's page call) for the heavy and the light partner, over the last 365
//!    days and over the default 30 days, cases interleaved run by run.
//! 4. Prints peak RSS and the database's size.
//!
//! Standard output has one `key=value` per line (see `bench/ingest.sh`); progress and
//! a readable summary go to standard error.
//!
//! ```text
//! partnerd-ingest --clicks 1000000 --heavy-partner-clicks 100000 --light-partner-clicks 10000
//! ```

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::ToSpan;
use partnerd_app::tracking::ClickIds;
use partnerd_app::{App, Clock, Config, SystemClock};
use partnerd_bench::Percentiles;
use partnerd_domain::{Email, PartnerProfile, Timestamp};
use partnerd_store::{NewAudit, NewClick, NewPartner, PartnerQuery, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Seeds a database with millions of clicks, then measures batched click ingest into it and the report's latency."
)]
struct Args {
    /// Where the SQLite database goes (DIR/partnerd.db, which must not exist yet);
    /// a temporary directory, removed at the end, by default.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Another database instead: `sqlite://PATH`, or `postgres://…` naming an empty
    /// database (migrated here).
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    database_url: Option<String>,
    /// Clicks to seed in total.
    #[arg(long, value_name = "N", default_value_t = 10_000_000)]
    clicks: u64,
    /// Partners to create.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    partners: usize,
    /// Clicks of the heavy partner (part of --clicks).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    heavy_partner_clicks: u64,
    /// Clicks of the light partner (part of --clicks).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    light_partner_clicks: u64,
    /// Days the seeded clicks are spread over, ending now.
    #[arg(long, value_name = "N", default_value_t = 365)]
    days: i64,
    /// Clicks per `record_clicks` call while seeding (larger batches seed faster: a
    /// commit rewrites about one index page per partner whatever its size).
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    seed_batch: usize,
    /// Clicks per measured `record_clicks` call (default: the click writer's
    /// largest batch, what it commits under a flood of clicks).
    #[arg(long, value_name = "N", default_value_t = partnerd_app::tracking::MAX_BATCH)]
    batch: usize,
    /// Measured `record_clicks` calls.
    #[arg(long, value_name = "N", default_value_t = 200)]
    measure_batches: usize,
    /// Timed reports per case (heavy/light × 365/30 days).
    #[arg(long, value_name = "N", default_value_t = 50)]
    report_runs: usize,
    /// Untimed reports per case before those.
    #[arg(long, value_name = "N", default_value_t = 5)]
    report_warmups: usize,
    /// Cut the report runs short once they took this many seconds in all: the
    /// warm-ups after one round once a quarter of it is used, the timed runs after at
    /// least 5 (a report slow enough for this misses its goal by far anyway); 0: no
    /// limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    report_time_limit: u64,
    /// Seed of the random generator (the same seed gives the same clicks).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Keep the temporary directory (with the database) and print its path.
    #[arg(long)]
    keep: bool,
    /// Skip the seeding: measure on the database --data-dir or --database-url holds,
    /// seeded by an earlier run (the `bench-heavy` and `bench-light` partners). The
    /// size options are then ignored and the report's click counts not checked.
    #[arg(long)]
    reuse: bool,
    /// Leave the report counters of past hours unsettled (as a server that has not
    /// run its settle_report job yet): to compare the ingest into either layout.
    #[arg(long)]
    skip_settle: bool,
}

/// One `key=value` line on standard output, for scripts.
fn emit(key: &str, value: impl Display) {
    println!("{key}={value}");
}

fn log(message: impl Display) {
    eprintln!("partnerd-ingest: {message}");
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `VmHWM` of this process in KiB (0 when unknown).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A progress bar on standard error; when that is not a terminal (a log file, a
/// pipe) a plain line every tenth instead, for the long steps.
struct Progress {
    bar: ProgressBar,
    what: &'static str,
    total: u64,
    next_line: u64,
    started: Instant,
}

impl Progress {
    /// A bar only, no lines: for the short steps.
    fn quiet(total: u64, what: &'static str) -> Self {
        let mut progress = Self::new(total, what);
        progress.next_line = u64::MAX;
        progress
    }

    fn new(total: u64, what: &'static str) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:10} [{elapsed_precise}] [{bar:36}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.set_message(what);
        Self {
            bar,
            what,
            total,
            next_line: total.div_ceil(10),
            started: Instant::now(),
        }
    }

    fn inc(&mut self, n: u64) {
        self.bar.inc(n);
        let done = self.bar.position();
        if self.bar.is_hidden() && done >= self.next_line && self.total > 0 {
            let seconds = self.started.elapsed().as_secs_f64();
            log(format_args!(
                "{}: {done}/{} ({:.0} %) in {seconds:.0} s, {:.0}/s, load {}",
                self.what,
                self.total,
                done as f64 * 100.0 / self.total as f64,
                done as f64 / seconds.max(1e-9),
                load_average(),
            ));
            self.next_line = done + self.total.div_ceil(10);
        }
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 32 hex digits, the shape of partnerd's keyed network and visitor hashes.
fn hex32(h: u64) -> String {
    format!("{:016x}{:016x}", h, mix(h ^ 0x5DEE_CE66_D1CE_5EED))
}

const TERMS: [&str; 12] = [
    "newsletter",
    "sidebar",
    "footer",
    "review-2025",
    "youtube",
    "comparison",
    "blog-post",
    "podcast",
    "twitter",
    "pricing-page",
    "tutorial",
    "banner-728",
];

const REFERRERS: [&str; 10] = [
    "www.google.com",
    "news.ycombinator.com",
    "www.reddit.com",
    "t.co",
    "www.youtube.com",
    "duckduckgo.com",
    "www.bing.com",
    "medium.com",
    "www.linkedin.com",
    "dev.to",
];

/// The share of clicks from bots.
const BOT_SHARE: f64 = 0.06;
/// The share of browser clicks by the partner's previous visitor of the same day
/// (a second click, another tab): counted as clicks, not as new unique visitors.
const SAME_DAY_RETURN: f64 = 0.25;

/// What the generator knows about one partner.
#[derive(Debug, Clone)]
struct PartnerGen {
    id: i64,
    /// How many different people click this partner's links over the whole period;
    /// each click picks one (so people come back on other days).
    visitors: u64,
    /// The partner's `utm_term`s (indices into `TERMS`).
    terms: [usize; 3],
    /// The last browser visitor and their day.
    last: (i64, u64),
}

/// Makes realistic clicks, deterministically from a seed.
struct ClickGen {
    rng: StdRng,
    secret: u64,
    partners: Vec<PartnerGen>,
    ids: Arc<ClickIds>,
}

impl ClickGen {
    /// `expected[i]`: about how many clicks partner `ids[i]` will get (for the size of
    /// their visitor pool).
    fn new(seed: u64, ids: Arc<ClickIds>, partners: &[i64], expected: &[u64]) -> Self {
        let partners = partners
            .iter()
            .zip(expected)
            .map(|(&id, &clicks)| {
                let t = mix(id as u64) as usize;
                PartnerGen {
                    id,
                    visitors: (clicks / 4).max(1),
                    terms: [t % 12, (t / 12 + 1) % 12, (t / 144 + 5) % 12],
                    last: (i64::MIN, 0),
                }
            })
            .collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            secret: mix(seed ^ 0xC0FF_EE00),
            partners,
            ids,
        }
    }

    fn click(&mut self, partner: usize, at: Timestamp) -> NewClick {
        let rng = &mut self.rng;
        let p = &mut self.partners[partner];
        let day = at.millis().div_euclid(DAY_MS);
        let bot = rng.gen_bool(BOT_SHARE);
        // A person is an address and a browser; the network hash changes daily, as
        // partnerd's keyed daily hash does.
        let (address, agent_kind) = if bot {
            let crawler = rng.gen_range(0..50u64);
            (mix(0xB07 << 40 | crawler), 1000 + crawler % 5)
        } else {
            let who = if p.last.0 == day && rng.gen_bool(SAME_DAY_RETURN) {
                p.last.1
            } else {
                rng.gen_range(0..p.visitors)
            };
            p.last = (day, who);
            (mix((p.id as u64) << 32 | who), mix(who) % 40)
        };
        let network = mix(mix(self.secret ^ day as u64) ^ address);
        let visitor = mix(network ^ mix(agent_kind + 1));
        let utm_term = if rng.gen_bool(0.4) {
            None
        } else {
            Some(TERMS[p.terms[rng.gen_range(0..3)]].to_owned())
        };
        let sub1 = rng
            .gen_bool(0.1)
            .then(|| format!("c{}", rng.gen_range(0..20)));
        let referrer_host = if rng.gen_bool(0.35) {
            None
        } else {
            Some(REFERRERS[rng.gen_range(0..REFERRERS.len())].to_owned())
        };
        NewClick {
            id: self.ids.next(at),
            partner_id: p.id,
            campaign_id: None,
            at,
            utm_term,
            subs: [sub1, None, None, None, None],
            referrer_host,
            agent: if bot { "bot" } else { "browser" },
            network: hex32(network),
            visitor: hex32(visitor),
            own_session: rng.gen_ratio(1, 1000),
        }
    }
}

/// Deals `total` clicks to the heavy partner (index 0), the light one (index 1) and
/// the others (2..), exactly `heavy` and `light` of them, in a random order.
struct Dealer {
    heavy: u64,
    light: u64,
    left: u64,
    others: usize,
}

impl Dealer {
    fn next(&mut self, rng: &mut StdRng) -> usize {
        debug_assert!(self.left > 0);
        let r = rng.gen_range(0..self.left);
        self.left -= 1;
        if r < self.heavy {
            self.heavy -= 1;
            0
        } else if r < self.heavy + self.light {
            self.light -= 1;
            1
        } else {
            2 + rng.gen_range(0..self.others)
        }
    }
}

/// The seeded period: from the start of the UTC day `days - 1` days ago (the first day
/// of a `days`-day report ending today) to a minute ago.
fn seed_period(now: Timestamp, days: i64) -> (i64, i64) {
    let today = now.millis() - now.millis().rem_euclid(DAY_MS);
    (today - (days - 1) * DAY_MS, now.millis() - 60_000)
}

/// The time of click `i` of `n` spread over `[start, end)`: increasing with `i`, and
/// `jitter` (0..1) places it within its slot.
fn click_time(start: i64, end: i64, i: u64, n: u64, jitter: f64) -> i64 {
    let span = (end - start).max(1) as u128;
    let base = start + (u128::from(i) * span / u128::from(n.max(1))) as i64;
    let width = (span / u128::from(n.max(1))) as i64;
    base + (jitter * width as f64) as i64
}

#[derive(Debug)]
struct Setup {
    url: String,
    /// The SQLite file, for its size.
    sqlite_path: Option<PathBuf>,
    /// Removed when dropped, unless --keep.
    _temp: Option<tempfile::TempDir>,
}

fn setup(args: &Args) -> anyhow::Result<Setup> {
    if args.reuse && args.database_url.is_none() && args.data_dir.is_none() {
        bail!("--reuse needs --data-dir or --database-url");
    }
    let (url, temp) = match (&args.database_url, &args.data_dir) {
        (Some(url), _) => (url.clone(), None),
        (None, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            (
                format!("sqlite://{}", dir.join("partnerd.db").display()),
                None,
            )
        }
        (None, None) => {
            let temp = tempfile::Builder::new()
                .prefix("partnerd-ingest.")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let url = format!("sqlite://{}", temp.path().join("partnerd.db").display());
            if args.keep {
                let path = temp.keep();
                log(format_args!("keeping {}", path.display()));
                (url, None)
            } else {
                (url, Some(temp))
            }
        }
    };
    let sqlite_path = url
        .strip_prefix("sqlite://")
        .map(|rest| PathBuf::from(rest.split_once('?').map_or(rest, |(path, _)| path)));
    if let Some(path) = &sqlite_path {
        if args.reuse && !path.exists() {
            bail!("--reuse: there is no {} to reuse", path.display());
        }
        if !args.reuse && path.exists() {
            bail!(
                "{} exists already: the benchmark seeds a fresh database (--reuse to measure on it)",
                path.display()
            );
        }
    }
    Ok(Setup {
        url,
        sqlite_path,
        _temp: temp,
    })
}

async fn create_partners(
    store: &dyn Store,
    count: usize,
    now: Timestamp,
) -> anyhow::Result<Vec<i64>> {
    let mut progress = Progress::quiet(count as u64, "partners");
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let tag = match i {
            0 => "heavy".to_owned(),
            1 => "light".to_owned(),
            _ => format!("p{i:05}"),
        };
        let partner = NewPartner {
            public_id: format!("bench-{tag}"),
            email: Email::parse(&format!("{tag}@partner.bench")).context("an email")?,
            password_hash: None,
            profile: PartnerProfile {
                name: format!("Partner {tag}"),
                company: Some(format!("{tag} Media Ltd")),
                website: Some(format!("https://{tag}.example.com/")),
            },
            terms_version: 1,
            created_at: now,
            audit: NewAudit::new(now, "cli", "partner.create", "partner:new"),
        };
        let created = store
            .create_partner(partner, &|_, _| Vec::new())
            .await
            .with_context(|| format!("cannot create partner {tag}"))?;
        ids.push(created.id);
        progress.inc(1);
    }
    progress.finish();
    Ok(ids)
}

/// Seeds `args.clicks` clicks in time order; returns how many each partner got.
async fn seed(
    store: &dyn Store,
    args: &Args,
    partner_ids: &[i64],
    ids: Arc<ClickIds>,
    now: Timestamp,
) -> anyhow::Result<(Vec<u64>, Duration)> {
    let n = args.clicks;
    let others = partner_ids.len() - 2;
    let spread = n - args.heavy_partner_clicks - args.light_partner_clicks;
    let mut expected = vec![args.heavy_partner_clicks, args.light_partner_clicks];
    expected.resize(partner_ids.len(), spread / others.max(1) as u64);
    let mut generator = ClickGen::new(args.seed, ids, partner_ids, &expected);
    let mut dealer = Dealer {
        heavy: args.heavy_partner_clicks,
        light: args.light_partner_clicks,
        left: n,
        others,
    };
    let (start, end) = seed_period(now, args.days);
    let batch = args.seed_batch.max(1);
    let partners = partner_ids.len();

    // The clicks are made on a thread of their own while the store writes the
    // previous batch.
    let (send, mut receive) = mpsc::channel::<Vec<NewClick>>(4);
    let maker = std::thread::spawn(move || {
        let mut counts = vec![0u64; partners];
        let mut i = 0u64;
        while i < n {
            let len = (n - i).min(batch as u64);
            let mut clicks = Vec::with_capacity(len as usize);
            for _ in 0..len {
                let who = dealer.next(&mut generator.rng);
                counts[who] += 1;
                let jitter = generator.rng.r#gen::<f64>();
                let at = Timestamp::from_millis(click_time(start, end, i, n, jitter));
                clicks.push(generator.click(who, at));
                i += 1;
            }
            if send.blocking_send(clicks).is_err() {
                break; // the writer gave up
            }
        }
        counts
    });

    let mut progress = Progress::new(n, "seeding");
    let started = Instant::now();
    while let Some(clicks) = receive.recv().await {
        store
            .record_clicks(&clicks)
            .await
            .context("record_clicks failed while seeding")?;
        progress.inc(clicks.len() as u64);
    }
    let took = started.elapsed();
    progress.finish();
    let counts = maker
        .join()
        .map_err(|_| anyhow::anyhow!("the click generator panicked"))?;
    Ok((counts, took))
}

/// Times `batches` calls of `record_clicks` with `size` fresh clicks each; returns
/// each call's time and how many clicks went to each partner.
async fn measure_ingest(
    store: &dyn Store,
    args: &Args,
    partner_ids: &[i64],
    ids: Arc<ClickIds>,
) -> anyhow::Result<(Vec<Duration>, Vec<u64>)> {
    // All on one day: apart from the same-day returns, every browser click is a new
    // visitor of the day (a pool that never runs dry, so that a second run on the same
    // database and day measures the same work).
    let expected = vec![1 << 40; partner_ids.len()];
    let mut generator = ClickGen::new(args.seed ^ 0x1A6E57, ids, partner_ids, &expected);
    let mut counts = vec![0u64; partner_ids.len()];
    let mut times = Vec::with_capacity(args.measure_batches);
    let mut progress = Progress::quiet(args.measure_batches as u64, "ingest");
    for _ in 0..args.measure_batches {
        let now = SystemClock.now();
        let clicks: Vec<NewClick> = (0..args.batch)
            .map(|_| {
                let who = generator.rng.gen_range(0..partner_ids.len());
                counts[who] += 1;
                generator.click(who, now)
            })
            .collect();
        let started = Instant::now();
        store
            .record_clicks(&clicks)
            .await
            .context("record_clicks failed while measuring")?;
        times.push(started.elapsed());
        progress.inc(1);
    }
    progress.finish();
    Ok((times, counts))
}

fn percentiles(times: &[Duration]) -> Percentiles {
    let mut micros: Vec<u32> = times
        .iter()
        .map(|t| u32::try_from(t.as_micros()).unwrap_or(u32::MAX))
        .collect();
    Percentiles::from_micros(&mut micros).expect("at least one sample")
}

/// One report to time.
struct Case {
    name: &'static str,
    partner_id: i64,
    /// `None`: the default range (30 days).
    from: Option<String>,
    expected_clicks: Option<u64>,
    times: Vec<Duration>,
    clicks: i64,
    rows: usize,
    days: usize,
}

/// Creates the partners and seeds the clicks into an empty database; returns the
/// partners (heavy, light, others) and how many clicks each got.
async fn seed_fresh(
    store: &dyn Store,
    args: &Args,
    click_ids: Arc<ClickIds>,
) -> anyhow::Result<(Vec<i64>, Vec<u64>)> {
    let existing = store
        .list_partners(&PartnerQuery {
            include_removed: true,
            limit: 1,
            ..PartnerQuery::default()
        })
        .await?;
    ensure!(
        existing.total == 0,
        "the database already holds {} partners: the benchmark seeds a fresh one",
        existing.total
    );
    let now = SystemClock.now();
    let started = Instant::now();
    let partner_ids = create_partners(store, args.partners, now).await?;
    log(format_args!(
        "created {} partners in {:.1} s",
        partner_ids.len(),
        started.elapsed().as_secs_f64()
    ));
    let (seeded, seed_time) = seed(store, args, &partner_ids, click_ids, now).await?;
    let seed_rate = args.clicks as f64 / seed_time.as_secs_f64().max(1e-9);
    log(format_args!(
        "seeded {} clicks in {:.1} s: {seed_rate:.0} clicks/s (batches of {}); load average {}",
        args.clicks,
        seed_time.as_secs_f64(),
        args.seed_batch,
        load_average()
    ));
    emit("seed_clicks", args.clicks);
    emit("seed_partners", args.partners);
    emit("seed_heavy_clicks", seeded[0]);
    emit("seed_light_clicks", seeded[1]);
    emit("seed_batch", args.seed_batch);
    emit(
        "seed_seconds",
        format_args!("{:.1}", seed_time.as_secs_f64()),
    );
    emit("seed_clicks_per_s", format_args!("{seed_rate:.0}"));
    emit("load_after_seed", load_average());
    Ok((partner_ids, seeded))
}

/// The partners of a database an earlier run seeded: heavy, light, then the others.
async fn seeded_partners(store: &dyn Store) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::new();
    for tag in ["heavy", "light"] {
        let partner = store
            .find_partner_by_public_id(&format!("bench-{tag}"))
            .await?
            .with_context(|| format!("--reuse: no partner bench-{tag}: not a seeded database"))?;
        ids.push(partner.id);
    }
    let (heavy, light) = (ids[0], ids[1]);
    let mut offset = 0;
    loop {
        let page = store
            .list_partners(&PartnerQuery {
                include_removed: true,
                limit: 500,
                offset,
                ..PartnerQuery::default()
            })
            .await?;
        if page.items.is_empty() {
            break;
        }
        offset += page.items.len() as i64;
        ids.extend(
            page.items
                .iter()
                .map(|p| p.id)
                .filter(|id| *id != heavy && *id != light),
        );
    }
    Ok(ids)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.partners >= 2,
        "--partners must be at least 2 (heavy and light)"
    );
    ensure!(
        args.heavy_partner_clicks + args.light_partner_clicks <= args.clicks,
        "--heavy-partner-clicks + --light-partner-clicks must not exceed --clicks"
    );
    ensure!(
        args.partners >= 3 || args.heavy_partner_clicks + args.light_partner_clicks == args.clicks,
        "the clicks beyond the heavy and light partners' need a third partner (--partners 3 or more)"
    );
    ensure!((1..=400).contains(&args.days), "--days must be 1..=400");
    ensure!(
        args.batch > 0 && args.measure_batches > 0,
        "--batch and --measure-batches must be positive"
    );
    ensure!(args.report_runs > 0, "--report-runs must be positive");

    let load_start = load_average();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    emit("load_start", &load_start);
    emit("cpus", cpus);
    let setup = setup(&args)?;
    if args.reuse {
        log(format_args!(
            "database {} (reused); load average {load_start} on {cpus} CPUs",
            setup.url
        ));
    } else {
        log(format_args!(
            "database {}; {} clicks, {} partners (heavy {}, light {}), {} days; load average {load_start} on {cpus} CPUs",
            setup.url,
            args.clicks,
            args.partners,
            args.heavy_partner_clicks,
            args.light_partner_clicks,
            args.days
        ));
    }

    let store = partnerd_store::connect(&setup.url)
        .await
        .with_context(|| format!("cannot open {}", setup.url))?;
    store.migrate().await.context("migrations failed")?;
    let backend = format!("{:?}", store.backend()).to_lowercase();
    emit("backend", &backend);
    let click_ids = Arc::new(ClickIds::new());
    let (partner_ids, seeded) = if args.reuse {
        let partner_ids = seeded_partners(store.as_ref()).await?;
        log(format_args!(
            "reusing the seeded database: {} partners",
            partner_ids.len()
        ));
        emit("seed_reused", 1);
        emit("seed_partners", partner_ids.len());
        (partner_ids, None)
    } else {
        let (partner_ids, seeded) = seed_fresh(store.as_ref(), &args, click_ids.clone()).await?;
        (partner_ids, Some(seeded))
    };

    // A running server settles the report counters of past hours every few minutes
    // (the settle_report job); a database seeded in one go has a year unsettled.
    let app = App::new(store.clone(), Arc::new(SystemClock), Config::default())
        .await
        .context("cannot build the app")?;
    let started = Instant::now();
    let settled = if args.skip_settle {
        0
    } else {
        app.settle_report(Duration::MAX)
            .await
            .context("settling the report counters failed")?
    };
    log(format_args!(
        "settled {settled} report counter rows of past hours in {:.1} s (the settle_report job's work)",
        started.elapsed().as_secs_f64()
    ));
    emit(
        "settle_seconds",
        format_args!("{:.1}", started.elapsed().as_secs_f64()),
    );

    // Seeding leaves gigabytes of dirty pages for the kernel to write back; measured
    // while that runs, every commit's fsync waits behind it. Flush them first.
    if let Some(path) = &setup.sqlite_path {
        let started = Instant::now();
        for file in [
            path.clone(),
            PathBuf::from(format!("{}-wal", path.display())),
        ] {
            if file.exists() {
                std::fs::File::open(&file)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("cannot flush {}", file.display()))?;
            }
        }
        log(format_args!(
            "flushed the database to disk in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        emit(
            "flush_seconds",
            format_args!("{:.1}", started.elapsed().as_secs_f64()),
        );
    }

    // 2. Batched ingest into the full table.
    log(format_args!(
        "ingest: {} record_clicks calls of {} clicks (now, random partners)",
        args.measure_batches, args.batch
    ));
    let (times, ingested) =
        measure_ingest(store.as_ref(), &args, &partner_ids, click_ids.clone()).await?;
    let total: Duration = times.iter().sum();
    let clicks = (args.batch * args.measure_batches) as f64;
    let rate = clicks / total.as_secs_f64().max(1e-9);
    let p = percentiles(&times);
    log(format_args!(
        "ingest: {clicks:.0} clicks in {:.2} s of record_clicks: {rate:.0} clicks/s; batch p50 {} ms, p95 {} ms, p99 {} ms, max {} ms; load average {}",
        total.as_secs_f64(),
        ms(p.p50),
        ms(p.p95),
        ms(p.p99),
        ms(p.max),
        load_average()
    ));
    emit("ingest_batch", args.batch);
    emit("ingest_batches", args.measure_batches);
    emit("ingest_seconds", format_args!("{:.3}", total.as_secs_f64()));
    emit("ingest_clicks_per_s", format_args!("{rate:.0}"));
    emit("ingest_batch_p50_ms", ms(p.p50));
    emit("ingest_batch_p95_ms", ms(p.p95));
    emit("ingest_batch_p99_ms", ms(p.p99));
    emit("ingest_batch_max_ms", ms(p.max));
    // The two halves apart: right after seeding, the first few hundred thousand
    // clicks are slower (the indexes' insertion points settle), so a trend shows here.
    let half = times.len() / 2;
    if half > 0 {
        let per_batch = args.batch as f64;
        let rate_of = |part: &[Duration]| {
            part.len() as f64 * per_batch / part.iter().sum::<Duration>().as_secs_f64().max(1e-9)
        };
        let (first, second) = (rate_of(&times[..half]), rate_of(&times[half..]));
        log(format_args!(
            "ingest: first half {first:.0} clicks/s, second half {second:.0} clicks/s"
        ));
        emit("ingest_first_half_clicks_per_s", format_args!("{first:.0}"));
        emit(
            "ingest_second_half_clicks_per_s",
            format_args!("{second:.0}"),
        );
    }
    emit("load_after_ingest", load_average());

    // 3. The report, through the app.
    let today: jiff::civil::Date = app.today("UTC").parse().context("today's date")?;
    let year_from = today
        .checked_sub((args.days - 1).days())
        .context("the report's first day")?
        .to_string();
    let mut cases = vec![
        Case {
            name: "heavy_365d",
            partner_id: partner_ids[0],
            from: Some(year_from.clone()),
            expected_clicks: seeded.as_ref().map(|s| s[0] + ingested[0]),
            times: Vec::new(),
            clicks: 0,
            rows: 0,
            days: 0,
        },
        Case {
            name: "light_365d",
            partner_id: partner_ids[1],
            from: Some(year_from),
            expected_clicks: seeded.as_ref().map(|s| s[1] + ingested[1]),
            times: Vec::new(),
            clicks: 0,
            rows: 0,
            days: 0,
        },
        Case {
            name: "heavy_30d",
            partner_id: partner_ids[0],
            from: None,
            expected_clicks: None,
            times: Vec::new(),
            clicks: 0,
            rows: 0,
            days: 0,
        },
        Case {
            name: "light_30d",
            partner_id: partner_ids[1],
            from: None,
            expected_clicks: None,
            times: Vec::new(),
            clicks: 0,
            rows: 0,
            days: 0,
        },
    ];
    if args.days != 365 {
        for case in &mut cases[..2] {
            case.name = if case.name.starts_with("heavy") {
                "heavy_full"
            } else {
                "light_full"
            };
        }
    }
    log(format_args!(
        "report: App::report(partner, \"UTC\", …) for the heavy and the light partner, last {} days and default 30 days; {} warm-ups + {} timed runs each, interleaved",
        args.days, args.report_warmups, args.report_runs
    ));
    let mut progress = Progress::new(
        ((args.report_warmups + args.report_runs) * cases.len()) as u64,
        "reports",
    );
    // Rounds of one report per case, warm-ups first. A report slow enough to blow the
    // time limit misses its goal by far: then the warm-ups stop after one round once a
    // quarter of the limit is used, and the timed runs once all of it is, after at
    // least 5 rounds.
    let reports_started = Instant::now();
    let limit = Duration::from_secs(args.report_time_limit);
    let over = |fraction: u32| !limit.is_zero() && reports_started.elapsed() > limit / fraction;
    let min_runs = args.report_runs.min(5);
    let (mut warmups, mut runs) = (0, 0);
    while runs < args.report_runs {
        let warmup = warmups < args.report_warmups && !(warmups >= 1 && over(4));
        if !warmup && runs >= min_runs && over(1) {
            log(format_args!(
                "WARNING: the reports took over {} s: stopping after {runs} timed runs per case (--report-time-limit)",
                args.report_time_limit,
            ));
            break;
        }
        for case in &mut cases {
            let started = Instant::now();
            let report = app
                .report(Some(case.partner_id), "UTC", case.from.as_deref(), None)
                .await
                .map_err(|e| anyhow::anyhow!("the report failed: {e:?}"))?;
            let took = started.elapsed();
            if !warmup {
                case.times.push(took);
            }
            case.clicks = report.totals.clicks + report.totals.bot_clicks;
            case.rows = report.rows.len();
            case.days = report.days.len();
            progress.inc(1);
        }
        if warmup {
            warmups += 1;
        } else {
            runs += 1;
        }
    }
    emit("report_warmups", warmups);
    progress.finish();
    for case in &cases {
        let p = percentiles(&case.times);
        log(format_args!(
            "report {:<10} {} days, {} rows, {} clicks: p50 {} ms, p95 {} ms, max {} ms",
            case.name,
            case.days,
            case.rows,
            case.clicks,
            ms(p.p50),
            ms(p.p95),
            ms(p.max)
        ));
        if let Some(expected) = case.expected_clicks
            && expected != case.clicks as u64
        {
            log(format_args!(
                "WARNING: the {} report counts {} clicks, {expected} were recorded for the partner",
                case.name, case.clicks
            ));
            emit(&format!("report_{}_mismatch", case.name), expected);
        }
        emit(&format!("report_{}_p50_ms", case.name), ms(p.p50));
        emit(&format!("report_{}_p95_ms", case.name), ms(p.p95));
        emit(&format!("report_{}_max_ms", case.name), ms(p.max));
        emit(&format!("report_{}_clicks", case.name), case.clicks);
        emit(&format!("report_{}_rows", case.name), case.rows);
    }
    let p95_of = |i: usize| percentiles(&cases[i].times).p95;
    let ratio =
        |heavy: Duration, light: Duration| heavy.as_secs_f64() / light.as_secs_f64().max(1e-9);
    let long_ratio = ratio(p95_of(0), p95_of(1));
    let short_ratio = ratio(p95_of(2), p95_of(3));
    log(format_args!(
        "report heavy/light p95: {long_ratio:.2}x over {} days, {short_ratio:.2}x over 30 days",
        args.days
    ));
    emit("report_days", args.days);
    emit("report_runs", cases[0].times.len());
    // The headline figures: the longest report.
    emit("report_heavy_p95_ms", ms(p95_of(0)));
    emit("report_light_p95_ms", ms(p95_of(1)));
    emit("report_ratio_p95", format_args!("{long_ratio:.2}"));
    emit("report_ratio_30d_p95", format_args!("{short_ratio:.2}"));

    // 4. Memory and size.
    let rss = peak_rss_kib();
    emit("peak_rss_kib", rss);
    if let Some(path) = &setup.sqlite_path {
        let db = file_size(path);
        let wal = file_size(&PathBuf::from(format!("{}-wal", path.display())));
        emit("db_bytes", db);
        emit("wal_bytes", wal);
        log(format_args!(
            "peak RSS {:.1} MiB; database {:.2} GiB (+ WAL {:.1} MiB) at {}",
            rss as f64 / 1024.0,
            db as f64 / (1u64 << 30) as f64,
            wal as f64 / (1u64 << 20) as f64,
            path.display()
        ));
    } else {
        log(format_args!("peak RSS {:.1} MiB", rss as f64 / 1024.0));
    }
    emit("load_end", load_average());
    drop(app);
    drop(store);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_times_increase_and_stay_in_the_period() {
        let (start, end) = seed_period(Timestamp::from_millis(1_800_000_123_456), 365);
        assert_eq!(start.rem_euclid(DAY_MS), 0);
        let n = 1000;
        let mut last = i64::MIN;
        for i in 0..n {
            for jitter in [0.0, 0.999_999] {
                let at = click_time(start, end, i, n, jitter);
                assert!(at >= start && at < end, "{at}");
                assert!(at > last || jitter > 0.0, "{i}");
                last = last.max(at);
            }
        }
    }

    #[test]
    fn the_dealer_deals_exact_counts() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut dealer = Dealer {
            heavy: 100,
            light: 10,
            left: 1000,
            others: 3,
        };
        let mut counts = [0; 5];
        for _ in 0..1000 {
            counts[dealer.next(&mut rng)] += 1;
        }
        assert_eq!(counts[0], 100);
        assert_eq!(counts[1], 10);
        assert_eq!(counts[2..].iter().sum::<u32>(), 890);
    }

    #[test]
    fn clicks_look_like_the_redirects() {
        let ids = Arc::new(ClickIds::new());
        let mut generator = ClickGen::new(1, ids, &[11, 12], &[1000, 10]);
        let at = Timestamp::from_millis(1_800_000_000_000);
        let clicks: Vec<NewClick> = (0..2000).map(|i| generator.click(i % 2, at)).collect();
        assert!(clicks.windows(2).all(|w| w[0].id < w[1].id));
        assert!(
            clicks
                .iter()
                .all(|c| c.network.len() == 32 && c.visitor.len() == 32)
        );
        let bots = clicks.iter().filter(|c| c.agent == "bot").count();
        assert!((60..=200).contains(&bots), "{bots} bots");
        let visitors: std::collections::HashSet<_> = clicks
            .iter()
            .filter(|c| c.agent == "browser")
            .map(|c| &c.visitor)
            .collect();
        assert!(
            visitors.len() < 1900,
            "visitors come back: {}",
            visitors.len()
        );
    }
}
