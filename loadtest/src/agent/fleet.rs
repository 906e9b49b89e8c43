//! The `agents` scenario: connect storm → idle hold (memory per session) →
//! steady open-model phase (fixed event rate; lag corrected for coordinated
//! omission; optional command round trips) → closed-model max phase (fixed
//! window of unacknowledged frames per agent) → drain → stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use palisade::security::frame::FrameKey;
use serde_json::json;
use tokio::sync::watch;
use url::Url;

use super::commander::Commander;
use super::conn::{self, AgentSpec};
use super::dial::{self, DialError};
use super::{AgentConfig, Credential, Phase, Shared};
use crate::cli::AgentsArgs;
use crate::metrics::{rate, Counter};
use crate::proc_stats::ProcWatch;
use crate::report::Summary;
use crate::run::RunCtx;
use crate::{provision, safety};

/// `http(s)://host[:port][/prefix]` → `ws(s)://…/ws/agent` (§1.1).
pub fn ws_url(base: &Url) -> anyhow::Result<String> {
    let scheme = match base.scheme() {
        "http" => "ws",
        "https" => bail!("wss:// targets are not supported by this harness (loopback, plain HTTP only)"),
        other => bail!("unsupported scheme {other}"),
    };
    let host = base.host_str().context("target URL has no host")?;
    // `host_str` already brackets IPv6 literals.
    let port = base.port_or_known_default().context("target URL has no port")?;
    Ok(format!("{scheme}://{host}:{port}{}/ws/agent", base.path().trim_end_matches('/')))
}

pub async fn resolve(base: &Url) -> anyhow::Result<SocketAddr> {
    let host = base.host_str().context("target URL has no host")?.trim_matches(['[', ']']);
    let port = base.port_or_known_default().context("target URL has no port")?;
    tokio::net::lookup_host((host, port)).await?.next().with_context(|| format!("{host} does not resolve"))
}

/// Whether `/ws/agent` exists: an upgrade with a bogus token is accepted
/// and closed (4401) by a brain that has the gateway; a brain without it
/// answers the upgrade with HTTP 404.
pub async fn gateway_available(base: &Url) -> anyhow::Result<bool> {
    let addr = resolve(base).await?;
    match dial::connect(&ws_url(base)?, addr, None, "loadtest-probe").await {
        Ok(mut ws) => {
            let _ = ws.close(None).await;
            Ok(true)
        }
        Err(DialError::Upgrade(404)) => Ok(false),
        Err(e) => bail!("probing /ws/agent failed: {e}"),
    }
}

async fn credentials(ctx: &RunCtx, args: &AgentsArgs) -> anyhow::Result<Vec<Credential>> {
    if let Some(path) = &args.credentials {
        return provision::read_credentials(path);
    }
    let per_token = args.agents_per_token.clamp(1, 64);
    let count = args.agents.div_ceil(per_token);
    let admin = ctx.admin_session().await?;
    provision::ensure_project(&admin, ctx.flavor, &ctx.common.project).await?;
    let prefix = format!("lt-{}", chrono::Utc::now().format("%H%M%S"));
    eprintln!("minting {count} agent credentials ({per_token} simulated workers each)");
    let creds = provision::mint_agents(&admin, ctx.flavor, &ctx.common.project, &prefix, count).await?;
    if let Some(path) = &args.save_credentials {
        provision::write_credentials(path, &creds)?;
    }
    Ok(creds)
}

fn validate(args: &AgentsArgs) -> anyhow::Result<()> {
    safety::cap("--agents", args.agents, safety::MAX_AGENTS)?;
    safety::cap("--rate", args.rate, safety::MAX_RATE)?;
    safety::cap("--window", args.window, 256)?;
    safety::cap("--events-per-frame", args.events_per_frame, 1_000)?;
    safety::cap("--commands-per-s", args.commands_per_s, 100.0)?;
    if !(0.0..=0.5).contains(&args.invalid_share) {
        bail!("--invalid-share must be within 0..0.5");
    }
    for (flag, secs) in [
        ("--connect-timeout", args.connect_timeout),
        ("--idle-secs", args.idle_secs),
        ("--steady-secs", args.steady_secs),
        ("--max-secs", args.max_secs),
        ("--drain-secs", args.drain_secs),
    ] {
        safety::cap_duration(flag, secs)?;
    }
    let total = args.connect_timeout + args.idle_secs + args.steady_secs + args.max_secs + args.drain_secs;
    safety::cap_duration("the sum of the phase durations", total)?;
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    Ok(())
}

/// Tiny numbers for CI: a handful of agents, second-long phases, a high
/// invalid-frame share so rejections are exercised, short ack deadline.
pub fn smoke_scale(args: &mut AgentsArgs) {
    args.agents = args.agents.min(4);
    args.agents_per_token = args.agents_per_token.min(2);
    args.idle_secs = args.idle_secs.min(1.0);
    args.rate = args.rate.min(40.0);
    args.steady_secs = args.steady_secs.min(3.0);
    args.max_secs = args.max_secs.min(2.0);
    args.window = args.window.min(4);
    args.invalid_share = args.invalid_share.max(0.05);
    args.ack_deadline = args.ack_deadline.min(10.0);
    args.drain_secs = args.drain_secs.min(3.0);
    args.connect_timeout = args.connect_timeout.min(15.0);
    args.commands_per_s = args.commands_per_s.min(1.0);
}

