//! The plain-`http://` fast path: requests sent with a bare hyper-util client instead of
//! reqwest, for endpoints on the local network (a llama.cpp server, llama-swap, a gateway's
//! upstream), where reqwest's per-request layers (the redirect layer parses every request's
//! URI into a `Url`, the connector and client are cloned, the request is rebuilt) cost about as
//! much as the HTTP exchange itself.
//!
//! The caller prepares the request once per endpoint ([`DirectTarget`]: the URI, the
//! `Authorization` value marked sensitive) and hands the answer on as a `reqwest::Response`,
//! so everything after the headers (bounded bodies, idle timeouts, SSE framing, error bodies)
//! is the same code as for every other request.
//!
//! Guarantees, the same as reqwest's path:
//! - the connect timeout, `TCP_NODELAY`, a keep-alive pool with a 60 s idle timeout, and the
//!   time-to-headers timeout of [`Http::send`];
//! - a non-2xx status is the same classified error ([`Http::check`]); transport errors are
//!   classified as reqwest's are ([`Http::direct_error`]), a refused connection marked;
//! - a redirect (3xx) is not followed here: the caller re-sends the request through reqwest,
//!   which follows it as before.
//!
//! Whole (non-streamed) answers go one step further: [`super::inline`] sends them on
//! connections the asking task drives itself, pooled per [`DirectTarget`]; streams use the
//! pooled client here.
//!
//! What it does not do: TLS, proxies, HTTP/2. It is used only when none is in play: the URL is
//! `http://`, [`HttpOptions::http2_prior_knowledge`] is off and no proxy is configured in the
//! environment (`http_proxy`, `HTTP_PROXY`, `all_proxy`, `ALL_PROXY`: reqwest then applies it
//! with its `NO_PROXY` rules). Everything else goes through reqwest unchanged.
//! `EXECUTUS_BARE_HTTP=0` in the environment (not an `EXECUTUS_LLM_*` name: those are DSNs) turns the fast path off (every request
//! through reqwest), for a server that gets along with reqwest only, and for measuring.

use std::time::Duration;

use ::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::ResponseBuilderExt as _;

