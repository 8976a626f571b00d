//! # pr-review-swarm — the light host
//!
//! A host that imports the core and the swarm library only (no database, no cron, no
//! battery): `cargo run -p pr-review-swarm` reviews the bundled diff offline. Everything it
//! does lives in [`executus_swarm`], re-exported here so the host's binaries and tests name
//! one crate.

pub use executus_swarm::*;
