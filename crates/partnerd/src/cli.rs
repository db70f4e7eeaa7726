//! The command line: every spelling here is part of the public contract
//! (`CONTRACT.md`, section CLI), so names are only ever added, never renamed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "partnerd",
    version,
    about = "partnerd: a self-hosted partner program (affiliates, resellers, experts) in one binary.",
    long_about = "partnerd: a self-hosted partner program (affiliates, resellers, experts) in one binary.\n\n\
                  Settings come from partnerd.toml (or --config), then PARTNERD_* environment variables, \
                  then the command's own flags. Logs go to standard error; PARTNERD_LOG sets the level \
                  (default info).",
    after_help = "Examples:\n  \
                  partnerd demo                          a filled-in demo program on http://127.0.0.1:8080\n  \
                  partnerd serve --listen 0.0.0.0:8080   the real thing, SQLite in ./partnerd-data\n  \
                  partnerd admin create --email ann@acme.com --role admin\n  \
                  partnerd api-key create --name billing\n  \
                  partnerd backup --to /backups/partnerd-$(date +%F).db"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./partnerd.toml when it exists.
    #[arg(long, global = true, env = "PARTNERD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the database is: shared by every command that opens it.
#[derive(Debug, Clone, Default, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: SQLite in the data directory.
    #[arg(
        long,
        env = "PARTNERD_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Data directory, created if missing; holds partnerd.db when no URL is given. [default: ./partnerd-data]
    #[arg(long, env = "PARTNERD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address to listen on, such as 0.0.0.0:8080. [default: 127.0.0.1:8080]
    #[arg(long, env = "PARTNERD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (partner panel, admin console, tracking, API) and the job runner.
    #[command(
        long_about = "Runs the web server (partner panel, admin console, redirects, tracking script, \
                      integration API) and the background job runner. Applies pending database \
                      migrations first. Stops gracefully on Ctrl-C or SIGTERM.",
        after_help = "Examples:\n  \
                      partnerd serve\n  \
                      partnerd serve --listen 0.0.0.0:8080 --data-dir /var/lib/partnerd\n  \
                      PARTNERD_DATABASE_URL=postgres://partnerd@db/partnerd partnerd serve"
    )]
    Serve {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        db: DbArgs,
    },

    /// Fill a fresh demo database with a realistic program and serve it.
    #[command(
        long_about = "Fills a fresh demo database with a realistic synthetic program (staff, partners, \
                      settings, an audit trail), prints the demo logins and serves it like `serve`. \
                      Without --data-dir or --database-url it uses its own directory, ./partnerd-demo, \
                      and wipes the previous demo there first; it never touches ./partnerd-data.",
        after_help = "Examples:\n  \
                      partnerd demo\n  \
                      partnerd demo --listen 127.0.0.1:9000\n  \
                      partnerd demo --data-dir /tmp/my-demo"
    )]
    Demo {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        db: DbArgs,
    },

    /// Apply pending database migrations and print the schema versions.
    #[command(
        long_about = "Applies pending database migrations and prints the schema versions. `serve` does \
                      this on start too; run it on its own to upgrade the schema ahead of a deploy.",
        after_help = "Examples:\n  \
                      partnerd migrate\n  \
                      partnerd migrate --database-url postgres://partnerd@db/partnerd"
    )]
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },

    /// Manage staff accounts (admins and affiliate managers).
    #[command(
        subcommand,
        long_about = "Manages staff accounts: admins, who see and change everything, and affiliate \
                      managers, who look after their own partners. Create the first admin here; \
                      admins add more staff in the console.",
        after_help = "Examples:\n  \
                      partnerd admin create --email ann@acme.com --role admin\n  \
                      partnerd admin create --email bo@acme.com --role manager --name 'Bo Lind'"
    )]
    Admin(AdminCommand),

    /// Manage keys for the integration API (/api/v1).
    #[command(
        subcommand,
        name = "api-key",
        long_about = "Manages keys for the integration API (/api/v1), which billing systems and \
                      scripts use to report sign-ups and payments.",
        after_help = "Examples:\n  \
                      partnerd api-key create --name billing\n  \
                      KEY=$(partnerd api-key create --name billing | tail -n 1)"
    )]
    ApiKey(ApiKeyCommand),

    /// Copy the SQLite database to a file, safely while the server runs.
    #[command(
        long_about = "Writes a consistent copy of the SQLite database to FILE (VACUUM INTO), safe while \
                      the server runs, then checks that the copy opens and passes SQLite's integrity \
                      check. FILE must not exist yet. For PostgreSQL use pg_dump instead.",
        after_help = "Examples:\n  \
                      partnerd backup --to /backups/partnerd-$(date +%F).db\n  \
                      partnerd backup --to ./before-upgrade.db --data-dir /var/lib/partnerd"
    )]
    Backup {
        /// The backup file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },

    /// Replace the SQLite database with a backup (stop the server first).
    #[command(
        long_about = "Replaces the SQLite database with a backup made by `partnerd backup`. The backup \
                      is checked first (integrity, schema no newer than this partnerd); the current \
                      database is kept beside it as partnerd.db.before-restore-<unix time>. Stop the \
                      server before restoring. For PostgreSQL use pg_restore instead.",
        after_help = "Examples:\n  \
                      partnerd restore --from /backups/partnerd-2026-03-01.db\n  \
                      partnerd restore --from ./before-upgrade.db --data-dir /var/lib/partnerd"
    )]
    Restore {
        /// The backup file to restore.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },

    /// Check the money ledger's invariants on a live database.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check the ledger's invariants I1-I8; exit 0 when all hold, 1 with each breach listed.
    #[command(
        long_about = "Reads the whole ledger in one consistent snapshot (safe beside a running \
                      server) and checks its invariants: I1 debits equal credits; I2 no partner's \
                      available balance is negative; I3 each source books at most once; I4 each \
                      invoice's commission is floor(rate x (paid - refunded)); I5 no payout without \
                      an approved withdrawal, none twice; I6 paid withdrawals equal successful \
                      payouts; I7 payout clearing equals the money in flight; I8 balances rebuilt \
                      from the transfers equal the stored balances. Exits 0 when all hold, 1 with \
                      every breach listed otherwise.",
        after_help = "Examples:\n  \
                      partnerd ledger verify\n  \
                      partnerd ledger verify --database-url postgres://partnerd@db/partnerd"
    )]
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin or an affiliate manager who can sign in at /admin/login at once.
    #[command(
        long_about = "Creates a staff account that can sign in at /admin/login at once. The password \
                      comes from PARTNERD_ADMIN_PASSWORD, or is asked for twice on the terminal.",
        after_help = "Examples:\n  \
                      partnerd admin create --email ann@acme.com --role admin\n  \
                      PARTNERD_ADMIN_PASSWORD='violet harbour lantern' partnerd admin create --email bo@acme.com --role manager --name 'Bo Lind'"
    )]
    Create {
        /// The person's email, used to sign in.
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// admin (everything) or manager (their own partners).
        #[arg(long, value_name = "ROLE", value_parser = ["admin", "manager"])]
        role: String,
        /// Display name. Default: the part of the email before the @.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for the integration API; the key is printed once, on the last line.
    #[command(
        long_about = "Creates a key for the integration API (/api/v1). The key is shown once, alone on \
                      the last line of standard output, and a running server accepts it at once. Send \
                      it as `Authorization: Bearer KEY`.",
        after_help = "Examples:\n  \
                      partnerd api-key create --name billing\n  \
                      KEY=$(partnerd api-key create --name billing | tail -n 1)"
    )]
    Create {
        /// What the key is for, shown in the console.
        #[arg(long, value_name = "NAME")]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_flags_come_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "partnerd",
            "admin",
            "create",
            "--email",
            "a@b.test",
            "--role",
            "admin",
            "--data-dir",
            "/x",
        ])
        .unwrap();
        match cli.command {
            Command::Admin(AdminCommand::Create { db, .. }) => {
                assert_eq!(db.data_dir, Some(PathBuf::from("/x")))
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            Cli::try_parse_from([
                "partnerd", "admin", "create", "--email", "a@b.test", "--role", "boss"
            ])
            .is_err()
        );
    }
}
