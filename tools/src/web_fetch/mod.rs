//! `web_fetch`: GET a URL through the SSRF guard and return its content as text.
//!
//! Every hop goes through [`GuardedHttp`] (pinned addresses, redirects re-checked and capped,
//! one deadline). The body is read up to `max_bytes` and the output says when it was cut.
//! Content-type aware: `text/html` and XHTML become readable text (see `html`); other
//! `text/*`, JSON, XML, YAML, JavaScript and similar textual types are returned as they are;
//! binary types (images, PDF, archives, `application/octet-stream`...) are refused without
//! reading the body, naming the type. A response without a `Content-Type` is returned only if
//! it looks like text. A non-2xx status is an error carrying the status, the final URL and
//! the start of a textual body.
//!
//! Output: `URL:`, `Status:`, `Content-Type:` lines (and `Redirected from:` when a redirect
//! happened), a blank line, the text, and a `[truncated: ...]` note when cut.

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::net::{AllowList, FetchError, FetchOptions, GuardedHttp, SsrfError, SsrfGuard};
use crate::{parse_args, schema_of};
use executus::RuntimeConfig;
use executus::tool::{Tool, ToolContext, ToolError, ToolOutput};

mod html;

/// Limits of `web_fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebFetchLimits {
    /// Largest body read; the rest is cut with a note.
    pub max_bytes: usize,
    /// Deadline for the whole fetch (resolution, redirects, body).
    pub timeout: Duration,
    /// Deadline for each connect.
    pub connect_timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
}

impl Default for WebFetchLimits {
    fn default() -> Self {
        let options = FetchOptions::default();
        Self {
            max_bytes: 256 << 10,
            timeout: options.timeout,
            connect_timeout: options.connect_timeout,
            max_redirects: options.max_redirects,
        }
    }
}

/// Arguments of `web_fetch`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WebFetchArgs {
    /// The absolute http:// or https:// URL to GET.
    pub url: String,
}

/// The `web_fetch` tool.
#[derive(Debug, Clone)]
pub struct WebFetch {
    http: GuardedHttp,
    max_bytes: usize,
}

const NAME: &str = "web_fetch";

/// How many bytes of an error response's body go into the error message.
const ERROR_BODY_BYTES: usize = 1024;

impl WebFetch {
    /// A `web_fetch` whose only exceptions to the address checks are `allow`, resolving
    /// through the system resolver.
    pub fn new(allow: AllowList, limits: WebFetchLimits) -> Self {
        Self::with_guard(SsrfGuard::new(allow), limits)
    }

    /// A `web_fetch` checking with `guard` (its allow list and resolver).
    pub fn with_guard(guard: SsrfGuard, limits: WebFetchLimits) -> Self {
        let options = FetchOptions {
            timeout: limits.timeout,
            connect_timeout: limits.connect_timeout,
            max_redirects: limits.max_redirects,
            ..FetchOptions::default()
        };
        Self { http: GuardedHttp::new(guard, options), max_bytes: limits.max_bytes.max(1) }
    }

    /// Allow list (`network_allow`) and body cap (`web_fetch_max_bytes`) from `config`; an
    /// invalid allow list entry is logged and admits nothing.
    pub fn from_config(config: &RuntimeConfig) -> Self {
        let (allow, errors) = AllowList::parse_lossy(&config.network_allow);
        for e in errors {
            tracing::warn!(error = %e, "web_fetch: ignoring network allow list entry");
        }
        Self::new(
            allow,
            WebFetchLimits { max_bytes: config.web_fetch_max_bytes, ..WebFetchLimits::default() },
        )
    }

    /// Fetches `url` and renders the tool output (the tool's `call` without cancellation).
    ///
    /// # Errors
    /// [`ToolError::InvalidArgs`] for a URL that does not parse; [`ToolError::Refused`] for a
    /// target the guard refuses or a binary content type; [`ToolError::Timeout`];
    /// [`ToolError::Failed`] for transport errors, redirect trouble and non-2xx statuses.
    pub async fn fetch(&self, url: &str) -> Result<String, ToolError> {
        let response = self.http.get(url).await.map_err(|e| self.tool_error(e))?;
        let status = response.status();
        let status_line = match response.reason() {
            Some(reason) => format!("{status} {reason}"),
            None => status.to_string(),
        };
        let final_url = response.url().clone();
        let content_type = response.content_type().map(str::to_owned);
        let kind = Kind::of(content_type.as_deref());
        let redirects: Vec<String> = response.redirects().iter().map(ToString::to_string).collect();

        if !(200..300).contains(&status) {
            // The start of a textual error body often says why (an API's JSON error); a
            // failure to read it only loses the excerpt.
            let excerpt = match kind {
                Kind::Binary(_) => String::new(),
                _ => match response.read_capped(ERROR_BODY_BYTES).await {
                    Ok(b) => {
                        let text = decode(&b.bytes, content_type.as_deref(), b.truncated);
                        if kind == Kind::Html { html::html_to_text(&text, None) } else { text }
                    }
                    Err(_) => String::new(),
                },
            };
            let excerpt = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut message = format!("GET {final_url} returned HTTP {status_line}");
            if !excerpt.is_empty() {
                message.push_str(": ");
                message.push_str(&excerpt);
            }
            return Err(ToolError::failed(NAME, message));
        }
        if let Kind::Binary(mime) = &kind {
            return Err(ToolError::refused(
                NAME,
                format!(
                    "{final_url} has content type {mime}, which is binary; web_fetch returns only \
                     text (text/*, HTML, JSON, XML)"
                ),
            ));
        }

        let body = response.read_capped(self.max_bytes).await.map_err(|e| self.tool_error(e))?;
        let text = match kind {
            Kind::Unknown if !looks_like_text(&body.bytes) => {
                return Err(ToolError::refused(
                    NAME,
                    format!("{final_url} sent no Content-Type and its body is not text"),
                ));
            }
            Kind::Html => html::html_to_text(
                &decode(&body.bytes, content_type.as_deref(), body.truncated),
                Some(&final_url),
            ),
            _ => decode(&body.bytes, content_type.as_deref(), body.truncated),
        };

        let mut out = format!("URL: {final_url}\nStatus: {status_line}\n");
        out.push_str(&format!("Content-Type: {}\n", content_type.as_deref().unwrap_or("(none)")));
        if !redirects.is_empty() {
            out.push_str(&format!("Redirected from: {}\n", redirects.join(" -> ")));
        }
        out.push('\n');
        out.push_str(&text);
        if body.truncated {
            out.push_str(&format!(
                "\n\n[truncated: the body is larger than {} bytes; only the first {} bytes were read]",
                self.max_bytes, self.max_bytes
            ));
        }
        Ok(out)
    }

