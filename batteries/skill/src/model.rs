//! The skill records: [`SkillState`] (the lifecycle), [`Skill`] (one row per skill),
//! [`SkillVersion`] (one immutable row per version) and [`SkillContent`] (what a caller
//! writes).
//!
//! Guarantees: the lifecycle rules live here, in [`SkillState::check_transition`], so every
//! store applies the same ones; [`SkillVersion::validate`] is the one validation every store
//! runs before writing. These are plain serde records with flat, indexable fields, shaped for
//! a SQL table each (`skills` keyed by name, `skill_versions` keyed by name + version).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use executus::ports::SkillDef;
use serde::{Deserialize, Serialize};

use crate::error::SkillError;

/// Where a skill is in its lifecycle.
///
/// ```text
///   draft ──> active <──> disabled
/// ```
///
/// Allowed transitions: `draft -> active`, `active -> disabled`, `disabled -> active`.
/// Setting the state a skill is already in is a no-op, not an error. Everything else
/// (`active -> draft`, `disabled -> draft`, `draft -> disabled`) is
/// [`SkillError::BadTransition`]. Only an active skill is served to agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillState {
    /// Being written; not served.
    Draft,
    /// Served: agents that name it get its active version.
    Active,
    /// Withdrawn; not served. Can be made active again.
    Disabled,
}

impl SkillState {
    /// The allowed transitions, for messages.
    pub const ALLOWED: &'static str = "draft -> active, active -> disabled, disabled -> active";

    /// The lower-case name (`draft`, `active`, `disabled`), as stored in a SQL column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    /// True if the lifecycle allows going from `self` to `to` (staying put counts as allowed).
    pub fn can_become(self, to: SkillState) -> bool {
        use SkillState::{Active, Disabled, Draft};
        self == to || matches!((self, to), (Draft, Active) | (Active, Disabled) | (Disabled, Active))
    }

    /// Checks the transition of skill `skill` from `self` to `to`.
    ///
    /// # Errors
    /// [`SkillError::BadTransition`] naming the skill and both states when the lifecycle does
    /// not allow it.
    pub fn check_transition(self, skill: &str, to: SkillState) -> Result<(), SkillError> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(SkillError::BadTransition { skill: skill.to_owned(), from: self, to })
        }
    }
}

impl fmt::Display for SkillState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of `draft`, `active`, `disabled`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown skill state {0:?} (expected draft, active or disabled)")]
pub struct UnknownState(pub String);

impl FromStr for SkillState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "draft" => Ok(Self::Draft),
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            other => Err(UnknownState(other.to_owned())),
        }
    }
}

/// One skill: its lifecycle state and which of its versions is served.
///
/// Invariant kept by every store: a skill always has at least one version, and
/// `1 <= active_version <= latest_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skill {
    /// Unique name (the primary key).
    pub name: String,
    /// Lifecycle state.
    pub state: SkillState,
    /// The version served while the skill is active (the "active pointer").
    pub active_version: u32,
    /// The newest version stored.
    pub latest_version: u32,
    /// When the skill was created, Unix milliseconds.
    pub created_ms: u64,
    /// When its state, pointer or versions last changed, Unix milliseconds.
    pub updated_ms: u64,
}

/// One immutable version of a skill. Once stored it is never changed or overwritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillVersion {
    /// The skill's name.
    pub name: String,
    /// Version number: 1, 2, 3... without gaps.
    pub version: u32,
    /// Instructions appended to an agent's system prompt.
    pub instructions: String,
    /// Tools the skill adds to an agent's allowlist (no duplicates).
    pub tools: Vec<String>,
    /// When this version was stored, Unix milliseconds.
    pub created_ms: u64,
    /// A free-form note (a change log line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SkillVersion {
    /// Checks the record: a valid skill name, a version of at least 1, tool names that are
    /// non-empty, free of whitespace and control characters, and not repeated.
    ///
    /// # Errors
    /// [`SkillError::Invalid`] naming the field and the reason.
    pub fn validate(&self) -> Result<(), SkillError> {
        validate_name(&self.name)?;
        if self.version == 0 {
            return Err(invalid(&self.name, "version", "versions start at 1".into()));
        }
        let mut seen = HashSet::new();
        for tool in &self.tools {
            if let Some(reason) = name_problem(tool) {
                return Err(invalid(&self.name, "tools", format!("tool name {tool:?} {reason}")));
            }
            if !seen.insert(tool.as_str()) {
                return Err(invalid(&self.name, "tools", format!("tool {tool:?} is listed twice")));
            }
        }
        Ok(())
    }

    /// This version as the run loop sees it.
    pub fn to_def(&self) -> SkillDef {
        SkillDef {
            name: self.name.clone(),
            version: self.version,
            instructions: self.instructions.clone(),
            tools: self.tools.clone(),
        }
    }
}

/// What a caller writes for a new version; the library adds the name, number and time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillContent {
    /// Instructions appended to an agent's system prompt.
    pub instructions: String,
    /// Tools the skill adds to an agent's allowlist.
    #[serde(default)]
    pub tools: Vec<String>,
    /// A free-form note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SkillContent {
    /// Content with these instructions, no tools, no note.
    pub fn new(instructions: impl Into<String>) -> Self {
        Self { instructions: instructions.into(), tools: Vec::new(), note: None }
    }

    /// Adds tools.
    #[must_use]
    pub fn with_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Sets the note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// The version record this content becomes.
    pub fn into_version(self, name: &str, version: u32, created_ms: u64) -> SkillVersion {
        SkillVersion {
            name: name.to_owned(),
            version,
            instructions: self.instructions,
            tools: self.tools,
            created_ms,
            note: self.note,
        }
    }
}

/// A skill with the version its active pointer names, read as one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSkill {
    /// The skill row.
    pub skill: Skill,
    /// The version `skill.active_version` points at.
    pub version: SkillVersion,
}

impl ActiveSkill {
    /// The definition to serve, only when the skill is [`SkillState::Active`].
    pub fn served(&self) -> Option<SkillDef> {
        (self.skill.state == SkillState::Active).then(|| self.version.to_def())
    }
}

/// Checks a skill name: non-empty, at most 128 characters, no whitespace or control
/// characters.
///
/// # Errors
/// [`SkillError::Invalid`] with field `name`.
pub fn validate_name(name: &str) -> Result<(), SkillError> {
    match name_problem(name) {
        Some(reason) => Err(invalid(name, "name", format!("{name:?} {reason}"))),
        None => Ok(()),
    }
}

/// Why `name` is not a usable skill or tool name, if it is not.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.chars().count() > 128 {
        Some("is longer than 128 characters")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else {
        None
    }
}

fn invalid(skill: &str, field: &'static str, reason: String) -> SkillError {
    SkillError::Invalid { skill: skill.to_owned(), field, reason }
}
