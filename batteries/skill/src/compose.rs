//! [`compose`]: puts skills onto an agent.
//!
//! Instructions are appended to the system prompt in the order given, each under a
//! `## Skill: <name>` heading and separated from what precedes it by a blank line; a skill
//! whose instructions are blank adds no text. Tool sets are merged into the agent's
//! allowlist in order without duplicates.
//!
//! Conflicts are loud: a tool provided by two skills is [`SkillError::DuplicateTool`] naming
//! the tool and both skills, and nothing is changed. A skill providing a tool the agent
//! already lists in its own allowlist is not a conflict. It is the core's
//! `executus::ports::compose_skills` — the one implementation the runtime uses too — with
//! this battery's error type.

use executus::RunnableAgent;
use executus::ports::{SkillConflict, SkillDef};

use crate::error::SkillError;

/// Composes `skills` onto `agent`, in order. The composed skills' names are removed from
/// `agent.skills`, so a runtime running the result does not resolve them a second time;
/// other skill names the agent carries stay.
///
/// # Errors
/// [`SkillError::DuplicateTool`] when two skills (or the same skill given twice) provide the
/// same tool; the agent is not returned half-composed.
pub fn compose(agent: RunnableAgent, skills: &[SkillDef]) -> Result<RunnableAgent, SkillError> {
    executus::ports::compose_skills(agent, skills)
        .map_err(|SkillConflict { tool, first, second }| SkillError::DuplicateTool { tool, first, second })
}
