//! [`Fleet`]: the assembled cockpit — the state actor, one connector, activity ingester and
//! perf poller per host, the lease poller, the retention job, the action queues, the bench —
//! behind one cheap-to-clone handle.
//!
//! Building a fleet restores every host's last known state from the store (model states,
//! recent activity, bench medians) before the state is served, so the first snapshot after a
//! restart already shows it (marked `stale` until the host's live stream confirms it).
//! [`Fleet::start`] then starts the background tasks; dropping the last handle stops them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::llama_swap::LlamaSwap;
use executus_llm::{ChainOptions, ConfigError, HealthTracker, HttpOptions, Model, Provider, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::actions::{ActionRequest, Actions, Ticket};
use crate::bench::{self, BenchGrid, BenchRun, LeaderRow, Progress};
use crate::client::HostClient;
use crate::clock::{Clock, Sleeper, SystemClock, TokioSleeper, utc_now};
use crate::config::FleetConfig;
use crate::connector::{self, ConnectorCtx, Liveness};
use crate::error::FleetError;
use crate::ingest::{self, ActivityIngest, PerfPoll};
use crate::lease::{self, Lease, Leases};
use crate::retention;
use crate::route::{AutoModel, BoardSource, RoutingBoard};
use crate::state::{Fact, ModelView, Snapshot, StateHandle, Subscription, machine::SPARK_LEN};
use crate::store::{ActionRecord, ActivityRecord, FleetStore, MemoryFleetStore};

/// The status of one host, as `fleet status --json` and `GET /api/fleet/status` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host's name.
    pub name: String,
    /// Its base URL.
    pub base_url: String,
    /// `connected`, `reconnecting` or `down`.
    pub liveness: Liveness,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Models and their states.
    pub models: Vec<ModelView>,
    /// Requests in flight.
    pub in_flight: u64,
}

/// The fleet's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Every host, by name.
    pub hosts: Vec<HostStatus>,
}

impl Status {
    /// The status a snapshot shows.
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            hosts: snapshot
                .hosts
                .iter()
                .map(|h| HostStatus {
                    name: h.name.clone(),
                    base_url: h.base_url.clone(),
                    liveness: h.liveness,
                    since: h.since,
                    models: h.models.clone(),
                    in_flight: h.in_flight,
                })
                .collect(),
        }
    }
}

/// Builds a [`Fleet`].
pub struct FleetBuilder {
    config: FleetConfig,
    store: Option<Arc<dyn FleetStore>>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    poll_sleeper: Arc<dyn Sleeper>,
    http: Option<reqwest::Client>,
    retention: bool,
    load_timeout: Duration,
}

impl FleetBuilder {
    /// The store (default: in memory).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn FleetStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The wall clock (default: the system's).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The connectors' sleeper, for reconnect waits (default: tokio's timer).
    #[must_use]
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// The pollers' sleeper: perf, leases, retention (default: tokio's timer).
    #[must_use]
    pub fn poll_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.poll_sleeper = sleeper;
        self
    }

    /// The HTTP client (default: one with a 10 s connect timeout).
    #[must_use]
    pub fn http(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Runs the retention job in the background (default: on).
    #[must_use]
    pub fn retention(mut self, on: bool) -> Self {
        self.retention = on;
        self
    }

    /// How long a load action may take (default 10 minutes: big models load slowly).
    #[must_use]
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = timeout;
        self
    }

    /// Validates the configuration, starts the state actor and restores every host's last
    /// known state from the store. Background tasks start with [`Fleet::start`].
    ///
    /// # Errors
    /// [`FleetError::Config`], [`FleetError::Spawn`], [`FleetError::Store`].
    pub async fn build(self) -> Result<Fleet, FleetError> {
        self.config.validate()?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryFleetStore::new()));
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| FleetError::Spawn { what: "HTTP client", reason: e.to_string() })?,
        };
        let clients: HashMap<String, HostClient> = self
            .config
            .hosts
            .iter()
            .map(|h| (h.name.clone(), HostClient::new(h.clone(), http.clone(), self.config.request_timeout)))
            .collect();
        let hosts = self.config.hosts.iter().map(|h| (h.name.clone(), h.base_url.clone())).collect();
        let state = StateHandle::spawn(hosts, utc_now(&*self.clock)).await?;
        restore(&store, &state, &self.config).await?;
        let leases = Leases::new(Arc::clone(&store), Arc::clone(&self.clock), self.config.lease_ttl)
            .with_state(state.clone());
        let actions = Actions::new(
            clients.clone(),
            leases.clone(),
            Arc::clone(&store),
            state.clone(),
            Arc::clone(&self.clock),
            self.config.queue_depth,
            self.load_timeout,
        );
        Ok(Fleet {
            inner: Arc::new(Inner {
                config: self.config,
                clients,
                state,
                store,
                leases,
                actions,
                clock: self.clock,
                sleeper: self.sleeper,
                poll_sleeper: self.poll_sleeper,
                retention: self.retention,
                tasks: Mutex::new(None),
            }),
        })
    }
}

