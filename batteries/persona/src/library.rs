//! [`PersonaLibrary`]: personas over any [`PersonaStore`], served to the runtime as its
//! [`PersonaSource`]; and [`load_dir_into`], which loads a folder of persona files into a
//! store.
//!
//! Loading is all-or-nothing: the folder is parsed completely first, and only when every
//! file is good are the personas written, in one atomic [`PersonaStore::put_all`]. Personas
//! already in the store that the folder does not mention are left alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use executus::RunnableAgent;
use executus::ports::{PersonaSource, PortError};

use crate::loader::{LoadErrors, load_dir};
use crate::persona::Persona;
use crate::store::{MemoryPersonaStore, PersonaStore, invalid};

/// Loading a folder into a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadDirError {
    /// One or more files are bad; nothing was stored.
    #[error(transparent)]
    Files(#[from] LoadErrors),
    /// The store refused or failed the batch; nothing was stored.
    #[error("storing personas loaded from {}: {source}", dir.display())]
    Store {
        /// The folder.
        dir: PathBuf,
        /// The store's error.
        source: PortError,
    },
    /// The blocking loader task was cancelled (the async runtime is shutting down).
    #[error("loading personas from {} was cancelled", dir.display())]
    Cancelled {
        /// The folder.
        dir: PathBuf,
    },
}

/// Loads every persona file in `dir` (see [`crate::loader`]) and stores them all in `store`
/// in one atomic batch. The file system is read on tokio's blocking pool. Returns the
/// names stored, in file-name order.
///
/// # Errors
/// [`LoadDirError::Files`] with every bad file (nothing stored), [`LoadDirError::Store`]
/// when the store fails, [`LoadDirError::Cancelled`] on runtime shutdown.
pub async fn load_dir_into(
    store: &dyn PersonaStore,
    dir: impl AsRef<Path>,
) -> Result<Vec<String>, LoadDirError> {
    let dir = dir.as_ref().to_owned();
    let owned = dir.clone();
    let loaded = match tokio::task::spawn_blocking(move || load_dir(owned)).await {
        Ok(loaded) => loaded?,
        // The loader does not panic on any input; if it ever does, surface it as a panic here
        // exactly as a direct call would.
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => return Err(LoadDirError::Cancelled { dir }),
    };
    let names = loaded.iter().map(|l| l.persona.name.clone()).collect();
    let personas = loaded.into_iter().map(|l| l.persona).collect();
    store.put_all(personas).await.map_err(|source| LoadDirError::Store { dir, source })?;
    Ok(names)
}

/// Personas over a [`PersonaStore`]; implements the core's [`PersonaSource`], so
/// `Runtime::agent("name")` finds them. Cheap to clone (clones share the store).
#[derive(Clone)]
pub struct PersonaLibrary {
    store: Arc<dyn PersonaStore>,
}

impl std::fmt::Debug for PersonaLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonaLibrary").finish_non_exhaustive()
    }
}

impl Default for PersonaLibrary {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl PersonaLibrary {
    /// A library over `store`.
    pub fn new(store: Arc<dyn PersonaStore>) -> Self {
        Self { store }
    }

    /// A library over a fresh [`MemoryPersonaStore`].
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemoryPersonaStore::new()))
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn PersonaStore> {
        &self.store
    }

    /// Loads a folder of persona files into the store (see [`load_dir_into`]).
    ///
    /// # Errors
    /// As [`load_dir_into`].
    pub async fn load_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<String>, LoadDirError> {
        load_dir_into(self.store.as_ref(), dir).await
    }

    /// The persona called `name`, if any.
    ///
    /// # Errors
    /// A [`PortError`] when the store fails.
    pub async fn get(&self, name: &str) -> Result<Option<Persona>, PortError> {
        self.store.get(name).await
    }

    /// Stores `persona` (validated first), replacing one of the same name.
    ///
    /// # Errors
    /// [`PortError::Invalid`] for an invalid persona; a [`PortError`] when the store fails.
    pub async fn put(&self, persona: Persona) -> Result<(), PortError> {
        persona.validate().map_err(invalid)?;
        self.store.put(persona).await
    }

    /// Deletes the persona called `name`; true if it existed.
    ///
    /// # Errors
    /// A [`PortError`] when the store fails.
    pub async fn delete(&self, name: &str) -> Result<bool, PortError> {
        self.store.delete(name).await
    }

    /// Names of all personas, sorted.
    ///
    /// # Errors
    /// A [`PortError`] when the store fails.
    pub async fn names(&self) -> Result<Vec<String>, PortError> {
        self.store.list().await
    }
}

#[async_trait]
impl PersonaSource for PersonaLibrary {
    async fn persona(&self, name: &str) -> Result<Option<RunnableAgent>, PortError> {
        Ok(self.store.get(name).await?.map(|p| p.to_agent()))
    }

    async fn list(&self) -> Result<Vec<String>, PortError> {
        self.store.list().await
    }
}
