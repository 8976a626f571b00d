//! Provider DSNs: one string that says which wire protocol, where, and with which key.
//!
//! ```text
//! openai://KEY@host[:port][/path]      https by default; empty host = https://api.openai.com/v1
//! anthropic://KEY@[host[:port][/path]] https; empty host = https://api.anthropic.com
//! gemini://KEY@[host[:port][/path]]    https; empty host = https://generativelanguage.googleapis.com/v1beta
//! ollama://[KEY@][host[:port][/path]]  http;  empty host = http://127.0.0.1:11434
//! llama-swap://[TOKEN@][host[:port]]   http;  empty host = http://127.0.0.1:8080
//! ```
//!
//! A `+http` or `+https` suffix on the scheme overrides the transport of an explicit host
//! (`openai+http://127.0.0.1:8080/v1`); an empty host always means the default URL above,
//! verbatim. The path is kept verbatim (OpenAI-compatible servers usually want `/v1`). Keys
//! may be percent-encoded and are decoded; a key containing `/`, `?`, `#` must be. A key is
//! required for the official OpenAI, Anthropic and Gemini endpoints; compatible servers at
//! other hosts (a local `llama-server`) may go without.
//!
//! Guarantees: a bad DSN is a [`ConfigError`] naming the provider and the problem, and never
//! containing the key — nor any other part of the DSN that could be the key (a bad port or
//! host is described, not quoted). [`ProviderSpec`]'s `Debug` shows the key as `[redacted]`.
//! This module does not contact any server.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;

use crate::error::ConfigError;
use crate::http::HttpOptions;
use crate::model::Provider;
use crate::providers::ProviderConfig;
use crate::providers::anthropic::Anthropic;
use crate::providers::gemini::Gemini;
use crate::providers::llama_swap::LlamaSwap;
use crate::providers::ollama::Ollama;
use crate::providers::openai::OpenAi;
use crate::secret::Secret;

/// The prefix of environment variables that register providers.
pub const ENV_PREFIX: &str = "EXECUTUS_LLM_";

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI Chat Completions and compatible servers.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini.
    Gemini,
    /// Ollama native `/api/chat`.
    Ollama,
    /// llama-swap (OpenAI-compatible chat plus management calls).
    LlamaSwap,
}

impl ProviderKind {
    /// Every kind, in documentation order.
    pub const ALL: [Self; 5] = [Self::OpenAi, Self::Anthropic, Self::Gemini, Self::Ollama, Self::LlamaSwap];

    /// The DSN scheme (`openai`, `llama-swap`, ...).
    pub fn scheme(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Ollama => "ollama",
            Self::LlamaSwap => "llama-swap",
        }
    }

    /// The kind for a DSN scheme without its `+http`/`+https` suffix (case-insensitive).
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.scheme().eq_ignore_ascii_case(scheme))
    }

    /// The base URL used when a DSN has no host.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
            Self::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            Self::Ollama => "http://127.0.0.1:11434",
            Self::LlamaSwap => "http://127.0.0.1:8080",
        }
    }

    /// Local-first kinds default to plain http for an explicit host.
    fn default_transport(self) -> &'static str {
        match self {
            Self::Ollama | Self::LlamaSwap => "http",
            Self::OpenAi | Self::Anthropic | Self::Gemini => "https",
        }
    }

    /// The official host, where a key is mandatory.
    fn official_host(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("api.openai.com"),
            Self::Anthropic => Some("api.anthropic.com"),
            Self::Gemini => Some("generativelanguage.googleapis.com"),
            Self::Ollama | Self::LlamaSwap => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A parsed provider DSN: everything needed to build the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    /// Registry name (lower-case when it came from the environment).
    pub name: String,
    /// Wire protocol.
    pub kind: ProviderKind,
    /// Base URL, without a trailing `/`.
    pub base_url: String,
    /// API key or bearer token (decoded).
    pub api_key: Option<Secret>,
}

