//! `auto:*` routing: virtual models (`[fleet.auto.NAME] candidates = ["host/model", ...]`)
//! that pick, per request, where to send it from what the fleet is doing.
//!
//! Policy, in order:
//! 1. **skip** candidates whose host is down (circuit open), leased (a bench holds it) or
//!    unknown;
//! 2. prefer hosts whose events stream is `connected` over `reconnecting` ones;
//! 3. prefer a host where the model is already loaded (`ready`, then `starting`): a swap
//!    costs seconds to minutes;
//! 4. then the fewest requests in flight on the host;
//! 5. then the best measured generation tokens/s (the newest bench median, else live
//!    traffic's moving average); unmeasured last;
//! 6. then configuration order.
//!
//! The ranked candidates become a failover [`Chain`] (sharing the registry's health
//! tracker), so a candidate that fails — e.g. its model is stopped mid-run — hands the
//! request to the next one exactly as any chain does, and the response names the host that
//! answered (`Response::provider` is the host's name).
//!
//! Deciding reads the [`RoutingBoard`] the state actor publishes after every change: a read
//! lock, an `Arc` clone and a few hash lookups per candidate, no message to the actor.
//!
//! What it does not do: it does not queue when every candidate is skipped — the request
//! fails at once with an error listing why each was skipped, and a chain around `auto:NAME`
//! moves on.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use executus_llm::{
    Chain, ChainOptions, Error as LlmError, ErrorKind, EventStream, HealthTracker, Model, Request, Response,
};

use crate::config::Candidate;
use crate::connector::Liveness;
use crate::state::{FleetState, HostView};
use crate::wire::ModelState;

/// What routing needs to know about one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRoute {
    /// Liveness.
    pub liveness: Liveness,
    /// Since when.
    pub since: DateTime<Utc>,
    /// A lease is held on it.
    pub leased: bool,
    /// Requests in flight.
    pub in_flight: u64,
    /// Model states.
    pub models: HashMap<String, ModelState>,
    /// Best measured generation tokens/s by model.
    pub speeds: HashMap<String, f64>,
}

impl HostRoute {
    /// The routing facts of a host's view.
    pub fn of(view: &HostView) -> Self {
        Self {
            liveness: view.liveness,
            since: view.since,
            leased: view.lease.is_some(),
            in_flight: view.in_flight,
            models: view.models.iter().map(|m| (m.id.clone(), m.state.clone())).collect(),
            speeds: view.speeds.iter().filter_map(|(m, s)| s.best().map(|v| (m.clone(), v))).collect(),
        }
    }
}

/// Every host's routing facts, as of one moment.
#[derive(Debug, Clone, Default)]
pub struct RoutingView {
    hosts: HashMap<String, Arc<HostRoute>>,
}

impl RoutingView {
    /// A view of these hosts (benchmarks and tests build views directly).
    pub fn from_hosts(hosts: impl IntoIterator<Item = (String, HostRoute)>) -> Self {
        Self { hosts: hosts.into_iter().map(|(k, v)| (k, Arc::new(v))).collect() }
    }

    /// The routing facts of `host`.
    pub fn host(&self, host: &str) -> Option<&HostRoute> {
        self.hosts.get(host).map(|h| &**h)
    }
}

/// Where the state actor publishes the [`RoutingView`] after every change.
#[derive(Debug, Default)]
pub struct RoutingBoard {
    view: RwLock<Arc<RoutingView>>,
}

impl RoutingBoard {
    /// A board showing `state`.
    pub fn new(state: &FleetState) -> Self {
        let hosts = state.hosts().map(|h| (h.name.clone(), Arc::new(HostRoute::of(h)))).collect();
        Self { view: RwLock::new(Arc::new(RoutingView { hosts })) }
    }

    /// The current view.
    pub fn view(&self) -> Arc<RoutingView> {
        Arc::clone(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces one host's facts.
    pub fn publish_host(&self, host: &HostView) {
        let route = HostRoute::of(host);
        let mut guard = self.view.write().unwrap_or_else(PoisonError::into_inner);
        if guard.host(&host.name) == Some(&route) {
            return;
        }
        let mut hosts = guard.hosts.clone();
        hosts.insert(host.name.clone(), Arc::new(route));
        *guard = Arc::new(RoutingView { hosts });
    }
}

/// Why a candidate was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipWhy {
    /// No such host in the fleet.
    UnknownHost,
    /// The host is down (circuit open).
    Down,
    /// The host is leased.
    Leased,
}

impl SkipWhy {
    fn as_str(self) -> &'static str {
        match self {
            Self::UnknownHost => "unknown host",
            Self::Down => "host down",
            Self::Leased => "host leased",
        }
    }
}

/// A routing decision: candidate indices in the order to try, and the skipped ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Indices into the candidate list, best first.
    pub order: Vec<usize>,
    /// Skipped candidates and why.
    pub skipped: Vec<(usize, SkipWhy)>,
}