async fn restore(
    store: &Arc<dyn FleetStore>,
    state: &StateHandle,
    config: &FleetConfig,
) -> Result<(), FleetError> {
    let runs = store.runs(None, None, 1000).await?;
    let board = bench::leaderboard(&runs);
    for host in &config.hosts {
        let models: Vec<ModelView> = store
            .latest_model_states(&host.name)
            .await?
            .into_iter()
            .map(|r| ModelView { id: r.model, state: r.state })
            .collect();
        let mut recent: Vec<ActivityRecord> =
            store.recent_activity(Some(&host.name), SPARK_LEN as u32).await?;
        recent.reverse();
        let bench: Vec<(String, f64)> =
            board.iter().filter(|r| r.host == host.name).map(|r| (r.model.clone(), r.gen_tps)).collect();
        if models.is_empty() && recent.is_empty() && bench.is_empty() {
            continue;
        }
        state
            .apply_now(Fact::Restore {
                host: host.name.clone(),
                models,
                recent: recent.iter().map(ingest::view_of).collect(),
                bench,
            })
            .await?;
    }
    Ok(())
}

struct Inner {
    config: FleetConfig,
    clients: HashMap<String, HostClient>,
    state: StateHandle,
    store: Arc<dyn FleetStore>,
    leases: Leases,
    actions: Actions,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    poll_sleeper: Arc<dyn Sleeper>,
    retention: bool,
    tasks: Mutex<Option<Vec<JoinHandle<()>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(tasks) = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            for t in tasks {
                t.abort();
            }
        }
        self.state.stop();
    }
}

/// The fleet. Cheap to clone; the last clone dropped stops everything.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self.inner.config.hosts.iter().map(|h| h.name.as_str()).collect();
        f.debug_struct("Fleet").field("hosts", &hosts).finish_non_exhaustive()
    }
}

impl Fleet {
    /// A builder over `config`.
    pub fn builder(config: FleetConfig) -> FleetBuilder {
        FleetBuilder {
            config,
            store: None,
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(TokioSleeper),
            poll_sleeper: Arc::new(TokioSleeper),
            http: None,
            retention: true,
            load_timeout: Duration::from_secs(600),
        }
    }

