//! The dispatch guard actor: owns the [`Forest`] and answers one request at a time, so two
//! concurrent dispatches under the same parent can never both take the last fan-out place.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::tree::Forest;
use super::{DispatchError, DispatchLimits, DispatchTicket, TreeSnapshot};
use crate::RunId;

/// The guard's messages; inputs arrive already hashed so large prompts are not copied.
pub(crate) enum GuardMsg {
    RegisterRoot {
        root: RunId,
        agent: String,
        input: u64,
        reply: RpcReplyPort<Result<(), DispatchError>>,
    },
    Dispatch {
        parent: RunId,
        child: RunId,
        agent: String,
        input: u64,
        reply: RpcReplyPort<Result<DispatchTicket, DispatchError>>,
    },
    FinishRoot(RunId),
    Tree {
        root: RunId,
        reply: RpcReplyPort<Option<TreeSnapshot>>,
    },
    TrackedRuns(RpcReplyPort<usize>),
}

/// The dispatch guard actor (stateless; the state is a [`Forest`]).
pub(crate) struct Guard;

impl Actor for Guard {
    type Msg = GuardMsg;
    type State = Forest;
    type Arguments = DispatchLimits;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        limits: DispatchLimits,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Forest::new(limits))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        forest: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Reply send errors mean the caller stopped waiting; the decision stands regardless.
        match message {
            GuardMsg::RegisterRoot { root, agent, input, reply } => {
                let _ = reply.send(forest.register_root(root, agent, input));
            }
            GuardMsg::Dispatch { parent, child, agent, input, reply } => {
                let decision = forest.dispatch(parent, child, agent, input);
                if let Err(refusal) = &decision {
                    tracing::debug!(%parent, %child, %refusal, "dispatch refused");
                }
                let _ = reply.send(decision);
            }
            GuardMsg::FinishRoot(root) => forest.finish_root(root),
            GuardMsg::Tree { root, reply } => {
                let _ = reply.send(forest.snapshot(root));
            }
            GuardMsg::TrackedRuns(reply) => {
                let _ = reply.send(forest.tracked_runs());
            }
        }
        Ok(())
    }
}
