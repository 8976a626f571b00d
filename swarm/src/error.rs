//! [`ReviewError`]: everything that stops a review before it has a result. A model or cell
//! that fails is not an error here: it is reported in [`Review::cells`](crate::Review::cells).

use std::path::PathBuf;

/// Why a review could not be configured, run or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// An environment variable has an unusable value.
    #[error("{var}: {reason}")]
    Env {
        /// The variable, e.g. `PR_REVIEW_CONCURRENCY`.
        var: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A provider DSN (`EXECUTUS_LLM_<NAME>`) or a tier is invalid; the message names the
    /// variable and never contains a key.
    #[error("{var}: {source}")]
    Models {
        /// The variable (or variable family) the problem came from.
        var: String,
        /// The registry's error.
        #[source]
        source: executus_llm::ConfigError,
    },
    /// A model spec names a provider, tier or model that is not configured.
    #[error("PR_REVIEW_MODELS: model {spec:?} cannot be used: {source}{hint}")]
    UnknownModel {
        /// The spec.
        spec: String,
        /// The registry's error.
        #[source]
        source: executus_llm::ConfigError,
        /// A hint for the common mistake, or empty.
        hint: String,
    },
    /// A replay transcript could not be loaded, or the recording transcript created.
    #[error("{var}: {source}")]
    Transcript {
        /// `PR_REVIEW_REPLAY`, `PR_REVIEW_RECORD`, or `bundled transcript`.
        var: String,
        /// The transcript error (path and line).
        #[source]
        source: executus_llm::fake::TranscriptError,
    },
    /// The diff could not be read.
    #[error("PR_REVIEW_DIFF: cannot read {}: {source}", path.display())]
    ReadDiff {
        /// The path (`-` for stdin).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// git could not give the diff (`PR_REVIEW_BASE`, `--base`).
    #[error("{source}")]
    Git {
        /// git's error (the command and its message).
        #[source]
        source: crate::git::GitError,
    },
    /// The diff is empty or has no file in it.
    #[error("the diff is empty or is not a unified diff (no `+++ ` file header found)")]
    EmptyDiff,
    /// The diff is larger than a review sends.
    #[error("the diff is {bytes} bytes; the limit is {max} bytes (review a smaller change)")]
    DiffTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The runtime could not be built.
    #[error("runtime: {0}")]
    Runtime(String),
    /// The swarm could not start or stopped without a result.
    #[error("swarm: {0}")]
    Fanout(#[from] executus::FanoutError),
    /// The bundled fixture could not be recorded (see `record_fixture`).
    #[error("fixture: {0}")]
    Fixture(String),
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ReviewError {
    pub(crate) fn env(var: &str, reason: impl Into<String>) -> Self {
        Self::Env { var: var.to_owned(), reason: reason.into() }
    }

    /// True for configuration problems (a bad variable, model spec or transcript), which a
    /// command line reports with its usage exit code.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Env { .. }
                | Self::Models { .. }
                | Self::UnknownModel { .. }
                | Self::Transcript { .. }
                | Self::ReadDiff { .. }
                | Self::Git { .. }
                | Self::EmptyDiff
                | Self::DiffTooLarge { .. }
        )
    }
}
