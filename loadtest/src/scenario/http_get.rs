//! `http-get`: one authenticated GET, closed model at a fixed concurrency
//! (max throughput; raw and corrected p99) or open model at a fixed rate
//! (latency from the schedule).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::cli::HttpGetArgs;
use crate::client::{self, Cookies, Session};
use crate::flavor::Call;
use crate::metrics::Counter;
use crate::report::Summary;
use crate::run::RunCtx;
use crate::safety;

pub fn smoke_scale(args: &mut HttpGetArgs) {
    args.concurrency = args.concurrency.min(2);
    args.duration = args.duration.min(2.0);
    args.rate = args.rate.map(|r| r.min(50.0));
}

pub fn planned(args: &HttpGetArgs) -> Duration {
    Duration::from_secs_f64(args.duration)
}

fn route_of(path: &str) -> String {
    format!("GET {}", path.split('?').next().unwrap_or(path))
}

pub async fn run(ctx: &RunCtx, args: &HttpGetArgs) -> anyhow::Result<Summary> {
    let concurrency = safety::cap("--concurrency", args.concurrency.max(1), safety::MAX_CONCURRENCY)?;
    let duration = safety::cap_duration("--duration", args.duration)?;
    if let Some(r) = args.rate {
        safety::cap("--rate", r, safety::MAX_RATE)?;
    }
    ctx.fd_budget.ensure(concurrency + 8, "--concurrency")?;
    let session = if args.anonymous {
        Session { client: client::client(None, concurrency)?, base: ctx.base.clone(), cookies: Cookies::default() }
    } else {
        ctx.admin_session().await?
    };
    let call = Arc::new(Call {
        method: reqwest::Method::GET,
        path: args.path.clone(),
        body: None,
        route: route_of(&args.path),
    });
    // The login above is not part of the measurement.
    ctx.metrics.reset_histograms(&["http:"]);
    ctx.phase.set("run");
    let start = Instant::now();
    let deadline = start + duration;
    let before = ctx.metrics.snapshot();
    match args.rate {
        None => {
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..concurrency {
                let (s, c, m) = (session.clone(), call.clone(), ctx.metrics.clone());
                workers.spawn(async move {
                    while Instant::now() < deadline {
                        s.timed(&c, &m).await;
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        }
        Some(rate) => open_model(ctx, &session, &call, rate, concurrency, deadline).await,
    }
    let elapsed = start.elapsed();
    let after = ctx.metrics.snapshot();
    let mut summary = Summary::new("http-get");
    summary.http = ctx.http_routes(elapsed, args.rate.is_none()).into_iter().collect();
    summary.details = json!({
        "path": args.path,
        "model": if args.rate.is_some() { "open" } else { "closed" },
        "concurrency": concurrency,
        "rate": args.rate,
        "ok_per_s": after.rate_since(&before, Counter::HttpOk),
        "failed": after.get(Counter::HttpFailed) - before.get(Counter::HttpFailed),
    });
    if args.rate.is_none() {
        summary.notes.push(
            "closed model: p99 is service time; p99_corrected back-fills stalls with the mean service time as \
             the expected interval. For latency claims use --rate (open model)."
                .into(),
        );
    }
    Ok(summary)
}

/// Fixed arrival rate; at most `concurrency` requests outstanding. When the
/// brain falls behind, the schedule does not wait for it: requests queue
/// for a permit and their latency still counts from their slot.
async fn open_model(
    ctx: &RunCtx,
    session: &Session,
    call: &Arc<Call>,
    rate: f64,
    concurrency: usize,
    deadline: Instant,
) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let permits = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut k: u32 = 0;
    loop {
        let intended = start + interval * k;
        if intended >= deadline {
            break;
        }
        k = k.saturating_add(1);
        tokio::time::sleep_until(intended.into()).await;
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let (s, c, m) = (session.clone(), call.clone(), ctx.metrics.clone());
        tasks.spawn(async move {
            s.timed_from(&c, &m, Some(intended)).await;
            drop(permit);
        });
        // Reap finished tasks so the set stays small on long runs.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_drop_the_query() {
        assert_eq!(route_of("/api/v1/projects/p/tasks?limit=50"), "GET /api/v1/projects/p/tasks");
        assert_eq!(route_of("/api/v1/auth/me"), "GET /api/v1/auth/me");
    }
}
