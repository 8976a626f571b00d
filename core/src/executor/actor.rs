//! The executor actor: one linked child actor per run, supervision events turned into
//! outcomes. Crate-private; [`super::ExecutorHandle`] is its face.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::checkpoint::load_stored;
use crate::ids::RunId;
use crate::ports::{AuditEvent, AuditRecord, DeliveryItem, StoredStatus};
use crate::run::actor::{RunActor, RunArgs, RunMsg};
use crate::run::env::RunEnv;
use crate::run::handle::RunControl;
use crate::run::{RunEnd, RunEvent, RunOutcome, RunSnapshot};

/// Messages of the executor.
pub(crate) enum ExecMsg {
    /// Start a run actor.
    Start(Box<RunArgs>, RpcReplyPort<Result<(), String>>),
    /// Cancel a run.
    Cancel(RunId),
    /// Steer a run; replies false if the run is not active here.
    Steer(RunId, String, RpcReplyPort<bool>),
    /// Status of a run, if active here.
    Status(RunId, RpcReplyPort<Option<RunSnapshot>>),
    /// Number of active runs.
    Active(RpcReplyPort<usize>),
    /// Stop every run actor without finishing it (their checkpoints stay, so they resume
    /// later), then stop the executor.
    Shutdown,
}

struct Child {
    run_id: RunId,
    actor: ActorRef<RunMsg>,
    control: Arc<RunControl>,
    after: AfterEnd,
}

/// What a run owes the host when it ends, also when its actor cannot (panicked, killed).
#[derive(Debug, Clone, Copy)]
struct AfterEnd {
    /// Hand the outcome to the `Delivery` port.
    deliver: bool,
    /// A root run: free its dispatch tree.
    root: bool,
}

/// The executor actor.
pub(crate) struct RunExecutor;

/// Its state.
pub(crate) struct ExecState {
    env: Arc<RunEnv>,
    by_actor: HashMap<ActorId, Child>,
    by_run: HashMap<RunId, ActorId>,
    shutting_down: bool,
}

impl Actor for RunExecutor {
    type Msg = ExecMsg;
    type State = ExecState;
    type Arguments = Arc<RunEnv>;

