//! Configuration in two stages: [`BudgetConfig`] is what a host deserialises (for example
//! the `[budget]` table of `executus.toml` through figment); [`BudgetConfig::validate`]
//! turns it into [`BudgetSettings`], the only form [`crate::SpendBudget`] accepts. A bad
//! value is an error naming its key.
//!
//! ```toml
//! window = "7d"              # rolling spend window (default 7 days)
//! reservation_ttl = "10m"    # a reservation not settled by then stops holding money
//! unknown_model = "deny"     # or a price: { input = 1.0, output = 4.0 }
//!
//! [caps]
//! default_user = 5.0         # USD per window; omit or "unlimited" for no cap
//! default_tenant = 100.0
//! users = { alice = 20.0, ops = "unlimited" }
//! tenants = { acme = 500.0 }
//!
//! [prices]
//! "openai/gpt-4o" = { input = 2.5, output = 10.0, cache_read = 1.25, cache_in_input = true }
//! "openai/*" = { input = 5.0, output = 20.0, cache_in_input = true }
//! "anthropic/claude-sonnet-4*" = { input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75 }
//! "ollama/*" = { input = 0.0, output = 0.0 }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::price::{Price, PriceTable, UnknownModel};

/// A configuration value that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetConfigError {
    /// A price-table key is not `provider/model` or `provider/prefix*`.
    #[error("budget config: invalid price pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A price or cap is negative, not finite, or not a number.
    #[error("budget config: {key} = {value} is invalid: {reason}")]
    InvalidAmount {
        /// The key (`caps.users.alice`, `prices."openai/*".input`).
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A duration is zero where it must be positive.
    #[error("budget config: {key} is invalid: {reason}")]
    InvalidDuration {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A word value is not one of the accepted words.
    #[error("budget config: {key} = {value:?} is not one of {expected}")]
    UnknownWord {
        /// The key.
        key: String,
        /// The word as written.
        value: String,
        /// The accepted words.
        expected: &'static str,
    },
}

/// A cap as written: a number of USD, or the word `unlimited`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawCap {
    /// USD per window.
    Usd(f64),
    /// `unlimited`.
    Word(String),
}

/// What an unknown model costs, as written: the word `deny`, or a price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawUnknownModel {
    /// `deny`.
    Word(String),
    /// A price for every unknown model.
    Price(Price),
}

/// Caps as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaps {
    /// Cap of a user without an entry in `users`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_user: Option<RawCap>,
    /// Cap of a tenant without an entry in `tenants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_tenant: Option<RawCap>,
    /// Caps per user id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, RawCap>,
    /// Caps per tenant id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, RawCap>,
}

/// The budget configuration as deserialised; see the module docs for the format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Rolling spend window (default 7 days).
    #[serde(default, with = "executus::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// How long a reservation holds money without being settled (default 10 minutes).
    #[serde(default, with = "executus::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub reservation_ttl: Option<Duration>,
    /// What an unpriced model costs (default `deny`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_model: Option<RawUnknownModel>,
    /// Caps.
    #[serde(default)]
    pub caps: RawCaps,
    /// Prices per `provider/model` or `provider/prefix*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, Price>,
}

impl BudgetConfig {
    /// Validates into settings.
    ///
    /// # Errors
    /// A [`BudgetConfigError`] naming the first bad key.
    pub fn validate(&self) -> Result<BudgetSettings, BudgetConfigError> {
        let defaults = BudgetSettings::default();
        let window = positive("window", self.window.unwrap_or(defaults.window))?;
        let reservation_ttl =
            positive("reservation_ttl", self.reservation_ttl.unwrap_or(defaults.reservation_ttl))?;
        let unknown_model = match &self.unknown_model {
            None => UnknownModel::Deny,
            Some(RawUnknownModel::Word(w)) if w == "deny" => UnknownModel::Deny,
            Some(RawUnknownModel::Word(w)) => {
                return Err(BudgetConfigError::UnknownWord {
                    key: "unknown_model".into(),
                    value: w.clone(),
                    expected: "\"deny\" or a price table",
                });
            }
            Some(RawUnknownModel::Price(p)) => {
                p.validate("unknown_model")?;
                UnknownModel::Price(*p)
            }
        };
        let mut prices = PriceTable::new();
        for (pattern, price) in &self.prices {
            prices.insert(pattern, *price)?;
        }
        let caps = Caps {
            default_user: cap("caps.default_user", self.caps.default_user.as_ref())?,
            default_tenant: cap("caps.default_tenant", self.caps.default_tenant.as_ref())?,
            users: self
                .caps
                .users
                .iter()
                .map(|(k, v)| Ok((k.clone(), cap(&format!("caps.users.{k}"), Some(v))?)))
                .collect::<Result<_, BudgetConfigError>>()?,
            tenants: self
                .caps
                .tenants
                .iter()
                .map(|(k, v)| Ok((k.clone(), cap(&format!("caps.tenants.{k}"), Some(v))?)))
                .collect::<Result<_, BudgetConfigError>>()?,
        };
        Ok(BudgetSettings { prices, unknown_model, caps, window, reservation_ttl })
    }
}

fn positive(key: &str, d: Duration) -> Result<Duration, BudgetConfigError> {
    if d.is_zero() {
        return Err(BudgetConfigError::InvalidDuration {
            key: key.into(),
            reason: "must be longer than zero".into(),
        });
    }
    Ok(d)
}

