//! The SSRF guard: decides whether a URL may be fetched, and to which addresses.
//!
//! [`SsrfGuard::check`] parses the URL (only `http` and `https`), resolves the host through a
//! [`Resolver`] and refuses the target if *any* resolved address falls in a special-purpose
//! range ([`Rule`]: loopback, RFC 1918, CGNAT, link-local, cloud metadata, ULA, IPv4-mapped
//! forms of those, unspecified, broadcast, multicast, documentation, reserved). It returns a
//! [`CheckedTarget`] carrying the vetted addresses, which the caller must connect to — never
//! to a fresh resolution of the name (see [`crate::net::fetch`], which pins them).
//!
//! Numeric IPv4 spellings (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, `0`, full-width
//! digits, percent-encoded digits) are normalised by the WHATWG URL parser to the dotted
//! address before the check sees them, so they are judged as the address they denote. The
//! resolved-address check is the real guarantee either way: whatever a name or spelling
//! turns into, the address is what is classified.
//!
//! The [`AllowList`] (`host:port` entries from configuration) is the only way through: a URL
//! whose host and port match an entry exactly (after the same URL normalisation) skips the
//! address checks; it is still resolved once and pinned. `localhost:8080` in the list does
//! not admit `127.0.0.1:8080`, nor `localhost:8081`.
//!
//! The guard does not fetch, follow redirects or apply timeouts to anything but resolution;
//! [`crate::net::fetch::GuardedHttp`] does, re-checking every redirect hop here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::{Host, Url};

mod ip;
#[cfg(test)]
mod tests;

pub use ip::{Rule, classify, embedded_ipv4};

/// Why the guard refused a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsrfError {
    /// The URL does not parse.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A scheme other than `http` or `https`.
    #[error("refusing {url}: scheme {scheme:?} is not allowed (only http and https)")]
    UnsupportedScheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The URL has no host.
    #[error("refusing {url}: it has no host")]
    MissingHost {
        /// The URL.
        url: String,
    },
    /// The host name did not resolve.
    #[error("could not resolve host {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's message.
        reason: String,
    },
    /// The host name resolved to no address at all.
    #[error("host {host} resolved to no addresses")]
    NoAddresses {
        /// The host name.
        host: String,
    },
    /// The host is, or resolves to, an address a network tool must not reach.
    #[error("refusing {host}:{port}: address {addr} is {rule}")]
    Blocked {
        /// The host as written in the (normalised) URL.
        host: String,
        /// The port the request would use.
        port: u16,
        /// The offending address (a literal, or one the host resolved to).
        addr: IpAddr,
        /// The range it falls in.
        rule: Rule,
    },
    /// An allow list entry is not `host:port`.
    #[error("invalid network allow list entry {entry:?}: {reason}")]
    InvalidAllowEntry {
        /// The entry as configured.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Resolves host names to addresses; injectable so tests (and hosts with their own naming)
/// decide what a name means.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Every address `host` resolves to (`port` is a hint some resolvers want).
    ///
    /// # Errors
    /// An I/O error when the name does not resolve.
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio's `lookup_host`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.map(|a| a.ip()).collect())
    }
}

/// A fixed name -> addresses table; names not in it do not resolve.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    names: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name` (matched case-insensitively) resolving to `addrs`.
    #[must_use]
    pub fn with(mut self, name: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.names.insert(name.to_ascii_lowercase(), addrs.into_iter().collect());
        self
    }
}

#[async_trait]
impl Resolver for StaticResolver {
    async fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        self.names.get(&host.to_ascii_lowercase()).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} is not in the static table"))
        })
    }
}

/// `host:port` pairs that skip the address checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Normalised `(host, port)`; the host as the URL parser serialises it.
    entries: Vec<(String, u16)>,
}

impl AllowList {
    /// No exceptions: every target is checked.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses `host:port` entries (`localhost:8080`, `10.0.0.5:443`, `[::1]:9000`).
    ///
    /// # Errors
    /// [`SsrfError::InvalidAllowEntry`] for the first entry that is not `host:port`.
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Self, SsrfError> {
        let entries =
            entries.into_iter().map(|e| parse_allow_entry(e.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { entries })
    }

    /// Parses what it can; invalid entries are skipped (so they admit nothing) and returned.
    pub fn parse_lossy<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> (Self, Vec<SsrfError>) {
        let mut list = Self::default();
        let mut errors = Vec::new();
        for entry in entries {
            match parse_allow_entry(entry.as_ref()) {
                Ok(e) => list.entries.push(e),
                Err(e) => errors.push(e),
            }
        }
        (list, errors)
    }

    /// True if `host` (as a parsed URL serialises it) and `port` match an entry.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.entries.iter().any(|(h, p)| *p == port && h == host)
    }

