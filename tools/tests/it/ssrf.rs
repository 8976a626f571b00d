//! The SSRF guard: a table of hostile targets (every one refused with the right typed error),
//! allow-listed loopback servers reachable, redirects re-checked and capped, connections
//! pinned to the checked addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use executus_tools::net::{
    AllowList, FetchError, FetchOptions, GuardedHttp, Resolver, Rule, SsrfError, SsrfGuard, StaticResolver,
    SystemResolver,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Test names from a static table; `localhost` (and anything else) from the system resolver.
struct TestResolver {
    table: StaticResolver,
    names: &'static [&'static str],
}

#[async_trait]
impl Resolver for TestResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        if self.names.contains(&host) {
            self.table.resolve(host, port).await
        } else {
            SystemResolver.resolve(host, port).await
        }
    }
}

fn test_resolver() -> Arc<dyn Resolver> {
    Arc::new(TestResolver {
        table: StaticResolver::new()
            .with("evil.test", [ip("127.0.0.1")])
            .with("meta.test", [ip("169.254.169.254")])
            .with("mixed.test", [ip("8.8.8.8"), ip("10.0.0.5")])
            .with("v6.test", [ip("::1")])
            .with("mapped.test", [ip("::ffff:192.168.0.1")])
            .with("ula.test", [ip("fd12:3456::1")])
            .with("public.test", [ip("8.8.8.8"), ip("2606:4700:4700::1111")])
            .with("empty.test", []),
        names: &[
            "evil.test",
            "meta.test",
            "mixed.test",
            "v6.test",
            "mapped.test",
            "ula.test",
            "public.test",
            "empty.test",
            "nx.test",
        ],
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Blocked(Rule),
    Scheme,
    Invalid,
    Resolve,
    NoAddresses,
}

fn verdict(result: &Result<executus_tools::net::CheckedTarget, SsrfError>) -> Option<Expect> {
    match result {
        Ok(_) => None,
        Err(SsrfError::Blocked { rule, .. }) => Some(Expect::Blocked(*rule)),
        Err(SsrfError::UnsupportedScheme { .. }) => Some(Expect::Scheme),
        Err(SsrfError::InvalidUrl { .. }) => Some(Expect::Invalid),
        Err(SsrfError::Resolve { .. }) => Some(Expect::Resolve),
        Err(SsrfError::NoAddresses { .. }) => Some(Expect::NoAddresses),
        Err(other) => panic!("unexpected error kind {other:?}"),
    }
}

#[tokio::test]
async fn hostile_targets_are_all_refused() {
    use Expect::{Blocked, Invalid, NoAddresses, Resolve, Scheme};
    use Rule::*;
    let allowed_port = 18_080;
    let guard = SsrfGuard::new(AllowList::parse([format!("127.0.0.1:{allowed_port}")]).unwrap())
        .with_resolver(test_resolver());
    let other = allowed_port + 1;
    let table: Vec<(String, Expect)> = vec![
        ("http://127.0.0.1/".into(), Blocked(Loopback)),
        (format!("http://127.0.0.1:{other}/"), Blocked(Loopback)),
        (format!("http://localhost:{allowed_port}/"), Blocked(Loopback)),
        ("http://LOCALHOST/admin".into(), Blocked(Loopback)),
        ("http://2130706433/".into(), Blocked(Loopback)),
        ("http://0177.0.0.1/".into(), Blocked(Loopback)),
        ("http://0x7f.1/".into(), Blocked(Loopback)),
        ("http://127.1/".into(), Blocked(Loopback)),
        ("http://0x7f000001/".into(), Blocked(Loopback)),
        ("http://017700000001/".into(), Blocked(Loopback)),
        ("http://0x7F.0X0.0.01/".into(), Blocked(Loopback)),
        ("http://%31%32%37.0.0.1/".into(), Blocked(Loopback)),
        ("http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/".into(), Blocked(Loopback)),
        ("http://127.0.0.1./".into(), Blocked(Loopback)),
        ("https://127.0.0.1:443/".into(), Blocked(Loopback)),
        ("http://0/".into(), Blocked(Unspecified)),
        ("http://0.0.0.0:8080/".into(), Blocked(Unspecified)),
        ("http://0.1.2.3/".into(), Blocked(ThisNetwork)),
        ("http://10.0.0.1/".into(), Blocked(Private)),
        ("http://172.16.5.4/".into(), Blocked(Private)),
        ("http://172.31.255.255/".into(), Blocked(Private)),
        ("http://192.168.0.1:8443/".into(), Blocked(Private)),
        ("http://trusted.example@10.0.0.1/".into(), Blocked(Private)),
        ("http://100.64.1.1/".into(), Blocked(SharedAddressSpace)),
        ("http://100.100.100.200/latest/meta-data".into(), Blocked(CloudMetadata)),
        ("http://169.254.169.254/latest/meta-data".into(), Blocked(CloudMetadata)),
        ("http://169.254.169.254/computeMetadata/v1/".into(), Blocked(CloudMetadata)),
        ("http://2852039166/".into(), Blocked(CloudMetadata)),
        ("http://169.254.10.10/".into(), Blocked(LinkLocal)),
        ("http://[fd00:ec2::254]/latest/meta-data".into(), Blocked(CloudMetadata)),
        ("http://[::ffff:127.0.0.1]/".into(), Blocked(Loopback)),
        ("http://[0:0:0:0:0:ffff:7f00:1]/".into(), Blocked(Loopback)),
        ("http://[::ffff:a9fe:a9fe]/".into(), Blocked(CloudMetadata)),
        ("http://[::127.0.0.1]/".into(), Blocked(Loopback)),
        ("http://[64:ff9b::a00:1]/".into(), Blocked(Private)),
        ("http://[2002:a9fe:a9fe::]/".into(), Blocked(CloudMetadata)),
        ("http://[::1]/".into(), Blocked(Loopback)),
        ("http://[::]/".into(), Blocked(Unspecified)),
        ("http://[fe80::1]/".into(), Blocked(LinkLocal)),
        ("http://[fc00::1]/".into(), Blocked(UniqueLocal)),
        ("http://[fd12:3456::1]/".into(), Blocked(UniqueLocal)),
        ("http://[fec0::1]/".into(), Blocked(SiteLocal)),
        ("http://255.255.255.255/".into(), Blocked(Broadcast)),
        ("http://224.0.0.251/".into(), Blocked(Multicast)),
        ("http://[ff02::1]/".into(), Blocked(Multicast)),
        ("http://192.0.2.10/".into(), Blocked(Documentation)),
        ("http://[2001:db8::1]/".into(), Blocked(Documentation)),
        ("http://198.18.0.1/".into(), Blocked(Benchmarking)),
        ("http://240.1.2.3/".into(), Blocked(Reserved)),
        ("http://[2001::1]/".into(), Blocked(Reserved)),
        ("http://evil.test/".into(), Blocked(Loopback)),
        ("http://EVIL.test:8080/x".into(), Blocked(Loopback)),
        ("http://meta.test/latest/meta-data".into(), Blocked(CloudMetadata)),
        ("http://mixed.test/".into(), Blocked(Private)),
        ("http://v6.test/".into(), Blocked(Loopback)),
        ("http://mapped.test/".into(), Blocked(Private)),
        ("http://ula.test/".into(), Blocked(UniqueLocal)),
        ("file:///etc/passwd".into(), Scheme),
        ("gopher://127.0.0.1:6379/_INFO".into(), Scheme),
        ("ftp://10.0.0.1/".into(), Scheme),
        ("data:text/plain,hello".into(), Scheme),
        ("ws://127.0.0.1/".into(), Scheme),
        ("example.com/path".into(), Invalid),
        ("//127.0.0.1/".into(), Invalid),
        ("http://[fe80::1%25eth0]/".into(), Invalid),
        ("http://1.2.3.4.5/".into(), Invalid),
        ("http://0x100000000/".into(), Invalid),
        ("http://nx.test/".into(), Resolve),
        ("http://empty.test/".into(), NoAddresses),
    ];
    assert!(table.len() >= 30);
    for (url, want) in &table {
        let result = guard.check(url).await;
        assert_eq!(verdict(&result), Some(*want), "{url}: {result:?}");
    }
}

#[tokio::test]
async fn refusals_name_host_port_address_and_rule() {
    let guard = SsrfGuard::default().with_resolver(test_resolver());
    // Every numeric spelling is judged (and reported) as the address it denotes.
    for spelling in ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001", "017700000001"] {
        let err = guard.check(&format!("http://{spelling}:9000/")).await.unwrap_err();
        assert_eq!(
            err,
            SsrfError::Blocked {
                host: "127.0.0.1".into(),
                port: 9000,
                addr: ip("127.0.0.1"),
                rule: Rule::Loopback
            },
            "{spelling}"
        );
    }
    let err = guard.check("http://mixed.test/").await.unwrap_err();
    assert_eq!(
        err,
        SsrfError::Blocked { host: "mixed.test".into(), port: 80, addr: ip("10.0.0.5"), rule: Rule::Private }
    );
    assert_eq!(
        err.to_string(),
        "refusing mixed.test:80: address 10.0.0.5 is a private address (RFC 1918: 10/8, 172.16/12, 192.168/16)"
    );
    let err = guard.check("http://[::ffff:127.0.0.1]/").await.unwrap_err();
    assert!(
        matches!(err, SsrfError::Blocked { addr, rule: Rule::Loopback, .. } if addr == ip("::ffff:127.0.0.1"))
    );
    let err = guard.check("https://meta.test/").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing meta.test:443: address 169.254.169.254 is a cloud metadata endpoint (169.254.169.254, fd00:ec2::254)"
    );
    assert_eq!(
        guard.check("example.com").await.unwrap_err(),
        SsrfError::InvalidUrl {
            url: "example.com".into(),
            reason: "missing scheme (write it as http://... or https://...)".into()
        }
    );
    assert!(matches!(
        guard.check("http://nx.test/").await.unwrap_err(),
        SsrfError::Resolve { host, .. } if host == "nx.test"
    ));
}

