//! [`HostStores`]: every store a host wires into a runtime and its batteries, as trait objects,
//! from one `[store] url` — the one place the CLI and the chat bot get their stores from.
//!
//! A file URL (`sqlite://path.db`) opens (or creates, with its folder) the SQLite file, a
//! `postgres://` URL the PostgreSQL database, for checkpoints, conversations, audit records,
//! budget spend, schedule watermarks and the gateway's session state; personas and skills are
//! loaded from configuration at every start (the file is their source of truth), so they live
//! in memory. `sqlite::memory:` keeps the same SQLite stores in memory for the life of the
//! process; [`HostStores::in_memory`] uses the batteries' own memory
//! stores.

use std::sync::Arc;

use executus::ports::{CheckpointStore, MemoryCheckpointStore};
use executus_audit::{AuditStore, MemoryAuditStore};
use executus_budget::{BudgetStore, MemoryBudgetStore};
use executus_chat::{ChatHistory, MemoryChatHistory};
use executus_gateway::store::{MemorySessionStore, SessionStore};
use executus_persona::{MemoryPersonaStore, PersonaStore};
use executus_schedule::{MemoryScheduleStore, ScheduleStore};
use executus_skill::{MemorySkillStore, SkillStore};

use crate::error::StoreError;
use crate::{Store, StoreOptions};

/// Every store a host uses (see the module docs).
#[derive(Clone)]
pub struct HostStores {
    /// Run checkpoints (resume, approvals).
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Personas.
    pub personas: Arc<dyn PersonaStore>,
    /// Skills.
    pub skills: Arc<dyn SkillStore>,
    /// Audit records.
    pub audit: Arc<dyn AuditStore>,
    /// Budget spend and reservations.
    pub budget: Arc<dyn BudgetStore>,
    /// Schedule watermarks and job definitions.
    pub schedule: Arc<dyn ScheduleStore>,
    /// Conversations.
    pub chats: Arc<dyn ChatHistory>,
    /// The gateway's per-session guard state (`executus-run serve`).
    pub sessions: Arc<dyn SessionStore>,
    /// True when checkpoints, conversations, audit, budget, schedule and sessions outlive the
    /// process.
    pub durable: bool,
    /// Where they live, for messages (a file path, `:memory:`, or a URL without its password).
    pub location: String,
    /// The store itself, when one is open (its backend; the run queue on PostgreSQL).
    pub store: Option<Store>,
}

impl std::fmt::Debug for HostStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostStores")
            .field("durable", &self.durable)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl HostStores {
    /// The stores at `url` (see the module docs); a file's folder is created if missing.
    ///
    /// # Errors
    /// [`StoreError`] naming the file: not SQLite, another program's database, a newer
    /// schema, a folder that cannot be created.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`HostStores::open`] with options (PostgreSQL lease expiry, pool size...).
    ///
    /// # Errors
    /// As [`HostStores::open`].
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
        if let Some(dir) =
            path.filter(|p| *p != ":memory:").map(std::path::Path::new).and_then(std::path::Path::parent)
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Folder { path: dir.to_path_buf(), source })?;
        }
        let store = Store::open_with(url, options).await?;
        let durable = !store.is_memory();
        Ok(Self {
            checkpoints: Arc::new(store.checkpoints()),
            audit: Arc::new(store.audit()),
            budget: Arc::new(store.budget()),
            schedule: Arc::new(store.schedule()),
            chats: Arc::new(store.chats()),
            sessions: store.gateway_sessions()?,
            durable,
            location: store.location().to_owned(),
            store: Some(store),
            ..Self::in_memory()
        })
    }

    /// The batteries' in-memory stores: nothing is written anywhere.
    pub fn in_memory() -> Self {
        Self {
            checkpoints: Arc::new(MemoryCheckpointStore::new()),
            personas: Arc::new(MemoryPersonaStore::new()),
            skills: Arc::new(MemorySkillStore::new()),
            audit: Arc::new(MemoryAuditStore::new()),
            budget: Arc::new(MemoryBudgetStore::new()),
            schedule: Arc::new(MemoryScheduleStore::new()),
            chats: Arc::new(MemoryChatHistory::new()),
            sessions: Arc::new(MemorySessionStore::new()),
            durable: false,
            location: ":memory:".into(),
            store: None,
        }
    }
}
