//! [`SkillSource`]: skills (instructions plus tool names) an agent can carry. Default: none.
//! [`compose_skills`]: the one place skills are put onto an agent (the runtime and the skill
//! battery both call it).

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortError;
use crate::agent::RunnableAgent;

/// A skill as the run loop sees it: the active version's instructions and tool names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillDef {
    /// Skill name.
    pub name: String,
    /// The version this definition is.
    pub version: u32,
    /// Instructions appended to the agent's system prompt.
    pub instructions: String,
    /// Tools the skill adds to the agent's allowlist.
    pub tools: Vec<String>,
}

/// Looks up active skills.
#[async_trait]
pub trait SkillSource: Send + Sync {
    /// The active version of skill `name`, if it exists and is active.
    ///
    /// # Errors
    /// A [`PortError`] when the backing store fails.
    async fn skill(&self, name: &str) -> Result<Option<SkillDef>, PortError>;
}

/// The default: no skills exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSkills;

#[async_trait]
impl SkillSource for NoSkills {
    async fn skill(&self, _name: &str) -> Result<Option<SkillDef>, PortError> {
        Ok(None)
    }
}

/// Two skills of one agent provide the same tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skills {first:?} and {second:?} both provide tool {tool:?}")]
pub struct SkillConflict {
    /// The tool.
    pub tool: String,
    /// The skill that provided it first.
    pub first: String,
    /// The skill that provided it again.
    pub second: String,
}

/// Composes `skills` onto `agent`, in order: instructions appended to the system prompt, each
/// under a `## Skill: <name>` heading after a blank line (blank instructions add no text);
/// tools merged into the allowlist in order without duplicates. The composed skills' names
/// leave `agent.skills` (other names stay), so a runtime running the result does not resolve
/// them again. A skill providing a tool the agent already lists is not a conflict.
///
/// # Errors
/// [`SkillConflict`] when two skills (or one skill given twice) provide the same tool; the
/// agent is not returned half-composed.
pub fn compose_skills(mut agent: RunnableAgent, skills: &[SkillDef]) -> Result<RunnableAgent, SkillConflict> {
    let mut provided: HashMap<&str, &str> = HashMap::new();
    for skill in skills {
        for tool in &skill.tools {
            if let Some(first) = provided.insert(tool, &skill.name) {
                return Err(SkillConflict {
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
