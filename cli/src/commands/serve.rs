//! `serve [--listen ADDR]`: the guardrail gateway (`executus-gateway`) as an OpenAI- and
//! Anthropic-compatible endpoint for coding agents, wired from the configuration file:
//!
//! - `[serve]` (listen, profile, limits, `[serve.loops]`, `[serve.keys.NAME]`), validated here
//!   with errors naming the key; `--listen` overrides `[serve] listen`;
//! - the registry's providers and tiers, the configured agents (`agent:NAME`), `[policy]`;
//! - the store: session guard state in `[store] url` (SQLite), so a restart keeps every
//!   session's loop protection and hard-cap count;
//! - per-key budgets through the budget battery (`[serve.keys.NAME] budget`, USD over the
//!   `[budget]` window and prices; the key's identity is user `key:NAME`, tenant `gateway`),
//!   and per-key rates counted in the budget battery's store;
//! - audit (`[audit] enabled`): every policy decision and loop trigger;
//! - `[runtime] mode = "queue"` (a PostgreSQL store): `agent:NAME` runs are not driven here
//!   but enqueued for `executus-run worker` processes; serve waits for each run's outcome and
//!   answers the client with it (a streamed answer carries the final text once the run
//!   ended). Plain model requests (tiers, `provider/model`) are proxied here as always. At
//!   a stop, a client still waiting for a queued run is disconnected after the grace; the run
//!   goes on in the workers.
//!
//! It refuses a non-loopback address without keys (exit 2), prints one line
//! `executus-run serve: listening on http://ADDR` on stderr once it accepts, and on SIGINT or
//! SIGTERM stops accepting; open streams get `[runtime] shutdown_grace`, then end with their
//! dialect's error event. Exit code 0 after a graceful stop.
//!
//! The fleet's `auto:NAME` models are served (and listed at `/v1/models`) like any model.
//! With `[fleet.hosts.*]` configured, the fleet's views (`/fleet`, `/api/fleet/*`,
//! `executus_fleet::web::router`) are served next to the gateway's routes: with keys, a key
//! needs `[serve.keys.NAME] fleet = "view"` (or `"act"` to load and unload models) and
//! anything else gets 401/403; without keys (loopback only) every loopback peer may act.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use clap::Args;
use executus::ports::Budget;
use executus_budget::{
    BudgetStore, Money, ReserveOutcome, ReserveRequest, ScopeLimit, SettleRequest, SpendBudget,
};
use executus_fleet::Fleet;
use executus_fleet::web::{Access, FleetAuthorizer, Grant, Permission};
use executus_gateway::keys::KeyRing;
use executus_gateway::rate::{RateLimited, RateLimiter, WINDOW};
use executus_gateway::{FleetAccess, Gateway, ServeConfig};
use executus_llm::{ProviderKind, ProviderSpec};

use crate::config::{CliConfig, RawProvider};
use crate::host::{Host, HostOptions};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `[serve] listen`; default 127.0.0.1:8787).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// The identity a key's requests carry (budgets, audit rows).
pub fn key_user(key: &str) -> String {
    format!("key:{key}")
}

/// Runs the gateway until SIGINT or SIGTERM.
///
/// # Errors
/// Configuration errors and an unsafe bind (exit 2); a port already taken, store failures
/// (exit 1).
pub async fn serve(config: &CliConfig, args: ServeArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let source = |key: &str| executus::config::source_of(&config.figment, key);
    let mut serve: ServeConfig =
        config.host.serve.clone().validate(&source, &|var| std::env::var(var).ok())?;
    if let Some(listen) = &args.listen {
        serve.listen = executus_gateway::config::parse_listen(listen)
            .map_err(|e| UsageError(format!("--listen: {e}")))?;
    }
    serve.shutdown_grace = config.runtime.shutdown_grace;
    executus_gateway::check_bind(serve.listen, serve.keys.len()).map_err(|e| UsageError(e.to_string()))?;

    // In `[runtime] mode = "queue"` the `agent:NAME` runs go to the workers' queue.
    let queued = config.runtime.mode == executus::config::RunMode::Queue;
    let host = Host::build(config, HostOptions { queue: queued, ..HostOptions::default() }).await?;
    let budget = key_budget(config, &serve, &host)?;
    let rate = Arc::new(StoreRate { store: host.stores.budget.clone() });
    let grace = serve.shutdown_grace;
    let shutdown = interrupt.token().clone();
    let mut builder = Gateway::builder(serve, config.registry.clone())
        .runtime(host.runtime.clone())
        .policy(config.host.policy.clone())
        .store(host.stores.sessions.clone())
        .rate_limiter(rate)
        .speculative_providers(llama_providers(config))
        .extra_models(config.fleet.autos.iter().map(|auto| format!("auto:{}", auto.name)))
        .shutdown(shutdown.clone());
    if let Some(budget) = budget {
        builder = builder.budget(budget);
    }
    if let Some(audit) = &host.audit {
        builder = builder.audit(audit.clone());
    }
    let gateway = builder.build().await.map_err(|e| UsageError(e.to_string()))?;
    let addr = gateway.config().listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} ([serve] listen)"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let fleet = if config.fleet.hosts.is_empty() {
        None
    } else {
        Some(crate::commands::fleet::open_fleet(config, true).await?)
    };
    let router = router(&gateway, fleet.clone());
    eprintln!("executus-run serve: listening on http://{bound}");
    tracing::info!(target: "executus_gateway", addr = %bound, keys = gateway.config().keys.len(), "serving");
    executus_gateway::serve(listener, router, gateway.config(), shutdown)
        .await
        .map_err(|e| UsageError(e.to_string()))?;
    if let Some(which) = interrupt.which() {
        eprintln!(
            "executus-run serve: {which}: stopped accepting; open streams got {}",
            humantime::format_duration(grace)
        );
    }
    if let Some(fleet) = &fleet {
        fleet.stop();
    }
    gateway.close(Duration::from_millis(100)).await;
    host.close(grace).await;
    Ok(Exit::Ok)
}

