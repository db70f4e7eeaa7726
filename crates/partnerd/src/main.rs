//! `partnerd`: the one binary. Parses the command line, loads the configuration,
//! sets up logging and hands over to the command's module.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use partnerd_app::Config;
use partnerd_domain::FieldErrors;

mod cli;
mod demo;
mod ops;
mod server;

use cli::{AdminCommand, ApiKeyCommand, Cli, Command, LedgerCommand};

/// Bad input to a command, reported field by field with exit code 2.
#[derive(Debug)]
pub struct InvalidInput(pub FieldErrors);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid input: {}", self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// mimalloc: per-thread free lists where glibc's malloc takes locks and
/// consolidates; the redirect allocates and frees on different threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(InvalidInput(fields)) = err.downcast_ref::<InvalidInput>() {
        eprintln!("error: invalid input, nothing was changed:");
        for (field, reason) in fields.map() {
            eprintln!("  {field}: {reason}");
        }
        return ExitCode::from(2);
    }
    eprintln!("error: {}", message(err));
    ExitCode::FAILURE
}

/// The error and its causes on one line, skipping a cause whose text the line
/// already holds (some errors repeat their source in their own message).
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = Config::load(cli.config.as_deref(), &env)?;
    init_logging(config.log_json);
    match cli.command {
        Command::Serve { listen, db } => {
            server::serve(ops::with_db(config, &db), listen.listen).await
        }
        Command::Demo { listen, db } => demo::run(config, &db, listen.listen).await,
        Command::Migrate { db } => ops::migrate(ops::with_db(config, &db)).await,
        Command::Admin(AdminCommand::Create {
            email,
            role,
            name,
            db,
        }) => ops::admin_create(ops::with_db(config, &db), &email, &role, name.as_deref()).await,
        Command::ApiKey(ApiKeyCommand::Create { name, db }) => {
            ops::api_key_create(ops::with_db(config, &db), &name).await
        }
        Command::Backup { to, db } => ops::backup(ops::with_db(config, &db), &to).await,
        Command::Restore { from, db } => ops::restore(ops::with_db(config, &db), &from).await,
        Command::Ledger(LedgerCommand::Verify { db }) => {
            ops::ledger_verify(ops::with_db(config, &db)).await
        }
    }
}

/// Logs to standard error; `PARTNERD_LOG` filters (default `info`), JSON when configured.
fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARTNERD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // Only fails when a subscriber is already set, which then keeps logging.
    drop(result);
}
