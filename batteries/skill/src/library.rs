//! [`SkillLibrary`]: the skill battery's front door and its [`SkillSource`] implementation.
//!
//! The library stamps times from a [`Clock`] (wall time), numbers new versions, and serves a skill to
//! agents only while it is [`SkillState::Active`], always at the version its active pointer
//! names. It holds no state of its own besides the store and the clock, so any number of
//! libraries (in any number of processes, with a shared durable store) can serve the same
//! skills.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use executus::RunnableAgent;
use executus::llm::{Clock, SystemClock};
use executus::ports::{PortError, SkillDef, SkillSource};

use crate::compose::compose;
use crate::error::SkillError;
use crate::memory::MemorySkillStore;
use crate::model::{ActiveSkill, Skill, SkillContent, SkillState, SkillVersion, validate_name};
use crate::store::SkillStore;

/// How many times [`SkillLibrary::new_version`] re-reads and retries when a concurrent writer
/// took the version number it picked.
pub const NEW_VERSION_ATTEMPTS: u32 = 32;

/// Skills over any [`SkillStore`]: lifecycle, versions, serving and composition.
#[derive(Clone)]
pub struct SkillLibrary {
    store: Arc<dyn SkillStore>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SkillLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkillLibrary").field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl Default for SkillLibrary {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl SkillLibrary {
    /// A library over `store`, stamping times with the system clock.
    pub fn new(store: Arc<dyn SkillStore>) -> Self {
        Self { store, clock: Arc::new(SystemClock) }
    }

    /// A library over a fresh [`MemorySkillStore`].
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemorySkillStore::new()))
    }

    /// Uses `clock` for timestamps.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn SkillStore> {
        &self.store
    }

    /// Creates skill `name` as a draft whose version 1 is `content`.
    ///
    /// # Errors
    /// [`SkillError::Invalid`], [`SkillError::AlreadyExists`], [`SkillError::Port`].
    pub async fn create(&self, name: &str, content: SkillContent) -> Result<Skill, SkillError> {
        self.store.create(content.into_version(name, 1, self.clock.now_ms())).await
    }

    /// Stores `content` as the skill's next version (latest + 1) and returns it. The active
    /// pointer does not move: call [`activate`](Self::activate) to serve it. When concurrent
    /// writers take the number first, it re-reads and retries, up to
    /// [`NEW_VERSION_ATTEMPTS`] times.
    ///
    /// # Errors
    /// [`SkillError::NotFound`], [`SkillError::Invalid`], [`SkillError::Contended`] when every
    /// attempt lost the race, [`SkillError::Port`].
    pub async fn new_version(&self, name: &str, content: SkillContent) -> Result<SkillVersion, SkillError> {
        validate_name(name)?;
        for _ in 0..NEW_VERSION_ATTEMPTS {
            let skill =
                self.store.get(name).await?.ok_or_else(|| SkillError::NotFound { skill: name.into() })?;
            let version = content.clone().into_version(name, skill.latest_version + 1, self.clock.now_ms());
            match self.store.put_version(version.clone()).await {
                Ok(_) => return Ok(version),
                Err(SkillError::VersionExists { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(SkillError::Contended { skill: name.to_owned(), attempts: NEW_VERSION_ATTEMPTS })
    }

    /// Points the skill's active pointer at `version` (the version served while the skill is
    /// active). This does not change the lifecycle state: see [`enable`](Self::enable).
    ///
    /// # Errors
    /// [`SkillError::NotFound`], [`SkillError::VersionNotFound`], [`SkillError::Port`].
    pub async fn activate(&self, name: &str, version: u32) -> Result<Skill, SkillError> {
        self.store.set_active_version(name, version, self.clock.now_ms()).await
    }

    /// Moves the skill to `to` (see [`SkillState`] for the allowed transitions).
    ///
    /// # Errors
    /// [`SkillError::NotFound`], [`SkillError::BadTransition`], [`SkillError::Port`].
    pub async fn set_state(&self, name: &str, to: SkillState) -> Result<Skill, SkillError> {
        self.store.set_state(name, to, self.clock.now_ms()).await
    }

    /// Makes the skill active (from draft or disabled), so agents are served it.
    ///
    /// # Errors
    /// As [`set_state`](Self::set_state).
    pub async fn enable(&self, name: &str) -> Result<Skill, SkillError> {
        self.set_state(name, SkillState::Active).await
    }

    /// Disables an active skill, so agents are no longer served it.
    ///
    /// # Errors
    /// As [`set_state`](Self::set_state).
    pub async fn disable(&self, name: &str) -> Result<Skill, SkillError> {
        self.set_state(name, SkillState::Disabled).await
    }

    /// The skill called `name`, if any.
    ///
    /// # Errors
    /// [`SkillError::Port`].
    pub async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        self.store.get(name).await
    }

    /// All skills, ordered by name.
    ///
    /// # Errors
    /// [`SkillError::Port`].
    pub async fn list(&self) -> Result<Vec<Skill>, SkillError> {
        self.store.list().await
    }

    /// One version of a skill.
    ///
    /// # Errors
    /// [`SkillError::Port`].
    pub async fn version(&self, name: &str, version: u32) -> Result<Option<SkillVersion>, SkillError> {
        self.store.get_version(name, version).await
    }

    /// Every version of a skill, oldest first (empty for an unknown skill).
    ///
    /// # Errors
    /// [`SkillError::Port`].
    pub async fn versions(&self, name: &str) -> Result<Vec<SkillVersion>, SkillError> {
        self.store.list_versions(name).await
    }

    /// The skill with its pointed-at version, whatever its state.
    ///
    /// # Errors
    /// [`SkillError::Port`].
    pub async fn active(&self, name: &str) -> Result<Option<ActiveSkill>, SkillError> {
        self.store.active(name).await
    }

    /// The definition served for `name`: its active version, only while it is active.
    ///
    /// # Errors
    /// [`SkillError::NotFound`] for an unknown skill, [`SkillError::NotActive`] naming its
    /// state for a draft or disabled one, [`SkillError::Port`].
    pub async fn served(&self, name: &str) -> Result<SkillDef, SkillError> {
        let active =
            self.store.active(name).await?.ok_or_else(|| SkillError::NotFound { skill: name.into() })?;
        let state = active.skill.state;
        active.served().ok_or_else(|| SkillError::NotActive { skill: name.to_owned(), state })
    }

    /// Resolves the skills `agent` names and composes them onto it (see [`compose`]); the
    /// returned agent names no skills that still need resolving.
    ///
    /// # Errors
    /// [`SkillError::NotFound`] / [`SkillError::NotActive`] for a skill that is not served,
    /// [`SkillError::DuplicateTool`] when two skills provide the same tool,
    /// [`SkillError::Port`].
    pub async fn compose_agent(&self, agent: RunnableAgent) -> Result<RunnableAgent, SkillError> {
        let mut defs = Vec::with_capacity(agent.skills.len());
        for name in &agent.skills {
            defs.push(self.served(name).await?);
        }
        compose(agent, &defs)
    }
}

#[async_trait]
impl SkillSource for SkillLibrary {
    async fn skill(&self, name: &str) -> Result<Option<SkillDef>, PortError> {
        Ok(self.store.active(name).await?.and_then(|active| active.served()))
    }
}
