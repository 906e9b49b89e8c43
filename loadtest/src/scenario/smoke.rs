//! `smoke`: every scenario with tiny numbers, each checked against a few
//! pass conditions, for CI. Scenarios whose endpoints the target does not
//! serve yet are skipped with the reason (never faked); the run fails only
//! when a supported scenario misbehaves.

use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use crate::cli::{Cli, Command, Common};
use crate::report::{self, Summary};

/// Pass conditions of one scenario.
type Check = fn(&Summary) -> Verdict;

enum Verdict {
    Pass(String),
    Skip(String),
    Fail(String),
}

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_f64).unwrap_or(0.0)
}

fn counter(s: &Summary, name: &str) -> u64 {
    s.counters.get(name).copied().unwrap_or(0)
}

fn check_http(s: &Summary) -> Verdict {
    let (ok, failed) = (counter(s, "http_ok"), counter(s, "http_failed"));
    if ok == 0 || failed > 0 {
        return Verdict::Fail(format!("{ok} ok, {failed} failed, errors {:?}", s.errors));
    }
    let figure = s.http.iter().map(|(r, x)| format!("{r}: {:.0} req/s p99 {:.1} ms", x.rps, x.p99)).collect::<Vec<_>>();
    Verdict::Pass(figure.join("; "))
}

fn check_agents(s: &Summary) -> Verdict {
    let d = &s.details;
    let agents = num(d, &["agents"]);
    let sent = num(d, &["invalid_frames", "sent"]);
    let rejected = num(d, &["invalid_frames", "rejected_4403"]);
    let acked = num(d, &["events", "acked"]);
    let bad: Vec<&String> = s
        .errors
        .keys()
        .filter(|k| k.starts_with("inbound_") || k.as_str() == "close_4403" || k.starts_with("invalid_frame"))
        .collect();
    if num(d, &["connect_storm", "connected"]) < agents {
        return Verdict::Fail(format!("only {} of {agents} agents connected", num(d, &["connect_storm", "connected"])));
    }
    if acked == 0.0 {
        return Verdict::Fail("no event batch was acknowledged".into());
    }
    if sent != rejected || !bad.is_empty() {
        return Verdict::Fail(format!("invalid frames: {sent} sent, {rejected} closed with 4403; errors {bad:?}"));
    }
    Verdict::Pass(format!(
        "{agents} agents, {acked} events acked, {rejected}/{sent} invalid frames closed 4403, lag p99 {:.1} ms",
        s.lag_ms.map_or(0.0, |l| l.p99)
    ))
}

fn check_storm(s: &Summary) -> Verdict {
    let d = &s.details;
    if num(d, &["legit_success_ratio"]) <= 0.0 {
        return Verdict::Fail(format!("no legitimate login succeeded: {}", d["legit_status"]));
    }
    if d.get("ip_limit_held") != Some(&Value::Bool(true)) {
        return Verdict::Fail(format!("an address got {} attempts through in 60 s", d["max_admitted_per_ip_per_min"]));
    }
    Verdict::Pass(format!(
        "{} attempts, status {}, legit p99 {:.0} ms",
        num(d, &["attack_attempts"]),
        d["attack_status"],
        num(d, &["legit_login_ms", "p99"])
    ))
}

/// Parses a scenario command line and substitutes our `common` (so the
/// password never has to appear in an argument list).
fn command(common: &Common, argv: &[&str]) -> anyhow::Result<Command> {
    let mut full = vec!["palisade-loadtest"];
    full.extend_from_slice(argv);
    let mut cmd = Cli::try_parse_from(full)?.command;
    let mut c = common.clone();
    c.smoke = true;
    c.no_progress = true;
    match &mut cmd {
        Command::Agents(a) => a.common = c,
        Command::HttpGet(a) => a.common = c,
        Command::Audit(a) => a.common = c,
        Command::Dashboard(a) => a.common = c,
        Command::LoginStorm(a) => a.common = c,
        Command::Smoke(_) | Command::Probe(_) | Command::Selftest(_) => {}
    }
    Ok(cmd)
}

fn with_out(mut cmd: Command, dir: &std::path::Path, name: &str) -> Command {
    let out = Some(dir.join(name));
    match &mut cmd {
        Command::Agents(a) => a.common.out = out,
        Command::HttpGet(a) => a.common.out = out,
        Command::Audit(a) => a.common.out = out,
        Command::Dashboard(a) => a.common.out = out,
        Command::LoginStorm(a) => a.common.out = out,
        Command::Smoke(_) | Command::Probe(_) | Command::Selftest(_) => {}
    }
    cmd
}

