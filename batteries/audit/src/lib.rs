//! # executus-audit — a queryable audit trail for executus runs
//!
//! The core emits an `AuditRecord` for every notable event of a run (start and end with
//! the outcome, each model call attempt with provider, model, attempt, latency and usage,
//! each tool call with its policy decision and rule id, failovers, loop-protection
//! triggers, budget denials, approvals, critic verdicts, compactions). This battery keeps
//! them and answers questions about them.
//!
//! - [`AuditWriter`]: the `AuditSink` to install in `Ports::audit`. A bounded channel to a
//!   background task keeps store I/O off the run loop; a full channel applies
//!   backpressure, a failing store is retried and then reported, never silently dropped.
//! - [`AuditStore`]: the storage trait (append / query / prune), shaped for SQL;
//!   [`MemoryAuditStore`] is the in-memory default. `executus-store` implements it with
//!   SQLite.
//! - [`AuditQuery`] / [`AuditPage`]: filters by run, user, tenant, time range and event
//!   kind, with keyset pagination by id.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use executus::ports::Ports;
//! use executus_audit::{AuditQuery, AuditWriter, MemoryAuditStore};
//!
//! # async fn demo() -> Result<(), executus::ports::PortError> {
//! let writer = Arc::new(AuditWriter::new(Arc::new(MemoryAuditStore::new())));
//! let ports = Ports { audit: writer.clone(), ..Ports::default() };
//! // ... build a runtime with `ports`, run agents ...
//! writer.flush().await;
//! let mut cursor = None;
//! loop {
//!     let page = writer.store().query(&AuditQuery::new().kind("failover").after(cursor)).await?;
//!     for row in &page.records {
//!         println!("{} {:?}", row.id, row.record.event);
//!     }
//!     match page.next {
//!         Some(next) => cursor = Some(next),
//!         None => break,
//!     }
//! }
//! writer.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod query;
pub mod store;
pub mod writer;

pub use query::{AuditCursor, AuditPage, AuditQuery, DEFAULT_PAGE, MAX_PAGE, StoredAuditRecord};
pub use store::{AuditStore, MemoryAuditStore};
pub use writer::{AuditWriter, WriterOptions, WriterStats};
