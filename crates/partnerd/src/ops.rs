//! The operator's commands: `migrate`, `admin create`, `api-key create`,
//! `backup` and `restore`, plus opening the database for every command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use partnerd_app::config::Secret;
use partnerd_app::{App, AppError, Config, SystemClock};
use partnerd_store::{Backend, PartnerQuery, SqliteStore, Store, migration_versions};

use crate::InvalidInput;
use crate::cli::DbArgs;

const PG_BACKUP_HINT: &str = "backup and restore work on SQLite only; for PostgreSQL use its own tools: \
    `pg_dump --format=custom --file=partnerd.dump \"$PARTNERD_DATABASE_URL\"` to back up and \
    `pg_restore --clean --dbname=\"$PARTNERD_DATABASE_URL\" partnerd.dump` to restore";

/// The configuration with the command's `--database-url` / `--data-dir` on top.
pub fn with_db(mut config: Config, db: &DbArgs) -> Config {
    if let Some(url) = &db.database_url {
        config.database_url = Some(Secret::new(url.clone()));
    }
    if let Some(dir) = &db.data_dir {
        config.data_dir = dir.clone();
    }
    if config
        .database_url
        .as_ref()
        .is_some_and(|url| url.expose().trim().is_empty())
    {
        config.database_url = None;
    }
    config
}

/// The URL with any password masked, for messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// The file a `sqlite:` URL names, if it names one.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Creates the data directory (and a SQLite file's directory), then connects.
/// Does not migrate.
pub async fn connect(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let url = config.database_url();
    if let Some(parent) = sqlite_path(&url)
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the directory {}", parent.display()))?;
    }
    partnerd_store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database {}", redacted(&url)))
}

/// Connects and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = connect(config).await?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

async fn open_app(config: Config) -> anyhow::Result<App> {
    let store = open_store(&config).await?;
    let app = App::new(store, Arc::new(SystemClock), config)
        .await
        .context("starting the application")?;
    app.ensure_defaults()
        .await
        .context("seeding the defaults")?;
    Ok(app)
}

/// Field errors become [`InvalidInput`] (exit code 2); the rest stay errors.
fn app_error(err: AppError) -> anyhow::Error {
    match err {
        AppError::Invalid(fields) => InvalidInput(fields).into(),
        other => anyhow::Error::new(other),
    }
}

pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let url = config.database_url();
    let store = connect(&config).await?;
    let before = store.applied_migrations().await.unwrap_or_default();
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    let after = store.applied_migrations().await?;
    let new: Vec<String> = after
        .iter()
        .filter(|v| !before.contains(v))
        .map(i64::to_string)
        .collect();
    let all: Vec<String> = after.iter().map(i64::to_string).collect();
    println!("Database: {}", redacted(&url));
    if new.is_empty() {
        println!("Already up to date.");
    } else {
        println!("Applied now: {}", new.join(", "));
    }
    println!("Schema versions: {}", all.join(", "));
    Ok(())
}

pub async fn admin_create(
    config: Config,
    email: &str,
    role: &str,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let password = admin_password()?;
    let name = name.map(str::to_owned).unwrap_or_else(|| {
        email
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    let app = open_app(config).await?;
    let staff = app
        .create_staff("cli", email, &name, role, Some(&password))
        .await
        .map_err(app_error)?;
    let role_name = if staff.role == "admin" {
        "admin"
    } else {
        "affiliate manager"
    };
    println!(
        "Created {role_name} {} <{}> (staff id {}).",
        staff.name, staff.email, staff.id
    );
    println!(
        "They can sign in at {}/admin/login",
        app.config.public_url()
    );
    Ok(())
}

/// `PARTNERD_ADMIN_PASSWORD`, or asked twice on the terminal without echo.
fn admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("PARTNERD_ADMIN_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password: set PARTNERD_ADMIN_PASSWORD, or run the command in a terminal to be asked for one"
        );
    }
    let first = rpassword::prompt_password("Password (at least 10 characters): ")
        .context("reading the password")?;
    let second =
        rpassword::prompt_password("Repeat the password: ").context("reading the password")?;
    if first != second {
        bail!("the two passwords differ; nothing was created");
    }
    Ok(first)
}

pub async fn api_key_create(config: Config, name: &str) -> anyhow::Result<()> {
    let app = open_app(config).await?;
    let key = app.create_api_key("cli", name).await.map_err(app_error)?;
    eprintln!(
        "Created API key {:?}. It is shown once, below: store it now.\n\
         Send it as `Authorization: Bearer KEY` to {}/api/v1/; a running server accepts it at once.",
        name.trim(),
        app.config.public_url()
    );
    println!("{key}");
    Ok(())
}

