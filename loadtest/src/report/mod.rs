//! The JSON summary (the shape of engineering-anchors §4.3, plus details)
//! and where reports are written.

pub mod html;
pub mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::metrics::series::Point;
use crate::metrics::Percentiles;
use crate::proc_stats::ProcSample;
use crate::safety::FdBudget;

/// Requests per second and latency of one route.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Route {
    pub count: u64,
    pub rps: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    /// Closed-model runs only: p99 after HdrHistogram's correction with the
    /// mean service time as the expected interval (see `metrics::latency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_corrected: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_bytes: u64,
    pub kernel: String,
    /// `/proc/loadavg` when the report was written: on a shared box other
    /// work (builds) competes with both the brain and the generator.
    pub loadavg: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let mem_kib: u64 =
            field(&meminfo, "MemTotal").split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model: field(&cpuinfo, "model name"),
            mem_total_bytes: mem_kib * 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Brain {
    pub pids: Vec<u32>,
    pub rss_bytes_peak: u64,
    pub rss_bytes_last: u64,
    pub pss_bytes_last: u64,
    pub cpu_percent_mean: f64,
    pub cpu_percent_max: f64,
    pub fds_last: u64,
}

impl Brain {
    pub fn from_samples(pids: Vec<u32>, peak: &ProcSample, last: &ProcSample, points: &[Point]) -> Brain {
        let cpu = crate::metrics::series::stats(points.iter().map(|p| p.cpu_percent));
        Brain {
            pids,
            rss_bytes_peak: peak.rss_bytes,
            rss_bytes_last: last.rss_bytes,
            pss_bytes_last: last.pss_bytes,
            cpu_percent_mean: cpu.mean,
            cpu_percent_max: cpu.max,
            fds_last: last.fds,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub target: String,
    pub url: String,
    pub started_at: String,
    pub duration_s: f64,
    pub command: String,
    pub machine: Machine,
    pub connections: i64,
    pub handshakes_per_s: f64,
    pub frames_verified_per_s: Option<f64>,
    pub frames_rejected_per_s: Option<f64>,
    pub events_committed_per_s: Option<f64>,
    pub lag_ms: Option<Percentiles>,
    pub cmd_rtt_ms: Option<Percentiles>,
    pub rss_bytes_per_conn: Option<f64>,
    pub http: BTreeMap<String, Route>,
    pub errors: BTreeMap<String, u64>,
    pub counters: BTreeMap<String, u64>,
    pub brain: Option<Brain>,
    pub fd_budget: Option<FdBudget>,
    /// Scenario-specific figures (phases, limits, per-kind counts).
    pub details: serde_json::Value,
    pub notes: Vec<String>,
}

impl Summary {
    pub fn new(scenario: &str) -> Summary {
        Summary { scenario: scenario.to_owned(), ..Summary::default() }
    }
}

/// `<out>` when given, else `loadtest/out/<scenario>-<timestamp>` (or
/// `./out/…` when not run from the repository root).
pub fn out_dir(out: Option<&Path>, scenario: &str) -> PathBuf {
    if let Some(o) = out {
        return o.to_path_buf();
    }
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let root =
        if Path::new("loadtest/Cargo.toml").exists() { PathBuf::from("loadtest/out") } else { PathBuf::from("out") };
    root.join(format!("{scenario}-{stamp}"))
}

/// Writes `summary.json`, `series.json` and `report.html` into `dir`.
pub fn write(dir: &Path, summary: &Summary, points: &[Point]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(summary)?)?;
    std::fs::write(dir.join("series.json"), serde_json::to_vec(points)?)?;
    std::fs::write(dir.join("report.html"), html::render(summary, points))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_is_detected() {
        let m = Machine::detect();
        assert!(m.nproc >= 1);
        assert!(m.mem_total_bytes > 0);
    }

    #[test]
    fn summary_has_the_anchor_shape() {
        let mut s = Summary::new("http-get");
        s.http.insert("GET /auth/me".into(), Route { rps: 10.0, p99: 1.5, ..Route::default() });
        let v = serde_json::to_value(&s).unwrap();
        for key in [
            "connections",
            "frames_verified_per_s",
            "frames_rejected_per_s",
            "events_committed_per_s",
            "lag_ms",
            "cmd_rtt_ms",
            "rss_bytes_per_conn",
            "http",
            "errors",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["http"]["GET /auth/me"]["rps"], 10.0);
    }

    #[test]
    fn writes_all_three_files() {
        let dir = std::env::temp_dir().join(format!("lt-report-{}", std::process::id()));
        let points = vec![Point { t_s: 1.0, phase: "steady".into(), ..Point::default() }];
        write(&dir, &Summary::new("audit"), &points).unwrap();
        for f in ["summary.json", "series.json", "report.html"] {
            assert!(dir.join(f).exists(), "{f}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
