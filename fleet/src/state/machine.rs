//! The fleet's live state as a pure machine: facts in, sequence-stamped deltas out.
//!
//! Every host carries a monotonic sequence number, incremented by each fact that changes it;
//! the delta describing that change carries the new number. A snapshot carries every host's
//! current number. A consumer that holds a snapshot applies exactly the deltas whose `seq`
//! is greater than its host's number in that snapshot, in order, and ends with the same
//! state as the machine (see [`HostView::apply`]).
//!
//! A `Connected` fact (a new events stream) clears the host's models and in-flight requests:
//! the host's state is rebuilt from what the new stream sends, never merged with what an
//! earlier stream (or the store, after a restart) said.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::connector::Liveness;
use crate::wire::{InflightRequest, InflightUpdate, ModelState, ModelStatus};

/// How many recent tokens/s readings a host keeps for its sparkline.
pub const SPARK_LEN: usize = 32;

/// A model on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    /// The model id.
    pub id: String,
    /// Its state.
    pub state: ModelState,
}

/// A request in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InflightView {
    /// The host's request id.
    pub id: String,
    /// The model.
    pub model: String,
    /// The path.
    pub path: String,
}

/// The newest activity of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityView {
    /// The host's row id.
    pub id: u64,
    /// When.
    pub ts: DateTime<Utc>,
    /// The model.
    pub model: String,
    /// The path.
    pub path: String,
    /// Status code.
    pub status: u16,
    /// Generated tokens.
    pub output_tokens: i64,
    /// Generation speed (0 when unknown).
    pub gen_tps: f64,
    /// Duration.
    pub duration_ms: i64,
}

/// A lease on a host, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// Who holds it.
    pub holder: String,
    /// What for.
    pub purpose: String,
    /// Until when, unless renewed.
    pub expires: DateTime<Utc>,
}

/// An action waiting in or running from a host's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedView {
    /// The action id.
    pub id: String,
    /// `load`, `unload`, `unload-all`.
    pub action: String,
    /// The model, if any.
    pub model: Option<String>,
    /// Running now (the head of the queue).
    pub running: bool,
}

/// The latest perf reading of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfView {
    /// When.
    pub ts: DateTime<Utc>,
    /// CPU percent.
    pub cpu_pct: Option<f64>,
    /// GPU percent.
    pub gpu_util_pct: Option<f64>,
    /// VRAM used, MB.
    pub vram_used_mb: Option<f64>,
    /// Hottest GPU.
    pub gpu_temp_c: Option<f64>,
}

/// Measured speed of a model on a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    /// Median generation tokens/s of the newest bench run, if any.
    pub bench: Option<f64>,
    /// Moving average of the generation tokens/s of live traffic, if any.
    pub live: Option<f64>,
}

impl Speed {
    /// The figure routing uses: the bench's when there is one, else live traffic's.
    pub fn best(&self) -> Option<f64> {
        self.bench.or(self.live)
    }
}

/// Everything known about one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    /// The host's configured name.
    pub name: String,
    /// Its base URL.
    pub base_url: String,
    /// Sequence number of the last change.
    pub seq: u64,
    /// Liveness.
    pub liveness: Liveness,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Models and states (empty until the stream's first `modelStatus`).
    pub models: Vec<ModelView>,
    /// The models were restored from the store and not yet confirmed by a live stream.
    pub stale: bool,
    /// The current stream has sent its model list (the host's state is live).
    pub synced: bool,
    /// Failed connection attempts since the last successful one.
    pub failures: u32,
    /// Requests in flight.
    pub in_flight: u64,
    /// The requests in flight (empty for hosts that only report a count).
    pub inflight: Vec<InflightView>,
    /// The newest activity rows, newest last (at most [`SPARK_LEN`]).
    pub recent: VecDeque<ActivityView>,
    /// Measured speeds by model.
    pub speeds: BTreeMap<String, Speed>,
    /// The lease, if any.
    pub lease: Option<LeaseView>,
    /// The action queue.
    pub queue: Vec<QueuedView>,
    /// The latest perf reading.
    pub perf: Option<PerfView>,
}

