//! Actions on hosts — load (warm), unload, unload-all — through one FIFO queue per host.
//!
//! # Guarantees
//! - **One at a time per host, in order.** A host's actions run one after another in
//!   submission order; hosts do not wait for each other.
//! - **Bounded.** A host's queue holds at most `depth` actions (default 4), the running one
//!   included; a submission past that is refused with [`FleetError::QueueFull`], which lists
//!   what is queued.
//! - **Leases are respected.** An action on a leased host (a bench is running) is refused
//!   with [`FleetError::Leased`] unless confirmed; a confirmed one revokes the lease first
//!   (the bench notices and stops) — a takeover, audited as such.
//! - **No action on a host that is down** (its circuit is open): refused at submission, and
//!   skipped if the host went down while the action waited.
//! - **Every action audited**: its submission (queued, or refused and why), its takeover,
//!   and its end (done, failed with the error, skipped).
//!
//! # What it does not do
//! Queues live in memory: actions waiting when the process exits are dropped (their audit
//! rows say `queued` with no end).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::client::HostClient;
use crate::clock::{Clock, utc_now};
use crate::connector::Liveness;
use crate::error::FleetError;
use crate::lease::Leases;
use crate::route::RoutingBoard;
use crate::state::{Fact, QueuedView, StateHandle};
use crate::store::{ActionRecord, FleetStore};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// Load a model (a one-token request makes llama-swap start it).
    Load(String),
    /// Stop a model.
    Unload(String),
    /// Stop every model.
    UnloadAll,
}

impl ActionKind {
    /// `load`, `unload`, `unload-all`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Load(_) => "load",
            Self::Unload(_) => "unload",
            Self::UnloadAll => "unload-all",
        }
    }

    /// The model, if the action concerns one.
    pub fn model(&self) -> Option<&str> {
        match self {
            Self::Load(m) | Self::Unload(m) => Some(m),
            Self::UnloadAll => None,
        }
    }
}

/// An action request.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    /// The host.
    pub host: String,
    /// What to do.
    pub kind: ActionKind,
    /// Take the host over if it is leased.
    pub confirm: bool,
    /// Who asks (a key name, `cli`): written to the audit.
    pub actor: String,
}

/// An accepted action: its id, the queue as it stood, and its outcome to come.
#[derive(Debug)]
pub struct Ticket {
    /// The action id.
    pub id: String,
    /// The host's queue right after the submission, head first.
    pub queue: Vec<QueuedView>,
    /// The lease taken over by this action, if it confirmed a takeover.
    pub took_over: Option<crate::store::LeaseRecord>,
    host: String,
    action: &'static str,
    done: oneshot::Receiver<Result<(), String>>,
}

impl Ticket {
    /// Waits for the action to end.
    ///
    /// # Errors
    /// [`FleetError::ActionFailed`] with the reason the audit has too;
    /// [`FleetError::Stopped`] if the fleet stopped first.
    pub async fn done(self) -> Result<(), FleetError> {
        match self.done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => {
                Err(FleetError::ActionFailed { host: self.host, action: self.action.to_owned(), reason })
            }
            Err(_) => Err(FleetError::Stopped),
        }
    }
}

struct Item {
    id: String,
    request: ActionRequest,
    running: bool,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

#[derive(Default)]
struct HostQueue {
    items: VecDeque<Item>,
    worker: bool,
}

impl HostQueue {
    fn view(&self) -> Vec<QueuedView> {
        self.items
            .iter()
            .map(|i| QueuedView {
                id: i.id.clone(),
                action: i.request.kind.name().to_owned(),
                model: i.request.kind.model().map(str::to_owned),
                running: i.running,
            })
            .collect()
    }
}

/// The action queues of every host.
#[derive(Clone)]
pub struct Actions {
    inner: Arc<Inner>,
}

struct Inner {
    clients: HashMap<String, HostClient>,
    queues: Mutex<HashMap<String, HostQueue>>,
    leases: Leases,
    store: Arc<dyn FleetStore>,
    state: StateHandle,
    board: Arc<RoutingBoard>,
    clock: Arc<dyn Clock>,
    depth: usize,
    load_timeout: Duration,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions").field("depth", &self.inner.depth).finish_non_exhaustive()
    }
}

