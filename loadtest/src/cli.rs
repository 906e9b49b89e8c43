//! Command line. Every count and duration has a default small enough for a
//! shared 2-core box and a hard cap enforced in `safety`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::flavor::Flavor;

#[derive(Parser, Debug)]
#[command(name = "palisade-loadtest", version, about = "Load harness for Palisade and the z4j 1.13 brain")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulated z4j agents: connect storm, steady open-model events, max-throughput closed model.
    Agents(AgentsArgs),
    /// Dashboard users logging in and browsing tasks / workers / audit with think time.
    Dashboard(DashboardArgs),
    /// Wrong passwords from many addresses while legitimate users log in.
    LoginStorm(LoginStormArgs),
    /// Audited mutations at a fixed concurrency.
    Audit(AuditArgs),
    /// One authenticated GET at a fixed concurrency (or a fixed rate).
    HttpGet(HttpGetArgs),
    /// Every scenario the target supports, with tiny numbers, for CI.
    Smoke(SmokeArgs),
    /// The agents scenario against an in-process stub brain that acks everything: the harness's own ceiling.
    Selftest(AgentsArgs),
    /// Print the brain's processes and their RSS/PSS/CPU/fds as JSON (no load).
    Probe(ProbeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Which brain's API flavour to speak.
    #[arg(long, value_enum, default_value = "palisade")]
    pub target: Flavor,
    /// Base URL of the brain.
    #[arg(long = "url", alias = "target-url", default_value = "http://127.0.0.1:7700")]
    pub url: String,
    /// Allow a non-loopback target (never do this against a machine you do not own).
    #[arg(long)]
    pub allow_remote: bool,
    /// Admin email (global admin of the target).
    #[arg(long, env = "LOADTEST_EMAIL", default_value = "admin@loadtest.test")]
    pub email: String,
    /// Admin password.
    #[arg(long, env = "LOADTEST_PASSWORD", hide_env_values = true, default_value = "")]
    pub password: String,
    /// Project slug used for agents, tasks, audit.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Brain process id(s), comma-separated; default: the processes listening on the target port.
    #[arg(long)]
    pub brain_pid: Option<String>,
    /// Directory for summary.json, series.json and report.html (default loadtest/out/<scenario>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar / status lines.
    #[arg(long)]
    pub no_progress: bool,
    /// Tiny numbers and seconds-long phases (CI smoke).
    #[arg(long)]
    pub smoke: bool,
}

#[derive(Args, Debug, Clone)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Simulated agents (worker sessions).
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Simulated workers sharing one minted agent token (z4j allows 64 per agent).
    #[arg(long, default_value_t = 50)]
    pub agents_per_token: usize,
    /// Use credentials saved earlier instead of minting.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Save minted credentials (mode 0600) for later runs.
    #[arg(long)]
    pub save_credentials: Option<PathBuf>,
    /// Loopback source addresses to spread connections over (default: one per 400 agents).
    #[arg(long)]
    pub source_addrs: Option<u32>,
    /// Limit the connect storm to this many new connections per second (default: all at once).
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// Seconds to wait for every agent to connect.
    #[arg(long, default_value_t = 60.0)]
    pub connect_timeout: f64,
    /// Seconds to hold idle sessions before measuring RSS per connection.
    #[arg(long, default_value_t = 5.0)]
    pub idle_secs: f64,
    /// Open model: total events per second across the fleet (0 skips the steady phase).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 20.0)]
    pub steady_secs: f64,
    /// Closed model: seconds of max-throughput phase (0 skips it).
    #[arg(long, default_value_t = 20.0)]
    pub max_secs: f64,
    /// Closed model: unacknowledged event frames each agent keeps in flight.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Events per event_batch frame (the 1.13 agent always sends 1).
    #[arg(long, default_value_t = 1)]
    pub events_per_frame: usize,
    /// Share of event frames followed by a frame with a flipped MAC byte (answered by 4403 + reconnect).
    #[arg(long, default_value_t = 0.001)]
    pub invalid_share: f64,
    /// Re-send an unacknowledged event frame after this many seconds (agent: 90).
    #[arg(long, default_value_t = 90.0)]
    pub ack_deadline: f64,
    /// Unacknowledged event frames at which an agent pauses events (agent: 256).
    #[arg(long, default_value_t = 256)]
    pub inflight_cap: usize,
    /// Seconds to wait for outstanding acks after the last phase.
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// Operator commands per second during the steady phase (REST issue → agent → REST result).
    #[arg(long, default_value_t = 0.0)]
    pub commands_per_s: f64,
}

#[derive(Args, Debug, Clone)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Mean think time between page views (exponentially distributed).
    #[arg(long, default_value_t = 1000.0)]
    pub think_ms: f64,
    /// Share of page views that issue a command (cancel-task on a listed task).
    #[arg(long, default_value_t = 0.02)]
    pub command_share: f64,
    /// Rows per list page.
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// Loopback source addresses the users log in from (login limit is per IP).
    #[arg(long)]
    pub source_addrs: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Spoof {
    /// Bind each client to its own 127.0.0.x source address (no server config needed).
    Bind,
    /// Send X-Forwarded-For (only honoured when the brain trusts 127.0.0.1 as a proxy).
    Xff,
}

#[derive(Args, Debug, Clone)]
pub struct LoginStormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent attacker loops (wrong passwords).
    #[arg(long, default_value_t = 32)]
    pub attackers: usize,
    /// Distinct attacker source addresses.
    #[arg(long, default_value_t = 64)]
    pub attacker_addrs: u32,
    /// How attacker addresses reach the brain.
    #[arg(long, value_enum, default_value = "bind")]
    pub via: Spoof,
    /// Emails attacked repeatedly (to trip the lockout); the rest are random.
    #[arg(long, default_value_t = 4)]
    pub victims: usize,
    /// Legitimate users logging in with the right password.
    #[arg(long, default_value_t = 4)]
    pub legit_users: usize,
    #[arg(long, default_value_t = 2000.0)]
    pub legit_interval_ms: f64,
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Expected login limit per client IP per minute and limiter process.
    #[arg(long, default_value_t = 20)]
    pub ip_limit: u32,
    /// Processes with their own limiter (default: Palisade 1; z4j 2, one per uvicorn worker).
    #[arg(long)]
    pub limiter_processes: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// All workers edit the same row (the admin's profile / the one project)
    /// instead of one user (Palisade) or project (z4j) each; measures row-lock
    /// contention more than audit appends.
    #[arg(long)]
    pub shared_actor: bool,
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
}

#[derive(Args, Debug, Clone)]
pub struct HttpGetArgs {
    #[command(flatten)]
    pub common: Common,
    /// Path (and query) to GET with the admin session.
    #[arg(long, default_value = "/api/v1/auth/me")]
    pub path: String,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Open model: requests per second in total (latency then counts from the schedule).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Send no session cookie (for public paths such as /api/v1/health).
    #[arg(long)]
    pub anonymous: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// Base URL of the brain (its port identifies the processes).
    #[arg(long = "url", default_value = "http://127.0.0.1:7700")]
    pub url: String,
    #[arg(long)]
    pub brain_pid: Option<String>,
}
