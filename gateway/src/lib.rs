//! # executus-gateway
//!
//! An OpenAI- and Anthropic-compatible endpoint that puts any coding agent behind executus:
//! point the agent's base URL at it and every request goes through a failover chain and the
//! guardrails. `executus-run serve` wires it from the configuration file; any host can embed
//! it ([`Gateway::builder`], [`Gateway::router`], [`serve`]).
//!
//! Endpoints: `POST /v1/chat/completions` (OpenAI Chat Completions), `POST /v1/responses`
//! (the OpenAI Responses API, `store: false`), `POST /v1/messages` (Anthropic Messages),
//! `GET /v1/models`, `GET /healthz`, `GET /metrics` (Prometheus text). Any client dialect
//! reaches any upstream kind: requests are decoded into executus-llm's canonical types once
//! and encoded for the upstream once ([`executus_llm::server`]).
//!
//! What a request goes through, in order:
//! 1. **key** ([`keys`]): `Authorization: Bearer` or `x-api-key`, hashed and compared in
//!    constant time; 401 without a valid one (no keys configured: open, loopback only);
//! 2. **limits**: body size (413), the key's model allow-list (403), its rate (429 +
//!    `Retry-After`);
//! 3. **model**: the registry's grammar (a tier, `provider/model`, a chain), or `agent:NAME`
//!    to run a configured executus agent server-side; unknown: 404 in the client's dialect;
//! 4. **session** ([`session`]) and its **guard** ([`guard`]): the core's loop protection
//!    over the session's requests, kept in a [`store::SessionStore`]; a trigger turns the
//!    request into a finalize turn (tools removed, wrap-up instruction) or, past the limits,
//!    answers it with a tool-free end of turn;
//! 5. **budget** (the core's `Budget` port; a key's identity is user `key:NAME`, tenant
//!    `gateway`) — a request that would overspend is
//!    refused with 429 before anything is spent (with the default budget, which neither
//!    limits nor counts, nothing is reserved);
//! 6. **admission** through the core's lanes: one shared lane (fair round-robin across keys)
//!    and a lane per key with a `concurrency`; a full queue is 429 + `Retry-After`. A whole
//!    (non-streamed) answer runs on the connection's own task while slots are free, so a
//!    client that goes away frees its slot and stops the upstream call; with a budget that
//!    reserves, and for streams, the turn runs on a task of its own to its end;
//! 7. **upstream**, streamed for real: text deltas reach the client as they come; a tool call
//!    is held until complete so the **policy** ([`executus::tool::policy`]) sees it first
//!    (allow, rewrite, block — a block becomes a tool-free explanation, never a broken
//!    stream); a completion gate may continue a turn the model ended. Failover before the
//!    first byte is invisible; a stream that breaks before anything reached the client is
//!    re-issued once without the target that broke; otherwise it ends with the dialect's own
//!    error event.
//!
//! Every answer carries `x-executus-session`, `x-executus-served-by` (the `provider/model`
//! that answered) and `x-executus-applied-policies`. Every request log line carries `sess=`;
//! what clients say about their machine (`metadata`, `x-codex-turn-metadata`) is masked.
//!
//! What it does not do: TLS (put it behind a proxy for that), store responses
//! (`previous_response_id`), embeddings, audio, or images by URL.

pub mod config;
pub mod guard;
pub mod keys;
pub mod metrics;
pub mod rate;
pub mod session;
pub mod store;

mod handler;
mod models;
mod review;
mod serve;
mod turn;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use executus::Runtime;
use executus::lane::{LaneConfig, LaneError, LaneHandle};
use executus::ports::{AuditSink, Budget, NoAudit, Unlimited};
use executus::tool::policy::Policy;
use executus_llm::Registry;
use tokio_util::sync::CancellationToken;

pub use crate::config::{FleetAccess, KeyConfig, LoopSettings, RawServe, ServeConfig};
pub use crate::metrics::Metrics;
pub use crate::serve::serve;
/// The router type [`Gateway::router`] returns (axum's), for hosts that merge routes into it.
pub use axum::Router;

