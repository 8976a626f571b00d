//! [`PersonaStore`]: where personas live, and [`MemoryPersonaStore`], the default.
//!
//! The trait is shaped for SQL: one table keyed by name, holding the [`Persona`] as a JSON
//! payload (plus any columns an implementation wants to index, e.g. `model`). Each method is
//! one atomic operation; [`put_all`](PersonaStore::put_all) writes a whole batch in one
//! transaction, so loading a folder never leaves half of it stored.
//!
//! Every implementation validates with [`Persona::validate`] before writing and refuses an
//! invalid persona with [`PortError::Invalid`] (see [`invalid`]). Names are compared
//! exactly (case-sensitive). Not guaranteed: any order between concurrent writers of the
//! same name beyond "the last write wins, whole".

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use executus::ports::PortError;

use crate::persona::{InvalidPersona, Persona};

/// The `port` name used in this battery's [`PortError`]s.
pub const PORT: &str = "persona";

/// Persistent storage of personas. Object-safe; share it as `Arc<dyn PersonaStore>`.
#[async_trait]
pub trait PersonaStore: Send + Sync {
    /// The persona called `name`, if any.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails or the stored record cannot be decoded.
    async fn get(&self, name: &str) -> Result<Option<Persona>, PortError>;

    /// Names of all personas, sorted.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn list(&self) -> Result<Vec<String>, PortError>;

    /// Stores `persona`, replacing any persona of the same name (whole).
    ///
    /// # Errors
    /// [`PortError::Invalid`] when it fails [`Persona::validate`]; a [`PortError`] when the
    /// backend fails.
    async fn put(&self, persona: Persona) -> Result<(), PortError>;

    /// Stores every persona of `personas` atomically: all of them or none (each replacing a
    /// persona of the same name). A batch naming one persona twice is refused.
    ///
    /// # Errors
    /// [`PortError::Invalid`] when any persona fails validation or a name repeats (nothing
    /// is written); a [`PortError`] when the backend fails (nothing is written).
    async fn put_all(&self, personas: Vec<Persona>) -> Result<(), PortError>;

    /// Deletes the persona called `name`; true if it existed.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn delete(&self, name: &str) -> Result<bool, PortError>;
}

/// The [`PortError`] for a persona that failed validation.
pub fn invalid(error: InvalidPersona) -> PortError {
    PortError::Invalid {
        port: PORT,
        what: format!("persona {:?} field `{}`", error.name, error.field),
        reason: error.reason,
    }
}

/// Validates a batch for [`PersonaStore::put_all`]: every persona valid, no name twice.
///
/// # Errors
/// [`PortError::Invalid`] for the first problem.
pub fn validate_batch(personas: &[Persona]) -> Result<(), PortError> {
    let mut names = std::collections::HashSet::new();
    for persona in personas {
        persona.validate().map_err(invalid)?;
        if !names.insert(persona.name.as_str()) {
            return Err(PortError::Invalid {
                port: PORT,
                what: format!("persona {:?}", persona.name),
                reason: "appears twice in one batch".into(),
            });
        }
    }
    Ok(())
}

/// An in-memory [`PersonaStore`]; nothing survives the process. Each method takes one lock
/// for its whole operation (never across an `.await`), which makes it atomic.
#[derive(Debug, Default)]
pub struct MemoryPersonaStore {
    personas: RwLock<BTreeMap<String, Persona>>,
}

impl MemoryPersonaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // Every write leaves the map consistent before anything can panic, so a poisoned lock
    // still guards valid data.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Persona>> {
        self.personas.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Persona>> {
        self.personas.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl PersonaStore for MemoryPersonaStore {
    async fn get(&self, name: &str) -> Result<Option<Persona>, PortError> {
        Ok(self.read().get(name).cloned())
    }

    async fn list(&self) -> Result<Vec<String>, PortError> {
        Ok(self.read().keys().cloned().collect())
    }

    async fn put(&self, persona: Persona) -> Result<(), PortError> {
        persona.validate().map_err(invalid)?;
        self.write().insert(persona.name.clone(), persona);
        Ok(())
    }

    async fn put_all(&self, personas: Vec<Persona>) -> Result<(), PortError> {
        validate_batch(&personas)?;
        let mut map = self.write();
        for persona in personas {
            map.insert(persona.name.clone(), persona);
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<bool, PortError> {
        Ok(self.write().remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_conformance_check() {
        crate::conformance::check_persona_store(&MemoryPersonaStore::new()).await.unwrap();
    }
}
