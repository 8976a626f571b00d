//! The SQLite backend: one database file (bundled SQLite, nothing to install), WAL, one
//! writer connection and a few readers; the embedded default of [`crate::Store`].
//!
//! [`SqliteStore`] opens the file (ownership check, migrations from
//! `contrib-store/migrations/sqlite/`) and hands out the typed stores of the submodules. Run
//! claims across processes are lock files beside the database (see [`checkpoint`]). Its
//! guarantees (durability, contention) are documented on [`SqliteStore`].

pub mod audit;
pub mod budget;
pub mod chat;
pub mod checkpoint;
pub mod fleet;
pub mod gateway;
pub mod persona;
pub mod review_cache;
pub mod schedule;
pub mod skill;
mod store;

pub use audit::SqliteAuditStore;
pub use budget::SqliteBudgetStore;
pub use chat::SqliteChatStore;
pub use checkpoint::SqliteCheckpointStore;
pub use fleet::SqliteFleetStore;
pub use gateway::SqliteSessionStore;
pub use persona::SqlitePersonaStore;
pub use review_cache::{ReviewCacheEntry, ReviewCacheKey, SqliteReviewCache};
pub use schedule::SqliteScheduleStore;
pub use skill::SqliteSkillStore;
pub use store::{APPLICATION_ID, SqliteStore, StoreStats};