    /// True if the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_allow_entry(entry: &str) -> Result<(String, u16), SsrfError> {
    let invalid =
        |reason: &str| SsrfError::InvalidAllowEntry { entry: entry.to_owned(), reason: reason.into() };
    let trimmed = entry.trim();
    if trimmed.is_empty()
        || trimmed.contains(['/', '@', '?', '#', '\\'])
        || trimmed.contains(char::is_whitespace)
    {
        return Err(invalid("expected host:port with no scheme, path or credentials"));
    }
    let (_, port) = trimmed.rsplit_once(':').ok_or_else(|| invalid("missing :port"))?;
    let port: u16 = port.parse().map_err(|_| invalid("the port must be a number from 1 to 65535"))?;
    if port == 0 {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    let url = Url::parse(&format!("http://{trimmed}/")).map_err(|e| invalid(&e.to_string()))?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("missing host"))?;
    Ok((host.to_owned(), port))
}

/// A URL the guard accepted, with the addresses the connection must use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTarget {
    /// The normalised URL.
    pub url: Url,
    /// Its host as serialised (`example.com`, `127.0.0.1`, `[::1]`).
    pub host: String,
    /// The port the request uses (explicit or the scheme's default).
    pub port: u16,
    /// The vetted addresses, with `port`; connect only to these.
    pub addrs: Vec<SocketAddr>,
    /// True if the target passed through the allow list rather than the address checks.
    pub allow_listed: bool,
}

/// The SSRF guard: URL -> vetted addresses, or a typed refusal.
#[derive(Clone)]
pub struct SsrfGuard {
    allow: AllowList,
    resolver: Arc<dyn Resolver>,
    resolve_timeout: Duration,
}

impl std::fmt::Debug for SsrfGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsrfGuard")
            .field("allow", &self.allow)
            .field("resolve_timeout", &self.resolve_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for SsrfGuard {
    fn default() -> Self {
        Self::new(AllowList::none())
    }
}

impl SsrfGuard {
    /// A guard with `allow` as its only exceptions, resolving through the system resolver
    /// with a 10 s resolution timeout.
    pub fn new(allow: AllowList) -> Self {
        Self { allow, resolver: Arc::new(SystemResolver), resolve_timeout: Duration::from_secs(10) }
    }

    /// Resolves names through `resolver` instead.
    #[must_use]
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Gives up on a resolution after `timeout`.
    #[must_use]
    pub fn with_resolve_timeout(mut self, timeout: Duration) -> Self {
        self.resolve_timeout = timeout;
        self
    }

    /// The allow list.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Parses and checks `url`.
    ///
    /// # Errors
    /// [`SsrfError::InvalidUrl`] when it does not parse (a missing scheme included), else as
    /// [`SsrfGuard::check_url`].
    pub async fn check(&self, url: &str) -> Result<CheckedTarget, SsrfError> {
        self.check_url(&parse_url(url)?).await
    }

    /// Checks a parsed URL: scheme, host, resolution, every resolved address.
    ///
    /// # Errors
    /// [`SsrfError::UnsupportedScheme`], [`SsrfError::MissingHost`], [`SsrfError::Resolve`],
    /// [`SsrfError::NoAddresses`], or [`SsrfError::Blocked`] naming the host, the first
    /// offending address and the rule it breaks.
    pub async fn check_url(&self, url: &Url) -> Result<CheckedTarget, SsrfError> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(SsrfError::UnsupportedScheme { url: url.to_string(), scheme: scheme.to_owned() });
        }
        let missing = || SsrfError::MissingHost { url: url.to_string() };
        let host = url.host().ok_or_else(missing)?;
        let host_str = url.host_str().filter(|h| !h.is_empty()).ok_or_else(missing)?.to_owned();
        // http and https always have a known default port.
        let port = url.port_or_known_default().ok_or_else(missing)?;
        let allow_listed = self.allow.allows(&host_str, port);
        let ips = match host {
            Host::Ipv4(v4) => vec![IpAddr::V4(v4)],
            Host::Ipv6(v6) => vec![IpAddr::V6(v6)],
            Host::Domain(name) => self.resolve(name, port).await?,
        };
        if !allow_listed {
            for ip in &ips {
                if let Some(rule) = classify(*ip) {
                    return Err(SsrfError::Blocked { host: host_str, port, addr: *ip, rule });
                }
            }
        }
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(ips.len());
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(CheckedTarget { url: url.clone(), host: host_str, port, addrs, allow_listed })
    }

    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<IpAddr>, SsrfError> {
        let resolved = tokio::time::timeout(self.resolve_timeout, self.resolver.resolve(name, port))
            .await
            .map_err(|_| SsrfError::Resolve {
                host: name.to_owned(),
                reason: format!("timed out after {:?}", self.resolve_timeout),
            })?
            .map_err(|e| SsrfError::Resolve { host: name.to_owned(), reason: e.to_string() })?;
        if resolved.is_empty() {
            return Err(SsrfError::NoAddresses { host: name.to_owned() });
        }
        Ok(resolved)
    }
}

/// Parses a URL with a clearer message for the commonest mistake (no scheme).
///
/// # Errors
/// [`SsrfError::InvalidUrl`].
pub fn parse_url(url: &str) -> Result<Url, SsrfError> {
    Url::parse(url.trim()).map_err(|e| {
        let reason = match e {
            url::ParseError::RelativeUrlWithoutBase => {
                "missing scheme (write it as http://... or https://...)".to_owned()
            }
            other => other.to_string(),
        };
        SsrfError::InvalidUrl { url: url.to_owned(), reason }
    })
}
