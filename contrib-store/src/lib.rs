//! # executus-store — durable stores for executus, on SQLite or PostgreSQL
//!
//! One entry point, [`Store::open`]. The URL picks the backend:
//!
//! - `sqlite://path.db` (or `sqlite::memory:`): one SQLite file, bundled SQLite, nothing to
//!   install — the embedded default ([`sqlite`]). It creates the file if missing, refuses a
//!   file that is not ours, switches it to WAL and applies the migrations of
//!   `contrib-store/migrations/sqlite/`.
//! - `postgres://user@host/db` (feature `postgres`): one PostgreSQL database shared by any
//!   number of processes on any number of machines ([`postgres`]), with run leases and the
//!   run queue that [`worker`]s share. Migrations in `contrib-store/migrations/postgres/`.
//!
//! The typed stores it hands out implement the core's port and the batteries' storage traits,
//! on either backend:
//!
//! | accessor | store | implements |
//! | --- | --- | --- |
//! | [`Store::checkpoints`] | [`AnyCheckpointStore`] | `executus::ports::CheckpointStore` (claims included) |
//! | [`Store::personas`] | [`AnyPersonaStore`] | `executus_persona::PersonaStore` |
//! | [`Store::skills`] | [`AnySkillStore`] | `executus_skill::SkillStore` |
//! | [`Store::audit`] | [`AnyAuditStore`] | `executus_audit::AuditStore` |
//! | [`Store::budget`] | [`AnyBudgetStore`] | `executus_budget::BudgetStore` |
//! | [`Store::schedule`] | [`AnyScheduleStore`] | `executus_schedule::ScheduleStore` |
//! | [`Store::chats`] | [`AnyChatStore`] | `executus_chat::ChatHistory` |
//! | [`Store::review_cache`] | [`AnyReviewCache`] | `executus-run swarm`'s review cache (adapted in the CLI) |
//! | [`Store::gateway_sessions`] | `Arc<dyn SessionStore>` ([`SqliteSessionStore`], `PgSessionStore`) | `executus_gateway::store::SessionStore` |
//!
//! [`HostStores`] is every store a host wires, from one `[store] url`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use executus::ports::Ports;
//! use executus::Runtime;
//!
//! let store = executus_store::Store::open("sqlite://executus.db").await?;
//! let personas = executus_persona::PersonaLibrary::new(Arc::new(store.personas()));
//! let skills = executus_skill::SkillLibrary::new(Arc::new(store.skills()));
//! let audit = Arc::new(executus_audit::AuditWriter::new(Arc::new(store.audit())));
//! let budget = executus_budget::SpendBudget::new(
//!     executus_budget::BudgetSettings::default(),
//!     Arc::new(store.budget()),
//! );
//! let schedule = executus_schedule::CronSchedule::builder().store(Arc::new(store.schedule())).build();
//! let ports = Ports {
//!     checkpoints: Arc::new(store.checkpoints()),
//!     personas: Arc::new(personas),
//!     skills: Arc::new(skills),
//!     audit: audit.clone(),
//!     budget: Arc::new(budget),
//!     schedule: Arc::new(schedule),
//!     ..Ports::default()
//! };
//! let runtime = Runtime::builder().ports(ports).build();
//! // Interrupted runs (a crash, a kill, a deploy) continue where their log ends.
//! runtime.resume_interrupted().await?;
//! # Ok(()) }
//! ```
//!
//! Durability, connections and contention are described on each backend's store
//! ([`SqliteStore`], `postgres::PgStore`); retention on [`Store::prune`] and
//! [`Store::prune_audit`]; moving a store between backends on [`copy()`]. sqlx appears only
//! in this crate: the core and the batteries never depend on it.

mod any;
mod codec;
pub mod copy;
mod error;
pub mod host;
mod options;
#[cfg(feature = "postgres")]
pub mod postgres;
mod prune;
pub mod sqlite;
#[cfg(feature = "postgres")]
pub mod worker;

pub use any::{
    AnyAuditStore, AnyBudgetStore, AnyChatStore, AnyCheckpointStore, AnyPersonaStore, AnyReviewCache,
    AnyScheduleStore, AnySkillStore, Store,
};
pub use copy::{CopyReport, copy};
pub use error::StoreError;
pub use host::HostStores;
pub use options::StoreOptions;
pub use prune::PruneReport;
// The SQLite backend's modules keep their historical paths (`executus_store::checkpoint::...`).
pub use sqlite::{
    APPLICATION_ID, SqliteStore, StoreStats, audit, budget, chat, checkpoint, fleet, gateway, persona,
    review_cache, schedule, skill,
};
pub use sqlite::{
    audit::{ExplainedStatement, SqliteAuditStore},
    budget::SqliteBudgetStore,
    chat::SqliteChatStore,
    checkpoint::{AppendStats, Encoding, SqliteCheckpointStore},
    fleet::SqliteFleetStore,
    gateway::SqliteSessionStore,
    persona::SqlitePersonaStore,
    review_cache::{ReviewCacheEntry, ReviewCacheKey, SqliteReviewCache},
    schedule::SqliteScheduleStore,
    skill::SqliteSkillStore,
};
