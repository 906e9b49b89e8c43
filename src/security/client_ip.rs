//! Which address a request really came from.
//!
//! The socket peer is the truth unless that peer is a proxy the operator
//! listed in `PALISADE_TRUSTED_PROXIES`; only then is `X-Forwarded-For`
//! believed, walked from the right, skipping trusted hops. A malformed chain
//! is ignored rather than half-parsed, so a client cannot smuggle an address
//! past the proxy by appending junk.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("PALISADE_TRUSTED_PROXIES entry {0:?} is not an IP address or CIDR")]
pub struct ProxyParseError(pub String);

impl TrustedProxies {
    /// Comma-separated CIDRs or bare addresses (one host each).
    pub fn parse(list: &str) -> Result<TrustedProxies, ProxyParseError> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => return Err(ProxyParseError(item.to_string())),
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// True when a CIDR covers every address, which makes XFF fully
    /// client-controlled; `check --deploy` warns about it.
    pub fn trusts_everything(&self) -> bool {
        self.nets.iter().any(|n| n.prefix_len() == 0)
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn resolve(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusted(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut chain = Vec::new();
        for hop in header.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(canonical(ip)),
                Err(_) => return peer,
            }
        }
        for ip in chain.iter().rev() {
            if !self.trusted(*ip) {
                return *ip;
            }
        }
        chain.first().copied().unwrap_or(peer)
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the same client as `a.b.c.d`;
/// folding it keeps one rate-limit key per client.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_wins() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(t.resolve(ip("203.0.113.9"), Some("1.2.3.4")), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().resolve(ip("127.0.0.1"), Some("1.2.3.4")), ip("127.0.0.1"));
    }

    #[test]
    fn walks_from_the_right_skipping_trusted() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        assert_eq!(t.resolve(ip("10.0.0.1"), Some("6.6.6.6, 1.2.3.4, 192.168.1.1")), ip("1.2.3.4"));
        assert_eq!(t.resolve(ip("10.0.0.1"), Some("10.1.1.1, 10.2.2.2")), ip("10.1.1.1"));
        assert_eq!(t.resolve(ip("10.0.0.1"), None), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_chain_falls_back_to_peer() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(t.resolve(ip("10.0.0.1"), Some("1.2.3.4, junk")), ip("10.0.0.1"));
        assert_eq!(t.resolve(ip("10.0.0.1"), Some("1.2.3.4,,")), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_addresses_fold() {
        let t = TrustedProxies::parse("127.0.0.1").unwrap();
        assert_eq!(t.resolve(ip("::ffff:127.0.0.1"), Some("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert!(TrustedProxies::parse("0.0.0.0/0").unwrap().trusts_everything());
        assert!(TrustedProxies::parse("not-an-ip").is_err());
    }
}
