use std::net::IpAddr;

use super::{AllowList, Rule, SsrfError, classify, embedded_ipv4};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn classifies_every_special_range() {
    let table: &[(&str, Option<Rule>)] = &[
        ("0.0.0.0", Some(Rule::Unspecified)),
        ("0.1.2.3", Some(Rule::ThisNetwork)),
        ("10.0.0.1", Some(Rule::Private)),
        ("10.255.255.255", Some(Rule::Private)),
        ("172.16.0.1", Some(Rule::Private)),
        ("172.31.255.255", Some(Rule::Private)),
        ("172.32.0.1", None),
        ("172.15.255.255", None),
        ("192.168.1.1", Some(Rule::Private)),
        ("100.64.0.1", Some(Rule::SharedAddressSpace)),
        ("100.127.255.255", Some(Rule::SharedAddressSpace)),
        ("100.128.0.0", None),
        ("100.100.100.200", Some(Rule::CloudMetadata)),
        ("127.0.0.1", Some(Rule::Loopback)),
        ("127.255.255.254", Some(Rule::Loopback)),
        ("169.254.0.1", Some(Rule::LinkLocal)),
        ("169.254.169.254", Some(Rule::CloudMetadata)),
        ("169.254.170.2", Some(Rule::CloudMetadata)),
        ("192.0.0.8", Some(Rule::Reserved)),
        ("192.0.2.1", Some(Rule::Documentation)),
        ("198.51.100.7", Some(Rule::Documentation)),
        ("203.0.113.9", Some(Rule::Documentation)),
        ("192.88.99.1", Some(Rule::Reserved)),
        ("198.18.0.1", Some(Rule::Benchmarking)),
        ("198.19.255.255", Some(Rule::Benchmarking)),
        ("198.20.0.0", None),
        ("224.0.0.1", Some(Rule::Multicast)),
        ("239.255.255.250", Some(Rule::Multicast)),
        ("240.0.0.1", Some(Rule::Reserved)),
        ("255.255.255.255", Some(Rule::Broadcast)),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("93.184.215.14", None),
        ("::", Some(Rule::Unspecified)),
        ("::1", Some(Rule::Loopback)),
        ("::ffff:127.0.0.1", Some(Rule::Loopback)),
        ("::ffff:10.1.2.3", Some(Rule::Private)),
        ("::ffff:169.254.169.254", Some(Rule::CloudMetadata)),
        ("::ffff:0.0.0.0", Some(Rule::Unspecified)),
        ("::ffff:8.8.8.8", None),
        ("::127.0.0.1", Some(Rule::Loopback)),
        ("::8.8.8.8", Some(Rule::Reserved)),
        ("64:ff9b::7f00:1", Some(Rule::Loopback)),
        ("64:ff9b::a9fe:a9fe", Some(Rule::CloudMetadata)),
        ("64:ff9b::808:808", None),
        ("2002:7f00:1::1", Some(Rule::Loopback)),
        ("2002:c0a8:101::", Some(Rule::Private)),
        ("2002:808:808::1", None),
        ("fe80::1", Some(Rule::LinkLocal)),
        ("febf::1", Some(Rule::LinkLocal)),
        ("fec0::1", Some(Rule::SiteLocal)),
        ("fc00::1", Some(Rule::UniqueLocal)),
        ("fdff:ffff::1", Some(Rule::UniqueLocal)),
        ("fd00:ec2::254", Some(Rule::CloudMetadata)),
        ("fd00:ec2::253", Some(Rule::UniqueLocal)),
        ("ff02::1", Some(Rule::Multicast)),
        ("2001:db8::1", Some(Rule::Documentation)),
        ("3fff::1", Some(Rule::Documentation)),
        ("2001:2::1", Some(Rule::Benchmarking)),
        ("2001::1", Some(Rule::Reserved)),
        ("100::1", Some(Rule::Reserved)),
        ("4000::1", Some(Rule::Reserved)),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:81c::200e", None),
    ];
    for (addr, want) in table {
        assert_eq!(classify(ip(addr)), *want, "{addr}");
    }
}

#[test]
fn embedded_ipv4_forms() {
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
    assert_eq!(embedded_ipv4(v6("::ffff:1.2.3.4")), Some("1.2.3.4".parse().unwrap()));
    assert_eq!(embedded_ipv4(v6("64:ff9b::1.2.3.4")), Some("1.2.3.4".parse().unwrap()));
    assert_eq!(embedded_ipv4(v6("2002:102:304::")), Some("1.2.3.4".parse().unwrap()));
    assert_eq!(embedded_ipv4(v6("::")), None);
    assert_eq!(embedded_ipv4(v6("::1")), None);
    assert_eq!(embedded_ipv4(v6("2606:4700::1")), None);
}

#[test]
fn allow_list_parses_and_matches_normalised_hosts() {
    let list = AllowList::parse(["LOCALHOST:8080", "127.1:9000", "[::1]:443", "svc.internal:80"]).unwrap();
    assert!(list.allows("localhost", 8080));
    assert!(!list.allows("localhost", 8081));
    assert!(list.allows("127.0.0.1", 9000), "numeric spellings normalise like URLs do");
    assert!(list.allows("[::1]", 443));
    assert!(list.allows("svc.internal", 80));
    assert!(!list.allows("127.0.0.1", 8080), "a name in the list does not admit its address");

    for bad in ["localhost", "http://x:80", "x:0", "x:65536", "x:port", "user@x:80", "x:80/path", ":80", ""] {
        match AllowList::parse([bad]) {
            Err(SsrfError::InvalidAllowEntry { entry, .. }) => assert_eq!(entry, bad),
            other => panic!("{bad:?} should be invalid, got {other:?}"),
        }
    }
    let (list, errors) = AllowList::parse_lossy(["ok:1", "bad"]);
    assert!(list.allows("ok", 1));
    assert_eq!(errors.len(), 1);
}
