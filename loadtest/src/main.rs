//! `palisade-loadtest`: load harness for Palisade and the z4j 1.13 brain.
//! See `loadtest/README.md` for every scenario, flag and full-run command.

mod agent;
mod cli;
mod client;
mod flavor;
mod metrics;
mod proc_stats;
mod provision;
mod report;
mod run;
mod safety;
mod sampler;
mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::report::Summary;
use crate::run::RunCtx;

/// Runs one scenario between sampler start and report, so the sampler is
/// stopped whether the scenario succeeds or fails.
macro_rules! scenario {
    ($args:expr, $module:path, $prefixes:expr) => {{
        use $module as m;
        let args = $args;
        let ctx = RunCtx::new(&args.common)?;
        let sampler = ctx.start_sampler(m::planned(&args), $prefixes);
        match m::run(&ctx, &args).await {
            Ok(summary) => ctx.finish(sampler, summary).await,
            Err(e) => {
                sampler.finish().await;
                Err(e)
            }
        }
    }};
}

/// Executes one (non-smoke) command and returns its summary.
pub async fn execute(command: Command) -> anyhow::Result<Summary> {
    match command {
        Command::Agents(mut a) => {
            if a.common.smoke {
                agent::fleet::smoke_scale(&mut a);
            }
            scenario!(a, agent::fleet, &["lag", "lag_closed"])
        }
        Command::HttpGet(mut a) => {
            if a.common.smoke {
                scenario::http_get::smoke_scale(&mut a);
            }
            scenario!(a, scenario::http_get, &["http:"])
        }
        Command::Audit(mut a) => {
            if a.common.smoke {
                scenario::audit::smoke_scale(&mut a);
            }
            scenario!(a, scenario::audit, &["http:"])
        }
        Command::Dashboard(mut a) => {
            if a.common.smoke {
                scenario::dashboard::smoke_scale(&mut a);
            }
            scenario!(a, scenario::dashboard, &["http:"])
        }
        Command::LoginStorm(mut a) => {
            if a.common.smoke {
                scenario::login_storm::smoke_scale(&mut a);
            }
            scenario!(a, scenario::login_storm, &["http:POST /auth/login (legitimate)"])
        }
        Command::Smoke(_) | Command::Probe(_) | Command::Selftest(_) => anyhow::bail!("not a load scenario"),
    }
}

async fn main_async(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Smoke(args) => scenario::smoke::run(&args.common).await,
        Command::Probe(args) => probe(&args).map(|_| true),
        Command::Selftest(args) => selftest(args).await.map(|_| true),
        other => execute(other).await.map(|_| true),
    }
}

/// Runs `agents` against the stub brain. The stub never closes 4403 and has
/// no REST API, so invalid frames and commands are off; the "brain" sampled
/// is this process (stub and generator together).
async fn selftest(mut args: cli::AgentsArgs) -> anyhow::Result<Summary> {
    let (url, cred) = agent::selftest::start().await?;
    let dir = std::env::temp_dir().join(format!("palisade-loadtest-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let creds = dir.join("credentials.json");
    provision::write_credentials(&creds, &[cred])?;
    args.common.url = url;
    args.common.brain_pid = Some(std::process::id().to_string());
    args.credentials = Some(creds);
    args.invalid_share = 0.0;
    args.commands_per_s = 0.0;
    let result = execute(Command::Agents(args)).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The brain's resource figures right now, for scripts (idle RSS).
fn probe(args: &cli::ProbeArgs) -> anyhow::Result<()> {
    let base = url::Url::parse(&args.url)?;
    let port = base.port_or_known_default().unwrap_or(80);
    let pids = proc_stats::resolve(args.brain_pid.as_deref(), port)?;
    let sample = proc_stats::ProcWatch::new(pids.clone()).sample();
    println!("{}", serde_json::json!({ "pids": pids, "sample": sample }));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(main_async(cli));
    // Stragglers (a blocked socket, a slow brain) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
