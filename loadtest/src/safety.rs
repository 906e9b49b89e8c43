//! Guard rails: which addresses may be targeted, hard caps on every count
//! and duration, and the file-descriptor budget.
//!
//! The harness generates real load, so it refuses anything but loopback
//! unless the operator says otherwise, and every loop it runs is bounded in
//! both count and time so a mistyped flag cannot turn into an unbounded run.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{bail, Context};
use url::{Host, Url};

/// Hard caps. Flags above them are refused, not clamped, so a run never does
/// less than the operator believes.
pub const MAX_AGENTS: usize = 20_000;
pub const MAX_RUN: Duration = Duration::from_secs(3_600);
pub const MAX_CONCURRENCY: usize = 4_096;
pub const MAX_USERS: usize = 2_000;
pub const MAX_RATE: f64 = 1_000_000.0;
pub const MAX_SOURCE_ADDRS: u32 = 250;

/// Checks the target URL: http(s) only, and a loopback host unless
/// `allow_remote`. Host names other than `localhost` are refused without
/// `--allow-remote` because resolving them could land anywhere.
pub fn check_target(url: &Url, allow_remote: bool) -> anyhow::Result<()> {
    if !matches!(url.scheme(), "http" | "https") {
        bail!("target URL must be http:// or https://, not {}", url.scheme());
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => bail!("target URL has no host"),
    };
    if !loopback && !allow_remote {
        bail!(
            "refusing to load {url}: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed \
             without --allow-remote"
        );
    }
    Ok(())
}

/// Refuses a value above its cap with a message naming the flag.
pub fn cap<T: PartialOrd + std::fmt::Display>(flag: &str, value: T, max: T) -> anyhow::Result<T> {
    if value > max {
        bail!("{flag} = {value} exceeds the hard cap of {max}");
    }
    Ok(value)
}

pub fn cap_duration(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        bail!("{flag} must be a non-negative number of seconds");
    }
    let d = Duration::from_secs_f64(secs);
    if d > MAX_RUN {
        bail!("{flag} = {secs} s exceeds the hard cap of {} s", MAX_RUN.as_secs());
    }
    Ok(d)
}

/// Loopback source addresses to spread clients over: `127.0.0.2`,
/// `127.0.0.3`, … (127.0.0.1 stays for the admin session, so attackers and
/// users never use up its login budget). Linux routes all of 127.0.0.0/8 to `lo`, so binding the
/// client socket to one of these gives the brain a distinct client IP per
/// address without any proxy trust — per-IP limits (600 agent connects/min,
/// 20 logins/min) then apply per address, as they would to distinct hosts.
pub fn source_addrs(count: u32) -> anyhow::Result<Vec<IpAddr>> {
    let count = cap("source addresses", count.max(1), MAX_SOURCE_ADDRS)?;
    Ok((2..=count + 1).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8))).collect())
}

/// The file-descriptor budget after raising the soft limit to the hard one.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FdBudget {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
    pub open_now: u64,
    /// Sockets this process can still open, with a margin for files, the
    /// HTTP pool and the runtime.
    pub sockets_available: u64,
}

const FD_MARGIN: u64 = 64;

/// Raises RLIMIT_NOFILE's soft limit to the hard limit (no privilege needed)
/// and reports how many sockets are left.
pub fn raise_fd_limit() -> anyhow::Result<FdBudget> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    let soft_before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: as above.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        if rc == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    let open_now = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    Ok(FdBudget {
        soft_before,
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
        open_now,
        sockets_available: lim.rlim_cur.saturating_sub(open_now + FD_MARGIN),
    })
}

impl FdBudget {
    pub fn describe(&self) -> String {
        format!(
            "fd limit raised {} -> {} (hard {}); {} open; room for {} sockets",
            self.soft_before, self.soft, self.hard, self.open_now, self.sockets_available
        )
    }

    pub fn ensure(&self, wanted: usize, what: &str) -> anyhow::Result<()> {
        if wanted as u64 > self.sockets_available {
            bail!(
                "{what} needs {wanted} sockets but only {} are available ({}); raise `ulimit -Hn`",
                self.sockets_available,
                self.describe()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn loopback_only_by_default() {
        assert!(check_target(&url("http://127.0.0.1:7700"), false).is_ok());
        assert!(check_target(&url("http://127.1.2.3:7700"), false).is_ok());
        assert!(check_target(&url("http://[::1]:7700"), false).is_ok());
        assert!(check_target(&url("http://localhost:7700"), false).is_ok());
        assert!(check_target(&url("http://10.0.0.1:7700"), false).is_err());
        assert!(check_target(&url("http://example.com"), false).is_err());
        assert!(check_target(&url("http://2130706433"), false).is_ok(), "decimal form normalises to 127.0.0.1");
        assert!(check_target(&url("http://10.0.0.1:7700"), true).is_ok());
        assert!(check_target(&url("ftp://127.0.0.1"), true).is_err());
    }

    #[test]
    fn caps_refuse_instead_of_clamping() {
        assert_eq!(cap("--agents", 10, MAX_AGENTS).unwrap(), 10);
        assert!(cap("--agents", MAX_AGENTS + 1, MAX_AGENTS).is_err());
        assert!(cap_duration("--duration", 3_601.0).is_err());
        assert!(cap_duration("--duration", -1.0).is_err());
        assert_eq!(cap_duration("--duration", 2.5).unwrap(), Duration::from_millis(2_500));
    }

    #[test]
    fn source_addresses_stay_in_loopback() {
        let addrs = source_addrs(3).unwrap();
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[0], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(addrs.iter().all(IpAddr::is_loopback));
        assert!(source_addrs(MAX_SOURCE_ADDRS + 1).is_err());
        assert_eq!(source_addrs(0).unwrap().len(), 1);
    }
}
