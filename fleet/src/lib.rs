//! # executus-fleet — watch and steer llama-swap hosts
//!
//! People who run local models run several llama-swap hosts. This crate keeps a live view of
//! all of them, remembers what they did, acts on them safely, benches them, and routes
//! `auto:*` virtual models by what they are doing.
//!
//! | piece | module |
//! | --- | --- |
//! | llama-swap's wire shapes (events, activity, perf, errors; current and older hosts) | [`wire`], [`sse`] |
//! | one connector per host: events stream, backoff + jitter, circuit breaker, liveness | [`connector`] |
//! | the fleet state: a pure machine in one actor, snapshot + sequence-stamped deltas | [`state`] |
//! | activity and perf ingestion by watermark; retention into 5-minute buckets | `ingest`, [`retention`] |
//! | durable history behind traits (memory default, conformance suite; SQLite in executus-store) | [`store`] |
//! | actions (load, unload, unload-all) through a bounded FIFO queue per host | [`actions`] |
//! | host leases (exclusive, expiring, released on drop) | [`lease`] |
//! | the bench (grid, TTFT, tokens/s from llama.cpp `timings`) and its leaderboard | [`bench`](mod@bench) |
//! | `auto:*` routing, registered in an `executus_llm::Registry` as virtual models | [`route`] |
//! | the web views: `/fleet` and `/api/fleet/*` (axum) | [`web`] |
//!
//! [`Fleet`] assembles them:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use executus_fleet::{Fleet, FleetConfig, HostSpec};
//!
//! let config = FleetConfig { hosts: vec![HostSpec::new("desk", "http://127.0.0.1:8080")], ..FleetConfig::default() };
//! let fleet = Fleet::builder(config).build().await?;
//! fleet.start();
//! let status = fleet.status().await?;
//! println!("{}", serde_json::to_string(&status)?);
//! # Ok(()) }
//! ```
//!
//! Features:
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `conformance` | no | `store::conformance`: the contract checks every fleet store backend runs |
//!
//! This crate depends on `executus-llm` only (of executus' crates). It never logs, stores or
//! shows a host's key.

pub mod actions;
pub mod bench;
pub mod client;
pub mod clock;
pub mod config;
pub mod connector;
mod error;
mod fleet;
mod ingest;
pub mod lease;
pub mod retention;
pub mod route;
pub mod sse;
pub mod state;
pub mod store;
pub mod web;
pub mod wire;

pub use actions::{ActionKind, ActionRequest, Ticket};
pub use bench::{BenchGrid, BenchRun, LeaderRow};
pub use config::{AutoSpec, Candidate, FleetConfig, HostSpec, Retention};
pub use connector::{Liveness, ReconnectPolicy};
pub use error::FleetError;
pub use fleet::{Fleet, FleetBuilder, HostStatus, LazyFleet, Status, auto_models};
pub use lease::{Lease, Leases};
pub use route::{AutoModel, RoutingBoard, RoutingView};
pub use state::{Delta, Snapshot, StateHandle, Subscription};
pub use store::{FleetStore, MemoryFleetStore};