impl HostView {
    fn new(name: &str, base_url: &str, at: DateTime<Utc>) -> Self {
        Self {
            name: name.to_owned(),
            base_url: base_url.to_owned(),
            seq: 0,
            liveness: Liveness::Reconnecting,
            since: at,
            models: Vec::new(),
            stale: false,
            synced: false,
            failures: 0,
            in_flight: 0,
            inflight: Vec::new(),
            recent: VecDeque::new(),
            speeds: BTreeMap::new(),
            lease: None,
            queue: Vec::new(),
            perf: None,
        }
    }

    /// The state of `model` on this host, if the host lists it.
    pub fn model_state(&self, model: &str) -> Option<&ModelState> {
        self.models.iter().find(|m| m.id == model).map(|m| &m.state)
    }

    /// Recent generation speeds, oldest first (the sparkline).
    pub fn tps(&self) -> Vec<f64> {
        self.recent.iter().filter(|a| a.gen_tps > 0.0).map(|a| a.gen_tps).collect()
    }

    /// Applies a delta meant for this host (the consumer's side of the protocol). Returns
    /// `false`, changing nothing, when the delta is not the next one (`seq` not
    /// `self.seq + 1`): a delta already contained in the view, or one after a gap.
    pub fn apply(&mut self, delta: &Delta) -> bool {
        if delta.host != self.name || delta.seq != self.seq + 1 {
            return false;
        }
        self.change(&delta.change);
        self.seq = delta.seq;
        true
    }

    fn change(&mut self, change: &Change) {
        match change {
            Change::Reset(view) => {
                let seq = self.seq;
                *self = (**view).clone();
                self.seq = seq;
            }
            Change::Liveness { liveness, since } => {
                self.liveness = *liveness;
                self.since = *since;
            }
            Change::Models { models } => {
                self.models = models.clone();
                self.stale = false;
                self.synced = true;
            }
            Change::Attempt { failures } => self.failures = *failures,
            Change::InFlight { count, requests } => {
                self.in_flight = *count;
                self.inflight = requests.clone();
            }
            Change::Activity { rows } => {
                for row in rows {
                    self.recent.push_back(row.clone());
                    if row.gen_tps > 0.0 {
                        let speed = self.speeds.entry(row.model.clone()).or_default();
                        speed.live = Some(match speed.live {
                            Some(prev) => prev * 0.7 + row.gen_tps * 0.3,
                            None => row.gen_tps,
                        });
                    }
                }
                while self.recent.len() > SPARK_LEN {
                    self.recent.pop_front();
                }
            }
            Change::Bench { model, gen_tps } => {
                self.speeds.entry(model.clone()).or_default().bench = Some(*gen_tps);
            }
            Change::Lease { lease } => self.lease = lease.clone(),
            Change::Queue { queue } => self.queue = queue.clone(),
            Change::Perf { perf } => self.perf = Some(perf.clone()),
        }
    }
}

/// What changed on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The host's whole state was replaced (a new stream connected, or a restore).
    Reset(Box<HostView>),
    /// Liveness changed.
    Liveness {
        /// The new liveness.
        liveness: Liveness,
        /// Since when.
        since: DateTime<Utc>,
    },
    /// The model list changed.
    Models {
        /// The new list.
        models: Vec<ModelView>,
    },
    /// A connection attempt failed.
    Attempt {
        /// Failed attempts since the last successful one.
        failures: u32,
    },
    /// The in-flight requests changed.
    InFlight {
        /// How many.
        count: u64,
        /// Which (empty for hosts that report only a count).
        requests: Vec<InflightView>,
    },
    /// New activity rows.
    Activity {
        /// The rows, oldest first.
        rows: Vec<ActivityView>,
    },
    /// A bench measured a model.
    Bench {
        /// The model.
        model: String,
        /// Median generation tokens/s.
        gen_tps: f64,
    },
    /// The lease changed.
    Lease {
        /// The new lease, if any.
        lease: Option<LeaseView>,
    },
    /// The action queue changed.
    Queue {
        /// The queue, head first.
        queue: Vec<QueuedView>,
    },
    /// A new perf reading.
    Perf {
        /// The reading.
        perf: PerfView,
    },
}