    /// Starts the background tasks (idempotent).
    pub fn start(&self) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if tasks.is_some() {
            return;
        }
        let mut handles = Vec::new();
        let inner = &self.inner;
        for host in &inner.config.hosts {
            let client = inner.clients[&host.name].clone();
            let (tx, rx) = mpsc::unbounded_channel();
            let ctx = ConnectorCtx {
                client: client.clone(),
                state: inner.state.clone(),
                store: Arc::clone(&inner.store),
                clock: Arc::clone(&inner.clock),
                sleeper: Arc::clone(&inner.sleeper),
                policy: inner.config.reconnect.clone(),
                ingest: tx,
            };
            handles.push(tokio::spawn(connector::run(ctx)));
            let activity = ActivityIngest {
                client: client.clone(),
                store: Arc::clone(&inner.store),
                state: inner.state.clone(),
            };
            handles.push(tokio::spawn(activity.run(rx)));
            if let Some(every) = inner.config.perf_poll {
                let poll = PerfPoll {
                    client,
                    store: Arc::clone(&inner.store),
                    state: inner.state.clone(),
                    sleeper: Arc::clone(&inner.poll_sleeper),
                    every,
                };
                handles.push(tokio::spawn(poll.run()));
            }
        }
        handles.push(tokio::spawn(lease_poller(
            inner.config.hosts.iter().map(|h| h.name.clone()).collect(),
            inner.leases.clone(),
            inner.state.clone(),
            Arc::clone(&inner.poll_sleeper),
        )));
        if inner.retention {
            handles.push(tokio::spawn(retention_loop(
                Arc::clone(&inner.store),
                inner.config.retention.clone(),
                Arc::clone(&inner.clock),
                Arc::clone(&inner.poll_sleeper),
            )));
        }
        *tasks = Some(handles);
    }

    /// Stops the background tasks (the handle stays usable for reads).
    pub fn stop(&self) {
        if let Some(tasks) = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner).take() {
            for t in tasks {
                t.abort();
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.inner.config
    }

    /// The state actor's handle.
    pub fn state(&self) -> &StateHandle {
        &self.inner.state
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn FleetStore> {
        &self.inner.store
    }

    /// The lease manager.
    pub fn leases(&self) -> &Leases {
        &self.inner.leases
    }

    /// The routing board.
    pub fn board(&self) -> &Arc<RoutingBoard> {
        self.inner.state.board()
    }

    /// The client of `host`.
    ///
    /// # Errors
    /// [`FleetError::UnknownHost`].
    pub fn client(&self, host: &str) -> Result<&HostClient, FleetError> {
        self.inner.clients.get(host).ok_or_else(|| {
            let mut known: Vec<&str> = self.inner.clients.keys().map(String::as_str).collect();
            known.sort_unstable();
            FleetError::UnknownHost { host: host.to_owned(), known: known.join(", ") }
        })
    }

    /// The current state.
    ///
    /// # Errors
    /// [`FleetError::Stopped`].
    pub async fn snapshot(&self) -> Result<Snapshot, FleetError> {
        self.inner.state.snapshot().await
    }

    /// The status (what `fleet status --json` prints).
    ///
    /// # Errors
    /// [`FleetError::Stopped`].
    pub async fn status(&self) -> Result<Status, FleetError> {
        Ok(Status::of(&self.snapshot().await?))
    }

    /// A snapshot and every delta after it.
    ///
    /// # Errors
    /// [`FleetError::Stopped`].
    pub async fn subscribe(&self) -> Result<Subscription, FleetError> {
        self.inner.state.subscribe().await
    }

    /// Waits until every host's first connection attempt has ended — connected with its model
    /// list, or failed — or `timeout` passes. Returns the state then.
    ///
    /// # Errors
    /// [`FleetError::Stopped`].
    pub async fn settle(&self, timeout: Duration) -> Result<Snapshot, FleetError> {
        let mut sub = self.subscribe().await?;
        let settled =
            |s: &Snapshot| s.hosts.iter().all(|h| h.synced || h.failures > 0 || h.liveness == Liveness::Down);
        let deadline = tokio::time::Instant::now() + timeout;
        while !settled(&sub.snapshot) {
            match tokio::time::timeout_at(deadline, sub.deltas.recv()).await {
                Ok(Some(delta)) => {
                    sub.snapshot.apply(&delta);
                }
                Ok(None) => sub = self.subscribe().await?,
                Err(_) => break,
            }
        }
        Ok(sub.snapshot)
    }

    /// Submits an action.
    ///
    /// # Errors
    /// As [`Actions::submit`].
    pub async fn act(&self, request: ActionRequest) -> Result<Ticket, FleetError> {
        self.inner.actions.submit(request).await
    }

    /// The action queue of `host`.
    pub fn queue(&self, host: &str) -> Vec<crate::state::QueuedView> {
        self.inner.actions.queue(host)
    }

    /// Takes `host` for `purpose`.
    ///
    /// # Errors
    /// As [`Leases::acquire`], plus [`FleetError::UnknownHost`].
    pub async fn lease(&self, host: &str, purpose: &str) -> Result<Lease, FleetError> {
        self.client(host)?;
        self.inner.leases.acquire(host, purpose).await
    }

    /// Benches `model` on `host` over `grid`, holding the host's lease; stores the run and
    /// feeds its headline speed to routing.
    ///
    /// # Errors
    /// [`FleetError::UnknownHost`], [`FleetError::LeaseHeld`], [`FleetError::Bench`],
    /// [`FleetError::Store`].
    pub async fn bench(
        &self,
        host: &str,
        model: &str,
        grid: &BenchGrid,
        progress: impl FnMut(Progress),
    ) -> Result<BenchRun, FleetError> {
        let client = self.client(host)?.clone();
        let lease = self.inner.leases.acquire(host, "bench").await?;
        let clock = Arc::clone(&self.inner.clock);
        let result = bench::run(&client, &lease, model, grid, || utc_now(&*clock), progress).await;
        let release = lease.release().await;
        let run = result?;
        self.inner.store.save_run(&run).await?;
        if let Some(gen_tps) = run.gen_tps() {
            self.inner.state.apply(Fact::Bench { host: host.to_owned(), model: model.to_owned(), gen_tps });
        }
        if let Err(e) = release {
            tracing::warn!(host = %host, error = %e, "fleet: could not release the bench lease; it will expire");
        }
        Ok(run)
    }

    /// The leaderboard of stored bench runs.
    ///
    /// # Errors
    /// [`FleetError::Store`].
    pub async fn leaderboard(&self) -> Result<Vec<LeaderRow>, FleetError> {
        Ok(bench::leaderboard(&self.inner.store.runs(None, None, 10_000).await?))
    }

    /// The newest stored activity, of one host or all.
    ///
    /// # Errors
    /// [`FleetError::Store`].
    pub async fn activity(&self, host: Option<&str>, limit: u32) -> Result<Vec<ActivityRecord>, FleetError> {
        Ok(self.inner.store.recent_activity(host, limit).await?)
    }

    /// The newest audited actions.
    ///
    /// # Errors
    /// [`FleetError::Store`].
    pub async fn actions_log(&self, host: Option<&str>, limit: u32) -> Result<Vec<ActionRecord>, FleetError> {
        Ok(self.inner.store.actions(host, limit).await?)
    }

    /// Runs one retention pass now.
    ///
    /// # Errors
    /// [`FleetError::Store`].
    pub async fn retain(&self) -> Result<retention::RetentionReport, FleetError> {
        Ok(retention::run_once(&self.inner.store, &self.inner.config.retention, utc_now(&*self.inner.clock))
            .await?)
    }

    /// The `auto:*` models of the configuration, deciding on this fleet's board (the fleet
    /// should be started), failing over through chains that share `health`.
    pub fn auto_models(&self, health: &HealthTracker, options: &ChainOptions) -> Vec<Arc<AutoModel>> {
        let source: Arc<dyn BoardSource> = Arc::new(Arc::clone(self.board()));
        auto_models(&self.inner.config, source, health, options)
    }

    /// Registers every `auto:NAME` of the configuration in `registry` (sharing its health).
    ///
    /// # Errors
    /// [`ConfigError::BadName`] for a name the registry refuses.
    pub fn register_auto(&self, registry: &Registry, options: &ChainOptions) -> Result<(), ConfigError> {
        for model in self.auto_models(registry.health(), options) {
            let name = model.model_id().to_owned();
            registry.add_virtual(&name, model)?;
        }
        Ok(())
    }
}

/// The providers hosts are reached through in `auto:*` chains: llama-swap clients named
/// after the hosts.
fn host_provider(config: &FleetConfig, host: &str) -> Option<LlamaSwap> {
    let spec = config.host(host)?;
    Some(LlamaSwap::new(ProviderConfig {
        name: spec.name.clone(),
        base_url: spec.base_url.clone(),
        api_key: spec.key.clone(),
        http: HttpOptions::default(),
        media: None,
    }))
}

/// The `auto:*` models of `config`, deciding on `source`.
pub fn auto_models(
    config: &FleetConfig,
    source: Arc<dyn BoardSource>,
    health: &HealthTracker,
    options: &ChainOptions,
) -> Vec<Arc<AutoModel>> {
    let providers: HashMap<&str, LlamaSwap> = config
        .hosts
        .iter()
        .filter_map(|h| Some((h.name.as_str(), host_provider(config, &h.name)?)))
        .collect();
    config
        .autos
        .iter()
        .map(|auto| {
            let candidates: Vec<(crate::config::Candidate, Arc<dyn Model>)> = auto
                .candidates
                .iter()
                .filter_map(|c| Some((c.clone(), providers.get(c.host.as_str())?.model(&c.model))))
                .collect();
            Arc::new(AutoModel::new(
                &auto.name,
                candidates,
                Arc::clone(&source),
                health.clone(),
                options.clone(),
            ))
        })
        .collect()
}

/// A fleet started on first use: what a one-shot host program (the CLI's `run`) registers
/// so that `auto:*` works without a fleet running beforehand. The first routing decision
/// builds the fleet, starts it, and waits up to `settle` for the hosts' first snapshots.
pub struct LazyFleet {
    cell: tokio::sync::OnceCell<Fleet>,
    make: Box<dyn Fn() -> futures::future::BoxFuture<'static, Result<Fleet, FleetError>> + Send + Sync>,
    settle: Duration,
}

impl std::fmt::Debug for LazyFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyFleet").field("started", &self.cell.initialized()).finish_non_exhaustive()
    }
}

