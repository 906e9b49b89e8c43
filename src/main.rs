//! `palisade` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use palisade::cli::{AdminCommand, AuditCommand, Cli, Command};
use palisade::clock::SystemClock;
use palisade::config::Config;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if std::env::var("PALISADE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn warn_if_ephemeral(config: &Config) {
    if config.secret_is_ephemeral {
        eprintln!(
            "\n  WARNING: PALISADE_SECRET is not set. Running in dev mode with a random, in-memory secret:\n  \
             sessions, setup links and agent keys stop working when this process exits.\n  \
             Set PALISADE_SECRET (e.g. `openssl rand -base64 48`) for anything beyond a trial.\n"
        );
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve => {
            let config = Config::from_env().context("configuration")?;
            warn_if_ephemeral(&config);
            tracing::info!("{}", config.summary());
            palisade::server::serve(config, SystemClock::shared()).await.context("server")?;
            Ok(0)
        }
        Command::Migrate => {
            let config = Config::from_env().context("configuration")?;
            let database = palisade::server::Database::open(&config).await.context("database")?;
            let applied = palisade::store::migrate::run(&database.db).await;
            database.close().await;
            let applied = applied.context("migrations")?;
            println!(
                "applied {} migration(s){}",
                applied.len(),
                if applied.is_empty() { "; schema is up to date" } else { "" }
            );
            Ok(0)
        }
        Command::Admin { command: AdminCommand::Create { email, password_stdin: _, display_name } } => {
            let config = Config::from_env().context("configuration")?;
            let password = palisade::cli::admin::read_password(std::io::stdin().lock())?;
            let user = palisade::cli::admin::create(&config, &email, &password, &display_name).await?;
            println!("created global admin {} ({})", user.email, user.id);
            Ok(0)
        }
        Command::Audit { command: AuditCommand::Verify { checkpoints, json } } => {
            let config = match Config::from_env() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: configuration: {e}");
                    return Ok(palisade::cli::audit::EXIT_ERROR);
                }
            };
            Ok(palisade::cli::audit::verify(&config, checkpoints, json).await)
        }
        Command::Audit { command: AuditCommand::Prune { keep_days, below_seq } } => {
            let config = Config::from_env().context("configuration")?;
            let deleted =
                palisade::cli::audit::prune(&config, keep_days, below_seq).await.map_err(anyhow::Error::msg)?;
            println!("pruned {deleted} audit row(s)");
            Ok(0)
        }
        Command::Check { deploy } => {
            if !deploy {
                anyhow::bail!("nothing to check; use `palisade check --deploy`");
            }
            let config = Config::from_env().context("configuration")?;
            Ok(palisade::cli::check::deploy(&config))
        }
    }
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
