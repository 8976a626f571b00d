//! [`RunnableAgent`]: a fully described agent, ready to run, and its [`Limits`].
//!
//! An agent is data: a system prompt, a model spec (a chain or a tier name), tool and skill
//! names, limits. Hosts build one inline, or a persona source turns a stored persona into one.

use std::time::Duration;

use executus_llm::ResponseSchema;
use serde::{Deserialize, Serialize};

use crate::duration_serde;

/// Everything needed to run an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnableAgent {
    /// Agent name (persona name, lens name...). Appears in audit rows and dispatch checks.
    pub name: String,
    /// What the agent is for (shown to a dispatching agent).
    #[serde(default)]
    pub description: String,
    /// The system prompt.
    #[serde(default)]
    pub system: String,
    /// Model spec: a tier/alias or a chain such as `fast, ollama/qwen3:30b`.
    pub model: String,
    /// Names of the tools this agent may call (its allowlist).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Names of the skills this agent carries (resolved through the `SkillSource`).
    #[serde(default)]
    pub skills: Vec<String>,
    /// Run limits.
    #[serde(default)]
    pub limits: Limits,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Output token cap per model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// When set, the final answer must be JSON matching this schema (typed result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<ResponseSchema>,
    /// The lane runs of this agent go to (default: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The policy profile applied to this agent's tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_profile: Option<String>,
}

impl RunnableAgent {
    /// An agent with a name, a system prompt and a model spec; everything else default.
    pub fn new(name: impl Into<String>, system: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            system: system.into(),
            model: model.into(),
            tools: Vec::new(),
            skills: Vec::new(),
            limits: Limits::default(),
            temperature: None,
            max_tokens: None,
            output_schema: None,
            lane: None,
            policy_profile: None,
        }
    }

    /// Adds tools to the allowlist.
    #[must_use]
    pub fn with_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Adds skills.
    #[must_use]
    pub fn with_skills<I, S>(mut self, skills: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.skills.extend(skills.into_iter().map(Into::into));
        self
    }

    /// Sets the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the output schema (typed result).
    #[must_use]
    pub fn with_output_schema(mut self, schema: ResponseSchema) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Sets the lane.
    #[must_use]
    pub fn with_lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }
}

/// Bounds on one run. Every one has a safe default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Steps (model call + its tool calls) before the run ends as partial (a critic may
    /// extend it). Default 10.
    pub max_steps: u32,
    /// The run's own hard timeout, independent of the caller. Default 10 minutes.
    #[serde(with = "duration_serde")]
    pub timeout: Duration,
    /// When set, the critic reviews the run at this point and may extend or abort it.
    #[serde(with = "duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub soft_timeout: Option<Duration>,
    /// Per tool call timeout. Default 60 s.
    #[serde(with = "duration_serde")]
    pub tool_timeout: Duration,
    /// Tool calls of one step run concurrently, at most this many at once. Default 4.
    pub tool_concurrency: usize,
    /// Consecutive failing tool calls that end the run. Default 5.
    pub tool_error_limit: u32,
    /// Loop-protection thresholds.
    pub loops: LoopLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps: 10,
            timeout: Duration::from_secs(600),
            soft_timeout: None,
            tool_timeout: Duration::from_secs(60),
            tool_concurrency: 4,
            tool_error_limit: 5,
            loops: LoopLimits::default(),
        }
    }
}

/// Loop-protection thresholds (runaway agents end, with their work kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoopLimits {
    /// The same tool call (name + canonical arguments) repeated this many times triggers.
    pub cycle: u32,
    /// This many consecutive steps whose tool results add nothing new trigger.
    pub stagnation: u32,
    /// This many consecutive steps ending in tool errors or blocked calls trigger.
    pub unproductive: u32,
    /// Finalize turns (tools withheld) allowed before the run is stopped.
    pub finalize_turns: u32,
}

impl Default for LoopLimits {
    fn default() -> Self {
        Self { cycle: 3, stagnation: 4, unproductive: 4, finalize_turns: 2 }
    }
}