impl Actions {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        clients: HashMap<String, HostClient>,
        leases: Leases,
        store: Arc<dyn FleetStore>,
        state: StateHandle,
        clock: Arc<dyn Clock>,
        depth: usize,
        load_timeout: Duration,
    ) -> Self {
        let board = Arc::clone(state.board());
        Self {
            inner: Arc::new(Inner {
                clients,
                queues: Mutex::new(HashMap::new()),
                leases,
                store,
                state,
                board,
                clock,
                depth,
                load_timeout,
            }),
        }
    }

    async fn audit(&self, id: &str, request: &ActionRequest, action: &str, outcome: &str, detail: String) {
        let record = ActionRecord {
            id: id.to_owned(),
            at: utc_now(&*self.inner.clock),
            host: request.host.clone(),
            action: action.to_owned(),
            model: request.kind.model().map(str::to_owned),
            actor: request.actor.clone(),
            outcome: outcome.to_owned(),
            detail,
        };
        if let Err(e) = self.inner.store.record_action(&record).await {
            tracing::error!(host = %request.host, error = %e, "fleet: cannot audit an action");
        }
    }

    /// Submits an action (see the module guarantees).
    ///
    /// # Errors
    /// [`FleetError::UnknownHost`], [`FleetError::HostOffline`], [`FleetError::Leased`],
    /// [`FleetError::QueueFull`], [`FleetError::Store`]. Each refusal is audited.
    pub async fn submit(&self, request: ActionRequest) -> Result<Ticket, FleetError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let action = request.kind.name();
        if !self.inner.clients.contains_key(&request.host) {
            let mut known: Vec<&str> = self.inner.clients.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(FleetError::UnknownHost { host: request.host.clone(), known: known.join(", ") });
        }
        let down =
            self.inner.board.view().host(&request.host).filter(|route| route.liveness == Liveness::Down).map(
                |route| FleetError::HostOffline {
                    host: request.host.clone(),
                    liveness: route.liveness.to_string(),
                    since: route.since.to_rfc3339(),
                },
            );
        if let Some(err) = down {
            self.audit(&id, &request, action, "refused", err.to_string()).await;
            return Err(err);
        }
        let mut took_over = None;
        if let Some(lease) = self.inner.leases.current(&request.host).await? {
            if !request.confirm {
                let err = FleetError::Leased {
                    host: request.host.clone(),
                    holder: lease.holder.clone(),
                    purpose: lease.purpose.clone(),
                };
                self.audit(&id, &request, action, "conflict", err.to_string()).await;
                return Err(err);
            }
            took_over = self.inner.leases.take_over(&request.host).await?;
            let detail = format!("revoked the {} lease of {}", lease.purpose, lease.holder);
            self.audit(&id, &request, "takeover", "done", detail).await;
        }
        let (tx, rx) = oneshot::channel();
        let admitted = {
            let mut queues = self.inner.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let q = queues.entry(request.host.clone()).or_default();
            if q.items.len() >= self.inner.depth {
                Err(q.view())
            } else {
                q.items.push_back(Item {
                    id: id.clone(),
                    request: request.clone(),
                    running: false,
                    done: Some(tx),
                });
                let spawn = !q.worker;
                q.worker = true;
                Ok((q.view(), spawn))
            }
        };
        let (queue, spawn) = match admitted {
            Ok(admitted) => admitted,
            Err(queued) => {
                let err = FleetError::QueueFull { host: request.host.clone(), queued };
                self.audit(&id, &request, action, "refused", err.to_string()).await;
                return Err(err);
            }
        };
        self.audit(&id, &request, action, "queued", String::new()).await;
        self.inner.state.apply(Fact::Queue { host: request.host.clone(), queue: queue.clone() });
        if spawn {
            tokio::spawn(self.clone().worker(request.host.clone()));
        }
        Ok(Ticket { id, queue, took_over, host: request.host, action, done: rx })
    }

    /// The queue of `host`, head first.
    pub fn queue(&self, host: &str) -> Vec<QueuedView> {
        let queues = self.inner.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.get(host).map(HostQueue::view).unwrap_or_default()
    }

    async fn worker(self, host: String) {
        loop {
            let next = {
                let mut queues = self.inner.queues.lock().unwrap_or_else(PoisonError::into_inner);
                let q = queues.entry(host.clone()).or_default();
                match q.items.front_mut() {
                    Some(item) => {
                        item.running = true;
                        Some((item.id.clone(), item.request.clone(), item.done.take(), q.view()))
                    }
                    None => {
                        q.worker = false;
                        None
                    }
                }
            };
            let Some((id, request, done, view)) = next else { return };
            self.inner.state.apply(Fact::Queue { host: host.clone(), queue: view });
            let result = self.execute(&request).await;
            let (outcome, detail) = match &result {
                Ok(()) => ("done", String::new()),
                Err(Skip(reason)) => ("skipped", reason.clone()),
                Err(Fail(reason)) => ("failed", reason.clone()),
            };
            self.audit(&id, &request, request.kind.name(), outcome, detail).await;
            let view = {
                let mut queues = self.inner.queues.lock().unwrap_or_else(PoisonError::into_inner);
                let q = queues.entry(host.clone()).or_default();
                q.items.pop_front();
                q.view()
            };
            self.inner.state.apply(Fact::Queue { host: host.clone(), queue: view });
            if let Some(done) = done {
                let _ = done.send(result.map_err(|e| match e {
                    Skip(r) | Fail(r) => r,
                }));
            }
        }
    }

    async fn execute(&self, request: &ActionRequest) -> Result<(), Outcome> {
        let Some(client) = self.inner.clients.get(&request.host) else {
            return Err(Fail(format!("unknown host {:?}", request.host)));
        };
        // Re-check on dequeue: a host that went down while the action waited is skipped.
        if self.inner.board.view().host(&request.host).is_some_and(|route| route.liveness == Liveness::Down) {
            return Err(Skip("host offline".into()));
        }
        let result = match &request.kind {
            ActionKind::Load(model) => client.warm(model, self.inner.load_timeout).await,
            ActionKind::Unload(model) => client.unload(model).await,
            ActionKind::UnloadAll => client.unload_all().await,
        };
        result.map_err(|e| Fail(e.to_string()))
    }
}

enum Outcome {
    Skip(String),
    Fail(String),
}
use Outcome::{Fail, Skip};