/// Planned length of the run, for the progress bar.
pub fn planned(args: &AgentsArgs) -> Duration {
    Duration::from_secs_f64(args.idle_secs + args.steady_secs + args.max_secs + args.drain_secs + 2.0)
}

async fn wait_connected(ctx: &RunCtx, want: usize, timeout: Duration) -> (usize, Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if ctx.metrics.connections() as usize >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ctx.metrics.connections().max(0) as usize, t0.elapsed())
}

pub async fn run(ctx: &RunCtx, args: &AgentsArgs) -> anyhow::Result<Summary> {
    validate(args)?;
    ctx.fd_budget.ensure(args.agents + 16, "--agents")?;
    if !gateway_available(&ctx.base).await? {
        bail!("the target has no agent gateway yet (the /ws/agent upgrade answered 404)");
    }
    let creds = credentials(ctx, args).await?;
    let keys: Vec<FrameKey> = creds
        .iter()
        .map(|c| FrameKey::from_urlsafe_b64(&c.hmac_secret).context("hmac_secret is not a valid key"))
        .collect::<anyhow::Result<_>>()?;
    let addrs_wanted = args.source_addrs.unwrap_or_else(|| args.agents.div_ceil(400) as u32);
    let sources = if ctx.target_is_v4_loopback() { safety::source_addrs(addrs_wanted)? } else { Vec::new() };
    let shared = Arc::new(Shared {
        metrics: ctx.metrics.clone(),
        cfg: AgentConfig {
            ws_url: ws_url(&ctx.base)?,
            addr: resolve(&ctx.base).await?,
            invalid_share: args.invalid_share,
            ack_deadline: Duration::from_secs_f64(args.ack_deadline),
            events_per_frame: args.events_per_frame,
            inflight_cap: args.inflight_cap.clamp(1, 256),
            reject_wait: Duration::from_secs(5),
        },
        tasks: Default::default(),
        commands: Default::default(),
    });
    let brain = ctx.brain_pids.clone().map(ProcWatch::new);
    let rss_idle = brain.as_ref().map(|w| w.sample().rss_bytes);

    ctx.phase.set("connect");
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let mut agents = tokio::task::JoinSet::new();
    for i in 0..args.agents {
        let k = i % creds.len();
        let (Some(cred), Some(key)) = (creds.get(k), keys.get(k)) else { continue };
        let spec = AgentSpec {
            index: i,
            cred: cred.clone(),
            key: key.clone(),
            source: sources.get(i % sources.len().max(1)).copied(),
            worker_id: format!("bare-{}-{i}", std::process::id()),
            host: format!("lt-host-{i}"),
        };
        agents.spawn(conn::run(spec, shared.clone(), phase_rx.clone()));
        if let Some(r) = args.connect_rate.filter(|r| *r > 0.0) {
            tokio::time::sleep(Duration::from_secs_f64(1.0 / r)).await;
        }
    }
    let (connected, storm) = wait_connected(ctx, args.agents, Duration::from_secs_f64(args.connect_timeout)).await;
    eprintln!("connect storm: {connected}/{} sessions in {:.2} s", args.agents, storm.as_secs_f64());
    let handshakes_ok = ctx.metrics.get(Counter::HandshakesOk);

    ctx.phase.set("idle");
    tokio::time::sleep(Duration::from_secs_f64(args.idle_secs)).await;
    let held = ctx.metrics.connections().max(0);
    let rss_held = brain.as_ref().map(|w| w.sample().rss_bytes);
    let rss_per_conn = match (rss_idle, rss_held) {
        (Some(a), Some(b)) if held > 0 => Some((b as f64 - a as f64) / held as f64),
        _ => None,
    };

    let active_start = ctx.metrics.snapshot();
    let mut steady = serde_json::Value::Null;
    let mut commander_task = None;
    if args.rate > 0.0 && args.steady_secs > 0.0 {
        ctx.phase.set("steady");
        ctx.metrics.reset_histograms(&["lag"]);
        let interval = Duration::from_secs_f64(args.agents as f64 / args.rate);
        let s0 = ctx.metrics.snapshot();
        let _ = phase_tx.send(Phase::Steady { interval, start: Instant::now() });
        let (stop_tx, stop_rx) = watch::channel(false);
        let commander = if args.commands_per_s > 0.0 {
            let cmd = Arc::new(Commander {
                admin: ctx.admin_session().await?,
                flavor: ctx.flavor,
                project: ctx.common.project.clone(),
                shared: shared.clone(),
            });
            Some(tokio::spawn(cmd.run(args.commands_per_s, stop_rx)))
        } else {
            None
        };
        tokio::time::sleep(Duration::from_secs_f64(args.steady_secs)).await;
        // No new commands; those in flight finish in the background while
        // the next phase runs (awaited before the drain).
        let _ = stop_tx.send(true);
        let s1 = ctx.metrics.snapshot();
        commander_task = commander;
        steady = json!({
            "offered_events_per_s": args.rate,
            "events_committed_per_s": s1.rate_since(&s0, Counter::EventsAcked),
            "events_sent_per_s": s1.rate_since(&s0, Counter::EventsSent),
            "frames_sent_per_s": s1.rate_since(&s0, Counter::FramesSent),
            "seconds": args.steady_secs,
        });
    }
    let mut max = serde_json::Value::Null;
    if args.max_secs > 0.0 {
        ctx.phase.set("max");
        let s0 = ctx.metrics.snapshot();
        let _ = phase_tx.send(Phase::Max { window: args.window });
        tokio::time::sleep(Duration::from_secs_f64(args.max_secs)).await;
        let s1 = ctx.metrics.snapshot();
        max = json!({
            "window_per_agent": args.window,
            "events_committed_per_s": s1.rate_since(&s0, Counter::EventsAcked),
            "frames_sent_per_s": s1.rate_since(&s0, Counter::FramesSent),
            "seconds": args.max_secs,
        });
    }
    if let Some(c) = commander_task {
        if tokio::time::timeout(Duration::from_secs(35), c).await.is_err() {
            ctx.metrics.error("commander_not_done_in_35s");
        }
    }
    ctx.phase.set("drain");
    let _ = phase_tx.send(Phase::Drain);
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_secs);
    while Instant::now() < drain_until && ctx.metrics.get(Counter::EventsAcked) < ctx.metrics.get(Counter::EventsSent) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let active_end = ctx.metrics.snapshot();
    ctx.phase.set("stop");
    let _ = phase_tx.send(Phase::Stop);
    let join_all = async { while agents.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), join_all).await.is_err() {
        agents.abort_all();
        ctx.metrics.error("agents_not_stopped_in_10s");
    }

    let m = &ctx.metrics;
    let active = active_end.at.saturating_duration_since(active_start.at);
    let committed = |v: &serde_json::Value| v.get("events_committed_per_s").and_then(serde_json::Value::as_f64);
    let mut summary = Summary::new("agents");
    summary.connections = m.connections_max();
    summary.handshakes_per_s = rate(handshakes_ok, storm);
    summary.frames_verified_per_s = Some(rate(m.get(Counter::FramesVerified), m.started.elapsed()));
    summary.frames_rejected_per_s = Some(rate(m.get(Counter::InvalidRejected), m.started.elapsed()));
    summary.events_committed_per_s = committed(&max).or_else(|| committed(&steady));
    summary.lag_ms = Some(m.histogram("lag").percentiles());
    summary.cmd_rtt_ms = (args.commands_per_s > 0.0).then(|| m.histogram("cmd_rtt").percentiles());
    summary.rss_bytes_per_conn = rss_per_conn;
    summary.details = json!({
        "agents": args.agents,
        "credentials": creds.len(),
        "source_addresses": sources.len(),
        "connect_storm": {
            "connected": connected,
            "seconds_to_all_connected": storm.as_secs_f64(),
            "handshake_ms": m.histogram("handshake").percentiles(),
        },
        "held_after_idle": held,
        "brain_rss_bytes": { "before_connect": rss_idle, "after_connect_idle": rss_held },
        "steady": steady,
        "max": max,
        "lag_service_ms": m.histogram("lag_service").percentiles(),
        "lag_closed_model_ms": m.histogram("lag_closed").percentiles(),
        "cmd_to_agent_ms": m.histogram("cmd_to_agent").percentiles(),
        "events": { "sent": m.get(Counter::EventsSent), "acked": m.get(Counter::EventsAcked), "resends": m.get(Counter::Resends) },
        "invalid_frames": {
            "share": args.invalid_share,
            "sent": m.get(Counter::InvalidSent),
            "rejected_4403": m.get(Counter::InvalidRejected),
            "other_close": m.get(Counter::InvalidOtherClose),
            "unanswered": m.get(Counter::InvalidUnanswered),
        },
        "active_seconds": active.as_secs_f64(),
        "events_committed_per_s_active": active_end.rate_since(&active_start, Counter::EventsAcked),
    });
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url_from_brain_url() {
        let u = |s: &str| ws_url(&Url::parse(s).unwrap()).unwrap();
        assert_eq!(u("http://127.0.0.1:7700"), "ws://127.0.0.1:7700/ws/agent");
        assert_eq!(u("http://127.0.0.1:7700/"), "ws://127.0.0.1:7700/ws/agent");
        assert_eq!(u("http://localhost/z4j"), "ws://localhost:80/z4j/ws/agent");
        assert_eq!(u("http://[::1]:7700"), "ws://[::1]:7700/ws/agent");
        assert!(ws_url(&Url::parse("https://127.0.0.1").unwrap()).is_err());
    }
}
