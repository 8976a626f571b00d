//! [`RuntimeError`]: what the runtime's API returns when a run cannot be admitted, resumed or
//! answered. Every variant carries its evidence (the name asked for and the known ones, the
//! run, the source error).

use crate::config::ConfigError;
use crate::dispatch::DispatchError;
use crate::ids::RunId;
use crate::lane::LaneError;
use crate::ports::PortError;
use crate::run::machine::ReplayError;

/// Errors of the runtime API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No agent or persona has this name.
    #[error("unknown agent {name:?} (known: {known})")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// Known names, comma-separated.
        known: String,
    },
    /// An agent carries a skill that does not exist or is not active.
    #[error("agent {agent:?} carries skill {skill:?}, which does not exist or is not active")]
    UnknownSkill {
        /// Agent name.
        agent: String,
        /// Skill name.
        skill: String,
    },
    /// Two skills of one agent provide the same tool.
    #[error("agent {agent:?}: skills {first:?} and {second:?} both provide tool {tool:?}")]
    SkillConflict {
        /// Agent name.
        agent: String,
        /// The tool.
        tool: String,
        /// The skill that provided it first.
        first: String,
        /// The skill that provided it again.
        second: String,
    },
    /// A lane name that is not configured.
    #[error("unknown lane {lane:?} (configured: {known})")]
    UnknownLane {
        /// The lane asked for.
        lane: String,
        /// Configured lanes.
        known: String,
    },
    /// The lane refused the run (full, shutting down...).
    #[error(transparent)]
    Lane(#[from] LaneError),
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// No active or stored run has this id.
    #[error("unknown run {run}")]
    UnknownRun {
        /// The run.
        run: RunId,
    },
    /// The run is already running in this process.
    #[error("run {run} is already active")]
    AlreadyActive {
        /// The run.
        run: RunId,
    },
    /// Another process sharing the checkpoint store is driving the run (see
    /// [`CheckpointStore::claim`](crate::ports::CheckpointStore::claim)).
    #[error("run {run} is active in another process sharing the store; it continues there")]
    ActiveElsewhere {
        /// The run.
        run: RunId,
    },
    /// The call is not waiting for approval.
    #[error("run {run} has no tool call {call:?} waiting for approval")]
    NotAwaitingApproval {
        /// The run.
        run: RunId,
        /// The call id.
        call: String,
    },
    /// A stored run log could not be replayed.
    #[error("run {run} cannot be resumed: {source}")]
    Replay {
        /// The run.
        run: RunId,
        /// Why.
        source: ReplayError,
    },
    /// A dispatch was refused.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registry refused a tier or provider.
    #[error(transparent)]
    Registry(#[from] executus_llm::ConfigError),
    /// The runtime was dropped while a handle on it (e.g. a tool's
    /// [`ChildRuns`](crate::run::ChildRuns)) was still in use.
    #[error("the runtime has shut down")]
    Gone,
    /// An internal actor could not start.
    #[error("runtime could not start its {actor} actor: {source}")]
    Start {
        /// Which actor.
        actor: &'static str,
        /// Why (the actor system's spawn error).
        #[source]
        source: ractor::SpawnErr,
    },
}