/// One change of one host, stamped with the host's new sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The host.
    pub host: String,
    /// The host's sequence number after the change.
    pub seq: u64,
    /// The change.
    pub change: Change,
}

/// Every host's state, each with its sequence number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The hosts, by name.
    pub hosts: Vec<HostView>,
}

impl Snapshot {
    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&HostView> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Applies a delta to its host (see [`HostView::apply`]); `false` when it was not applied.
    pub fn apply(&mut self, delta: &Delta) -> bool {
        self.hosts.iter_mut().find(|h| h.name == delta.host).is_some_and(|h| h.apply(delta))
    }
}

/// A fact the machine learns.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The host's connector changed liveness.
    Liveness {
        /// The host.
        host: String,
        /// The new liveness.
        liveness: Liveness,
        /// When.
        at: DateTime<Utc>,
    },
    /// A new events stream is open: the host's view is rebuilt from it.
    Connected {
        /// The host.
        host: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A connection attempt ended (`ok: false`: it failed).
    Attempt {
        /// The host.
        host: String,
        /// It succeeded.
        ok: bool,
    },
    /// A `modelStatus` list.
    Models {
        /// The host.
        host: String,
        /// The list.
        models: Vec<ModelStatus>,
    },
    /// An `inflight` update.
    Inflight {
        /// The host.
        host: String,
        /// The update.
        update: InflightUpdate,
    },
    /// Activity rows newly stored.
    Activity {
        /// The host.
        host: String,
        /// The rows, oldest first.
        rows: Vec<ActivityView>,
    },
    /// A bench result.
    Bench {
        /// The host.
        host: String,
        /// The model.
        model: String,
        /// Median generation tokens/s.
        gen_tps: f64,
    },
    /// The lease changed.
    Lease {
        /// The host.
        host: String,
        /// The lease, if any.
        lease: Option<LeaseView>,
    },
    /// The action queue changed.
    Queue {
        /// The host.
        host: String,
        /// The queue.
        queue: Vec<QueuedView>,
    },
    /// A perf reading.
    Perf {
        /// The host.
        host: String,
        /// The reading.
        perf: PerfView,
    },
    /// State restored from the store after a restart (before any stream connected).
    Restore {
        /// The host.
        host: String,
        /// The last recorded model states.
        models: Vec<ModelView>,
        /// The newest stored activity, oldest first.
        recent: Vec<ActivityView>,
        /// Bench medians by model.
        bench: Vec<(String, f64)>,
    },
}

impl Fact {
    /// The host the fact is about.
    pub fn host(&self) -> &str {
        match self {
            Self::Liveness { host, .. }
            | Self::Connected { host, .. }
            | Self::Attempt { host, .. }
            | Self::Models { host, .. }
            | Self::Inflight { host, .. }
            | Self::Activity { host, .. }
            | Self::Bench { host, .. }
            | Self::Lease { host, .. }
            | Self::Queue { host, .. }
            | Self::Perf { host, .. }
            | Self::Restore { host, .. } => host,
        }
    }
}

/// The machine: every host's view.
#[derive(Debug, Clone)]
pub struct FleetState {
    hosts: BTreeMap<String, HostView>,
    /// In-flight requests by id, per host (the view keeps a sorted list).
    inflight: BTreeMap<String, BTreeMap<String, InflightView>>,
}

impl FleetState {
    /// The hosts `(name, base_url)`, all `reconnecting` since `at`.
    pub fn new<'a>(hosts: impl IntoIterator<Item = (&'a str, &'a str)>, at: DateTime<Utc>) -> Self {
        let hosts: BTreeMap<String, HostView> =
            hosts.into_iter().map(|(n, u)| (n.to_owned(), HostView::new(n, u, at))).collect();
        let inflight = hosts.keys().map(|k| (k.clone(), BTreeMap::new())).collect();
        Self { hosts, inflight }
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&HostView> {
        self.hosts.get(name)
    }

