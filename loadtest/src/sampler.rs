//! The once-a-second ticker: builds the time series, samples the brain's
//! `/proc` figures, and draws the progress bar (or a plain status line every
//! few seconds when stderr is not a terminal, e.g. in CI logs).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::series::Point;
use crate::metrics::Metrics;
use crate::proc_stats::{ProcSample, ProcWatch};

const TICK: Duration = Duration::from_secs(1);
const PLAIN_EVERY: u64 = 5;

/// The label of the phase in progress, shared with the scenario.
#[derive(Clone, Default)]
pub struct PhaseLabel(Arc<Mutex<String>>);

impl PhaseLabel {
    pub fn set(&self, phase: &str) {
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.clear();
        g.push_str(phase);
    }

    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

pub struct SamplerOutput {
    pub points: Vec<Point>,
    pub brain_peak: ProcSample,
    pub brain_last: ProcSample,
}

pub struct Sampler {
    stop: watch::Sender<bool>,
    handle: JoinHandle<SamplerOutput>,
}

pub struct SamplerConfig {
    pub metrics: Arc<Metrics>,
    pub phase: PhaseLabel,
    pub planned: Duration,
    /// Histograms merged into the plotted latency (see `Metrics::take_interval`).
    pub latency_prefixes: Vec<String>,
    pub brain: Option<ProcWatch>,
    pub progress: bool,
}

impl Sampler {
    pub fn spawn(cfg: SamplerConfig) -> Sampler {
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(run(cfg, stop_rx));
        Sampler { stop, handle }
    }

    pub async fn finish(self) -> SamplerOutput {
        let _ = self.stop.send(true);
        match self.handle.await {
            Ok(out) => out,
            Err(_) => SamplerOutput {
                points: Vec::new(),
                brain_peak: ProcSample::default(),
                brain_last: ProcSample::default(),
            },
        }
    }
}

fn progress_bar(planned: Duration, enabled: bool) -> Option<ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(planned.as_secs().max(1));
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len}s {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

fn status_line(p: &Point) -> String {
    let mut s = format!("{:<8} conns={:<6}", p.phase, p.connections);
    if p.handshakes_per_s > 0.0 {
        s += &format!(" hs/s={:.0}", p.handshakes_per_s);
    }
    if p.frames_sent_per_s > 0.0 || p.events_acked_per_s > 0.0 {
        s += &format!(" frames/s={:.0} acked/s={:.0}", p.frames_sent_per_s, p.events_acked_per_s);
    }
    if p.http_rps > 0.0 {
        s += &format!(" req/s={:.0}", p.http_rps);
    }
    s += &format!(" p99={:.1}ms", p.lat_p99_ms);
    if p.rss_bytes > 0 {
        s += &format!(" brain rss={:.0}MiB cpu={:.0}%", p.rss_bytes as f64 / 1_048_576.0, p.cpu_percent);
    }
    s
}

async fn run(mut cfg: SamplerConfig, mut stop: watch::Receiver<bool>) -> SamplerOutput {
    let bar = progress_bar(cfg.planned, cfg.progress);
    let prefixes: Vec<&str> = cfg.latency_prefixes.iter().map(String::as_str).collect();
    let start = cfg.metrics.started;
    let mut prev = cfg.metrics.snapshot();
    let mut points = Vec::new();
    let mut peak = ProcSample::default();
    let mut last = ProcSample::default();
    if let Some(w) = cfg.brain.as_mut() {
        let s = w.sample();
        w.cpu_percent(&s);
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        n += 1;
        let now = cfg.metrics.snapshot();
        let interval = cfg.metrics.take_interval(&prefixes);
        let brain = cfg.brain.as_mut().map(|w| {
            let s = w.sample();
            let cpu = w.cpu_percent(&s);
            (s, cpu)
        });
        if let Some((s, _)) = &brain {
            if s.rss_bytes > peak.rss_bytes {
                peak = *s;
            }
            last = *s;
        }
        let t = Instant::now().saturating_duration_since(start).as_secs_f64();
        let phase = cfg.phase.get();
        let point = Point::build(
            t,
            &phase,
            cfg.metrics.connections(),
            &prev,
            &now,
            &interval,
            brain.as_ref().map(|(s, c)| (s, *c)),
        );
        match &bar {
            Some(bar) => {
                bar.set_position(n);
                bar.set_message(status_line(&point));
            }
            None if cfg.progress && n.is_multiple_of(PLAIN_EVERY) => eprintln!("[{t:>6.1}s] {}", status_line(&point)),
            None => {}
        }
        points.push(point);
        prev = now;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    SamplerOutput { points, brain_peak: peak, brain_last: last }
}
