//! [`compose`]: puts skills onto an agent.
//!
//! Instructions are appended to the system prompt in the order given, each under a
//! `## Skill: <name>` heading and separated from what precedes it by a blank line; a skill
//! whose instructions are blank adds no text. Tool sets are merged into the agent's
//! allowlist in order without duplicates.
//!
//! Conflicts are loud: a tool provided by two skills is [`SkillError::DuplicateTool`] naming
//! the tool and both skills, and nothing is changed. A skill providing a tool the agent
//! already lists in its own allowlist is not a conflict. These are the same rules as the
//! core runtime's own skill resolution (`RuntimeError::SkillConflict`), so an agent composes
//! the same way here and in the runtime.

use std::collections::HashMap;

use executus::RunnableAgent;
use executus::ports::SkillDef;

use crate::error::SkillError;

/// Composes `skills` onto `agent`, in order. The composed skills' names are removed from
/// `agent.skills`, so a runtime running the result does not resolve them a second time;
/// other skill names the agent carries stay.
///
/// # Errors
/// [`SkillError::DuplicateTool`] when two skills (or the same skill given twice) provide the
/// same tool; the agent is not returned half-composed.
pub fn compose(mut agent: RunnableAgent, skills: &[SkillDef]) -> Result<RunnableAgent, SkillError> {
    let mut provided: HashMap<&str, &str> = HashMap::new();
    for skill in skills {
        for tool in &skill.tools {
            if let Some(first) = provided.insert(tool, &skill.name) {
                return Err(SkillError::DuplicateTool {
                    tool: tool.clone(),
                    first: first.to_owned(),
                    second: skill.name.clone(),
                });
            }
        }
    }
    for skill in skills {
        let instructions = skill.instructions.trim();
        if !instructions.is_empty() {
            if !agent.system.is_empty() {
                agent.system.push_str("\n\n");
            }
            agent.system.push_str("## Skill: ");
            agent.system.push_str(&skill.name);
            agent.system.push_str("\n\n");
            agent.system.push_str(instructions);
        }
        for tool in &skill.tools {
            if !agent.tools.contains(tool) {
                agent.tools.push(tool.clone());
            }
        }
    }
    agent.skills.retain(|name| !skills.iter().any(|s| &s.name == name));
    Ok(agent)
}
