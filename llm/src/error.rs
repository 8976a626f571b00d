//! Typed, classified errors: the evidence failover decides on.
//!
//! Every error names the provider and model it came from and carries the HTTP status and
//! `Retry-After` when there was one. No error ever carries an API key: wire clients scrub
//! their own secret from any server message before it lands here (see [`crate::http`]).

use std::fmt;
use std::time::Duration;

/// How an error should be treated by a caller that can retry or fail over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Worth retrying or failing over: 429, 408, 5xx, 529, refused/reset connections,
    /// timeouts, mid-stream error events.
    Transient,
    /// Retrying will not help: 400, 401, 403, 422 and other client errors.
    Permanent,
    /// The provider does not know the model.
    NotFound,
    /// The caller cancelled.
    Cancelled,
    /// The provider answered with something this crate could not decode.
    Decode,
    /// The request needs something the target cannot do.
    Unsupported,
    /// A failover chain tried every target and none answered.
    Exhausted,
}

impl ErrorKind {
    /// Lower-case name, for logs and audit rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::NotFound => "not_found",
            Self::Cancelled => "cancelled",
            Self::Decode => "decode",
            Self::Unsupported => "unsupported",
            Self::Exhausted => "exhausted",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt a failover chain made, kept for the exhaustion error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Provider name.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// 1-based attempt number on this target.
    pub attempt: u32,
    /// How it failed.
    pub kind: ErrorKind,
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// The failure message.
    pub message: String,
}

/// An error from a model call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub struct Error {
    /// Classification.
    pub kind: ErrorKind,
    /// Provider name (`openai`, a registry name such as `local`, or `chain`).
    pub provider: String,
    /// Model id.
    pub model: String,
    /// HTTP status, when the error came from a response.
    pub status: Option<u16>,
    /// How long the server asked us to wait (`Retry-After`, `retry-after-ms`).
    pub retry_after: Option<Duration>,
    /// Human-readable detail (the provider's own message where there is one).
    pub message: String,
    /// For [`ErrorKind::Exhausted`]: every attempt made, in order.
    pub attempts: Vec<Attempt>,
    /// For [`ErrorKind::Exhausted`]: targets skipped because they were benched or could not
    /// serve the request, as `provider/model (reason)`.
    pub skipped: Vec<String>,
    /// The connection was refused (nothing listens at the address): the request never reached
    /// a server. Still [`ErrorKind::Transient`]; a failover chain advances past such a target
    /// at once instead of retrying it (see [`crate::chain`]).
    pub connection_refused: bool,
}

impl Error {
    /// A new error of `kind` for `provider`/`model`.
    pub fn new(
        kind: ErrorKind,
        provider: impl Into<String>,
        model: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            provider: provider.into(),
            model: model.into(),
            status: None,
            retry_after: None,
            message: message.into(),
            attempts: Vec::new(),
            skipped: Vec::new(),
            connection_refused: false,
        }
    }

    /// The target that failed (`provider/model`).
    pub fn target(&self) -> crate::Target {
        crate::Target::new(&self.provider, &self.model)
    }

    /// Marks the error as a refused connection (see [`Error::connection_refused`]).
    #[must_use]
    pub fn with_connection_refused(mut self) -> Self {
        self.connection_refused = true;
        self
    }

    /// Sets the HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the retry-after delay.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for [`ErrorKind::Transient`].
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// A transient error.
    pub fn transient(provider: &str, model: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, provider, model, message)
    }

    /// A permanent error.
    pub fn permanent(provider: &str, model: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, provider, model, message)
    }

    /// A decode error.
    pub fn decode(provider: &str, model: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, provider, model, message)
    }

    /// A cancellation.
    pub fn cancelled(provider: &str, model: &str) -> Self {
        Self::new(ErrorKind::Cancelled, provider, model, "cancelled")
    }

    /// An unsupported-feature error.
    pub fn unsupported(provider: &str, model: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, provider, model, message)
    }

    /// A model-not-found error.
    pub fn not_found(provider: &str, model: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, provider, model, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: {} error", self.provider, self.model, self.kind)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(after) = self.retry_after {
            write!(f, " [retry after {:.3}s]", after.as_secs_f64())?;
        }
        for a in &self.attempts {
            write!(f, "\n  attempt {} on {}/{}: {}", a.attempt, a.provider, a.model, a.kind)?;
            if let Some(status) = a.status {
                write!(f, " (HTTP {status})")?;
            }
            write!(f, ": {}", a.message)?;
        }
        for s in &self.skipped {
            write!(f, "\n  skipped {s}")?;
        }
        Ok(())
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An invalid configuration: a DSN, a chain spec, an alias, an environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A DSN could not be parsed.
    #[error("invalid DSN for provider {name:?}: {reason}")]
    Dsn {
        /// The provider name the DSN was for (or the env var).
        name: String,
        /// What is wrong (never includes the key).
        reason: String,
    },
    /// The DSN scheme is not one this crate knows.
    #[error(
        "unknown DSN scheme {scheme:?} for provider {name:?} (expected one of openai, anthropic, gemini, ollama, llama-swap, optionally with +http or +https)"
    )]
    UnknownScheme {
        /// Provider name.
        name: String,
        /// The scheme found.
        scheme: String,
    },
    /// A chain spec element names a provider that is not registered.
    #[error("unknown provider {provider:?} in chain element {element:?} (registered: {known})")]
    UnknownProvider {
        /// The provider part.
        provider: String,
        /// The whole element.
        element: String,
        /// Registered provider names, comma-separated.
        known: String,
    },
    /// A chain spec element is neither an alias nor `provider/model`.
    #[error("chain element {element:?} is neither a known alias nor provider/model")]
    BadElement {
        /// The element.
        element: String,
    },
    /// A chain spec has an empty element (a leading, trailing or doubled comma).
    #[error("chain spec {spec:?} has an empty element (a leading, trailing or doubled comma)")]
    EmptyElement {
        /// The spec (the alias's own spec when it came from an alias) holding it.
        spec: String,
    },
    /// The chain spec resolved to no targets.
    #[error("chain spec {spec:?} is empty")]
    EmptyChain {
        /// The spec.
        spec: String,
    },
    /// Aliases refer to each other in a cycle.
    #[error("alias cycle: {}", cycle.join(" -> "))]
    AliasCycle {
        /// The aliases in the cycle, ending with the repeated one.
        cycle: Vec<String>,
    },
    /// A chain element names a provider that cannot generate images, in an image chain.
    #[error(
        "{element:?}: provider {provider:?} cannot generate images (openai, llama-swap and gemini providers can)"
    )]
    NoImageOutput {
        /// The provider.
        provider: String,
        /// The whole element.
        element: String,
    },
    /// A provider or alias name is not valid.
    #[error("invalid name {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}
