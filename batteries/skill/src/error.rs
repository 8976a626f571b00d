//! [`SkillError`]: every way a skill operation can fail, each variant carrying its evidence.
//!
//! Store implementations return these too: domain refusals (a bad lifecycle transition, a
//! version number that already exists) are decided inside the store's atomic operation, so
//! they must travel through the storage trait as typed values, not as backend failures.
//! Backend failures are wrapped [`PortError`]s.

use executus::ports::PortError;

use crate::model::SkillState;

/// An error from the skill battery: its store, its library, or [`compose`](crate::compose).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkillError {
    /// No skill has this name.
    #[error("unknown skill {skill:?}")]
    NotFound {
        /// The name asked for.
        skill: String,
    },
    /// A skill with this name already exists (creating it again is refused).
    #[error("skill {skill:?} already exists")]
    AlreadyExists {
        /// The name.
        skill: String,
    },
    /// The skill exists but has no such version.
    #[error("skill {skill:?} has no version {version} (latest is {latest})")]
    VersionNotFound {
        /// The skill.
        skill: String,
        /// The version asked for.
        version: u32,
        /// The skill's newest version.
        latest: u32,
    },
    /// The version already exists; versions are immutable and never overwritten.
    #[error("skill {skill:?} already has version {version}; versions are immutable")]
    VersionExists {
        /// The skill.
        skill: String,
        /// The version that exists.
        version: u32,
    },
    /// A new version must be exactly the latest plus one (versions are gapless: 1, 2, 3...).
    #[error("skill {skill:?}: cannot store version {version}, the next version is {expected}")]
    VersionOutOfOrder {
        /// The skill.
        skill: String,
        /// The version offered.
        version: u32,
        /// The only version that may be stored next.
        expected: u32,
    },
    /// The lifecycle does not allow this transition.
    #[error("skill {skill:?} cannot go from {from} to {to} (allowed: {allowed})", allowed = SkillState::ALLOWED)]
    BadTransition {
        /// The skill.
        skill: String,
        /// Its current state.
        from: SkillState,
        /// The state asked for.
        to: SkillState,
    },
    /// The skill exists but is not active, so it cannot be served or composed.
    #[error("skill {skill:?} is {state}, not active")]
    NotActive {
        /// The skill.
        skill: String,
        /// Its state.
        state: SkillState,
    },
    /// A skill or version record failed validation.
    #[error("skill {skill:?}: invalid {field}: {reason}")]
    Invalid {
        /// The skill (as given, possibly empty).
        skill: String,
        /// The offending field (`name`, `version`, `tools`...).
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// Two skills composed onto one agent provide the same tool.
    #[error("skills {first:?} and {second:?} both provide tool {tool:?}")]
    DuplicateTool {
        /// The tool.
        tool: String,
        /// The skill that provided it first.
        first: String,
        /// The skill that provided it again.
        second: String,
    },
    /// A `new_version` kept losing the race for the next version number to concurrent writers.
    #[error("skill {skill:?}: gave up storing a new version after {attempts} conflicting attempts")]
    Contended {
        /// The skill.
        skill: String,
        /// How many times it tried.
        attempts: u32,
    },
    /// The backing store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl From<SkillError> for PortError {
    /// Port errors pass through; any other refusal becomes [`PortError::Invalid`] with the
    /// skill error's message, so nothing is lost on the way through `SkillSource`.
    fn from(error: SkillError) -> Self {
        match error {
            SkillError::Port(port) => port,
            other => PortError::Invalid { port: "skill", what: "skill".into(), reason: other.to_string() },
        }
    }
}