/// Why the gateway could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A non-loopback address without keys would make the gateway an open relay.
    #[error(
        "refusing to listen on {addr}: it is not a loopback address and no keys are configured \
         ([serve] listen / --listen); add [serve.keys.NAME] entries or listen on 127.0.0.1"
    )]
    OpenRelay {
        /// The address.
        addr: SocketAddr,
    },
    /// A profile named in the configuration does not exist.
    #[error("{key}: unknown policy profile {profile:?} (profiles: {known})")]
    UnknownProfile {
        /// The configuration key naming it.
        key: String,
        /// The profile.
        profile: String,
        /// The profiles that exist.
        known: String,
    },
    /// A lane could not start.
    #[error("could not start the gateway's lanes: {0}")]
    Lane(String),
    /// Binding or accepting failed.
    #[error("{0}")]
    Io(String),
}

/// Refuses a non-loopback `addr` when no keys are configured.
///
/// # Errors
/// [`GatewayError::OpenRelay`].
pub fn check_bind(addr: SocketAddr, keys: usize) -> Result<(), GatewayError> {
    if keys == 0 && !addr.ip().is_loopback() {
        return Err(GatewayError::OpenRelay { addr });
    }
    Ok(())
}

/// Sessions kept in memory between requests, at most.
const SESSION_CACHE: usize = 10_000;

/// Locks that serialise a session's requests, shared by hash: a fixed set (no lock made and
/// dropped per request, no map that grows with the sessions seen).
const SESSION_LOCKS: usize = 256;

/// Everything a request handler needs, shared.
pub(crate) struct Shared {
    pub(crate) config: ServeConfig,
    pub(crate) registry: Registry,
    pub(crate) runtime: Option<Runtime>,
    pub(crate) policy: Policy,
    pub(crate) keys: keys::KeyRing,
    pub(crate) store: Arc<dyn store::SessionStore>,
    pub(crate) budget: Arc<dyn Budget>,
    pub(crate) rate: Arc<dyn rate::RateLimiter>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) metrics: Metrics,
    pub(crate) lane: LaneHandle,
    pub(crate) key_lanes: HashMap<String, LaneHandle>,
    /// [`SESSION_LOCKS`] locks; a session takes the one its key hashes to.
    pub(crate) session_locks: Box<[tokio::sync::Mutex<()>]>,
    pub(crate) session_hasher: std::hash::RandomState,
    /// The sessions this process has seen, as last saved (write-through: the store stays the
    /// truth across restarts; a session's requests are serialised in this process).
    pub(crate) session_cache: DashMap<String, guard::SessionState>,
    pub(crate) speculative_providers: BTreeSet<String>,
    pub(crate) extra_models: Vec<String>,
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    /// Loads the session's state, lets `f` change it, and saves it when `f` says it changed
    /// — with the session's other requests (in this process) held off meanwhile.
    pub(crate) async fn with_session<T>(
        &self,
        key: String,
        f: impl FnOnce(&mut guard::SessionState) -> (T, bool),
    ) -> Result<T, executus::ports::PortError> {
        let _held = self.session_lock(&key).lock().await;
        // Taken out of the cache (not copied: a busy session's state is a few KiB) while this
        // request holds the session; put back only once the store has what changed, so a
        // failed save leaves the cache without it and the next request reloads the store's
        // state.
        let (mut state, cached) = match self.session_cache.remove(&key) {
            Some((_, state)) => (state, true),
            None => (self.store.load(&key).await?.unwrap_or_default(), false),
        };
        let (out, changed) = f(&mut state);
        if changed {
            self.store.save(&key, &state, handler::now_ms()).await?;
        }
        // Only a session new to the cache can grow it (`len` visits every shard).
        if !cached && self.session_cache.len() >= SESSION_CACHE {
            // Bounded: forget everything (the store still has it) rather than grow.
            self.session_cache.clear();
        }
        self.session_cache.insert(key, state);
        Ok(out)
    }

    /// The lock that serialises `key`'s requests: one of [`SESSION_LOCKS`], by the key's hash
    /// (two sessions on one stripe wait for each other's guard step, a store write at most).
    fn session_lock(&self, key: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::BuildHasher as _;
        let stripe = self.session_hasher.hash_one(key) as usize % self.session_locks.len();
        &self.session_locks[stripe]
    }
}