/// Ranks `candidates` on `view` (see the module docs for the policy).
pub fn decide(view: &RoutingView, candidates: &[Candidate]) -> Decision {
    let mut ranked: Vec<(u8, u8, u64, f64, usize)> = Vec::with_capacity(candidates.len());
    let mut skipped = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let Some(host) = view.host(&c.host) else {
            skipped.push((i, SkipWhy::UnknownHost));
            continue;
        };
        if host.liveness == Liveness::Down {
            skipped.push((i, SkipWhy::Down));
            continue;
        }
        if host.leased {
            skipped.push((i, SkipWhy::Leased));
            continue;
        }
        let live = u8::from(host.liveness != Liveness::Connected);
        let loaded = match host.models.get(&c.model) {
            Some(ModelState::Ready) => 0,
            Some(ModelState::Starting) => 1,
            _ => 2,
        };
        // Unmeasured sorts after every measured speed.
        let speed = host.speeds.get(&c.model).copied().filter(|s| s.is_finite()).unwrap_or(-1.0);
        ranked.push((live, loaded, host.in_flight, speed, i));
    }
    ranked
        .sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)).then(b.3.total_cmp(&a.3)).then(a.4.cmp(&b.4)));
    Decision { order: ranked.into_iter().map(|r| r.4).collect(), skipped }
}

/// What an [`AutoModel`] reads the fleet through (a started fleet, or one started lazily on
/// the first request).
#[async_trait]
pub trait BoardSource: Send + Sync + std::fmt::Debug {
    /// The board to decide on; may start the fleet and wait briefly for its first snapshot.
    ///
    /// # Errors
    /// Why the fleet could not be started, as text.
    async fn board(&self) -> Result<Arc<RoutingBoard>, String>;
}

#[async_trait]
impl BoardSource for Arc<RoutingBoard> {
    async fn board(&self) -> Result<Arc<RoutingBoard>, String> {
        Ok(Arc::clone(self))
    }
}

/// The virtual model `auto:NAME`.
#[derive(Debug, Clone)]
pub struct AutoModel {
    id: String,
    candidates: Vec<Candidate>,
    models: Vec<Arc<dyn Model>>,
    source: Arc<dyn BoardSource>,
    health: HealthTracker,
    options: ChainOptions,
}

/// The provider name `auto:*` models report.
pub const AUTO_PROVIDER: &str = "fleet";

impl AutoModel {
    /// `auto:{name}` over `candidates`, each served by its model in `models` (same order:
    /// the host's provider model), deciding on `source`'s board, failing over through a chain
    /// sharing `health`.
    pub fn new(
        name: &str,
        candidates: Vec<(Candidate, Arc<dyn Model>)>,
        source: Arc<dyn BoardSource>,
        health: HealthTracker,
        options: ChainOptions,
    ) -> Self {
        let (candidates, models) = candidates.into_iter().unzip();
        Self { id: format!("auto:{name}"), candidates, models, source, health, options }
    }

    /// The candidates, in configuration order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The chain this request would go through now.
    ///
    /// # Errors
    /// [`ErrorKind::Exhausted`] when every candidate is skipped, listing why;
    /// [`ErrorKind::Transient`] when the fleet could not be read.
    pub async fn route(&self) -> Result<Chain, LlmError> {
        let board =
            self.source.board().await.map_err(|e| {
                LlmError::transient(AUTO_PROVIDER, &self.id, format!("fleet unavailable: {e}"))
            })?;
        let decision = decide(&board.view(), &self.candidates);
        if decision.order.is_empty() {
            let mut error = LlmError::new(
                ErrorKind::Exhausted,
                AUTO_PROVIDER,
                &self.id,
                "no candidate host can take the request now",
            );
            error.skipped = decision
                .skipped
                .iter()
                .map(|(i, why)| format!("{} ({})", self.candidates[*i], why.as_str()))
                .collect();
            return Err(error);
        }
        let targets = decision.order.iter().map(|i| Arc::clone(&self.models[*i]));
        Ok(Chain::new(self.id.clone(), targets, self.health.clone()).with_options(self.options.clone()))
    }
}

#[async_trait]
impl Model for AutoModel {
    fn provider(&self) -> &str {
        AUTO_PROVIDER
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    async fn generate(&self, request: Request) -> executus_llm::Result<Response> {
        self.route().await?.generate(request).await
    }

    async fn stream(&self, request: Request) -> executus_llm::Result<EventStream> {
        self.route().await?.stream(request).await
    }

    async fn generate_ref(&self, request: &Request) -> executus_llm::Result<Response> {
        self.route().await?.generate_ref(request).await
    }

    async fn stream_ref(&self, request: &Request) -> executus_llm::Result<EventStream> {
        self.route().await?.stream_ref(request).await
    }
}

#[cfg(test)]
mod tests;
