//! What every scenario shares: the checked target, the metrics, the brain's
//! processes, the sampler, and the final report.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use url::{Host, Url};

use crate::cli::Common;
use crate::client::{self, Session};
use crate::flavor::Flavor;
use crate::metrics::{Counter, Metrics};
use crate::proc_stats::{self, ProcWatch};
use crate::report::{self, Brain, Machine, Route, Summary};
use crate::safety::{self, FdBudget};
use crate::sampler::{PhaseLabel, Sampler, SamplerConfig};

static ADMIN: tokio::sync::Mutex<Vec<(String, Session)>> = tokio::sync::Mutex::const_new(Vec::new());

pub async fn admin_session(base: &Url, common: &Common) -> anyhow::Result<Session> {
    if common.password.is_empty() {
        bail!("no admin password: pass --password or set LOADTEST_PASSWORD");
    }
    let key = format!("{base} {}", common.email);
    let mut cache = ADMIN.lock().await;
    if let Some((_, s)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(s.clone());
    }
    // Idle-pool bound only; scenarios run up to MAX_CONCURRENCY requests on it.
    let http = client::client(None, safety::MAX_CONCURRENCY)?;
    let session = client::must_login(&http, base, &common.email, &common.password).await?;
    cache.push((key, session.clone()));
    Ok(session)
}

pub struct RunCtx {
    pub common: Common,
    pub flavor: Flavor,
    pub base: Url,
    pub metrics: Arc<Metrics>,
    pub phase: PhaseLabel,
    pub fd_budget: FdBudget,
    pub brain_pids: Option<Vec<u32>>,
    started_at: chrono::DateTime<chrono::Utc>,
    started: Instant,
}

impl RunCtx {
    pub fn new(common: &Common) -> anyhow::Result<RunCtx> {
        let base = Url::parse(&common.url).with_context(|| format!("--url {:?}", common.url))?;
        safety::check_target(&base, common.allow_remote)?;
        let fd_budget = safety::raise_fd_limit()?;
        eprintln!("{}", fd_budget.describe());
        let port = base.port_or_known_default().unwrap_or(80);
        let brain_pids = match proc_stats::resolve(common.brain_pid.as_deref(), port) {
            Ok(pids) => {
                eprintln!("brain processes (listening on :{port}): {pids:?}");
                Some(pids)
            }
            Err(e) => {
                eprintln!("not sampling brain RSS/CPU: {e:#}");
                None
            }
        };
        Ok(RunCtx {
            common: common.clone(),
            flavor: common.target,
            base,
            metrics: Arc::new(Metrics::new()),
            phase: PhaseLabel::default(),
            fd_budget,
            brain_pids,
            started_at: chrono::Utc::now(),
            started: Instant::now(),
        })
    }

    pub fn target_is_v4_loopback(&self) -> bool {
        matches!(self.base.host(), Some(Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(self.base.host(), Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost"))
    }

    /// Loopback source addresses for `count` simulated clients, or none
    /// when the target is not on IPv4 loopback.
    pub fn sources(&self, count: u32) -> anyhow::Result<Vec<Option<IpAddr>>> {
        if !self.target_is_v4_loopback() {
            return Ok(vec![None]);
        }
        Ok(safety::source_addrs(count)?.into_iter().map(Some).collect())
    }

    /// The admin session, logged in once per process and target: every
    /// scenario (and `smoke`, which runs them all) reuses it, so the admin
    /// spends one login of 127.0.0.1's per-IP budget, not one per scenario.
    pub async fn admin_session(&self) -> anyhow::Result<Session> {
        admin_session(&self.base, &self.common).await
    }

    pub fn start_sampler(&self, planned: Duration, latency_prefixes: &[&str]) -> Sampler {
        Sampler::spawn(SamplerConfig {
            metrics: self.metrics.clone(),
            phase: self.phase.clone(),
            planned,
            latency_prefixes: latency_prefixes.iter().map(|s| (*s).to_owned()).collect(),
            brain: self.brain_pids.clone().map(ProcWatch::new),
            progress: !self.common.no_progress,
        })
    }

    /// Per-route figures from the `http:<route>` histograms over `elapsed`;
    /// `closed_model` adds the corrected p99.
    pub fn http_routes(&self, elapsed: Duration, closed_model: bool) -> Vec<(String, Route)> {
        let mut out = Vec::new();
        for name in self.metrics.histogram_names() {
            let Some(route) = name.strip_prefix("http:") else { continue };
            let h = self.metrics.histogram(&name);
            let p = h.percentiles();
            let corrected = closed_model.then(|| h.corrected(h.mean_duration()).percentiles().p99);
            out.push((
                route.to_owned(),
                Route {
                    count: p.count,
                    rps: crate::metrics::rate(p.count, elapsed),
                    p50: p.p50,
                    p95: p.p95,
                    p99: p.p99,
                    max: p.max,
                    p99_corrected: corrected,
                },
            ));
        }
        out
    }

    /// Fills the shared fields, writes the report files, prints the summary.
    pub async fn finish(&self, sampler: Sampler, mut summary: Summary) -> anyhow::Result<Summary> {
        let out = sampler.finish().await;
        summary.target = self.flavor.name().to_owned();
        summary.url = self.base.to_string();
        summary.started_at = self.started_at.to_rfc3339();
        summary.duration_s = self.started.elapsed().as_secs_f64();
        summary.command = std::env::args().collect::<Vec<_>>().join(" ");
        summary.machine = Machine::detect();
        summary.errors = self.metrics.errors();
        summary.counters =
            Counter::ALL.iter().map(|c| (c.name().to_owned(), self.metrics.get(*c))).filter(|(_, v)| *v > 0).collect();
        summary.fd_budget = Some(self.fd_budget);
        summary.brain = self
            .brain_pids
            .clone()
            .map(|pids| Brain::from_samples(pids, &out.brain_peak, &out.brain_last, &out.points));
        let dir = report::out_dir(self.common.out.as_deref(), &summary.scenario);
        report::write(&dir, &summary, &out.points)?;
        // In smoke runs the summaries stay in their files; the smoke table is the output.
        if !self.common.smoke {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        eprintln!("report: {}", dir.join("report.html").display());
        Ok(summary)
    }
}
