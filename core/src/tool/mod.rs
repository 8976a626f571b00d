//! Tools: the [`Tool`] trait, the context a call gets, typed errors, and the
//! [`ToolRegistry`].
//!
//! A tool is a name, a description, a JSON schema for its arguments and an async call. A tool
//! never panics the run: a panic, a timeout or an error becomes an `is_error` tool result
//! the model can react to. [`typed`] builds a tool from an args struct deriving
//! `JsonSchema + Deserialize` and an async function, with no hand-written schema.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::identity::Identity;
use crate::ids::RunId;

pub mod dispatch_agent;
pub mod policy;
mod registry;
mod typed;

pub use registry::ToolRegistry;
pub use typed::{TypedTool, typed};

/// What a tool call knows about its surroundings.
#[derive(Clone)]
pub struct ToolContext {
    /// The run making the call.
    pub run_id: RunId,
    /// Who the run acts for.
    pub identity: Identity,
    /// The calling agent's name.
    pub agent: String,
    /// The call id (unique within the run).
    pub call_id: String,
    /// Fires when the run is cancelled or the call times out; long tools should watch it.
    pub cancel: CancellationToken,
    /// Child runs, for tools that start runs of their own (`dispatch_agent`); `None` outside
    /// a runtime.
    pub children: Option<crate::run::ChildRuns>,
    /// The run's input text (its first user message), for dispatch loop detection.
    pub run_input: Arc<str>,
}

impl ToolContext {
    /// A context outside any runtime (for calling a tool directly, e.g. in tests): a fresh
    /// cancellation token, no child runs, empty run input.
    pub fn new(
        run_id: RunId,
        identity: Identity,
        agent: impl Into<String>,
        call_id: impl Into<String>,
    ) -> Self {
        Self {
            run_id,
            identity,
            agent: agent.into(),
            call_id: call_id.into(),
            cancel: CancellationToken::new(),
            children: None,
            run_input: Arc::from(""),
        }
    }
}

impl std::fmt::Debug for ToolContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolContext")
            .field("run_id", &self.run_id)
            .field("agent", &self.agent)
            .field("call_id", &self.call_id)
            .finish_non_exhaustive()
    }
}

/// A tool's successful output: text for the model, and images it returned beside the text.
///
/// The run loop puts the text in the tool result; images, when there are any, follow the
/// step's tool results as a user message (every wire format accepts images there, not every
/// one inside a tool result), each introduced by the tool name and call id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOutput {
    /// The result text.
    pub text: String,
    /// Images returned with the text (may be empty).
    pub images: Vec<ToolImage>,
}

/// An image a tool returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolImage {
    /// MIME type, e.g. `image/png`.
    pub mime: String,
    /// The raw bytes.
    pub data: Vec<u8>,
}

impl ToolOutput {
    /// Text only.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), images: Vec::new() }
    }
}

impl From<String> for ToolOutput {
    fn from(s: String) -> Self {
        Self::text(s)
    }
}

impl From<&str> for ToolOutput {
    fn from(s: &str) -> Self {
        Self::text(s)
    }
}

impl From<Value> for ToolOutput {
    fn from(v: Value) -> Self {
        match v {
            Value::String(s) => Self::text(s),
            other => Self::text(other.to_string()),
        }
    }
}

/// Why a tool call failed. The model sees the Display text as an `is_error` result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments did not match the tool's schema.
    #[error("invalid arguments for tool {tool}: {message}")]
    InvalidArgs {
        /// Tool name.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// The tool ran and failed.
    #[error("tool {tool} failed: {message}")]
    Failed {
        /// Tool name.
        tool: String,
        /// What happened.
        message: String,
    },
    /// The tool did not finish in time.
    #[error("tool {tool} timed out after {after:?}")]
    Timeout {
        /// Tool name.
        tool: String,
        /// The timeout.
        after: Duration,
    },
    /// The tool panicked (the run continues).
    #[error("tool {tool} panicked: {message}")]
    Panicked {
        /// Tool name.
        tool: String,
        /// The panic message.
        message: String,
    },
    /// The tool refused the call (e.g. an SSRF guard).
    #[error("tool {tool} refused: {reason}")]
    Refused {
        /// Tool name.
        tool: String,
        /// Why.
        reason: String,
    },
    /// The call was cancelled.
    #[error("tool {tool} was cancelled")]
    Cancelled {
        /// Tool name.
        tool: String,
    },
}

impl ToolError {
    /// A failure of `tool` with a message.
    pub fn failed(tool: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed { tool: tool.into(), message: message.into() }
    }

    /// A refusal of `tool` with a reason.
    pub fn refused(tool: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Refused { tool: tool.into(), reason: reason.into() }
    }
}

/// A tool the model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Name (`^[a-zA-Z0-9_-]{1,64}$`).
    fn name(&self) -> &str;

    /// What it does, for the model.
    fn description(&self) -> &str;

    /// JSON schema of the arguments object.
    fn parameters(&self) -> Value;

    /// True if calling it twice with the same arguments has the same effect as once; an
    /// idempotent call that was in flight at a crash is re-run on resume, others are not.
    fn idempotent(&self) -> bool {
        false
    }

    /// True if it changes nothing outside the run (read-only profiles allow only these).
    fn read_only(&self) -> bool {
        false
    }

    /// Runs the tool.
    ///
    /// # Errors
    /// A [`ToolError`], which the model sees as an `is_error` result.
    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError>;
}

/// A shared tool.
pub type ArcTool = Arc<dyn Tool>;

/// The JSON schema of an args type as tools offer it to models: derived with `schemars`,
/// without the `$schema` and `title` keys (they only cost tokens).
pub fn schema_of<A: schemars::JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(A)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

/// Decodes a tool's arguments into `A`: they must be a JSON object (`null` counts as `{}`,
/// as the run loop's policy check sees it). Anything else is refused, even where serde would
/// read a struct from a JSON array by position: a tool's schema describes an object, and a
/// policy rule on an argument's name must not be sidestepped by positional arguments.
///
/// # Errors
/// [`ToolError::InvalidArgs`] naming the tool and what is wrong.
pub fn decode_args<A: serde::de::DeserializeOwned>(tool: &str, args: Value) -> Result<A, ToolError> {
    let args = match args {
        Value::Null => Value::Object(serde_json::Map::new()),
        Value::Object(map) => Value::Object(map),
        other => {
            let kind = match other {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                _ => "an array",
            };
            return Err(ToolError::InvalidArgs {
                tool: tool.to_owned(),
                message: format!("the arguments must be a JSON object, got {kind}"),
            });
        }
    };
    serde_json::from_value(args)
        .map_err(|e| ToolError::InvalidArgs { tool: tool.to_owned(), message: e.to_string() })
}
