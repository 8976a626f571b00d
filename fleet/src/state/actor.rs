//! The state actor: applies facts to the machine, fans deltas out to subscribers, publishes
//! the routing view.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use super::SUBSCRIBER_BUFFER;
use super::machine::{Delta, Fact, FleetState, Snapshot};
use crate::route::RoutingBoard;

pub(crate) enum StateMsg {
    Apply(Fact),
    ApplyNow(Fact, RpcReplyPort<Option<Delta>>),
    Snapshot(RpcReplyPort<Snapshot>),
    Subscribe(RpcReplyPort<(Snapshot, mpsc::Receiver<Delta>)>),
}

pub(crate) struct StateActor;

pub(crate) struct State {
    machine: FleetState,
    board: Arc<RoutingBoard>,
    subscribers: Vec<mpsc::Sender<Delta>>,
}

impl State {
    fn apply(&mut self, fact: Fact) -> Option<Delta> {
        let delta = self.machine.apply(fact)?;
        if let Some(host) = self.machine.host(&delta.host) {
            self.board.publish_host(host);
        }
        // A subscriber whose buffer is full is cut off (its receiver ends once drained);
        // one that is gone is forgotten.
        self.subscribers.retain(|tx| tx.try_send(delta.clone()).is_ok());
        Some(delta)
    }
}

impl Actor for StateActor {
    type Msg = StateMsg;
    type State = State;
    type Arguments = (FleetState, Arc<RoutingBoard>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (machine, board): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(State { machine, board, subscribers: Vec::new() })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StateMsg::Apply(fact) => {
                state.apply(fact);
            }
            StateMsg::ApplyNow(fact, reply) => {
                let delta = state.apply(fact);
                let _ = reply.send(delta);
            }
            StateMsg::Snapshot(reply) => {
                let _ = reply.send(state.machine.snapshot());
            }
            StateMsg::Subscribe(reply) => {
                if !reply.is_closed() {
                    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
                    if reply.send((state.machine.snapshot(), rx)).is_ok() {
                        state.subscribers.push(tx);
                    }
                }
            }
        }
        Ok(())
    }
}
