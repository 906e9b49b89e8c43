//! Address classification for the outbound policy.
//!
//! The tables are explicit rather than built on `Ipv4Addr::is_private` and
//! friends: standard-library predicates drift between releases (z4j's
//! effective block list changed with the Python patch version), and a
//! security boundary must not move when the toolchain is upgraded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// IPv4 destinations never dialled by default: special-purpose blocks from
/// the IANA registry that are either non-routable, shared/internal (CGNAT,
/// link-local incl. cloud metadata), documentation/benchmarking, anycast
/// infrastructure nobody hosts webhooks on, multicast, or reserved.
const V4_DENY: [(u32, u8); 18] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0x6440_0000, 10), // 100.64.0.0/10 CGNAT (also Alibaba metadata)
    (0x7f00_0000, 8),  // 127.0.0.0/8
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local, cloud metadata
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 TEST-NET-1
    (0xc01f_c400, 24), // 192.31.196.0/24 AS112-v4
    (0xc034_c100, 24), // 192.52.193.0/24 AMT
    (0xc058_6300, 24), // 192.88.99.0/24 deprecated 6to4 relay anycast
    (0xc0a8_0000, 16), // 192.168.0.0/16
    (0xc0af_3000, 24), // 192.175.48.0/24 AS112 direct delegation
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 TEST-NET-2
    (0xcb00_7100, 24), // 203.0.113.0/24 TEST-NET-3
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, incl. 255.255.255.255
];

/// Inside 2000::/3 (the only IPv6 space we dial) these are still not
/// ordinary unicast hosts.
const V6_GLOBAL_DENY: [(u128, u8); 4] = [
    (0x2001_0000 << 96, 23), // IETF protocol assignments, incl. Teredo and ORCHIDv2
    (0x2001_0db8 << 96, 32), // documentation
    (0x2002 << 112, 16),     // 6to4: deprecated, tunnels to an arbitrary IPv4
    (0x3fff << 112, 20),     // documentation (RFC 9637)
];

/// NAT64 well-known prefix 64:ff9b::/96. Kept dialable only when the
/// embedded IPv4 is itself public, so IPv6-only hosts behind DNS64 still
/// reach IPv4-only receivers.
const NAT64_WKP: (u128, u8) = (0x0064_ff9b << 96, 96);

/// Cloud metadata endpoints. They stay refused even when an operator's
/// allow-list covers them: an allow-list meant for a private receiver must
/// never hand out instance credentials.
const V4_METADATA: [u32; 3] = [
    0xa9fe_a9fe, // 169.254.169.254 AWS, GCP, Azure, OpenStack
    0xa9fe_aa02, // 169.254.170.2 ECS task credentials
    0x6464_64c8, // 100.100.100.200 Alibaba
];
const V6_METADATA: [u128; 1] = [0xfd00_0ec2_0000_0000_0000_0000_0000_0254];

fn in_v4(addr: u32, (net, len): (u32, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    addr & mask == net & mask
}

fn in_v6(addr: u128, (net, len): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    addr & mask == net & mask
}

fn nat64_embedded(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(addr);
    // Truncation is the point: the low 32 bits are the embedded IPv4.
    in_v6(bits, NAT64_WKP).then(|| Ipv4Addr::from(bits as u32))
}

fn v4_routable(addr: Ipv4Addr) -> bool {
    let bits = u32::from(addr);
    !V4_DENY.iter().any(|&net| in_v4(bits, net))
}

fn v6_routable(addr: Ipv6Addr) -> bool {
    if let Some(v4) = nat64_embedded(addr) {
        return v4_routable(v4);
    }
    let bits = u128::from(addr);
    // Allow-listing 2000::/3 instead of deny-listing the rest is what closes
    // z4j's fec0::/10 gap and covers every IPv4-mapped/compatible form, ULA,
    // link-local, multicast and whatever IANA assigns outside it later.
    in_v6(bits, (0x2000 << 112, 3)) && !V6_GLOBAL_DENY.iter().any(|&net| in_v6(bits, net))
}

/// Whether `addr` is an ordinary public unicast destination that the policy
/// dials without operator configuration.
///
/// IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible (`::/96`) addresses are
/// refused even when the embedded IPv4 is public: no legitimate DNS answer
/// uses them, and dual-stack sockets would turn them into IPv4 dials that
/// bypass an IPv6-only view of the target.
pub fn is_globally_routable(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4_routable(v4),
        IpAddr::V6(v6) => v6_routable(v6),
    }
}

/// Refused regardless of operator configuration.
fn always_denied(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            V4_METADATA.contains(&bits)
                || in_v4(bits, (0, 8))
                || in_v4(bits, (0xe000_0000, 4))
                || in_v4(bits, (0xf000_0000, 4))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            bits == 0
                || V6_METADATA.contains(&bits)
                || in_v6(bits, (0xff << 120, 8))
                || in_v6(bits, (0xffff << 32, 96))
                || nat64_embedded(v6).is_some_and(|v4| always_denied(IpAddr::V4(v4)))
        }
    }
}

/// The policy decision for one address: public, or explicitly opened by the
/// operator. Loopback needs its own switch *and* a listed range: an
/// allow-list written for a private subnet must not expose local services
/// such as the database or the brain's own admin API, and the switch alone
/// must not open every port-matching service on 127.0.0.0/8.
pub(super) fn address_allowed(addr: IpAddr, allowed_cidrs: &[IpNet], allow_loopback: bool) -> bool {
    if always_denied(addr) {
        return false;
    }
    if addr.is_loopback() {
        return allow_loopback && allowed_cidrs.iter().any(|net| net.contains(&addr));
    }
    is_globally_routable(addr) || allowed_cidrs.iter().any(|net| net.contains(&addr))
}