use super::{Http, HttpOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// The bare client: HTTP/1.1 over plain TCP, pooled.
pub(crate) type DirectClient = Client<HttpConnector, Full<Bytes>>;

/// Environment variables through which reqwest picks up a proxy for `http://` URLs.
const PROXY_VARS: [&str; 4] = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

/// The variable that turns the fast path off when it is `0`.
pub(crate) const SWITCH: &str = "EXECUTUS_BARE_HTTP";

/// A bare client for these options, or `None` when a request must go through reqwest (HTTP/2
/// with prior knowledge, a proxy configured in the environment, or [`SWITCH`] at `0`).
pub(crate) fn client(options: &HttpOptions) -> Option<DirectClient> {
    client_with(options, |name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// [`client`] with the environment given as `var` (tests).
pub(crate) fn client_with(
    options: &HttpOptions,
    var: impl Fn(&str) -> Option<String>,
) -> Option<DirectClient> {
    if options.http2_prior_knowledge
        || PROXY_VARS.iter().any(|name| var(name).is_some())
        || var(SWITCH).is_some_and(|v| v.trim() == "0")
    {
        return None;
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(options.connect_timeout));
    Some(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector),
    )
}

/// One endpoint's prepared request parts.
#[derive(Debug, Clone)]
pub(crate) struct DirectTarget {
    uri: ::http::Uri,
    /// The same URL for the answer (`reqwest::Response::url`), parsed once.
    url: reqwest::Url,
    /// `Bearer <key>`, marked sensitive (it never prints).
    authorization: Option<HeaderValue>,
    /// The `Host` header, as the client would write it for each request (the port only when
    /// not 80).
    host: HeaderValue,
    /// The request target as a connection of our own writes it (origin form: path and query).
    origin: ::http::Uri,
    /// Where to connect: the host (an IPv6 address without brackets) and the port.
    connect: (String, u16),
    /// Idle connections for whole answers (`http::inline`), shared by this target's clones.
    pool: std::sync::Arc<super::inline::Pool>,
}

impl DirectTarget {
    /// The parts for `url` when it is a plain `http://` URL both parsers accept; `None`
    /// otherwise (the request then goes through reqwest).
    pub(crate) fn new(url: &reqwest::Url, secret: Option<&Secret>) -> Option<Self> {
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let uri: ::http::Uri = url.as_str().parse().ok()?;
        let host = match (uri.host()?, uri.port_u16()) {
            (host, Some(port)) if port != 80 => HeaderValue::from_str(&format!("{host}:{port}")).ok()?,
            (host, _) => HeaderValue::from_str(host).ok()?,
        };
        let authorization = match secret {
            None => None,
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok()?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let origin: ::http::Uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse().ok()?;
        let connect_host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let connect = (connect_host, uri.port_u16().unwrap_or(80));
        let pool = std::sync::Arc::default();
        Some(Self { uri, url: url.clone(), authorization, host, origin, connect, pool })
    }

    /// A JSON `POST` of `body` for the pooled client (the URI absolute); `accept` names what
    /// the answer should be.
    pub(crate) fn post(&self, body: Bytes, accept: &'static str) -> ::http::Request<Full<Bytes>> {
        self.request(self.uri.clone(), body, accept)
    }

    /// [`DirectTarget::post`] for a connection of our own: the request line carries the path
    /// (origin form), as every server expects from a client that is not a proxy.
    pub(crate) fn post_origin(&self, body: Bytes, accept: &'static str) -> ::http::Request<Full<Bytes>> {
        self.request(self.origin.clone(), body, accept)
    }

    /// The idle connections of this endpoint.
    pub(crate) fn pool(&self) -> &super::inline::Pool {
        &self.pool
    }

    /// The host and port to connect to.
    pub(crate) fn authority(&self) -> (&str, u16) {
        (&self.connect.0, self.connect.1)
    }

    fn request(&self, uri: ::http::Uri, body: Bytes, accept: &'static str) -> ::http::Request<Full<Bytes>> {
        let mut request = ::http::Request::new(Full::new(body));
        *request.method_mut() = ::http::Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(value) = &self.authorization {
            headers.insert(AUTHORIZATION, value.clone());
        }
        request
    }
}

impl Http {
    /// Sends `request` with the bare client and waits for headers (bounded as in
    /// [`Http::send`]). `Ok(None)`: the server answered with a redirect, which the caller
    /// re-sends through reqwest.
    pub(crate) async fn send_direct(
        &self,
        model: &str,
        client: &DirectClient,
        target: &DirectTarget,
        request: ::http::Request<Full<Bytes>>,
    ) -> Result<Option<reqwest::Response>> {
        let response = match tokio::time::timeout(self.options.headers_timeout, client.request(request)).await
        {
            Err(_) => return Err(self.headers_timeout_error(model)),
            Ok(Err(e)) => return Err(self.direct_error(model, &e)),
            Ok(Ok(response)) => response,
        };
        if response.status().is_redirection() {
            return Ok(None);
        }
        let (mut parts, body) = response.into_parts();
        // The URL the answer came from, as reqwest records it (read by nothing here, but a
        // response without one would make reqwest parse a placeholder URL per request).
        let (tagged, ()) =
            ::http::Response::builder().url(target.url.clone()).body(()).unwrap_or_default().into_parts();
        parts.extensions.extend(tagged.extensions);
        let response =
            reqwest::Response::from(::http::Response::from_parts(parts, reqwest::Body::wrap(body)));
        self.check(model, response).await.map(Some)
    }

    /// Classifies a bare client's transport error as [`Http::transport_error`] does reqwest's.
    pub(crate) fn direct_error(&self, model: &str, e: &hyper_util::client::legacy::Error) -> Error {
        let (cause, refused) = super::error_chain(e);
        let what = if e.is_connect() { "connect failed" } else { "request failed" };
        let error = self.error(ErrorKind::Transient, model, format!("{what}: {cause}"));
        if refused && e.is_connect() { error.with_connection_refused() } else { error }
    }
}

#[cfg(test)]
mod tests {
    use super::DirectTarget;

    fn host(url: &str) -> String {
        let url = reqwest::Url::parse(url).unwrap();
        let target = DirectTarget::new(&url, None).expect("a plain http:// URL");
        let request = target.post(bytes::Bytes::new(), "*/*");
        request.headers()[::http::header::HOST].to_str().unwrap().to_owned()
    }

    /// The `Host` header is the one the client would write: the port only when not the
    /// scheme's default, an IPv6 address in brackets.
    #[test]
    fn the_host_header_names_the_port_only_when_it_is_not_80() {
        assert_eq!(host("http://127.0.0.1:8080/v1"), "127.0.0.1:8080");
        assert_eq!(host("http://llama.local/v1"), "llama.local");
        assert_eq!(host("http://llama.local:80/v1"), "llama.local");
        assert_eq!(host("http://[::1]:9000/v1"), "[::1]:9000");
    }
}