/// `None` (absent or `unlimited`) means no cap.
fn cap(key: &str, raw: Option<&RawCap>) -> Result<Option<Money>, BudgetConfigError> {
    match raw {
        None => Ok(None),
        Some(RawCap::Word(w)) if w == "unlimited" => Ok(None),
        Some(RawCap::Word(w)) => Err(BudgetConfigError::UnknownWord {
            key: key.into(),
            value: w.clone(),
            expected: "a number of USD or \"unlimited\"",
        }),
        Some(RawCap::Usd(usd)) => {
            Money::try_usd(*usd).map(Some).ok_or_else(|| BudgetConfigError::InvalidAmount {
                key: key.into(),
                value: usd.to_string(),
                reason: "a cap must be a finite, non-negative number of USD".into(),
            })
        }
    }
}

/// Spending caps per user and per tenant, each over the rolling window. A user's cap is
/// their entry in `users` if present (`None` there: explicitly unlimited), else
/// `default_user`; the same for tenants. A call must fit under both its user's and its
/// tenant's cap.
///
/// User ids are treated as global: `alice` in two tenants is one user with one cap and
/// one spend total (scope `user:alice`). Hosts whose user ids are only unique within a
/// tenant should qualify them (`acme/alice`) in the `Identity`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// Cap of a user without an entry (`None`: uncapped).
    pub default_user: Option<Money>,
    /// Cap of a tenant without an entry (`None`: uncapped).
    pub default_tenant: Option<Money>,
    /// Caps per user (`None`: unlimited).
    pub users: BTreeMap<String, Option<Money>>,
    /// Caps per tenant (`None`: unlimited).
    pub tenants: BTreeMap<String, Option<Money>>,
}

impl Caps {
    /// No caps at all: spend is tracked, nothing is refused.
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets the default user cap.
    #[must_use]
    pub fn default_user(mut self, cap: Money) -> Self {
        self.default_user = Some(cap);
        self
    }

    /// Sets the default tenant cap.
    #[must_use]
    pub fn default_tenant(mut self, cap: Money) -> Self {
        self.default_tenant = Some(cap);
        self
    }

    /// Sets one user's cap (`None`: unlimited, whatever the default).
    #[must_use]
    pub fn user(mut self, user: impl Into<String>, cap: Option<Money>) -> Self {
        self.users.insert(user.into(), cap);
        self
    }

    /// Sets one tenant's cap (`None`: unlimited, whatever the default).
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>, cap: Option<Money>) -> Self {
        self.tenants.insert(tenant.into(), cap);
        self
    }

    /// The cap of `user`.
    pub fn user_cap(&self, user: &str) -> Option<Money> {
        self.users.get(user).copied().unwrap_or(self.default_user)
    }

    /// The cap of `tenant`.
    pub fn tenant_cap(&self, tenant: &str) -> Option<Money> {
        self.tenants.get(tenant).copied().unwrap_or(self.default_tenant)
    }
}

/// Validated budget settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    /// Prices.
    pub prices: PriceTable,
    /// What an unpriced model costs.
    pub unknown_model: UnknownModel,
    /// Caps.
    pub caps: Caps,
    /// Rolling spend window: spend settled longer ago than this no longer counts.
    pub window: Duration,
    /// A reservation not settled within this stops holding money (crash safety).
    pub reservation_ttl: Duration,
}

impl Default for BudgetSettings {
    /// No prices (unknown models denied when capped), no caps, a 7-day window, 10-minute
    /// reservations.
    fn default() -> Self {
        Self {
            prices: PriceTable::new(),
            unknown_model: UnknownModel::Deny,
            caps: Caps::none(),
            window: Duration::from_secs(7 * 24 * 3600),
            reservation_ttl: Duration::from_secs(600),
        }
    }
}

impl BudgetSettings {
    /// Sets the prices.
    #[must_use]
    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Sets the caps.
    #[must_use]
    pub fn with_caps(mut self, caps: Caps) -> Self {
        self.caps = caps;
        self
    }

    /// Sets the unknown-model policy.
    #[must_use]
    pub fn with_unknown_model(mut self, unknown: UnknownModel) -> Self {
        self.unknown_model = unknown;
        self
    }

    /// Sets the window (a zero window is raised to one millisecond).
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_millis(1));
        self
    }

    /// Sets the reservation TTL (a zero TTL is raised to one millisecond).
    #[must_use]
    pub fn with_reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl.max(Duration::from_millis(1));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_week_and_ten_minutes_with_unknown_models_denied() {
        let s = BudgetConfig::default().validate().unwrap();
        assert_eq!(s.window, Duration::from_secs(604_800));
        assert_eq!(s.reservation_ttl, Duration::from_secs(600));
        assert_eq!(s.unknown_model, UnknownModel::Deny);
        assert_eq!(s.caps, Caps::none());
        assert!(s.prices.is_empty());
    }

    #[test]
    fn zero_durations_are_rejected() {
        let c = BudgetConfig { window: Some(Duration::ZERO), ..BudgetConfig::default() };
        assert!(
            matches!(c.validate(), Err(BudgetConfigError::InvalidDuration { ref key, .. }) if key == "window")
        );
    }

    #[test]
    fn caps_resolve_overrides_before_defaults() {
        let caps =
            Caps::none().default_user(Money::usd(5.0)).user("root", None).user("ann", Some(Money::usd(9.0)));
        assert_eq!(caps.user_cap("bob"), Some(Money::usd(5.0)));
        assert_eq!(caps.user_cap("ann"), Some(Money::usd(9.0)));
        assert_eq!(caps.user_cap("root"), None);
        assert_eq!(caps.tenant_cap("acme"), None);
    }
}
