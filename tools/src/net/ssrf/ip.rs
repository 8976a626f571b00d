//! Address classification: which IP addresses a network tool must never reach, and why.
//!
//! [`classify`] is a pure function over one address. It is deliberately a deny list of
//! special-purpose ranges for IPv4 (the public IPv4 space has no simple prefix) and an allow
//! list for IPv6 (only global unicast `2000::/3`, minus its special-purpose blocks, passes).
//! IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
//! `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the embedded IPv4 address,
//! so `::ffff:127.0.0.1` is loopback. It does not resolve names or know about allow lists.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused: the special-purpose range it falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// `0.0.0.0` or `::`: "any address", which reaches the local host.
    Unspecified,
    /// `0.0.0.0/8`: "this network" (RFC 1122); Linux routes it to the local host.
    ThisNetwork,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// RFC 1918 private networks: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `100.64.0.0/10`: carrier-grade NAT shared address space (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16` or `fe80::/10`.
    LinkLocal,
    /// A cloud instance-metadata endpoint: `169.254.169.254`, `169.254.170.2`,
    /// `100.100.100.200`, `fd00:ec2::254`.
    CloudMetadata,
    /// `fc00::/7`: IPv6 unique local addresses (the IPv6 private networks).
    UniqueLocal,
    /// `fec0::/10`: deprecated IPv6 site-local addresses.
    SiteLocal,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation ranges: `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`,
    /// `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Benchmarking ranges: `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Other reserved or special-purpose space: `240.0.0.0/4`, `192.0.0.0/24`,
    /// `192.88.99.0/24`, `2001::/23`, and all IPv6 outside `2000::/3`.
    Reserved,
}

impl Rule {
    /// A short description with the ranges the rule covers.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "the unspecified address (0.0.0.0, ::)",
            Self::ThisNetwork => "a \"this network\" address (0.0.0.0/8)",
            Self::Loopback => "a loopback address (127.0.0.0/8, ::1)",
            Self::Private => "a private address (RFC 1918: 10/8, 172.16/12, 192.168/16)",
            Self::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            Self::LinkLocal => "a link-local address (169.254.0.0/16, fe80::/10)",
            Self::CloudMetadata => "a cloud metadata endpoint (169.254.169.254, fd00:ec2::254)",
            Self::UniqueLocal => "an IPv6 unique local address (fc00::/7)",
            Self::SiteLocal => "an IPv6 site-local address (fec0::/10)",
            Self::Multicast => "a multicast address (224.0.0.0/4, ff00::/8)",
            Self::Broadcast => "the broadcast address (255.255.255.255)",
            Self::Documentation => {
                "a documentation address (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32)"
            }
            Self::Benchmarking => "a benchmarking address (198.18.0.0/15, 2001:2::/48)",
            Self::Reserved => "a reserved or special-purpose address",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The rule that refuses `ip`, or `None` for an ordinary public address.
pub fn classify(ip: IpAddr) -> Option<Rule> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// `(network, prefix length, rule)`, most specific first: the first match wins.
const V4_RULES: &[([u8; 4], u8, Rule)] = &[
    ([169, 254, 169, 254], 32, Rule::CloudMetadata),
    ([169, 254, 170, 2], 32, Rule::CloudMetadata),
    ([100, 100, 100, 200], 32, Rule::CloudMetadata),
    ([255, 255, 255, 255], 32, Rule::Broadcast),
    ([0, 0, 0, 0], 32, Rule::Unspecified),
    ([0, 0, 0, 0], 8, Rule::ThisNetwork),
    ([10, 0, 0, 0], 8, Rule::Private),
    ([172, 16, 0, 0], 12, Rule::Private),
    ([192, 168, 0, 0], 16, Rule::Private),
    ([100, 64, 0, 0], 10, Rule::SharedAddressSpace),
    ([127, 0, 0, 0], 8, Rule::Loopback),
    ([169, 254, 0, 0], 16, Rule::LinkLocal),
    ([192, 0, 0, 0], 24, Rule::Reserved),
    ([192, 0, 2, 0], 24, Rule::Documentation),
    ([198, 51, 100, 0], 24, Rule::Documentation),
    ([203, 0, 113, 0], 24, Rule::Documentation),
    ([192, 88, 99, 0], 24, Rule::Reserved),
    ([198, 18, 0, 0], 15, Rule::Benchmarking),
    ([224, 0, 0, 0], 4, Rule::Multicast),
    ([240, 0, 0, 0], 4, Rule::Reserved),
];

fn classify_v4(ip: Ipv4Addr) -> Option<Rule> {
    let bits = u32::from(ip);
    V4_RULES.iter().find(|(net, prefix, _)| in_prefix_v4(bits, *net, *prefix)).map(|(_, _, rule)| *rule)
}

fn in_prefix_v4(bits: u32, net: [u8; 4], prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    bits & mask == u32::from_be_bytes(net) & mask
}

/// IPv6 rules inside the global unicast block `2000::/3` (everything outside it is refused).
const V6_RULES: &[(u128, u8, Rule)] = &[
    (0x2001_0db8 << 96, 32, Rule::Documentation),
    (0x3fff << 112, 20, Rule::Documentation),
    (0x2001_0002 << 96, 48, Rule::Benchmarking),
    (0x2001 << 112, 23, Rule::Reserved),
];

fn in_prefix_v6(bits: u128, net: u128, prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
    bits & mask == net & mask
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, not `::` or `::1`), NAT64
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::/48`).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    // The low 32 bits: `as` keeps exactly them, which is the point.
    #[allow(clippy::cast_possible_truncation)]
    let low = Ipv4Addr::from(bits as u32);
    if bits >> 32 == 0xffff || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(low);
    }
    if bits >> 32 == 0 && bits > 1 {
        return Some(low);
    }
    if bits >> 112 == 0x2002 {
        #[allow(clippy::cast_possible_truncation)]
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

fn classify_v6(ip: Ipv6Addr) -> Option<Rule> {
    let bits = u128::from(ip);
    if bits == 0 {
        return Some(Rule::Unspecified);
    }
    if bits == 1 {
        return Some(Rule::Loopback);
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some(Rule::CloudMetadata);
    }
    if let Some(v4) = embedded_ipv4(ip) {
        if let Some(rule) = classify_v4(v4) {
            return Some(rule);
        }
        // IPv4-compatible addresses are deprecated (RFC 4291) and never legitimately used.
        if bits >> 32 == 0 {
            return Some(Rule::Reserved);
        }
        // A mapped, NAT64 or 6to4 form of a public IPv4 address reaches that public address.
        return None;
    }
    let top16 = bits >> 112;
    if top16 & 0xffc0 == 0xfe80 {
        return Some(Rule::LinkLocal);
    }
    if top16 & 0xffc0 == 0xfec0 {
        return Some(Rule::SiteLocal);
    }
    if top16 & 0xfe00 == 0xfc00 {
        return Some(Rule::UniqueLocal);
    }
    if top16 & 0xff00 == 0xff00 {
        return Some(Rule::Multicast);
    }
    if top16 & 0xe000 != 0x2000 {
        return Some(Rule::Reserved);
    }
    V6_RULES.iter().find(|(net, prefix, _)| in_prefix_v6(bits, *net, *prefix)).map(|(_, _, rule)| *rule)
}