/// Every route `serve` answers: the gateway's, and the fleet's views when a fleet is
/// configured. `check_bind` has already refused a non-loopback address without keys, so
/// [`Access::LoopbackNoKeys`] is only ever chosen on loopback.
fn router(gateway: &Gateway, fleet: Option<Fleet>) -> executus_gateway::Router {
    let routes = gateway.router();
    let Some(fleet) = fleet else { return routes };
    let config = gateway.config();
    let access = if config.keys.is_empty() && config.listen.ip().is_loopback() {
        Access::LoopbackNoKeys
    } else {
        Access::Keys(Arc::new(GatewayKeys(KeyRing::new(config.keys.clone()))))
    };
    routes.merge(executus_fleet::web::router(fleet, access))
}

/// The fleet's views authorised by the gateway's keys: the key (a header, or the cookie the
/// fleet's login form sets) is checked like the gateway checks it (SHA-256, constant time);
/// its `fleet` setting says what it may do.
struct GatewayKeys(KeyRing);

impl FleetAuthorizer for GatewayKeys {
    fn authorize(&self, headers: &http::HeaderMap) -> Grant {
        let Some(key) = executus_fleet::web::credential(headers).and_then(|k| self.0.find(k)) else {
            return Grant::none();
        };
        let permission = match key.fleet {
            Some(FleetAccess::Act) => Permission::Act,
            Some(FleetAccess::View) => Permission::View,
            _ => Permission::None,
        };
        Grant { permission, who: key.name.clone() }
    }
}

/// Providers that are llama.cpp-style OpenAI-compatible servers (for
/// `speculative_off_on_tool_turns`): `[providers.NAME] kind = "openai" | "llama-swap"` and
/// `EXECUTUS_LLM_NAME=openai://...` / `llama-swap://...`.
fn llama_providers(config: &CliConfig) -> BTreeSet<String> {
    let raw: BTreeMap<String, RawProvider> = config.figment.extract_inner("providers").unwrap_or_default();
    let mut names: BTreeSet<String> = raw
        .into_iter()
        .filter(|(_, p)| p.kind == "openai" || p.kind == "llama-swap")
        .map(|(n, _)| n)
        .collect();
    for spec in ProviderSpec::from_env().unwrap_or_default() {
        if matches!(spec.kind, ProviderKind::OpenAi | ProviderKind::LlamaSwap) {
            names.insert(spec.name);
        }
    }
    names
}

/// The budget keys spend against: `[budget]` with each key's `budget` as the cap of user
/// `key:NAME`, over the host's budget store (the same spend the runtime's runs record).
fn key_budget(
    config: &CliConfig,
    serve: &ServeConfig,
    host: &Host,
) -> anyhow::Result<Option<Arc<dyn Budget>>> {
    let capped: Vec<(&str, f64)> =
        serve.keys.iter().filter_map(|k| k.budget.map(|b| (k.name.as_str(), b))).collect();
    let Some(settings) = &config.host.budget else {
        if let Some((name, _)) = capped.first() {
            let key = format!("serve.keys.{name}.budget");
            return Err(UsageError(format!(
                "invalid configuration value for {key} (from {}): a key budget needs a [budget] section \
                 (prices and window)",
                executus::config::source_of(&config.figment, &key)
            ))
            .into());
        }
        return Ok(None);
    };
    let mut settings = settings.clone();
    for (name, usd) in capped {
        settings.caps.users.insert(key_user(name), Some(Money::usd(usd)));
    }
    Ok(Some(Arc::new(SpendBudget::new(settings, host.stores.budget.clone()))))
}

/// Requests per minute per key, counted in the budget battery's store as spend of one unit in
/// scope `rate:NAME` over a one-minute window (atomic, and shared by every process on the
/// store). `Retry-After` is an estimate: the time one request's share of the minute takes.
struct StoreRate {
    store: Arc<dyn BudgetStore>,
}

#[async_trait]
impl RateLimiter for StoreRate {
    async fn admit(&self, key: &str, limit: u32, now_ms: u64) -> Result<(), RateLimited> {
        let window = WINDOW.as_millis() as u64;
        let scope = format!("rate:{key}");
        let estimate = Duration::from_secs((60 / u64::from(limit.max(1))).max(1));
        let refused = || RateLimited { key: key.to_owned(), limit, retry_after: estimate };
        let request = ReserveRequest {
            scopes: vec![ScopeLimit {
                scope: scope.clone(),
                limit: Some(Money::from_nanos(u64::from(limit))),
            }],
            amount: Money::from_nanos(1),
            now_ms,
            window_start_ms: now_ms.saturating_sub(window),
            expires_ms: now_ms + window,
        };
        match self.store.try_reserve(&request).await {
            Ok(ReserveOutcome::Granted { reservation_id }) => {
                let settle = SettleRequest {
                    reservation_id,
                    scopes: vec![scope],
                    actual: Money::from_nanos(1),
                    now_ms,
                };
                if let Err(error) = self.store.settle(&settle).await {
                    // The reservation still counts until it expires (one window).
                    tracing::warn!(target: "executus_gateway", key, %error, "rate: recording a request failed");
                }
                Ok(())
            }
            Ok(ReserveOutcome::Denied(_)) => Err(refused()),
            Err(error) => {
                tracing::error!(target: "executus_gateway", key, %error, "rate: the store failed; refusing (fail closed)");
                Err(refused())
            }
        }
    }
}
