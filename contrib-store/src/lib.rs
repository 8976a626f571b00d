//! # executus-store — durable SQLite stores for executus
//!
//! One entry point, [`Store::open`], over one SQLite file (bundled SQLite: nothing to
//! install). It creates the file if missing, refuses a file that is not ours, switches it to
//! WAL with a busy timeout and foreign keys, and applies the embedded migrations
//! (`contrib-store/migrations/`). The typed stores it hands out implement the core's ports:
//!
//! | store | port | module |
//! | --- | --- | --- |
//! | [`SqliteCheckpointStore`] ([`Store::checkpoints`]) | `executus::ports::CheckpointStore` | [`checkpoint`] |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use executus::ports::Ports;
//! use executus::Runtime;
//!
//! let store = executus_store::Store::open("sqlite://executus.db").await?;
//! let ports = Ports { checkpoints: Arc::new(store.checkpoints()), ..Ports::default() };
//! let runtime = Runtime::builder().ports(ports).build();
//! // Interrupted runs (a crash, a kill, a deploy) continue where their log ends.
//! runtime.resume_interrupted().await?;
//! # Ok(()) }
//! ```
//!
//! Durability, connections and contention are described on [`Store`]; retention on
//! [`Store::prune`]. sqlx appears only in this crate: the core and the batteries never
//! depend on it.

pub mod audit;
pub mod budget;
pub mod checkpoint;
mod error;
pub mod persona;
pub mod schedule;
pub mod skill;
mod store;

pub use audit::{ExplainedStatement, SqliteAuditStore};
pub use budget::SqliteBudgetStore;
pub use checkpoint::{AppendStats, Encoding, SqliteCheckpointStore};
pub use error::StoreError;
pub use persona::SqlitePersonaStore;
pub use schedule::SqliteScheduleStore;
pub use skill::SqliteSkillStore;
pub use store::{
    APPLICATION_ID, Clock, ManualClock, PruneReport, Store, StoreOptions, StoreStats, SystemClock,
};
