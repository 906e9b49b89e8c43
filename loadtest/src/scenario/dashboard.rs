//! `dashboard`: M users log in (each from its own loopback address group,
//! so the per-IP login limit is not what is measured) and browse the task,
//! worker, audit and command lists with exponentially distributed think
//! time; a small share of page views issues a command on a listed task.
//! Pages the target does not serve yet (404) are left out and named in the
//! report.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::cli::DashboardArgs;
use crate::client::{self, Session};
use crate::flavor::Call;
use crate::metrics::Counter;
use crate::report::Summary;
use crate::run::RunCtx;
use crate::safety;

pub fn smoke_scale(args: &mut DashboardArgs) {
    args.users = args.users.min(3);
    args.duration = args.duration.min(3.0);
    args.think_ms = args.think_ms.min(200.0);
}

pub fn planned(args: &DashboardArgs) -> Duration {
    Duration::from_secs_f64(args.duration)
}

/// Pages and how often a user opens each.
fn pages(ctx: &RunCtx, page_size: u32) -> Vec<(Call, u32)> {
    let (f, p) = (ctx.flavor, ctx.common.project.as_str());
    vec![
        (f.tasks(p, page_size), 40),
        (f.workers(p), 20),
        (f.audit_list(p, page_size), 15),
        (f.me(), 15),
        (f.commands_list(p), 10),
    ]
}

fn pick(pages: &[(Call, u32)], roll: u32) -> Option<&Call> {
    let mut acc = 0;
    for (call, w) in pages {
        acc += w;
        if roll < acc {
            return Some(call);
        }
    }
    pages.last().map(|(c, _)| c)
}

/// A task from a task-list page that a command can target: `(agent_id,
/// engine, task_id)`, when the list carries them.
fn task_from_list(body: &Value) -> Option<(String, String, String)> {
    let items = body.get("items").and_then(Value::as_array).or_else(|| body.as_array())?;
    items.iter().find_map(|t| {
        let s = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
        Some((s("agent_id")?, s("engine")?, s("task_id").or_else(|| s("id"))?))
    })
}

async fn available_pages(admin: &Session, all: Vec<(Call, u32)>) -> (Vec<(Call, u32)>, Vec<String>) {
    let mut ok = Vec::new();
    let mut missing = Vec::new();
    for (call, w) in all {
        match admin.send(&call).await {
            Ok(r) if r.status.is_success() => ok.push((call, w)),
            Ok(r) => missing.push(format!("{} answered {}", call.route, r.status.as_u16())),
            Err(e) => missing.push(format!("{} failed: {e}", call.route)),
        }
    }
    (ok, missing)
}

pub async fn run(ctx: &RunCtx, args: &DashboardArgs) -> anyhow::Result<Summary> {
    let users = safety::cap("--users", args.users.max(1), safety::MAX_USERS)?;
    let duration = safety::cap_duration("--duration", args.duration)?;
    ctx.fd_budget.ensure(users * 2 + 8, "--users")?;
    let admin = ctx.admin_session().await?;
    let (pages, missing) = available_pages(&admin, pages(ctx, args.page_size)).await;
    // ≤ 10 logins per address keeps every user well under 20 logins/min/IP.
    let sources = ctx.sources(args.source_addrs.unwrap_or_else(|| users.div_ceil(10) as u32))?;
    ctx.phase.set("login");
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..users {
        let source = sources.get(i % sources.len().max(1)).copied().flatten();
        let (base, email, pw, m) =
            (ctx.base.clone(), ctx.common.email.clone(), ctx.common.password.clone(), ctx.metrics.clone());
        logins.spawn(async move {
            let http = client::client(source, 4).ok()?;
            match client::login(&http, &base, &email, &pw, None).await {
                Ok(out) => {
                    m.record("http:POST /auth/login", out.elapsed);
                    if out.session.is_none() {
                        m.error(&format!("login_{}", out.status.as_u16()));
                    }
                    out.session
                }
                Err(e) => {
                    m.error(&client::transport_error_kind(&e));
                    None
                }
            }
        });
    }
    let mut sessions = Vec::new();
    while let Some(r) = logins.join_next().await {
        if let Ok(Some(s)) = r {
            sessions.push(s);
        }
    }
    if sessions.is_empty() {
        anyhow::bail!("no dashboard user could log in");
    }
    ctx.phase.set("browse");
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for s in sessions.clone() {
        let (pages, m, flavor, project) = (pages.clone(), ctx.metrics.clone(), ctx.flavor, ctx.common.project.clone());
        let (think, share) = (args.think_ms, args.command_share);
        workers.spawn(async move {
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            let total: u32 = pages.iter().map(|(_, w)| w).sum();
            while Instant::now() < deadline && total > 0 {
                let Some(call) = pick(&pages, rng.random_range(0..total)) else { break };
                let reply = s.timed(call, &m).await;
                if rng.random_bool(share.clamp(0.0, 1.0)) {
                    let target = reply.and_then(|r| r.json().ok()).and_then(|v| task_from_list(&v));
                    if let Some((agent, engine, task)) = target {
                        s.timed(&flavor.issue_command(&project, &agent, &engine, &task), &m).await;
                    }
                }
                // Exponential think time: -ln(U) · mean.
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                let pause = Duration::from_secs_f64((-u.ln() * think / 1000.0).min(60.0));
                tokio::time::sleep_until((Instant::now() + pause).min(deadline).into()).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let mut summary = Summary::new("dashboard");
    summary.http = ctx.http_routes(elapsed, false).into_iter().collect();
    summary.details = json!({
        "users": users,
        "logged_in": sessions.len(),
        "think_ms_mean": args.think_ms,
        "pages": pages.iter().map(|(c, w)| json!({"route": c.route, "weight": w})).collect::<Vec<_>>(),
        "ok": ctx.metrics.get(Counter::HttpOk),
        "failed": ctx.metrics.get(Counter::HttpFailed),
    });
    for m in missing {
        summary.notes.push(format!("left out: {m} (not served by this target yet)"));
    }
    summary.notes.push("the login row covers the initial logins; page latencies exclude think time".into());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_pick_covers_all_pages() {
        let pages = vec![
            (Call { method: reqwest::Method::GET, path: "/a".into(), body: None, route: "a".into() }, 3),
            (Call { method: reqwest::Method::GET, path: "/b".into(), body: None, route: "b".into() }, 1),
        ];
        assert_eq!(pick(&pages, 0).unwrap().route, "a");
        assert_eq!(pick(&pages, 2).unwrap().route, "a");
        assert_eq!(pick(&pages, 3).unwrap().route, "b");
    }

    #[test]
    fn finds_a_commandable_task() {
        let v = json!({"items": [{"engine": "rq", "task_id": "t1", "agent_id": "a1"}]});
        assert_eq!(task_from_list(&v), Some(("a1".into(), "rq".into(), "t1".into())));
        assert_eq!(task_from_list(&json!({"items": [{"engine": "rq"}]})), None);
    }
}
