//! [`GuardedHttp`]: HTTP GET through the [`SsrfGuard`], pinned to the vetted addresses,
//! re-checking every redirect hop.
//!
//! # Pinning (no DNS rebinding between check and connect)
//!
//! Each fetch builds its own reqwest client whose DNS resolver is a [`reqwest::dns::Resolve`]
//! that never resolves anything: it answers only for the host of the current hop, with the
//! addresses the guard just vetted, and fails every other name. A rebinding DNS server gets
//! asked once, by the guard, and the connection can only go where that answer — checked —
//! says. IP-literal URLs bypass resolvers altogether (hyper connects to the literal), and
//! the literal is exactly what the guard classified. We chose a resolver over connecting by
//! IP with a `Host` header because TLS must still verify the certificate against the host
//! name (SNI), which a URL rewritten to an IP would lose; and over
//! `ClientBuilder::resolve_to_addrs` because that falls back to the system resolver for any
//! name not overridden, where ours fails closed. The pin is per fetch and replaced at each
//! hop, so concurrent fetches never see each other's (possibly allow-listed) addresses.
//!
//! Proxies from the environment (`HTTP_PROXY`...) are disabled: a proxy would resolve and
//! connect on our behalf, past the guard.
//!
//! # Redirects
//!
//! reqwest's own redirect following is off. 301, 302, 303, 307 and 308 with a `Location`
//! are followed by hand, at most `max_redirects` times; each new URL goes through the guard
//! again (scheme, resolution, addresses, allow list with its own port) before any byte is
//! sent to it. Only GET is issued, so method rewriting never arises.
//!
//! # Limits
//!
//! One deadline (`timeout`) covers the whole fetch: resolutions, every hop, and reading the
//! body through [`GuardedResponse::read_capped`], which stops reading at the cap.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::redirect::Policy;
use tokio::time::Instant;
use url::Url;

use super::ssrf::{CheckedTarget, SsrfError, SsrfGuard, parse_url};

/// Limits of a guarded fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Deadline for the whole fetch: resolutions, redirects, body.
    pub timeout: Duration,
    /// Deadline for each TCP (and TLS) connect.
    pub connect_timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            user_agent: concat!("executus/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Why a guarded fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The guard refused the URL or a redirect target.
    #[error(transparent)]
    Refused(#[from] SsrfError),
    /// More redirects than allowed.
    #[error("too many redirects (more than {max}); last location {url}")]
    TooManyRedirects {
        /// The cap.
        max: usize,
        /// The redirect target that would have exceeded it.
        url: String,
    },
    /// A redirect whose `Location` is not a URL.
    #[error("redirect from {url} has an invalid Location {location:?}: {reason}")]
    BadRedirect {
        /// The URL that redirected.
        url: String,
        /// The `Location` header as sent.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The deadline passed.
    #[error("fetching {url} timed out after {after:?}")]
    Timeout {
        /// The URL being fetched when time ran out.
        url: String,
        /// The deadline.
        after: Duration,
    },
    /// Connecting, sending or reading failed.
    #[error("fetching {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// The error chain.
        reason: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("could not build the HTTP client: {reason}")]
    Client {
        /// The error chain.
        reason: String,
    },
}

/// HTTP GET through an [`SsrfGuard`].
#[derive(Debug, Clone)]
pub struct GuardedHttp {
    guard: SsrfGuard,
    options: FetchOptions,
}

impl GuardedHttp {
    /// A fetcher checking every hop with `guard`, within `options`.
    pub fn new(guard: SsrfGuard, options: FetchOptions) -> Self {
        Self { guard, options }
    }

    /// The guard.
    pub fn guard(&self) -> &SsrfGuard {
        &self.guard
    }

    /// The limits.
    pub fn options(&self) -> &FetchOptions {
        &self.options
    }

    /// GETs `url`, following redirects through the guard, and returns the final response
    /// with its body unread.
    ///
    /// # Errors
    /// [`FetchError::Refused`] (the URL or a redirect target is refused or invalid),
    /// [`FetchError::TooManyRedirects`], [`FetchError::BadRedirect`],
    /// [`FetchError::Timeout`], [`FetchError::Transport`], [`FetchError::Client`].
    pub async fn get(&self, url: &str) -> Result<GuardedResponse, FetchError> {
        let start = Instant::now();
        let deadline = start + self.options.timeout;
        let mut current = parse_url(url)?;
        let pin = Arc::new(PinnedDns::default());
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .dns_resolver(pin.clone())
            .connect_timeout(self.options.connect_timeout)
            .user_agent(self.options.user_agent.clone())
            .build()
            .map_err(|e| FetchError::Client { reason: error_chain(&e) })?;
        let mut redirects = Vec::new();
        loop {
            let timeout = || FetchError::Timeout { url: current.to_string(), after: self.options.timeout };
            let target = tokio::time::timeout_at(deadline, self.guard.check_url(&current))
                .await
                .map_err(|_| timeout())??;
            pin.set(&target);
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timeout());
            }
            let response = client.get(target.url.clone()).timeout(remaining).send().await.map_err(|e| {
                if e.is_timeout() {
                    timeout()
                } else {
                    FetchError::Transport { url: current.to_string(), reason: error_chain(&e) }
                }
            })?;
            let status = response.status();
            let location = response.headers().get(LOCATION);
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
                && let Some(location) = location
            {
                let raw = String::from_utf8_lossy(location.as_bytes()).into_owned();
                let next = location
                    .to_str()
                    .map_err(|e| e.to_string())
                    .and_then(|loc| current.join(loc).map_err(|e| e.to_string()))
                    .map_err(|reason| FetchError::BadRedirect {
                        url: current.to_string(),
                        location: raw,
                        reason,
                    })?;
                if redirects.len() >= self.options.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        max: self.options.max_redirects,
                        url: next.to_string(),
                    });
                }
                redirects.push(std::mem::replace(&mut current, next));
                continue;
            }
            return Ok(GuardedResponse {
                url: current,
                redirects,
                target,
                response,
                timeout: self.options.timeout,
            });
        }
    }
}

