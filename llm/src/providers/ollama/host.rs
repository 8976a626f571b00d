//! `OLLAMA_HOST` normalisation: the many ways people write an Ollama address, turned into one
//! base URL.
//!
//! The rules follow the Ollama CLI's own reading of `OLLAMA_HOST`, so one value means the same
//! thing to `ollama` and to executus:
//! - no scheme: `http`, port `11434` unless given (`host`, `host:port`, `0.0.0.0`, `[::1]`);
//! - an explicit scheme keeps that scheme's default port unless one is given
//!   (`http://host` is port 80, `https://ollama.com` is port 443 — Ollama cloud);
//! - bare `ollama.com` is the cloud: `https://ollama.com`;
//! - an empty host (`""`, `:11434`, `http://`) is `127.0.0.1`; an empty value is the default
//!   local server;
//! - a path prefix (a reverse proxy) is kept, trailing slashes are dropped;
//! - IPv6 literals are bracketed (`::1` -> `[::1]`).
//!
//! The result never ends with a slash and names a port only when it is not the scheme's
//! default. It does not resolve names or check that anything listens there.

use crate::error::ConfigError;

/// The port Ollama listens on by default.
pub const DEFAULT_PORT: u16 = 11434;

/// The address of a default local Ollama server.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// Normalises an `OLLAMA_HOST`-style address into a base URL such as
/// `http://127.0.0.1:11434` or `https://ollama.com` (see the module docs for the rules).
///
/// # Errors
/// [`ConfigError::Dsn`] for a scheme other than `http`/`https`, a port that is not a number
/// in `1..=65535`, credentials (`user@host`: keys belong in the provider config, and the
/// message does not repeat the input then), a query or fragment, or a host the URL parser
/// rejects.
pub fn normalize_host(s: &str) -> Result<String, ConfigError> {
    let err = |reason: String| ConfigError::Dsn { name: "ollama".to_owned(), reason };
    let s = s.trim();
    if s.is_empty() {
        return Ok(DEFAULT_HOST.to_owned());
    }
    let (scheme, rest, explicit) = match s.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(err(format!(
                    "unsupported scheme {scheme:?} in Ollama host {s:?} (expected http or https)"
                )));
            }
            (scheme, rest, true)
        }
        None if s.eq_ignore_ascii_case("ollama.com") => ("https".to_owned(), s, true),
        None => ("http".to_owned(), s, false),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(
            err("credentials in the Ollama host are not allowed; set the API key instead".to_owned()),
        );
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(err(format!("Ollama host {s:?} must not carry a query or fragment")));
    }
    let (host, port) =
        split_host_port(authority).map_err(|reason| err(format!("{reason} in Ollama host {s:?}")))?;
    let host = if host.is_empty() { "127.0.0.1".to_owned() } else { host };
    let scheme_default = if scheme == "https" { 443 } else { 80 };
    let port = port.unwrap_or(if explicit { scheme_default } else { DEFAULT_PORT });
    let host_part = if host.contains(':') { format!("[{host}]") } else { host };
    let mut out = format!("{scheme}://{host_part}");
    if port != scheme_default {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(path.trim_end_matches('/'));
    url::Url::parse(&out).map_err(|e| err(format!("invalid Ollama host {s:?}: {e}")))?;
    Ok(out)
}

/// Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("unclosed '[' in IPv6 address".to_owned());
        };
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => return Err(format!("unexpected {after:?} after IPv6 address")),
            },
        };
        return Ok((host.to_owned(), port));
    }
    match authority.matches(':').count() {
        0 => Ok((authority.to_owned(), None)),
        1 => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            let port = if port.is_empty() { None } else { Some(parse_port(port)?) };
            Ok((host.to_owned(), port))
        }
        // Several colons and no brackets: a bare IPv6 literal such as `::1`.
        _ => Ok((authority.to_owned(), None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("invalid port {p:?}")),
    }
}
