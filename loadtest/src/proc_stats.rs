//! Brain resource usage from `/proc`: RSS, PSS, CPU time and open fds of
//! the brain's processes.
//!
//! "The brain" is the set of processes holding the listening socket of the
//! target port (found through `/proc/net/tcp{,6}` and `/proc/*/fd`). That
//! picks up all of z4j's uvicorn workers and their supervisor, and excludes
//! PostgreSQL even when Palisade runs it embedded as a child, so both brains
//! are measured the same way. `--brain-pid` overrides the discovery.

use std::collections::BTreeSet;
use std::fs;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

/// One reading of the brain's processes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    pub rss_bytes: u64,
    /// Proportional set size: shared pages split between the processes, so
    /// forked workers are not double-counted (0 if unavailable).
    pub pss_bytes: u64,
    pub cpu_ticks: u64,
    pub fds: u64,
    pub processes: u64,
}

pub struct ProcWatch {
    pids: Vec<u32>,
    ticks_per_s: f64,
    last: Option<(Instant, u64)>,
}

impl ProcWatch {
    pub fn new(pids: Vec<u32>) -> ProcWatch {
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ProcWatch { pids, ticks_per_s: if tck > 0 { tck as f64 } else { 100.0 }, last: None }
    }

    pub fn sample(&self) -> ProcSample {
        let mut s = ProcSample::default();
        for &pid in &self.pids {
            let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
            s.processes += 1;
            s.rss_bytes += status_kib(&status, "VmRSS:") * 1024;
            if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
                s.pss_bytes += status_kib(&rollup, "Pss:") * 1024;
            }
            if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
                s.cpu_ticks += stat_cpu_ticks(&stat).unwrap_or(0);
            }
            s.fds += fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
        }
        s
    }

    /// CPU use since the previous call, in percent of one core.
    pub fn cpu_percent(&mut self, sample: &ProcSample) -> f64 {
        let now = Instant::now();
        let pct = match self.last {
            Some((at, ticks)) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                if dt > 0.0 {
                    sample.cpu_ticks.saturating_sub(ticks) as f64 / self.ticks_per_s / dt * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, sample.cpu_ticks));
        pct
    }
}

/// A `Key:   123 kB` line of `/proc/<pid>/status` or `smaps_rollup`, in KiB.
fn status_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`. The command name
/// (field 2) may contain spaces and parentheses, so fields are counted from
/// the last `)`.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so field 14 is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Socket inodes in LISTEN state (`0A`) on `port`, from a `/proc/net/tcp*` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local = cols.get(1)?;
            let (_, p) = local.rsplit_once(':')?;
            if !p.eq_ignore_ascii_case(&want) || cols.get(3) != Some(&"0A") {
                return None;
            }
            cols.get(9)?.parse().ok()
        })
        .collect()
}

/// The processes holding a listening socket on `port`.
pub fn find_listeners(port: u16) -> anyhow::Result<Vec<u32>> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        bail!("no process listens on port {port}");
    }
    let wanted: BTreeSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").context("reading /proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path()).ok().and_then(|t| t.to_str().map(|s| wanted.contains(s))).unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    if pids.is_empty() {
        bail!("port {port} is listening but its process is not visible (another user or namespace?)");
    }
    Ok(pids)
}

/// `--brain-pid` (comma-separated) or discovery by port.
pub fn resolve(brain_pids: Option<&str>, port: u16) -> anyhow::Result<Vec<u32>> {
    match brain_pids {
        Some(list) => list
            .split(',')
            .map(|p| p.trim().parse::<u32>().with_context(|| format!("--brain-pid: {p:?} is not a pid")))
            .collect(),
        None => find_listeners(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let status = "Name:\tpython3\nVmPeak:\t  500 kB\nVmRSS:\t  123456 kB\nThreads:\t4\n";
        assert_eq!(status_kib(status, "VmRSS:"), 123_456);
        assert_eq!(status_kib(status, "Missing:"), 0);
    }

    #[test]
    fn cpu_ticks_skip_names_with_spaces() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 100 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(325));
        assert_eq!(stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn finds_listening_inode_by_port() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 0100007F:1E14 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n   \
             1: 0100007F:1E14 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n   \
             2: 0100007F:1E15 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0\n";
        assert_eq!(listening_inodes(table, 7700), vec![4242]);
        assert_eq!(listening_inodes(table, 7701), vec![4444]);
        assert!(listening_inodes(table, 80).is_empty());
    }

    #[test]
    fn finds_our_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pids = find_listeners(port).unwrap();
        assert!(pids.contains(&std::process::id()));
        let watch = ProcWatch::new(pids);
        let s = watch.sample();
        assert!(s.rss_bytes > 0 && s.processes >= 1 && s.fds > 0);
    }

    #[test]
    fn explicit_pids_parse() {
        assert_eq!(resolve(Some("1, 2"), 0).unwrap(), vec![1, 2]);
        assert!(resolve(Some("x"), 0).is_err());
    }
}
