//! # executus — the lean core
//!
//! Actors, ports and the agent run loop. Batteries implement the ports; this crate never
//! depends on a database, a cron library or any battery.
//!
//! - [`Runtime`]: build with [`Runtime::builder`]; `run`, `spawn`, `fanout`, `resume_interrupted`,
//!   `approve`/`deny`, `shutdown`.
//! - [`RunnableAgent`]: an agent as data (system prompt, model spec, tools, skills, limits).
//! - [`ports`]: the traits batteries implement, each with a nil-safe default.
//! - [`tool`]: the `Tool` trait, typed tools, the registry and the runtime policy.
//! - Actors: [`lane`] (bounded, fair worker pools), the run executor (supervision, internal),
//!   [`dispatch`] (agent-calls-agent tree caps), [`checkpoint`] (append-only group-committed
//!   saves), [`fanout`] (swarms); the run loop itself is [`run`], loop protection [`loops`].
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `config` | yes | `RuntimeConfig::load` with figment (defaults <- `executus.toml` <- `EXECUTUS_*`) |

#![warn(unreachable_pub)]

pub mod agent;
pub mod checkpoint;
pub mod compaction;
pub mod config;
pub mod dispatch;
pub mod duration_serde;
pub mod error;
pub(crate) mod executor;
pub mod fanout;
pub mod identity;
pub mod ids;
pub mod lane;
pub mod loops;
pub mod meta;
pub mod ports;
pub mod run;
pub mod runtime;
pub mod semconv;
pub mod tool;
mod vocab;

pub use agent::{Limits, LoopLimits, RunnableAgent};
pub use config::RuntimeConfig;
pub use error::RuntimeError;
pub use fanout::{
    Cell, CellError, CellMode, CellOutput, FanoutError, FanoutHandle, FanoutProgress, FanoutResult,
    FanoutSpec, Lens,
};
pub use identity::Identity;
pub use ids::{JobId, RunId};
pub use run::{
    ChildRuns, RunEnd, RunEvent, RunFailure, RunHandle, RunInput, RunOutcome, RunRequest, RunSnapshot,
    RunStatus, RunSubmitter,
};
pub use runtime::{Runtime, RuntimeBuilder};

/// The provider crate, re-exported so hosts need one dependency.
pub use executus_llm as llm;
