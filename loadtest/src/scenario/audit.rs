//! `audit`: audited mutations at a fixed concurrency (closed model). A 2xx
//! answer counts as one audit append: both brains write the audit row in
//! the request (Palisade acknowledges only after the row is committed).
//!
//! The action is `PATCH /auth/me` on Palisade and a project description
//! edit on z4j, which does not audit profile edits (see `flavor`). Each
//! worker edits its own row — its own user on Palisade (created through
//! `POST /users` and logged in from its own loopback address), its own
//! project on z4j — because workers sharing one row serialise on its row
//! lock and the run would measure that lock instead of audit appends
//! (`--shared-actor` measures exactly that).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::cli::AuditArgs;
use crate::client::{self, Session};
use crate::flavor::Flavor;
use crate::metrics::{rate, Counter};
use crate::report::Summary;
use crate::run::RunCtx;
use crate::{provision, safety};

pub fn smoke_scale(args: &mut AuditArgs) {
    args.concurrency = args.concurrency.min(2);
    args.duration = args.duration.min(2.0);
}

pub fn planned(args: &AuditArgs) -> Duration {
    Duration::from_secs_f64(args.duration)
}

/// A worker's session and the project its action names.
type Actor = (Session, String);

async fn actors(ctx: &RunCtx, args: &AuditArgs, n: usize) -> anyhow::Result<Vec<Actor>> {
    let admin = ctx.admin_session().await?;
    if args.shared_actor {
        return Ok(vec![(admin, ctx.common.project.clone()); n]);
    }
    let stamp = chrono::Utc::now().format("%H%M%S");
    let mut out = Vec::with_capacity(n);
    match ctx.flavor {
        Flavor::Palisade => {
            // ≤ 10 logins per source address stays under 20 logins/min/IP.
            let sources = ctx.sources(n.div_ceil(10) as u32)?;
            for i in 0..n {
                let email = format!("lt-audit-{stamp}-{i}@loadtest.test");
                let password = format!("Lt-{}-q7!Z", uuid::Uuid::new_v4().simple());
                let reply = admin.send(&ctx.flavor.create_user(&email, &password)).await?;
                if !reply.status.is_success() {
                    bail!("creating audit user {i} answered {} (use --shared-actor without POST /users)", reply.status);
                }
                let source = sources.get(i % sources.len().max(1)).copied().flatten();
                let http = client::client(source, 2)?;
                out.push((client::must_login(&http, &ctx.base, &email, &password).await?, ctx.common.project.clone()));
            }
        }
        Flavor::Z4j => {
            for i in 0..n {
                let slug = format!("lt-audit-{i}");
                provision::ensure_project(&admin, ctx.flavor, &slug).await?;
                out.push((admin.clone(), slug));
            }
        }
    }
    Ok(out)
}

pub async fn run(ctx: &RunCtx, args: &AuditArgs) -> anyhow::Result<Summary> {
    let concurrency = safety::cap("--concurrency", args.concurrency.max(1), safety::MAX_CONCURRENCY)?;
    let duration = safety::cap_duration("--duration", args.duration)?;
    ctx.fd_budget.ensure(concurrency * 2 + 8, "--concurrency")?;
    if ctx.common.password.is_empty() {
        bail!("no admin password: pass --password or set LOADTEST_PASSWORD");
    }
    ctx.phase.set("setup");
    let actors = actors(ctx, args, concurrency).await?;
    // One probe first, so a target without the route fails fast and clearly.
    if let Some((session, project)) = actors.first() {
        let call = ctx.flavor.audited_action(project, 0);
        let probe = session.send(&call).await?;
        if !probe.status.is_success() {
            bail!("the audited action {} answered {}", call.route, probe.status);
        }
    }
    ctx.phase.set("run");
    let start = Instant::now();
    let deadline = start + duration;
    let seq = Arc::new(AtomicU64::new(1));
    let before = ctx.metrics.snapshot();
    let mut workers = tokio::task::JoinSet::new();
    for (session, project) in actors {
        let (m, seq, flavor) = (ctx.metrics.clone(), seq.clone(), ctx.flavor);
        workers.spawn(async move {
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                session.timed(&flavor.audited_action(&project, n), &m).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let after = ctx.metrics.snapshot();
    let appended = after.get(Counter::HttpOk) - before.get(Counter::HttpOk);
    let mut summary = Summary::new("audit");
    summary.http = ctx.http_routes(elapsed, true).into_iter().collect();
    summary.details = json!({
        "action": ctx.flavor.audited_action(&ctx.common.project, 0).route,
        "concurrency": concurrency,
        "actors": if args.shared_actor { "shared" } else { "one per worker" },
        "audit_appends": appended,
        "audit_appends_per_s": rate(appended, elapsed),
        "failed": after.get(Counter::HttpFailed) - before.get(Counter::HttpFailed),
    });
    Ok(summary)
}
