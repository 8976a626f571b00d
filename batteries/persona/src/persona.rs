//! [`Persona`]: a named, stored agent definition, and its conversion to the core's
//! [`RunnableAgent`].
//!
//! A persona is plain data shaped for storage (one JSON record per name). Limits are
//! overrides: a limit the persona does not set takes the core's default at conversion time,
//! so a stored persona does not freeze today's defaults. [`Persona::validate`] is the one
//! validation every store and the loader apply; unknown fields are rejected on
//! deserialisation, so a misspelt limit is an error rather than silently ignored.

use std::collections::HashSet;
use std::time::Duration;

use executus::config::RawLoops;
use executus::duration_serde;
use executus::{Limits, RunnableAgent};
use serde::{Deserialize, Serialize};

/// The longest persona name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// A named agent definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// Unique name; how hosts and `Runtime::agent` refer to it.
    pub name: String,
    /// What the persona is for (shown to a dispatching agent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The system prompt.
    #[serde(default)]
    pub system: String,
    /// Model spec: a tier/alias (`smart`) or a chain (`fast, ollama/qwen3:30b`).
    pub model: String,
    /// The tools it may call (its allowlist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// The skills it carries, in the order their instructions are appended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// Overrides of the core's run limits.
    #[serde(default, skip_serializing_if = "PersonaLimits::is_empty")]
    pub limits: PersonaLimits,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Output token cap per model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The lane its runs go to (default: the runtime's `default` lane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The policy profile applied to its tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_profile: Option<String>,
}

/// Limits a persona overrides; anything left `None` takes the core default ([`Limits`]).
/// Durations are humantime strings (`"90s"`, `"5m"`, `"1h 30m"`) or numbers of seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersonaLimits {
    /// Steps before the run ends as partial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// The run's own hard timeout.
    #[serde(with = "duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// When the critic reviews the run (must be shorter than `timeout` when both are set).
    #[serde(with = "duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub soft_timeout: Option<Duration>,
    /// Per tool call timeout.
    #[serde(with = "duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub tool_timeout: Option<Duration>,
    /// Tool calls of one step run at most this many at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_concurrency: Option<usize>,
    /// Consecutive failing tool calls that end the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_error_limit: Option<u32>,
    /// Loop-protection thresholds (`[limits.loops]`: `cycle`, `stagnation`, `unproductive`,
    /// `finalize_turns`).
    #[serde(skip_serializing_if = "is_default_loops")]
    pub loops: RawLoops,
}

fn is_default_loops(loops: &RawLoops) -> bool {
    loops == &RawLoops::default()
}

impl PersonaLimits {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The core's default limits with these overrides applied.
    pub fn apply(&self, mut limits: Limits) -> Limits {
        if let Some(v) = self.max_steps {
            limits.max_steps = v;
        }
        if let Some(v) = self.timeout {
            limits.timeout = v;
        }
        if let Some(v) = self.soft_timeout {
            limits.soft_timeout = Some(v);
        }
        if let Some(v) = self.tool_timeout {
            limits.tool_timeout = v;
        }
        if let Some(v) = self.tool_concurrency {
            limits.tool_concurrency = v;
        }
        if let Some(v) = self.tool_error_limit {
            limits.tool_error_limit = v;
        }
        // Out-of-range values are refused by `Persona::validate`; were one to get here, the
        // thresholds below it stay.
        limits.loops = self.loops.apply(limits.loops).unwrap_or(limits.loops);
        limits
    }
}

/// A persona failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("persona {name:?}: invalid `{field}`: {reason}")]
pub struct InvalidPersona {
    /// The persona's name (as given, possibly empty).
    pub name: String,
    /// The field, dotted for nested ones (`limits.max_steps`).
    pub field: String,
    /// Why.
    pub reason: String,
}

impl Persona {
    /// A persona with a name, a system prompt and a model spec; everything else default.
    pub fn new(name: impl Into<String>, system: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            system: system.into(),
            model: model.into(),
            tools: Vec::new(),
            skills: Vec::new(),
            limits: PersonaLimits::default(),
            temperature: None,
            max_tokens: None,
            lane: None,
            policy_profile: None,
        }
    }

    /// Checks the persona: a usable name (non-empty, at most [`MAX_NAME_CHARS`] characters,
    /// no whitespace or control characters), a non-empty model spec, well-formed and
    /// unrepeated tool and skill names, temperature within 0..=2, positive token and step
    /// caps and durations, a soft timeout shorter than the timeout, non-empty lane and
    /// policy profile when set.
    ///
    /// # Errors
    /// [`InvalidPersona`] naming the first offending field.
    pub fn validate(&self) -> Result<(), InvalidPersona> {
        let fail = |field: &str, reason: String| {
            Err(InvalidPersona { name: self.name.clone(), field: field.to_owned(), reason })
        };
        if let Some(problem) = name_problem(&self.name) {
            return fail("name", format!("{:?} {problem}", self.name));
        }
        if self.model.trim().is_empty() {
            return fail("model", "is empty (give a tier such as \"smart\" or a chain)".into());
        }
        for (field, names) in [("tools", &self.tools), ("skills", &self.skills)] {
            let mut seen = HashSet::new();
            for name in names {
                if let Some(problem) = name_problem(name) {
                    return fail(field, format!("name {name:?} {problem}"));
                }
                if !seen.insert(name) {
                    return fail(field, format!("{name:?} is listed twice"));
                }
            }
        }
        if let Some(t) = self.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return fail("temperature", format!("{t} is outside 0..=2"));
        }
        if self.max_tokens == Some(0) {
            return fail("max_tokens", "must be at least 1".into());
        }
        for (field, value) in [("lane", &self.lane), ("policy_profile", &self.policy_profile)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return fail(field, "is empty".into());
            }
        }
        let limits = &self.limits;
        if limits.max_steps == Some(0) {
            return fail("limits.max_steps", "must be at least 1".into());
        }
        if limits.tool_concurrency == Some(0) {
            return fail("limits.tool_concurrency", "must be at least 1".into());
        }
        if let Err((field, reason)) = limits.loops.apply(executus::LoopLimits::default()) {
            return fail(&format!("limits.loops.{field}"), reason);
        }
        for (field, value) in [
            ("limits.timeout", limits.timeout),
            ("limits.soft_timeout", limits.soft_timeout),
            ("limits.tool_timeout", limits.tool_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                return fail(field, "must be longer than zero".into());
            }
        }
        let timeout = limits.timeout.unwrap_or(Limits::default().timeout);
        if let Some(soft) = limits.soft_timeout
            && soft >= timeout
        {
            let reason = format!(
                "{} is not shorter than the timeout ({})",
                duration_text(soft),
                duration_text(timeout)
            );
            return fail("limits.soft_timeout", reason);
        }
        Ok(())
    }

    /// The persona as a runnable agent: limits are the core defaults with the persona's
    /// overrides; skills stay as names for the runtime's `SkillSource` to resolve.
    pub fn to_agent(&self) -> RunnableAgent {
        let mut agent = RunnableAgent::new(self.name.clone(), self.system.clone(), self.model.clone())
            .with_tools(self.tools.iter().cloned())
            .with_skills(self.skills.iter().cloned())
            .with_limits(self.limits.apply(Limits::default()));
        agent.description = self.description.clone();
        agent.temperature = self.temperature;
        agent.max_tokens = self.max_tokens;
        agent.lane = self.lane.clone();
        agent.policy_profile = self.policy_profile.clone();
        agent
    }
}

fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Why `name` is not a usable persona, tool or skill name, if it is not.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some("is longer than 128 characters")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else {
        None
    }
}