/// A running gateway: cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

/// Builds a [`Gateway`]. Every port has a default: no agents, the default policy, sessions in
/// memory, no budget, rates counted in memory, audit to tracing only.
pub struct GatewayBuilder {
    config: ServeConfig,
    registry: Registry,
    runtime: Option<Runtime>,
    policy: Policy,
    store: Arc<dyn store::SessionStore>,
    budget: Arc<dyn Budget>,
    rate: Arc<dyn rate::RateLimiter>,
    audit: Arc<dyn AuditSink>,
    speculative_providers: BTreeSet<String>,
    extra_models: Vec<String>,
    shutdown: CancellationToken,
}

impl GatewayBuilder {
    /// The runtime that runs `agent:NAME` models (and whose agents are listed).
    #[must_use]
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The policy (profiles, rules, gates).
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Where session guard state lives.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn store::SessionStore>) -> Self {
        self.store = store;
        self
    }

    /// The budget keys spend against (identity: user `key:NAME`, tenant `gateway`).
    #[must_use]
    pub fn budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.budget = budget;
        self
    }

    /// How keys' rates are counted.
    #[must_use]
    pub fn rate_limiter(mut self, rate: Arc<dyn rate::RateLimiter>) -> Self {
        self.rate = rate;
        self
    }

    /// Where policy decisions and loop triggers are audited.
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// Providers that are llama.cpp servers (OpenAI-compatible or llama-swap): with
    /// `speculative_off_on_tool_turns`, requests with tools whose chain holds only these get
    /// `"speculative.n_max": 0`.
    #[must_use]
    pub fn speculative_providers(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.speculative_providers = names.into_iter().collect();
        self
    }

    /// More model names to list at `/v1/models` (virtual models such as `auto:*`).
    #[must_use]
    pub fn extra_models(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.extra_models = names.into_iter().collect();
        self
    }

    /// The token that starts a graceful shutdown (see [`serve`]).
    #[must_use]
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Starts the gateway's lanes and checks that every profile it names exists.
    ///
    /// # Errors
    /// [`GatewayError::UnknownProfile`], [`GatewayError::Lane`].
    pub async fn build(self) -> Result<Gateway, GatewayError> {
        let known = || self.policy.profile_names().collect::<Vec<_>>().join(", ");
        let mut named: Vec<(String, &str)> = Vec::new();
        if let Some(p) = &self.config.profile {
            named.push(("serve.profile".into(), p));
        }
        for key in &self.config.keys {
            if let Some(p) = &key.profile {
                named.push((format!("serve.keys.{}.profile", key.name), p));
            }
        }
        for (key, profile) in named {
            if !self.policy.has_profile(profile) {
                return Err(GatewayError::UnknownProfile {
                    key,
                    profile: profile.to_owned(),
                    known: known(),
                });
            }
        }
        let lane_error = |e: LaneError| GatewayError::Lane(e.to_string());
        let lane =
            LaneHandle::spawn(LaneConfig::new("gateway", self.config.concurrency, self.config.max_queue))
                .await
                .map_err(lane_error)?;
        let mut key_lanes = HashMap::new();
        for key in &self.config.keys {
            if let Some(concurrency) = key.concurrency {
                let config =
                    LaneConfig::new(format!("gateway:{}", key.name), concurrency, self.config.max_queue);
                key_lanes.insert(key.name.clone(), LaneHandle::spawn(config).await.map_err(lane_error)?);
            }
        }
        let keys = keys::KeyRing::new(self.config.keys.clone());
        Ok(Gateway {
            shared: Arc::new(Shared {
                config: self.config,
                registry: self.registry,
                runtime: self.runtime,
                policy: self.policy,
                keys,
                store: self.store,
                budget: self.budget,
                rate: self.rate,
                audit: self.audit,
                metrics: Metrics::new(),
                lane,
                key_lanes,
                session_locks: (0..SESSION_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
                session_hasher: std::hash::RandomState::new(),
                session_cache: DashMap::new(),
                speculative_providers: self.speculative_providers,
                extra_models: self.extra_models,
                shutdown: self.shutdown,
            }),
        })
    }
}