    fn tool_error(&self, e: FetchError) -> ToolError {
        match e {
            FetchError::Refused(SsrfError::InvalidUrl { .. }) => {
                ToolError::InvalidArgs { tool: NAME.into(), message: e.to_string() }
            }
            FetchError::Refused(refusal) => ToolError::refused(NAME, refusal.to_string()),
            FetchError::Timeout { after, .. } => ToolError::Timeout { tool: NAME.into(), after },
            other => ToolError::failed(NAME, other.to_string()),
        }
    }
}

/// What a content type means for us.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Html,
    Text,
    Binary(String),
    Unknown,
}

impl Kind {
    fn of(content_type: Option<&str>) -> Self {
        let mime =
            content_type.and_then(|c| c.split(';').next()).unwrap_or_default().trim().to_ascii_lowercase();
        if mime.is_empty() {
            return Self::Unknown;
        }
        if mime == "text/html" || mime == "application/xhtml+xml" {
            return Self::Html;
        }
        let textual = mime.starts_with("text/")
            || mime.ends_with("+json")
            || mime.ends_with("+xml")
            || mime.ends_with("+yaml")
            || matches!(
                mime.as_str(),
                "application/json"
                    | "application/xml"
                    | "application/javascript"
                    | "application/ecmascript"
                    | "application/x-javascript"
                    | "application/x-ndjson"
                    | "application/jsonl"
                    | "application/yaml"
                    | "application/x-yaml"
                    | "application/toml"
                    | "application/x-sh"
                    | "application/sql"
                    | "application/graphql"
                    | "application/x-www-form-urlencoded"
            );
        if textual { Self::Text } else { Self::Binary(mime) }
    }
}

/// Bytes to text: UTF-8 (lossy), or Latin-1 when the charset says so. A multi-byte character
/// cut by truncation is dropped rather than shown as a replacement character.
fn decode(bytes: &[u8], content_type: Option<&str>, truncated: bool) -> String {
    let charset = content_type
        .and_then(|c| c.split(';').skip(1).find_map(|p| p.trim().strip_prefix("charset=").map(str::to_owned)))
        .map(|c| c.trim_matches('"').to_ascii_lowercase());
    if matches!(charset.as_deref(), Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252")) {
        return bytes.iter().map(|&b| char::from(b)).collect();
    }
    let bytes = if truncated { trim_partial_char(bytes) } else { bytes };
    String::from_utf8_lossy(bytes).into_owned()
}

/// `bytes` without a trailing incomplete UTF-8 sequence.
fn trim_partial_char(bytes: &[u8]) -> &[u8] {
    for back in 1..=3.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead byte
        }
        let needed = match b {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if needed > back { &bytes[..bytes.len() - back] } else { bytes };
    }
    bytes
}

/// No NUL bytes and (up to a cut final character) valid UTF-8 in the first 8 KiB.
fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8 << 10)];
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

#[async_trait]
impl Tool for WebFetch {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Fetches a public http(s) URL with GET and returns its content as text: HTML is \
         converted to readable text, JSON and other text types are returned as is, binary \
         types are refused. Long bodies are truncated with a note. Private, loopback and \
         cloud-metadata addresses are refused."
    }

    fn parameters(&self) -> Value {
        schema_of::<WebFetchArgs>()
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read_only(&self) -> bool {
        true
    }

    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let args: WebFetchArgs = parse_args(NAME, args)?;
        tokio::select! {
            () = ctx.cancel.cancelled() => Err(ToolError::Cancelled { tool: NAME.into() }),
            out = self.fetch(&args.url) => out.map(ToolOutput::text),
        }
    }
}
