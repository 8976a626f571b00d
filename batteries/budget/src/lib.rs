//! # executus-budget — rolling-window spend caps for executus runs
//!
//! Implements the core's `Budget` port: before every model call the run loop reserves the
//! call's worst-case cost, after it the real cost is settled. Spend is tracked per user and
//! per tenant over a rolling window (default 7 days) and priced from a configurable table
//! (USD per million input, output, cache-read and cache-write tokens, per `provider/model`
//! with `provider/*` wildcards). A call that does not fit under a cap ends the run with
//! `RunEnd::BudgetDenied` (status `budget_denied`), transcript kept.
//!
//! - [`SpendBudget`]: the `Budget` implementation (see [`spend`] for the exact guarantees).
//! - [`BudgetSettings`] / [`BudgetConfig`]: prices, caps, window, reservation TTL, and what
//!   unknown models cost (default: refused for capped callers — the safe choice).
//! - [`BudgetStore`]: the storage trait, one atomic method per operation, shaped for SQL;
//!   [`MemoryBudgetStore`] is the in-memory default. `executus-store` implements it with
//!   SQLite.
//! - [`Money`]: exact integer nano-dollars; an [`executus::llm::Clock`] injects time.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use executus::ports::Ports;
//! use executus_budget::{BudgetSettings, Caps, Money, Price, PriceTable, SpendBudget};
//!
//! # fn demo() -> Result<(), executus_budget::BudgetConfigError> {
//! let prices = PriceTable::new()
//!     .with("openai/gpt-4o*", Price::per_million(2.5, 10.0).cache_in_input(true))?
//!     .with("ollama/*", Price::per_million(0.0, 0.0))?;
//! let caps = Caps::none().default_user(Money::usd(5.0)).default_tenant(Money::usd(100.0));
//! let budget = SpendBudget::in_memory(BudgetSettings::default().with_prices(prices).with_caps(caps));
//! let ports = Ports { budget: Arc::new(budget), ..Ports::default() };
//! # let _ = ports;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod money;
pub mod price;
pub mod spend;
pub mod store;

pub use config::{BudgetConfig, BudgetConfigError, BudgetSettings, Caps, RawCap, RawCaps, RawUnknownModel};
pub use money::Money;
pub use price::{Price, PriceTable, UnknownModel, Unpriced};
pub use spend::{Housekeeping, ScopeStatus, SpendBudget, tenant_scope, user_scope};
pub use store::{
    BudgetStore, Denial, MemoryBudgetStore, ReserveOutcome, ReserveRequest, ScopeLimit, ScopeTotals,
    SettleRequest,
};
