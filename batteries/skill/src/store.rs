//! [`SkillStore`]: where skills and their versions live.
//!
//! The trait is shaped for SQL: two tables (`skills`: one row per [`Skill`], keyed by name;
//! `skill_versions`: one row per [`SkillVersion`], keyed by name + version), and every method
//! is one atomic operation — an implementation runs each in a single transaction and never
//! leaves a half-applied change behind. Domain checks that must be atomic with the write (is
//! this version number free? is this transition allowed from the state stored *now*?) happen
//! inside the method and come back as typed [`SkillError`]s; backend failures are
//! [`SkillError::Port`].
//!
//! Rules every implementation follows (the `conformance` feature checks them):
//! - versions are immutable: a stored version is never changed, overwritten or deleted;
//! - version numbers are gapless per skill, starting at 1;
//! - a skill always has at least one version and `1 <= active_version <= latest_version`;
//! - lifecycle transitions follow [`SkillState::check_transition`], applied against the
//!   state read in the same transaction;
//! - records are validated with [`SkillVersion::validate`] before anything is written.
//!
//! Not guaranteed: ordering between concurrent writers beyond what each single method
//! promises (two racing `put_version`s for the same number: exactly one wins).

use async_trait::async_trait;

use crate::error::SkillError;
use crate::model::{ActiveSkill, Skill, SkillState, SkillVersion};

/// Persistent storage of skills. Object-safe; share it as `Arc<dyn SkillStore>`.
#[async_trait]
pub trait SkillStore: Send + Sync {
    /// Creates skill `first.name` in [`SkillState::Draft`] with `first` as its version 1 and
    /// active pointer; `created_ms` and `updated_ms` of the skill are `first.created_ms`.
    ///
    /// # Errors
    /// [`SkillError::Invalid`] for a bad record, [`SkillError::VersionOutOfOrder`] when
    /// `first.version != 1`, [`SkillError::AlreadyExists`] when the name is taken,
    /// [`SkillError::Port`] when the backend fails.
    async fn create(&self, first: SkillVersion) -> Result<Skill, SkillError>;

    /// Appends `version` to an existing skill. It must be exactly `latest_version + 1`. The
    /// skill's `latest_version` and `updated_ms` (= `version.created_ms`) change; its state
    /// and active pointer do not. Returns the updated skill.
    ///
    /// # Errors
    /// [`SkillError::Invalid`], [`SkillError::NotFound`], [`SkillError::VersionExists`] when
    /// that number is already stored (versions are immutable),
    /// [`SkillError::VersionOutOfOrder`] for a gap, [`SkillError::Port`].
    async fn put_version(&self, version: SkillVersion) -> Result<Skill, SkillError>;

    /// The skill called `name`, if any.
    ///
    /// # Errors
    /// [`SkillError::Port`] when the backend fails.
    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError>;

    /// All skills, ordered by name.
    ///
    /// # Errors
    /// [`SkillError::Port`] when the backend fails.
    async fn list(&self) -> Result<Vec<Skill>, SkillError>;

    /// One version of a skill, if both exist.
    ///
    /// # Errors
    /// [`SkillError::Port`] when the backend fails.
    async fn get_version(&self, name: &str, version: u32) -> Result<Option<SkillVersion>, SkillError>;

    /// Every version of a skill, oldest first; empty when the skill does not exist (a skill
    /// always has at least one version).
    ///
    /// # Errors
    /// [`SkillError::Port`] when the backend fails.
    async fn list_versions(&self, name: &str) -> Result<Vec<SkillVersion>, SkillError>;

    /// Moves the skill to state `to` if the lifecycle allows it from the state stored now
    /// (checked and written atomically), stamping `updated_ms = at_ms`. Setting the current
    /// state again changes nothing (not even `updated_ms`). Returns the skill as stored.
    ///
    /// # Errors
    /// [`SkillError::NotFound`], [`SkillError::BadTransition`] naming the skill and both
    /// states, [`SkillError::Port`].
    async fn set_state(&self, name: &str, to: SkillState, at_ms: u64) -> Result<Skill, SkillError>;

    /// Points the skill's active pointer at an existing `version`, stamping
    /// `updated_ms = at_ms`. The lifecycle state does not change. Returns the skill.
    ///
    /// # Errors
    /// [`SkillError::NotFound`], [`SkillError::VersionNotFound`], [`SkillError::Port`].
    async fn set_active_version(&self, name: &str, version: u32, at_ms: u64) -> Result<Skill, SkillError>;

    /// The skill with the version its pointer names, read as one snapshot, whatever its
    /// state (the caller decides what to serve: see [`ActiveSkill::served`]).
    ///
    /// # Errors
    /// [`SkillError::Port`] when the backend fails or its rows contradict each other.
    async fn active(&self, name: &str) -> Result<Option<ActiveSkill>, SkillError>;
}