impl Gateway {
    /// A builder over `config`, answering with the models of `registry`.
    pub fn builder(config: ServeConfig, registry: Registry) -> GatewayBuilder {
        GatewayBuilder {
            config,
            registry,
            runtime: None,
            policy: Policy::new(),
            store: Arc::new(store::MemorySessionStore::new()),
            budget: Arc::new(Unlimited),
            rate: Arc::new(rate::MemoryRateLimiter::new()),
            audit: Arc::new(NoAudit),
            speculative_providers: BTreeSet::new(),
            extra_models: Vec::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// The HTTP routes (see the crate docs). A host may merge its own routes into it before
    /// serving (the fleet views mount here).
    pub fn router(&self) -> Router {
        handler::router(Arc::clone(&self.shared))
    }

    /// The validated configuration.
    pub fn config(&self) -> &ServeConfig {
        &self.shared.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The shutdown token ([`serve`] stops accepting when it fires).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Stops the lanes after a graceful shutdown (running calls get `grace`).
    pub async fn close(&self, grace: Duration) {
        let _ = self.shared.lane.shutdown(grace).await;
        for lane in self.shared.key_lanes.values() {
            let _ = lane.shutdown(grace).await;
        }
    }
}

#[cfg(test)]
mod session_lock_tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use async_trait::async_trait;
    use executus::ports::PortError;
    use executus_llm::Registry;

    use crate::guard::SessionState;
    use crate::store::{MemorySessionStore, SessionStore, StoredSession};
    use crate::{Gateway, ServeConfig};

    /// A store that yields inside every load and save, so unserialised requests would
    /// interleave between them and lose updates.
    struct Yielding(MemorySessionStore);

    #[async_trait]
    impl SessionStore for Yielding {
        async fn load(&self, key: &str) -> Result<Option<SessionState>, PortError> {
            tokio::task::yield_now().await;
            self.0.load(key).await
        }
        async fn save(&self, key: &str, state: &SessionState, now_ms: u64) -> Result<(), PortError> {
            tokio::task::yield_now().await;
            self.0.save(key, state, now_ms).await
        }
        async fn prune(&self, before_ms: u64) -> Result<u64, PortError> {
            self.0.prune(before_ms).await
        }
        async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<StoredSession>, PortError> {
            self.0.list(after, limit).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sessions_requests_are_serialised_and_no_update_is_lost() {
        let store = Arc::new(Yielding(MemorySessionStore::new()));
        let gateway = Gateway::builder(ServeConfig::default(), Registry::new())
            .store(Arc::clone(&store) as Arc<dyn SessionStore>)
            .build()
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..400u32 {
            let shared = Arc::clone(&gateway.shared);
            // Eight sessions, fifty requests each, all at once.
            let key = format!("k\u{1f}session-{}", i % 8);
            tasks.spawn(async move {
                shared
                    .with_session(key, |state| {
                        state.finalize_total += 1;
                        ((), true)
                    })
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        for s in 0..8 {
            let saved = store.0.load(&format!("k\u{1f}session-{s}")).await.unwrap().unwrap();
            assert_eq!(saved.finalize_total, 50, "session {s}");
        }
    }
}