/// The final (non-redirect) response of a guarded fetch.
#[derive(Debug)]
pub struct GuardedResponse {
    url: Url,
    redirects: Vec<Url>,
    target: CheckedTarget,
    response: reqwest::Response,
    timeout: Duration,
}

/// A body read up to a cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CappedBody {
    /// The bytes read (at most the cap).
    pub bytes: Vec<u8>,
    /// True if the body had more bytes than the cap (the rest was not read).
    pub truncated: bool,
}

impl GuardedResponse {
    /// The final URL (after redirects).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URLs that redirected, in order (empty if none).
    pub fn redirects(&self) -> &[Url] {
        &self.redirects
    }

    /// The guard's verdict for the final hop (its vetted addresses, allow-listed or not).
    pub fn target(&self) -> &CheckedTarget {
        &self.target
    }

    /// The address actually connected to, when the client reports it.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.response.remote_addr()
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    /// The status code's canonical reason phrase (`Not Found`), if it has one.
    pub fn reason(&self) -> Option<&'static str> {
        self.response.status().canonical_reason()
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The `Content-Type` header, if present and readable.
    pub fn content_type(&self) -> Option<&str> {
        self.response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }

    /// Reads the body, stopping after `max_bytes` (within the fetch deadline).
    ///
    /// # Errors
    /// [`FetchError::Timeout`] or [`FetchError::Transport`].
    pub async fn read_capped(mut self, max_bytes: usize) -> Result<CappedBody, FetchError> {
        let mut bytes = Vec::new();
        loop {
            let chunk = self.response.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout { url: self.url.to_string(), after: self.timeout }
                } else {
                    FetchError::Transport { url: self.url.to_string(), reason: error_chain(&e) }
                }
            })?;
            let Some(chunk) = chunk else {
                return Ok(CappedBody { bytes, truncated: false });
            };
            let room = max_bytes.saturating_sub(bytes.len());
            if chunk.len() > room {
                bytes.extend_from_slice(&chunk[..room]);
                return Ok(CappedBody { bytes, truncated: true });
            }
            bytes.extend_from_slice(&chunk);
        }
    }
}

/// The per-fetch resolver: knows one host (the current hop's) and its vetted addresses.
#[derive(Debug, Default)]
struct PinnedDns {
    pinned: Mutex<Option<(String, Vec<SocketAddr>)>>,
}

impl PinnedDns {
    fn set(&self, target: &CheckedTarget) {
        let mut pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        *pinned = Some((target.host.clone(), target.addrs.clone()));
    }
}

impl Resolve for PinnedDns {
    fn resolve(&self, name: Name) -> Resolving {
        let pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        let answer = match pinned.as_ref() {
            Some((host, addrs)) if host.eq_ignore_ascii_case(name.as_str()) => Ok(addrs.clone()),
            _ => Err(format!("{} was not vetted by the SSRF guard", name.as_str())),
        };
        drop(pinned);
        Box::pin(async move {
            answer.map(|addrs| Box::new(addrs.into_iter()) as Addrs).map_err(|msg| {
                Box::new(std::io::Error::other(msg)) as Box<dyn std::error::Error + Send + Sync>
            })
        })
    }
}

/// An error and its sources, joined with ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