/// `partnerd ledger verify`: I1–I8 on the live database. Breaches go to
/// standard output, one a line, and make the exit code non-zero.
pub async fn ledger_verify(config: Config) -> anyhow::Result<()> {
    let app = open_app(config).await?;
    let (transfers, breaches) = app.verify_ledger().await.map_err(app_error)?;
    if breaches.is_empty() {
        println!("Ledger: {transfers} transfers checked; invariants I1-I8 hold.");
        return Ok(());
    }
    for breach in &breaches {
        println!("{breach}");
    }
    bail!(
        "{} breach(es) of the ledger's invariants in {transfers} transfers",
        breaches.len()
    )
}

/// The SQLite file of the configured database, or the reason there is none.
fn sqlite_file(config: &Config) -> anyhow::Result<PathBuf> {
    let url = config.database_url();
    if is_postgres(&url) {
        bail!("{PG_BACKUP_HINT}");
    }
    sqlite_path(&url).with_context(|| format!("{} does not name a SQLite file", redacted(&url)))
}

pub async fn backup(config: Config, to: &Path) -> anyhow::Result<()> {
    let db_file = sqlite_file(&config)?;
    if !db_file.is_file() {
        bail!(
            "there is no database at {}: nothing to back up (check --data-dir or --database-url)",
            db_file.display()
        );
    }
    if to.exists() {
        bail!(
            "{} already exists: a backup never overwrites a file, choose a new name",
            to.display()
        );
    }
    let to = std::path::absolute(to).with_context(|| format!("bad path {}", to.display()))?;
    if let Some(parent) = to.parent().filter(|p| !p.is_dir()) {
        bail!("the directory {} does not exist", parent.display());
    }
    let url = config.database_url();
    let store = SqliteStore::connect(&url)
        .await
        .with_context(|| format!("cannot open the database {}", redacted(&url)))?;
    let copied = store
        .backup_to(&to)
        .await
        .with_context(|| format!("cannot back up to {}", to.display()));
    store.close().await;
    copied?;

    let copy = SqliteStore::connect(&format!("sqlite://{}", to.display()))
        .await
        .with_context(|| format!("the backup {} does not open", to.display()))?;
    let checked = async {
        copy.integrity_check()
            .await
            .context("the backup fails SQLite's integrity check")?;
        copy.applied_migrations()
            .await
            .context("the backup has no schema versions")
    }
    .await;
    copy.close().await;
    let versions = checked?;
    let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
    println!("Backed up {} to {}", db_file.display(), to.display());
    println!(
        "Size: {}, schema version {}, integrity check ok.",
        human_size(size),
        last_version(&versions)
    );
    println!("Restore it with: partnerd restore --from {}", to.display());
    Ok(())
}