#[tokio::test]
async fn localhost_through_the_system_resolver_is_refused() {
    let guard = SsrfGuard::default();
    match guard.check("http://localhost:8080/").await {
        Err(SsrfError::Blocked { host, port, addr, rule }) => {
            assert_eq!((host.as_str(), port, rule), ("localhost", 8080, Rule::Loopback));
            assert!(addr.is_loopback(), "{addr}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn public_addresses_pass_and_allow_list_is_exact() {
    let guard =
        SsrfGuard::new(AllowList::parse(["localhost:7000", "evil.test:7001", "10.1.2.3:443"]).unwrap())
            .with_resolver(test_resolver());
    let ok = guard.check("https://public.test/path").await.unwrap();
    assert!(!ok.allow_listed);
    assert_eq!(ok.port, 443);
    assert_eq!(
        ok.addrs,
        vec![SocketAddr::new(ip("8.8.8.8"), 443), SocketAddr::new(ip("2606:4700:4700::1111"), 443)]
    );
    assert!(guard.check("http://8.8.8.8/").await.is_ok());
    assert!(guard.check("http://[2606:4700:4700::1111]/").await.is_ok());

    let ok = guard.check("http://evil.test:7001/").await.unwrap();
    assert!(ok.allow_listed);
    assert_eq!(ok.addrs, vec![SocketAddr::new(ip("127.0.0.1"), 7001)]);
    assert!(guard.check("https://10.1.2.3/").await.unwrap().allow_listed);
    assert!(guard.check("http://localhost:7000/").await.unwrap().allow_listed);
    // Same host, other port; same address, other name: not in the list.
    assert!(matches!(guard.check("http://evil.test:7002/").await, Err(SsrfError::Blocked { .. })));
    assert!(matches!(guard.check("http://10.1.2.3/").await, Err(SsrfError::Blocked { port: 80, .. })));
    assert!(matches!(guard.check("http://127.0.0.1:7000/").await, Err(SsrfError::Blocked { .. })));
    // `localhost.` is another name: blocked as loopback, or unresolvable where the system
    // resolver does not know the rooted form; never admitted.
    assert!(guard.check("http://localhost.:7000/").await.is_err());
}

/// A resolver that never answers.
struct Hang;

#[async_trait]
impl Resolver for Hang {
    async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn resolution_is_bounded_in_time() {
    let guard =
        SsrfGuard::default().with_resolver(Arc::new(Hang)).with_resolve_timeout(Duration::from_secs(3));
    match guard.check("http://slow.test/").await {
        Err(SsrfError::Resolve { host, reason }) => {
            assert_eq!(host, "slow.test");
            assert!(reason.contains("timed out after 3s"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- guarded fetch

async fn server() -> MockServer {
    MockServer::start().await
}

fn allow(servers: &[&MockServer]) -> AllowList {
    AllowList::parse(servers.iter().map(|s| format!("127.0.0.1:{}", s.address().port()))).unwrap()
}

fn http(allow: AllowList, max_redirects: usize) -> GuardedHttp {
    GuardedHttp::new(
        SsrfGuard::new(allow).with_resolver(test_resolver()),
        FetchOptions { max_redirects, timeout: Duration::from_secs(10), ..FetchOptions::default() },
    )
}

async fn redirect(server: &MockServer, from: &str, to: &str) {
    Mock::given(method("GET"))
        .and(path(from))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", to))
        .mount(server)
        .await;
}

#[tokio::test]
async fn allow_listed_loopback_server_is_reachable() {
    let s = server().await;
    Mock::given(method("GET"))
        .and(path("/hello"))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello from loopback"))
        .expect(1)
        .mount(&s)
        .await;
    let response = http(allow(&[&s]), 5).get(&format!("{}/hello", s.uri())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.target().allow_listed);
    assert_eq!(response.remote_addr(), Some(*s.address()));
    let body = response.read_capped(1 << 20).await.unwrap();
    assert_eq!(body.bytes, b"hello from loopback");
    assert!(!body.truncated);
}

#[tokio::test]
async fn redirects_are_rechecked_at_every_hop() {
    let allowed = server().await;
    let not_allowed = server().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("secret"))
        .mount(&not_allowed)
        .await;
    let other_port = not_allowed.address().port();
    let cases: &[(&str, String, Rule)] = &[
        ("/to-private", "http://10.0.0.1/admin".into(), Rule::Private),
        ("/to-metadata", "http://169.254.169.254/latest/meta-data/".into(), Rule::CloudMetadata),
        ("/to-other-port", format!("http://127.0.0.1:{other_port}/"), Rule::Loopback),
        ("/to-localhost", format!("http://localhost:{other_port}/"), Rule::Loopback),
        ("/to-decimal", format!("http://2130706433:{other_port}/"), Rule::Loopback),
        ("/to-mapped", format!("http://[::ffff:127.0.0.1]:{other_port}/"), Rule::Loopback),
        ("/to-ula", "http://[fd00:ec2::254]/".into(), Rule::CloudMetadata),
        ("/to-rebound-name", format!("http://evil.test:{other_port}/"), Rule::Loopback),
    ];
    for (from, to, _) in cases {
        redirect(&allowed, from, to).await;
    }
    redirect(&allowed, "/to-file", "file:///etc/passwd").await;
    let client = http(allow(&[&allowed]), 5);
    for (from, to, rule) in cases {
        match client.get(&format!("{}{from}", allowed.uri())).await {
            Err(FetchError::Refused(SsrfError::Blocked { rule: got, .. })) => {
                assert_eq!(got, *rule, "{from} -> {to}")
            }
            other => panic!("{from} -> {to}: {other:?}"),
        }
    }
    assert!(matches!(
        client.get(&format!("{}/to-file", allowed.uri())).await,
        Err(FetchError::Refused(SsrfError::UnsupportedScheme { .. }))
    ));
    assert!(not_allowed.received_requests().await.unwrap().is_empty(), "a refused hop must send nothing");
}

#[tokio::test]
async fn redirect_between_allow_listed_servers_is_followed() {
    let a = server().await;
    let b = server().await;
    redirect(&a, "/start", &format!("{}/end", b.uri())).await;
    Mock::given(method("GET"))
        .and(path("/end"))
        .respond_with(ResponseTemplate::new(200).set_body_string("arrived"))
        .mount(&b)
        .await;
    let response = http(allow(&[&a, &b]), 5).get(&format!("{}/start", a.uri())).await.unwrap();
    assert_eq!(response.url().as_str(), format!("{}/end", b.uri()));
    assert_eq!(response.redirects().len(), 1);
    assert_eq!(response.read_capped(100).await.unwrap().bytes, b"arrived");
}

#[tokio::test]
async fn redirect_hops_are_capped() {
    for max in [0, 2, 5] {
        let s = server().await;
        redirect(&s, "/loop", "/loop").await;
        match http(allow(&[&s]), max).get(&format!("{}/loop", s.uri())).await {
            Err(FetchError::TooManyRedirects { max: got, url }) => {
                assert_eq!(got, max);
                assert_eq!(url, format!("{}/loop", s.uri()));
            }
            other => panic!("max {max}: {other:?}"),
        }
        assert_eq!(s.received_requests().await.unwrap().len(), max + 1, "max {max}");
    }
}

#[tokio::test]
async fn bad_location_is_a_typed_error() {
    let s = server().await;
    redirect(&s, "/bad", "http://[::1").await;
    match http(allow(&[&s]), 5).get(&format!("{}/bad", s.uri())).await {
        Err(FetchError::BadRedirect { location, .. }) => assert_eq!(location, "http://[::1"),
        other => panic!("{other:?}"),
    }
}

/// Answers the first lookup with 127.0.0.1 and every later one with a blackhole address,
/// counting lookups: a rebinding DNS server in miniature.
struct Rebinding {
    lookups: AtomicUsize,
}

#[async_trait]
impl Resolver for Rebinding {
    async fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        assert_eq!(host, "pinned.test");
        let n = self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n == 0 { ip("127.0.0.1") } else { ip("10.255.255.1") }])
    }
}

#[tokio::test]
async fn the_connection_is_pinned_to_the_checked_address() {
    let s = server().await;
    Mock::given(method("GET"))
        .and(path("/pinned"))
        .respond_with(ResponseTemplate::new(200).set_body_string("pinned ok"))
        .mount(&s)
        .await;
    let port = s.address().port();
    let resolver = Arc::new(Rebinding { lookups: AtomicUsize::new(0) });
    let guard = SsrfGuard::new(AllowList::parse([format!("pinned.test:{port}")]).unwrap())
        .with_resolver(resolver.clone());
    let client =
        GuardedHttp::new(guard, FetchOptions { timeout: Duration::from_secs(5), ..FetchOptions::default() });
    // `pinned.test` exists only in our resolver: had reqwest resolved it itself (or asked
    // again and been rebound to 10.255.255.1), this could not reach the loopback server.
    let response = client.get(&format!("http://pinned.test:{port}/pinned")).await.unwrap();
    assert_eq!(response.remote_addr(), Some(SocketAddr::new(ip("127.0.0.1"), port)));
    assert_eq!(response.read_capped(100).await.unwrap().bytes, b"pinned ok");
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1, "exactly one lookup: the guard's");
}
