//! [`SkillSource`]: skills (instructions plus tool names) an agent can carry. Default: none.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortError;

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
