//! [`MemorySkillStore`]: the in-memory [`SkillStore`], the battery's default.
//!
//! Every method takes one lock for its whole read-check-write, which makes each atomic in
//! the same sense a SQL transaction would. The lock is a std mutex held only for map
//! operations, never across an `.await`. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::error::SkillError;
use crate::model::{ActiveSkill, Skill, SkillState, SkillVersion};
use crate::store::SkillStore;

/// One skill and its versions (`versions[i].version == i + 1`).
#[derive(Debug)]
struct Entry {
    skill: Skill,
    versions: Vec<SkillVersion>,
}

/// An in-memory [`SkillStore`]. Cheap to create; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemorySkillStore {
    skills: Mutex<BTreeMap<String, Entry>>,
}

impl MemorySkillStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // Every critical section leaves the map consistent before anything can panic, so a
        // poisoned lock still guards valid data.
        self.skills.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn not_found(name: &str) -> SkillError {
    SkillError::NotFound { skill: name.to_owned() }
}

#[async_trait]
impl SkillStore for MemorySkillStore {
    async fn create(&self, first: SkillVersion) -> Result<Skill, SkillError> {
        first.validate()?;
        if first.version != 1 {
            return Err(SkillError::VersionOutOfOrder {
                skill: first.name,
                version: first.version,
                expected: 1,
            });
        }
        let mut skills = self.lock();
        if skills.contains_key(&first.name) {
            return Err(SkillError::AlreadyExists { skill: first.name });
        }
        let skill = Skill {
            name: first.name.clone(),
            state: SkillState::Draft,
            active_version: 1,
            latest_version: 1,
            created_ms: first.created_ms,
            updated_ms: first.created_ms,
        };
        skills.insert(first.name.clone(), Entry { skill: skill.clone(), versions: vec![first] });
        Ok(skill)
    }

    async fn put_version(&self, version: SkillVersion) -> Result<Skill, SkillError> {
        version.validate()?;
        let mut skills = self.lock();
        let entry = skills.get_mut(&version.name).ok_or_else(|| not_found(&version.name))?;
        let latest = entry.skill.latest_version;
        if version.version <= latest {
            return Err(SkillError::VersionExists { skill: version.name, version: version.version });
        }
        if version.version != latest + 1 {
            return Err(SkillError::VersionOutOfOrder {
                skill: version.name,
                version: version.version,
                expected: latest + 1,
            });
        }
        entry.skill.latest_version = version.version;
        entry.skill.updated_ms = version.created_ms;
        entry.versions.push(version);
        Ok(entry.skill.clone())
    }

    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        Ok(self.lock().get(name).map(|e| e.skill.clone()))
    }

    async fn list(&self) -> Result<Vec<Skill>, SkillError> {
        Ok(self.lock().values().map(|e| e.skill.clone()).collect())
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<Option<SkillVersion>, SkillError> {
        Ok(self.lock().get(name).and_then(|e| e.versions.iter().find(|v| v.version == version).cloned()))
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<SkillVersion>, SkillError> {
        Ok(self.lock().get(name).map(|e| e.versions.clone()).unwrap_or_default())
    }

    async fn set_state(&self, name: &str, to: SkillState, at_ms: u64) -> Result<Skill, SkillError> {
        let mut skills = self.lock();
        let entry = skills.get_mut(name).ok_or_else(|| not_found(name))?;
        let from = entry.skill.state;
        from.check_transition(name, to)?;
        if from != to {
            entry.skill.state = to;
            entry.skill.updated_ms = at_ms;
        }
        Ok(entry.skill.clone())
    }

    async fn set_active_version(&self, name: &str, version: u32, at_ms: u64) -> Result<Skill, SkillError> {
        let mut skills = self.lock();
        let entry = skills.get_mut(name).ok_or_else(|| not_found(name))?;
        let latest = entry.skill.latest_version;
        if version == 0 || version > latest {
            return Err(SkillError::VersionNotFound { skill: name.to_owned(), version, latest });
        }
        entry.skill.active_version = version;
        entry.skill.updated_ms = at_ms;
        Ok(entry.skill.clone())
    }

    async fn active(&self, name: &str) -> Result<Option<ActiveSkill>, SkillError> {
        let skills = self.lock();
        let Some(entry) = skills.get(name) else { return Ok(None) };
        let version = entry.versions.iter().find(|v| v.version == entry.skill.active_version).cloned();
        match version {
            Some(version) => Ok(Some(ActiveSkill { skill: entry.skill.clone(), version })),
            // Unreachable through this store's own methods; reported rather than hidden.
            None => Err(SkillError::Port(executus::ports::PortError::Corrupt {
                port: "skill",
                message: format!(
                    "skill {name:?} points at version {} which is not stored",
                    entry.skill.active_version
                ),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_conformance_check() {
        crate::conformance::check_skill_store(&MemorySkillStore::new()).await.unwrap();
    }
}