impl ProviderSpec {
    /// Parses `dsn` for the provider registered as `name`.
    ///
    /// # Errors
    /// [`ConfigError::BadName`] for an unusable name, [`ConfigError::UnknownScheme`] for a
    /// scheme this crate does not know, [`ConfigError::Dsn`] for anything else that is
    /// malformed (no `://`, bad port, bad host, bad percent-escape, missing required key).
    /// No error contains the key.
    pub fn parse(name: &str, dsn: &str) -> Result<Self, ConfigError> {
        validate_name(name)?;
        let bad = |reason: &str| ConfigError::Dsn { name: name.to_owned(), reason: reason.to_owned() };
        let dsn = dsn.trim();
        let Some((scheme, rest)) = dsn.split_once("://") else {
            return Err(bad("expected `scheme://...`, e.g. `openai://KEY@host` or `ollama://host:11434`"));
        };
        let (kind, transport) = parse_scheme(name, scheme)?;

        // The authority ends at the first '/', '?' or '#'; a key holding one of those must be
        // percent-encoded, which the '@' check below catches (instead of silently treating
        // half the key as a host or path that could end up in a log).
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if path.contains('@') {
            return Err(bad(
                "'@' after the host: percent-encode '/', '?', '#' and '@' inside the key (e.g. '/' as %2F)",
            ));
        }
        if path.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not supported"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the path contains whitespace or control characters"));
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (&authority[..at], &authority[at + 1..]),
            None => ("", authority),
        };
        let api_key = decode_key(userinfo).map_err(bad)?;
        let (host, port) = split_host_port(hostport).map_err(bad)?;

        let base_url = if host.is_empty() {
            if port.is_some() || !path.is_empty() {
                return Err(bad(
                    "a port or path needs a host (leave all three empty for the default endpoint)",
                ));
            }
            kind.default_base_url().to_owned()
        } else {
            let transport = transport.unwrap_or_else(|| kind.default_transport());
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{transport}://{host}{port}{}", path.trim_end_matches('/'))
        };

        let official = host.is_empty()
            || kind.official_host().is_some_and(|official| host.eq_ignore_ascii_case(official));
        if api_key.is_none() && official && kind.official_host().is_some() {
            return Err(bad(&format!(
                "missing API key: the official {kind} endpoint needs one (`{kind}://KEY@`)"
            )));
        }
        Ok(Self { name: name.to_owned(), kind, base_url, api_key })
    }

    /// The wire-client configuration, with these HTTP options.
    pub fn config(&self, http: HttpOptions) -> ProviderConfig {
        ProviderConfig {
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            api_key: self.api_key.clone(),
            http,
            media: None,
        }
    }

    /// Builds the provider this spec describes.
    pub fn build(&self, http: HttpOptions) -> Arc<dyn Provider> {
        let config = self.config(http);
        match self.kind {
            ProviderKind::OpenAi => Arc::new(OpenAi::new(config)),
            ProviderKind::Anthropic => Arc::new(Anthropic::new(config)),
            ProviderKind::Gemini => Arc::new(Gemini::new(config)),
            ProviderKind::Ollama => Arc::new(Ollama::new(config)),
            ProviderKind::LlamaSwap => Arc::new(LlamaSwap::new(config)),
        }
    }

    /// Every `EXECUTUS_LLM_<NAME>=<dsn>` pair in `vars` as a spec named `<name>` lower-cased,
    /// sorted by name. Other variables are ignored. Takes the pairs so callers (and tests)
    /// need not touch the process environment.
    ///
    /// # Errors
    /// The first bad DSN (its error names the variable), or a [`ConfigError::BadName`] when
    /// two variables lower-case to the same name or the name is empty.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Vec<Self>, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut specs: Vec<Self> = Vec::new();
        for (key, value) in vars {
            let key = key.as_ref();
            let Some(suffix) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let name = suffix.to_ascii_lowercase();
            let spec = Self::parse(&name, value.as_ref()).map_err(|e| from_var(e, key))?;
            if specs.iter().any(|s| s.name == name) {
                return Err(ConfigError::BadName {
                    name,
                    reason: format!("set by more than one {ENV_PREFIX}* variable (names are lower-cased)"),
                });
            }
            specs.push(spec);
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(specs)
    }

    /// [`ProviderSpec::from_vars`] over the process environment. Variables whose name is not
    /// Unicode are ignored; an `EXECUTUS_LLM_*` variable whose value is not Unicode is an error.
    ///
    /// # Errors
    /// As [`ProviderSpec::from_vars`].
    pub fn from_env() -> Result<Vec<Self>, ConfigError> {
        let mut vars = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Ok(key) = key.into_string() else { continue };
            if !key.starts_with(ENV_PREFIX) {
                continue;
            }
            let value = value.into_string().map_err(|_: OsString| ConfigError::Dsn {
                name: key.clone(),
                reason: "the value is not valid Unicode".to_owned(),
            })?;
            vars.push((key, value));
        }
        Self::from_vars(vars)
    }
}