    /// Every host.
    pub fn hosts(&self) -> impl Iterator<Item = &HostView> {
        self.hosts.values()
    }

    /// A snapshot of every host.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { hosts: self.hosts.values().cloned().collect() }
    }

    /// Applies a fact. Returns the delta it caused, or `None` when it changed nothing (or
    /// names an unknown host).
    pub fn apply(&mut self, fact: Fact) -> Option<Delta> {
        let host_name = fact.host().to_owned();
        let host = self.hosts.get_mut(&host_name)?;
        let inflight = self.inflight.entry(host_name.clone()).or_default();
        let change = match fact {
            Fact::Liveness { liveness, at, .. } => {
                if host.liveness == liveness {
                    return None;
                }
                Change::Liveness { liveness, since: at }
            }
            Fact::Connected { at, .. } => {
                inflight.clear();
                let mut view = host.clone();
                view.liveness = Liveness::Connected;
                if host.liveness != Liveness::Connected {
                    view.since = at;
                }
                view.models.clear();
                view.stale = false;
                view.synced = false;
                view.failures = 0;
                view.in_flight = 0;
                view.inflight.clear();
                Change::Reset(Box::new(view))
            }
            Fact::Attempt { ok, .. } => {
                if ok {
                    return None;
                }
                Change::Attempt { failures: host.failures.saturating_add(1) }
            }
            Fact::Models { models, .. } => {
                let models: Vec<ModelView> =
                    models.into_iter().map(|m| ModelView { id: m.id, state: m.state }).collect();
                if host.models == models && !host.stale && host.synced {
                    return None;
                }
                Change::Models { models }
            }
            Fact::Inflight { update, .. } => {
                let count = match update {
                    InflightUpdate::Snapshot(requests) => {
                        inflight.clear();
                        for r in requests {
                            inflight.insert(r.id.clone(), view_of(r));
                        }
                        None
                    }
                    InflightUpdate::Upsert(r) => {
                        inflight.insert(r.id.clone(), view_of(r));
                        None
                    }
                    InflightUpdate::Remove(id) => {
                        inflight.remove(&id);
                        None
                    }
                    InflightUpdate::Total(n) => {
                        inflight.clear();
                        Some(n)
                    }
                };
                let requests: Vec<InflightView> = inflight.values().cloned().collect();
                let count = count.unwrap_or(requests.len() as u64);
                if count == host.in_flight && requests == host.inflight {
                    return None;
                }
                Change::InFlight { count, requests }
            }
            Fact::Activity { rows, .. } => {
                if rows.is_empty() {
                    return None;
                }
                Change::Activity { rows }
            }
            Fact::Bench { model, gen_tps, .. } => Change::Bench { model, gen_tps },
            Fact::Lease { lease, .. } => {
                if host.lease == lease {
                    return None;
                }
                Change::Lease { lease }
            }
            Fact::Queue { queue, .. } => {
                if host.queue == queue {
                    return None;
                }
                Change::Queue { queue }
            }
            Fact::Perf { perf, .. } => Change::Perf { perf },
            Fact::Restore { models, recent, bench, .. } => {
                let mut view = host.clone();
                view.models = models;
                view.stale = !view.models.is_empty();
                view.recent = VecDeque::new();
                view.speeds = BTreeMap::new();
                view.change(&Change::Activity { rows: recent });
                for (model, gen_tps) in bench {
                    view.speeds.entry(model).or_default().bench = Some(gen_tps);
                }
                Change::Reset(Box::new(view))
            }
        };
        host.change(&change);
        host.seq += 1;
        Some(Delta { host: host_name, seq: host.seq, change })
    }
}

fn view_of(r: InflightRequest) -> InflightView {
    InflightView { id: r.id, model: r.model, path: r.req_path }
}
