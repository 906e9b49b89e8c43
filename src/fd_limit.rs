//! The open-file limit: every agent connection is a socket, so a fleet of
//! thousands needs more descriptors than the common default soft limit
//! (1,024). At start-up `serve` raises the soft limit to the hard limit,
//! which needs no privilege, and warns when even that is small.

/// Below this many descriptors the operator is told to raise the hard limit.
pub const RECOMMENDED: u64 = 16_384;

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now
/// in force.
pub fn raise() -> std::io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let wanted = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = wanted;
    }
    Ok(lim.rlim_cur)
}

/// `raise`, logged: the limit in force, and a warning when it is small.
pub fn raise_and_report() {
    match raise() {
        Ok(n) if n < RECOMMENDED => tracing::warn!(
            limit = n,
            recommended = RECOMMENDED,
            "the open-file limit caps agent connections (one descriptor each); raise the hard limit (LimitNOFILE= in systemd, --ulimit nofile= in Docker)"
        ),
        Ok(n) => tracing::info!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not read or raise the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_reaches_the_hard_limit_and_is_idempotent() {
        let first = super::raise().unwrap();
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(super::raise().unwrap(), first);
    }
}
