//! # executus — the lean core
//!
//! Actors, ports and the agent run loop. Batteries implement the ports; this crate never
//! depends on a database, a cron library or any battery.

pub mod dispatch;
pub mod ids;
pub mod lane;

pub use ids::{JobId, RunId};
