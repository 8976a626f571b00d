//! # executus-store — durable SQLite stores for executus
//!
//! One entry point, [`Store::open`], over one SQLite file (bundled SQLite: nothing to
//! install). It creates the file if missing, refuses a file that is not ours, switches it to
//! WAL with a busy timeout and foreign keys, and applies the embedded migrations
//! (`contrib-store/migrations/`). The typed stores it hands out implement the core's port
//! and the batteries' storage traits:
//!
//! | accessor | store | implements | module |
//! | --- | --- | --- | --- |
//! | [`Store::checkpoints`] | [`SqliteCheckpointStore`] | `executus::ports::CheckpointStore` | [`checkpoint`] |
//! | [`Store::personas`] | [`SqlitePersonaStore`] | `executus_persona::PersonaStore` | [`persona`] |
//! | [`Store::skills`] | [`SqliteSkillStore`] | `executus_skill::SkillStore` | [`skill`] |
//! | [`Store::audit`] | [`SqliteAuditStore`] | `executus_audit::AuditStore` | [`audit`] |
//! | [`Store::budget`] | [`SqliteBudgetStore`] | `executus_budget::BudgetStore` | [`budget`] |
//! | [`Store::schedule`] | [`SqliteScheduleStore`] | `executus_schedule::ScheduleStore` | [`schedule`] |
//! | [`Store::fleet`] | [`SqliteFleetStore`] | `executus_fleet::store::{HistoryStore, BenchStore, ActionLog, LeaseStore}` | [`fleet`] |
//! | [`Store::chats`] | [`SqliteChatStore`] | `executus_chat::ChatHistory` | [`chat`] |
//! | [`SqliteReviewCache::new`] | [`SqliteReviewCache`] | `executus-run swarm`'s review cache (adapted in the CLI) | [`review_cache`] |
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
//! Durability, connections and contention are described on [`Store`]; retention on
//! [`Store::prune`] and [`Store::prune_audit`]. sqlx appears only in this crate: the core
//! and the batteries never depend on it.

pub mod audit;
pub mod budget;
pub mod chat;
pub mod checkpoint;
mod error;
pub mod fleet;
pub mod host;
pub mod persona;
pub mod review_cache;
pub mod schedule;
pub mod skill;
mod store;

pub use audit::{ExplainedStatement, SqliteAuditStore};
pub use budget::SqliteBudgetStore;
pub use chat::SqliteChatStore;
pub use checkpoint::{AppendStats, Encoding, SqliteCheckpointStore};
pub use error::StoreError;
pub use fleet::SqliteFleetStore;
pub use host::HostStores;
pub use persona::SqlitePersonaStore;
pub use review_cache::{ReviewCacheKey, SqliteReviewCache};
pub use schedule::SqliteScheduleStore;
pub use skill::SqliteSkillStore;
pub use store::{APPLICATION_ID, PruneReport, Store, StoreOptions, StoreStats};