/// Says which variable a DSN error came from.
fn from_var(error: ConfigError, var: &str) -> ConfigError {
    match error {
        ConfigError::Dsn { name, reason } => {
            ConfigError::Dsn { name, reason: format!("{reason} (from ${var})") }
        }
        ConfigError::UnknownScheme { name, scheme } => {
            ConfigError::UnknownScheme { name: format!("{name} (from ${var})"), scheme }
        }
        ConfigError::BadName { name, reason } => {
            ConfigError::BadName { name, reason: format!("{reason} (from ${var})") }
        }
        other => other,
    }
}

/// Checks a provider or alias name: non-empty ASCII letters, digits, `-`, `_`, `.`.
///
/// # Errors
/// [`ConfigError::BadName`] saying what is wrong.
pub(crate) fn validate_name(name: &str) -> Result<(), ConfigError> {
    let reason = if name.is_empty() {
        "a name must not be empty"
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        "use only ASCII letters, digits, '-', '_' and '.'"
    } else {
        return Ok(());
    };
    Err(ConfigError::BadName { name: name.to_owned(), reason: reason.to_owned() })
}

fn parse_scheme(name: &str, scheme: &str) -> Result<(ProviderKind, Option<&'static str>), ConfigError> {
    let unknown = || ConfigError::UnknownScheme {
        name: name.to_owned(),
        // Quote the scheme only when it looks like one: garbage before "://" could be a key.
        scheme: if scheme.len() <= 20
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            scheme.to_owned()
        } else {
            "(not shown)".to_owned()
        },
    };
    let (base, transport) = match scheme.split_once('+') {
        Some((base, transport)) => (base, Some(transport)),
        None => (scheme, None),
    };
    let kind = ProviderKind::from_scheme(base).ok_or_else(unknown)?;
    let transport = match transport.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("http") => Some("http"),
        Some("https") => Some("https"),
        Some(_) => return Err(unknown()),
    };
    Ok((kind, transport))
}

fn decode_key(userinfo: &str) -> Result<Option<Secret>, &'static str> {
    if userinfo.is_empty() {
        return Ok(None);
    }
    let key = percent_decode(userinfo)
        .ok_or("the key has an invalid percent-escape or is not UTF-8 once decoded")?;
    if key.chars().any(char::is_control) {
        return Err("the key contains control characters");
    }
    if key.is_empty() { Ok(None) } else { Ok(Some(Secret::new(key))) }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Splits `host[:port]` (or `[v6][:port]`), validating both. The host may be empty.
fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let close = inner.find(']').ok_or("an IPv6 host is missing its closing ']'")?;
        let address = &inner[..close];
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.')) {
            return Err("the IPv6 host is not a valid address");
        }
        let after = &inner[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err("unexpected characters after the IPv6 host"),
        };
        (&hostport[..close + 2], port)
    } else {
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        };
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
            return Err("the host contains characters not allowed in a host name");
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(port) => {
            let valid = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
            match port.parse::<u16>() {
                Ok(number) if valid && number != 0 => Some(number),
                _ => return Err("the port must be a number from 1 to 65535"),
            }
        }
    };
    Ok((host, port))
}