/// Whether the target has the commands API (its list answers; a brain
/// without the routes answers 404).
async fn commands_supported(common: &Common) -> bool {
    let Ok(base) = url::Url::parse(&common.url) else { return false };
    let Ok(session) = crate::run::admin_session(&base, common).await else { return false };
    // Project routes answer 403/404 for a project that does not exist yet,
    // which would read as "no commands API"; create it first.
    if crate::provision::ensure_project(&session, common.target, &common.project).await.is_err() {
        return false;
    }
    matches!(session.send(&common.target.commands_list(&common.project)).await, Ok(r) if r.status.is_success())
}

async fn one(name: &str, cmd: anyhow::Result<Command>, check: fn(&Summary) -> Verdict) -> Verdict {
    let cmd = match cmd {
        Ok(c) => c,
        Err(e) => return Verdict::Fail(format!("bad arguments: {e}")),
    };
    eprintln!("== smoke: {name}");
    match crate::execute(cmd).await {
        Ok(summary) => check(&summary),
        Err(e) => {
            let text = format!("{e:#}");
            if text.contains("no agent gateway") || text.contains("answered 404") {
                Verdict::Skip(text)
            } else {
                Verdict::Fail(text)
            }
        }
    }
}

pub async fn run(common: &Common) -> anyhow::Result<bool> {
    let dir = report::out_dir(common.out.as_deref(), "smoke");
    let cmd_rate = if commands_supported(common).await { "1" } else { "0" };
    let agents_argv = ["agents", "--agents", "4", "--rate", "40", "--commands-per-s", cmd_rate];
    let plan: Vec<(&str, anyhow::Result<Command>, Check)> = vec![
        ("http-get", command(common, &["http-get", "--path", "/api/v1/auth/me"]), check_http),
        ("audit", command(common, &["audit"]), check_http),
        ("dashboard", command(common, &["dashboard"]), check_http),
        ("agents", command(common, &agents_argv), check_agents),
        // Last: it leaves its attacker addresses rate-limited for a minute.
        ("login-storm", command(common, &["login-storm"]), check_storm),
    ];
    let mut rows = Vec::new();
    let mut ok = true;
    for (name, cmd, check) in plan {
        let verdict = one(name, cmd.map(|c| with_out(c, &dir, name)), check).await;
        let (status, text) = match verdict {
            Verdict::Pass(t) => ("pass", t),
            Verdict::Skip(t) => ("SKIPPED", t),
            Verdict::Fail(t) => {
                ok = false;
                ("FAIL", t)
            }
        };
        rows.push(format!("| {name} | {status} | {} |", text.replace('|', "/")));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if cmd_rate == "0" {
        rows.push(
            "| (commands) | SKIPPED | the commands API is not served (GET …/commands): no command round trips |".into(),
        );
    }
    eprintln!("\n| scenario | result | figures |\n|---|---|---|\n{}", rows.join("\n"));
    eprintln!("reports under {}", dir.display());
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> Common {
        match Cli::try_parse_from(["x", "smoke", "--password", "pw"]).unwrap().command {
            Command::Smoke(s) => s.common,
            _ => unreachable!(),
        }
    }

    #[test]
    fn scenario_lines_parse_and_keep_common() {
        let c = common();
        for argv in [&["http-get"][..], &["audit"], &["dashboard"], &["agents", "--agents", "4"], &["login-storm"]] {
            let cmd = command(&c, argv).unwrap();
            let inner = match cmd {
                Command::Agents(a) => a.common,
                Command::HttpGet(a) => a.common,
                Command::Audit(a) => a.common,
                Command::Dashboard(a) => a.common,
                Command::LoginStorm(a) => a.common,
                Command::Smoke(a) => a.common,
                Command::Probe(_) | Command::Selftest(_) => unreachable!(),
            };
            assert!(inner.smoke && inner.password == "pw");
        }
    }

    #[test]
    fn agent_check_requires_all_rejections() {
        let mut s = Summary::new("agents");
        s.details = serde_json::json!({
            "agents": 4, "connect_storm": {"connected": 4}, "events": {"acked": 10},
            "invalid_frames": {"sent": 2, "rejected_4403": 1}
        });
        assert!(matches!(check_agents(&s), Verdict::Fail(_)));
        s.details["invalid_frames"]["rejected_4403"] = 2.into();
        assert!(matches!(check_agents(&s), Verdict::Pass(_)));
        s.errors.insert("inbound_signature_error".into(), 1);
        assert!(matches!(check_agents(&s), Verdict::Fail(_)));
    }
}
