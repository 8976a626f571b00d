//! The OpenTelemetry GenAI semantic-convention names on executus's spans, as our own
//! constants (the `opentelemetry-semantic-conventions` crate marks its GenAI names
//! deprecated while the conventions move). Hosts exporting traces and servers adding their
//! own spans (a gateway recording its session as [`CONVERSATION_ID`]) use these.
//!
//! The spans: `run` (exported as `invoke_agent {agent}`) > `step` > `model_call` (`chat
//! {model}`, kind client; the provider crate's per-attempt `gen_ai.call` spans below it) and
//! `tool_call` (`execute_tool {tool}`). `otel.name` / `otel.kind` are read by the
//! tracing-to-OpenTelemetry bridge as the exported span's name and kind.

/// Exported span name (tracing span names are static; this one is per span).
pub const OTEL_NAME: &str = "otel.name";
/// Exported span kind (`client` on model calls).
pub const OTEL_KIND: &str = "otel.kind";
/// `invoke_agent`, `chat` or `execute_tool`.
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
/// The conversation: a gateway session or a chat, else the run id.
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// The agent's name.
pub const AGENT_NAME: &str = "gen_ai.agent.name";
/// The provider that answered.
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
/// The model (spec) asked for.
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// The model that answered.
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// Finish reasons, as a JSON array.
pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// Input tokens.
pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Output tokens.
pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// The tool's name.
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// The tool call's id.
pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// The class of an error (`transient`, `permanent`, ...), on failed attempts and failovers.
pub const ERROR_TYPE: &str = "error.type";
/// Input messages (JSON), only when content capture is opted into.
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// Output message (JSON), only when content capture is opted into.
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";

/// Values of [`OPERATION_NAME`].
pub mod operation {
    /// The run span.
    pub const INVOKE_AGENT: &str = "invoke_agent";
    /// A model call.
    pub const CHAT: &str = "chat";
    /// A tool call.
    pub const EXECUTE_TOOL: &str = "execute_tool";
}

static CAPTURE_CONTENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Opts into recording message content on model-call spans ([`INPUT_MESSAGES`],
/// [`OUTPUT_MESSAGES`], as JSON). Off by default; a host turns it on when its user asked for
/// it (content may hold personal data; it never holds provider keys, which are not part of
/// messages). Process-wide, like the tracing subscriber it feeds.
pub fn set_capture_content(on: bool) {
    CAPTURE_CONTENT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether message content is recorded (see [`set_capture_content`]).
pub fn capture_content() -> bool {
    CAPTURE_CONTENT.load(std::sync::atomic::Ordering::Relaxed)
}
