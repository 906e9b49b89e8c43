//! `audit`: audited mutations at a fixed concurrency (closed model). A 2xx
//! answer counts as one audit append: both brains write the audit row in
//! the request (Palisade acknowledges only after the row is committed).
//! The action is `PATCH /auth/me` on Palisade and a project description
//! edit on z4j, which does not audit profile edits (see `flavor`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::AuditArgs;
use crate::metrics::{rate, Counter};
use crate::report::Summary;
use crate::run::RunCtx;
use crate::{client, safety};

pub fn smoke_scale(args: &mut AuditArgs) {
    args.concurrency = args.concurrency.min(2);
    args.duration = args.duration.min(2.0);
}

pub fn planned(args: &AuditArgs) -> Duration {
    Duration::from_secs_f64(args.duration)
}

pub async fn run(ctx: &RunCtx, args: &AuditArgs) -> anyhow::Result<Summary> {
    let concurrency = safety::cap("--concurrency", args.concurrency.max(1), safety::MAX_CONCURRENCY)?;
    let duration = safety::cap_duration("--duration", args.duration)?;
    ctx.fd_budget.ensure(concurrency + 8, "--concurrency")?;
    let http = client::client(None, concurrency)?;
    let session = client::must_login(&http, &ctx.base, &ctx.common.email, &ctx.common.password).await?;
    // One probe first, so a target without the route fails fast and clearly.
    let probe = session.send(&ctx.flavor.audited_action(&ctx.common.project, 0)).await?;
    if !probe.status.is_success() {
        anyhow::bail!(
            "the audited action {} answered {}",
            ctx.flavor.audited_action(&ctx.common.project, 0).route,
            probe.status
        );
    }
    ctx.phase.set("run");
    let start = Instant::now();
    let deadline = start + duration;
    let seq = Arc::new(AtomicU64::new(1));
    let before = ctx.metrics.snapshot();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (s, m, seq) = (session.clone(), ctx.metrics.clone(), seq.clone());
        let (flavor, project) = (ctx.flavor, ctx.common.project.clone());
        workers.spawn(async move {
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                s.timed(&flavor.audited_action(&project, n), &m).await;
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
        "audit_appends": appended,
        "audit_appends_per_s": rate(appended, elapsed),
        "failed": after.get(Counter::HttpFailed) - before.get(Counter::HttpFailed),
    });
    Ok(summary)
}