pub async fn restore(config: Config, from: &Path) -> anyhow::Result<()> {
    let target = sqlite_file(&config)?;
    if !from.is_file() {
        bail!("{} is not a file", from.display());
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if target.exists() && std::fs::canonicalize(from)? == std::fs::canonicalize(&target)? {
        bail!(
            "{} is the live database itself, not a backup",
            from.display()
        );
    }
    eprintln!(
        "Stop `partnerd serve` before restoring: a running server keeps writing to the database it has open."
    );

    let stamp = unix_seconds();
    let file_name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("partnerd.db");
    // The backup is checked on a copy beside the target, so the operator's file is
    // never modified and the final move is a rename on one file system.
    let staging = target.with_file_name(format!("{file_name}.restoring-{stamp}"));
    std::fs::copy(from, &staging)
        .with_context(|| format!("cannot copy {} to {}", from.display(), staging.display()))?;
    let versions = match check_backup(&staging, from).await {
        Ok(versions) => versions,
        Err(err) => {
            remove_db_files(&staging);
            return Err(err);
        }
    };

    // Never overwrite an earlier kept database (two restores within a second).
    let kept = (1..)
        .map(|n| match n {
            1 => target.with_file_name(format!("{file_name}.before-restore-{stamp}")),
            n => target.with_file_name(format!("{file_name}.before-restore-{stamp}-{n}")),
        })
        .find(|candidate| db_files(candidate).iter().all(|f| !f.exists()))
        .context("no free name to keep the current database under")?;
    let had_database = target.exists();
    if had_database {
        move_db_files(&target, &kept).context("cannot move the current database aside")?;
    }
    if let Err(err) = move_db_files(&staging, &target) {
        if had_database {
            let _ = move_db_files(&kept, &target);
        }
        remove_db_files(&staging);
        return Err(
            err.context("cannot move the backup into place; the current database is unchanged")
        );
    }

    let url = format!("sqlite://{}", target.display());
    let store = SqliteStore::connect(&url)
        .await
        .with_context(|| format!("cannot open the restored {}", target.display()))?;
    let summary = restored_summary(&store).await;
    store.close().await;
    let Summary {
        applied,
        partners,
        active_partners,
        staff,
        audit,
    } = summary?;

    println!("Restored {} into {}", from.display(), target.display());
    if had_database {
        println!("The previous database is kept as {}", kept.display());
    }
    println!(
        "Schema version {} (backup had {}); {partners} partners ({active_partners} active), {staff} staff, {audit} audit entries.",
        last_version(&applied),
        last_version(&versions)
    );
    println!("Start the server again with: partnerd serve");
    Ok(())
}

struct Summary {
    applied: Vec<i64>,
    partners: i64,
    active_partners: i64,
    staff: usize,
    audit: i64,
}

/// Migrates the restored database and counts what it holds.
async fn restored_summary(store: &SqliteStore) -> anyhow::Result<Summary> {
    store
        .migrate()
        .await
        .context("cannot migrate the restored database")?;
    let all = PartnerQuery {
        include_removed: true,
        limit: 1,
        ..PartnerQuery::default()
    };
    let active = PartnerQuery {
        include_removed: false,
        limit: 1,
        ..PartnerQuery::default()
    };
    Ok(Summary {
        applied: store.applied_migrations().await?,
        partners: store.list_partners(&all).await?.total,
        active_partners: store.list_partners(&active).await?.total,
        staff: store.list_staff().await?.len(),
        audit: store.list_audit(1, 0).await?.total,
    })
}

/// Checks a copy of a backup: SQLite's integrity check, and a schema this binary
/// knows (its versions a prefix of ours). Returns the backup's versions.
async fn check_backup(copy: &Path, original: &Path) -> anyhow::Result<Vec<i64>> {
    let store = SqliteStore::connect(&format!("sqlite://{}", copy.display()))
        .await
        .with_context(|| format!("{} does not open as a SQLite database", original.display()))?;
    let checked = async {
        store
            .integrity_check()
            .await
            .with_context(|| format!("{} is not a sound SQLite database", original.display()))?;
        store.applied_migrations().await.with_context(|| {
            format!(
                "{} is not a partnerd backup (it has no schema versions)",
                original.display()
            )
        })
    }
    .await;
    store.close().await;
    let versions = checked?;
    let known = migration_versions(Backend::Sqlite);
    if versions.is_empty() {
        bail!(
            "{} is not a partnerd backup (it has no schema versions)",
            original.display()
        );
    }
    if !known.starts_with(&versions) {
        bail!(
            "{} has schema versions {:?}, which this partnerd does not know (it has {:?}): restore it with the partnerd that made it, or a newer one",
            original.display(),
            versions,
            known
        );
    }
    Ok(versions)
}

/// The database file and its `-wal` / `-shm` companions, as SQLite names them.
fn db_files(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

fn move_db_files(from: &Path, to: &Path) -> anyhow::Result<()> {
    for (src, dst) in db_files(from).iter().zip(db_files(to).iter()) {
        if src.exists() {
            std::fs::rename(src, dst)
                .with_context(|| format!("cannot move {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

fn remove_db_files(path: &Path) {
    for file in db_files(path) {
        let _ = std::fs::remove_file(file);
    }
}

#[allow(clippy::disallowed_methods)] // a file-name stamp, not program time
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn last_version(versions: &[i64]) -> String {
    versions
        .last()
        .map_or_else(|| "none".into(), i64::to_string)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/partnerd"),
            "postgres://app:***@db:5432/partnerd"
        );
        assert_eq!(
            redacted("postgres://app@db/partnerd"),
            "postgres://app@db/partnerd"
        );
        assert_eq!(
            redacted("sqlite://./data/partnerd.db"),
            "sqlite://./data/partnerd.db"
        );
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://./d/partnerd.db"),
            Some(PathBuf::from("./d/partnerd.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/p.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/p.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }

    #[test]
    fn companions_follow_sqlite_naming() {
        let [db, wal, shm] = db_files(Path::new("/d/partnerd.db"));
        assert_eq!(
            (db.to_str(), wal.to_str(), shm.to_str()),
            (
                Some("/d/partnerd.db"),
                Some("/d/partnerd.db-wal"),
                Some("/d/partnerd.db-shm")
            )
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