impl LazyFleet {
    /// A fleet `make` builds on first use.
    pub fn new(
        make: impl Fn() -> futures::future::BoxFuture<'static, Result<Fleet, FleetError>> + Send + Sync + 'static,
        settle: Duration,
    ) -> Arc<Self> {
        Arc::new(Self { cell: tokio::sync::OnceCell::new(), make: Box::new(make), settle })
    }

    /// The fleet, built and started on the first call.
    ///
    /// # Errors
    /// What building it failed with.
    pub async fn get(&self) -> Result<&Fleet, FleetError> {
        self.cell
            .get_or_try_init(|| async {
                let fleet = (self.make)().await?;
                fleet.start();
                fleet.settle(self.settle).await?;
                Ok(fleet)
            })
            .await
    }

    /// Registers every `auto:NAME` of `config` in `registry`; they start this fleet on their
    /// first request.
    ///
    /// # Errors
    /// [`ConfigError::BadName`] for a name the registry refuses.
    pub fn register_auto(
        self: &Arc<Self>,
        config: &FleetConfig,
        registry: &Registry,
        options: &ChainOptions,
    ) -> Result<(), ConfigError> {
        let source: Arc<dyn BoardSource> = Arc::new(LazySource(Arc::clone(self)));
        for model in auto_models(config, source, registry.health(), options) {
            let name = model.model_id().to_owned();
            registry.add_virtual(&name, model)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct LazySource(Arc<LazyFleet>);

#[async_trait::async_trait]
impl BoardSource for LazySource {
    async fn board(&self) -> Result<Arc<RoutingBoard>, String> {
        self.0.get().await.map(|f| Arc::clone(f.board())).map_err(|e| e.to_string())
    }
}

/// Keeps the state's view of leases current, including leases other processes hold on the
/// shared store.
async fn lease_poller(hosts: Vec<String>, leases: Leases, state: StateHandle, sleeper: Arc<dyn Sleeper>) {
    let every = (leases.ttl() / 3).max(Duration::from_millis(100));
    loop {
        for host in &hosts {
            match leases.current(host).await {
                Ok(current) => {
                    state.apply(Fact::Lease { host: host.clone(), lease: current.as_ref().map(lease::view) })
                }
                Err(e) => tracing::debug!(host = %host, error = %e, "fleet: lease poll failed"),
            }
        }
        sleeper.sleep(every).await;
    }
}

async fn retention_loop(
    store: Arc<dyn FleetStore>,
    policy: crate::config::Retention,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
) {
    loop {
        match retention::run_once(&store, &policy, utc_now(&*clock)).await {
            Ok(report) => tracing::debug!(?report, "fleet: retention pass"),
            Err(e) => tracing::warn!(error = %e, "fleet: retention pass failed"),
        }
        sleeper.sleep(policy.interval).await;
    }
}