    async fn pre_start(
        &self,
        _myself: ActorRef<ExecMsg>,
        env: Arc<RunEnv>,
    ) -> Result<ExecState, ActorProcessingErr> {
        Ok(ExecState { env, by_actor: HashMap::new(), by_run: HashMap::new(), shutting_down: false })
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecMsg>,
        msg: ExecMsg,
        state: &mut ExecState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ExecMsg::Start(args, reply) => {
                let run_id = args.state.run_id;
                let control = args.control.clone();
                let after = AfterEnd { deliver: args.deliver, root: args.state.parent.is_none() };
                if state.by_run.contains_key(&run_id) {
                    let _ = reply.send(Err(format!("run {run_id} is already active")));
                    return Ok(());
                }
                // Boxed (as is every failure path below): ractor boxes a future per message
                // the size of this handler's largest await, so inline these would make every
                // message to the executor allocate and copy kilobytes.
                match Box::pin(Actor::spawn_linked(None, RunActor, *args, myself.get_cell())).await {
                    Ok((actor, _)) => {
                        let id = actor.get_id();
                        state.by_run.insert(run_id, id);
                        state.by_actor.insert(id, Child { run_id, actor, control, after });
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        // pre_start failed (or panicked): the run could not start at all.
                        let error = format!("run {run_id} failed to start: {e}");
                        Box::pin(fail_without_actor(&state.env, &control, run_id, after, error.clone()))
                            .await;
                        let _ = reply.send(Err(error));
                    }
                }
            }
            ExecMsg::Cancel(run_id) => {
                if let Some(child) = state.by_run.get(&run_id).and_then(|id| state.by_actor.get(id)) {
                    let _ = child.actor.send_message(RunMsg::Cancel);
                }
            }
            ExecMsg::Steer(run_id, text, reply) => {
                let sent = state
                    .by_run
                    .get(&run_id)
                    .and_then(|id| state.by_actor.get(id))
                    .is_some_and(|child| child.actor.send_message(RunMsg::Steer(text)).is_ok());
                let _ = reply.send(sent);
            }
            ExecMsg::Status(run_id, reply) => {
                match state.by_run.get(&run_id).and_then(|id| state.by_actor.get(id)) {
                    Some(child) => {
                        // Ask the run without blocking the executor's mailbox.
                        let actor = child.actor.clone();
                        tokio::spawn(async move {
                            let status = ractor::call!(actor, RunMsg::Status).ok();
                            let _ = reply.send(status);
                        });
                    }
                    None => {
                        let _ = reply.send(None);
                    }
                }
            }
            ExecMsg::Active(reply) => {
                let _ = reply.send(state.by_actor.len());
            }
            ExecMsg::Shutdown => {
                state.shutting_down = true;
                for child in state.by_actor.values() {
                    child.actor.stop(Some("runtime shutdown".into()));
                }
                if state.by_actor.is_empty() {
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ExecMsg>,
        event: SupervisionEvent,
        state: &mut ExecState,
    ) -> Result<(), ActorProcessingErr> {
        if state.shutting_down {
            // Interrupted on purpose: the checkpoint stays so the run resumes later.
            if let SupervisionEvent::ActorTerminated(cell, ..) | SupervisionEvent::ActorFailed(cell, _) =
                &event
            {
                remove(state, cell);
            }
            if state.by_actor.is_empty() {
                myself.stop(None);
            }
            return Ok(());
        }
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(child) = remove(state, &cell) {
                    // A run that stopped without publishing an outcome (cannot happen through
                    // `finish`, but an actor can be killed) is failed, not left hanging.
                    if child.control.outcome().is_none() {
                        Box::pin(fail_without_actor(
                            &state.env,
                            &child.control,
                            child.run_id,
                            child.after,
                            "run actor stopped unexpectedly".into(),
                        ))
                        .await;
                    }
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(child) = remove(state, &cell) {
                    let message = format!("run panicked: {error}");
                    tracing::error!(run_id = %child.run_id, error = %message, "run actor failed");
                    Box::pin(fail_without_actor(
                        &state.env,
                        &child.control,
                        child.run_id,
                        child.after,
                        message,
                    ))
                    .await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn remove(state: &mut ExecState, cell: &ActorCell) -> Option<Child> {
    let child = state.by_actor.remove(&cell.get_id())?;
    state.by_run.remove(&child.run_id);
    Some(child)
}

/// Records a run as failed when its actor is gone: recovers what the checkpoint log holds,
/// deletes the log, audits, delivers (if asked), frees a root's dispatch tree, publishes the
/// outcome — what the actor's own `finish` would have done.
async fn fail_without_actor(
    env: &RunEnv,
    control: &RunControl,
    run_id: RunId,
    after: AfterEnd,
    error: String,
) {
    let _ = env.checkpoint.flush().await;
    let recovered =
        load_stored(env.checkpoint.store().as_ref(), run_id).await.ok().flatten().map(|stored| stored.state);
    if let Err(e) = env.checkpoint.finish(run_id, StoredStatus::Failed).await {
        tracing::warn!(run_id = %run_id, error = %e, "could not delete the failed run's checkpoint");
    }
    let end = RunEnd::Failed { error: error.into() };
    let (messages, steps, usage, identity) = match &recovered {
        Some(st) => (st.messages.clone(), st.step, st.usage, st.identity.clone()),
        None => (Vec::new(), 0, Default::default(), Default::default()),
    };
    env.ports
        .audit
        .record(AuditRecord::now(
            Some(run_id),
            identity.clone(),
            Some(control.agent.clone()),
            AuditEvent::RunEnded { status: end.status(), reason: end.reason(), steps, usage },
        ))
        .await;
    let output = recovered.as_ref().and_then(|st| st.last_text());
    if after.deliver {
        let item = DeliveryItem {
            run_id,
            agent: control.agent.clone(),
            identity,
            status: end.status(),
            output: output.clone(),
        };
        env.deliver(item).await;
    }
    if after.root {
        env.dispatch.finish_root(run_id).await;
    }
    control.emit(RunEvent::Ended { run_id, end: end.clone() });
    control.set_outcome(RunOutcome {
        run_id,
        agent: control.agent.clone(),
        output,
        typed: None,
        messages,
        steps,
        usage,
        end,
    });
}
