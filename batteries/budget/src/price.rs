//! Prices: [`Price`] (USD per million tokens), [`PriceTable`] (per `provider/model`, with
//! trailing `*` wildcards) and [`UnknownModel`] (what an unpriced model costs).
//!
//! Lookup of a target `provider/model`: an exact entry wins; otherwise the matching
//! wildcard entry with the longest prefix (`openai/gpt-4o*` beats `openai/*`). The provider
//! part is the text before the first `/`, so model ids may contain slashes
//! (`openrouter/meta-llama/llama-3-70b`). Matching is case-sensitive.
//!
//! How a [`Usage`] is priced: output tokens at the output price (reasoning tokens are
//! already inside `output_tokens` for every provider executus speaks), cache reads and
//! cache writes at their prices, and input tokens at the input price. Providers disagree
//! on whether `input_tokens` already contains the cached tokens (OpenAI-compatible and
//! Gemini: yes; Anthropic: no), so a price says which convention its provider uses with
//! [`Price::cache_in_input`]. The default, `false`, never under-counts: on a provider that
//! does include them it charges cached tokens twice (once at the input price); set it to
//! `true` for OpenAI-compatible and Gemini entries to price them exactly.

use std::collections::HashMap;

use executus::llm::{Target, Usage};
use serde::{Deserialize, Serialize};

use crate::config::BudgetConfigError;
use crate::money::Money;

/// Nano-dollars per token at a price of 1 USD per million tokens.
const NANOS_PER_TOKEN_PER_USD_PER_MILLION: f64 = 1e3;

/// What one model costs, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens.
    pub input: f64,
    /// Completion tokens (reasoning included).
    pub output: f64,
    /// Prompt tokens read from the provider's cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Prompt tokens written to the provider's cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// True when this provider's `input_tokens` already include cache reads and writes
    /// (OpenAI-compatible, Gemini), so they are taken out before pricing the rest at the
    /// input price. Default false (Anthropic's convention; never under-counts).
    #[serde(default)]
    pub cache_in_input: bool,
}

impl Price {
    /// A price for input and output tokens; cache tokens at the input price.
    pub fn per_million(input: f64, output: f64) -> Self {
        Self { input, output, cache_read: None, cache_write: None, cache_in_input: false }
    }

    /// Sets cache read and write prices.
    #[must_use]
    pub fn with_cache(mut self, read: f64, write: f64) -> Self {
        self.cache_read = Some(read);
        self.cache_write = Some(write);
        self
    }

    /// Says whether `input_tokens` include cached tokens (see [`Price::cache_in_input`]).
    #[must_use]
    pub fn cache_in_input(mut self, included: bool) -> Self {
        self.cache_in_input = included;
        self
    }

    /// The cost of a call that used `usage`, rounded up to the nano-dollar.
    pub fn cost(&self, usage: &Usage) -> Money {
        let cached = usage.cache_read_tokens.saturating_add(usage.cache_write_tokens);
        let input =
            if self.cache_in_input { usage.input_tokens.saturating_sub(cached) } else { usage.input_tokens };
        let per_million = input as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + usage.cache_read_tokens as f64 * self.cache_read.unwrap_or(self.input)
            + usage.cache_write_tokens as f64 * self.cache_write.unwrap_or(self.input);
        Money::from_f64_nanos_ceil(per_million * NANOS_PER_TOKEN_PER_USD_PER_MILLION)
    }

    /// The most a call can cost before it is made: every prompt token at the input price
    /// plus the whole output cap at the output price.
    pub fn estimate(&self, input_tokens: u64, max_output_tokens: u64) -> Money {
        let per_million = input_tokens as f64 * self.input + max_output_tokens as f64 * self.output;
        Money::from_f64_nanos_ceil(per_million * NANOS_PER_TOKEN_PER_USD_PER_MILLION)
    }

    /// Checks every figure is a finite, non-negative number; `key` names the entry in
    /// errors.
    ///
    /// # Errors
    /// [`BudgetConfigError::InvalidAmount`] naming the field.
    pub fn validate(&self, key: &str) -> Result<(), BudgetConfigError> {
        let fields = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
        ];
        for (field, value) in fields {
            if let Some(value) = value
                && (!value.is_finite() || value < 0.0)
            {
                return Err(BudgetConfigError::InvalidAmount {
                    key: format!("{key}.{field}"),
                    value: value.to_string(),
                    reason: "a price must be a finite, non-negative number of USD per million tokens".into(),
                });
            }
        }
        Ok(())
    }
}

/// What a model missing from the price table costs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum UnknownModel {
    /// Refuse calls that could reach an unpriced model when any cap applies (the default:
    /// an unpriced model could spend without bound). Uncapped identities are still
    /// allowed; their calls to unpriced models are recorded at zero cost with a warning.
    #[default]
    Deny,
    /// Price unknown models at this price.
    Price(Price),
}

/// A model the price table has no price for, under [`UnknownModel::Deny`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no price for {target} (unknown_model = deny)")]
pub struct Unpriced {
    /// The target, `provider/model`.
    pub target: String,
}

/// Prices per `provider/model`, with trailing-`*` wildcards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    exact: HashMap<Target, Price>,
    /// `(provider, model prefix, price)`, longest prefix first.
    wildcards: Vec<(String, String, Price)>,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the price of `pattern`: `provider/model` exactly, or
    /// `provider/prefix*` for every model of `provider` whose id starts with `prefix`
    /// (`openai/*` is every OpenAI model).
    ///
    /// # Errors
    /// [`BudgetConfigError::InvalidPattern`] for a malformed pattern,
    /// [`BudgetConfigError::InvalidAmount`] for a negative or non-finite price.
    pub fn insert(&mut self, pattern: &str, price: Price) -> Result<&mut Self, BudgetConfigError> {
        let invalid = |reason: &str| BudgetConfigError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: reason.into(),
        };
        price.validate(&format!("prices.{pattern:?}"))?;
        let Some((provider, model)) = pattern.split_once('/') else {
            return Err(invalid("expected provider/model or provider/prefix*"));
        };
        if provider.is_empty() || provider.contains('*') {
            return Err(invalid("the provider part must be a provider name, without wildcards"));
        }
        if model.is_empty() {
            return Err(invalid("the model part is empty (use provider/* for every model)"));
        }
        let target = Target::new(provider, model);
        match model.find('*') {
            None => {
                self.exact.insert(target, price);
            }
            Some(at) if at + 1 == model.len() => {
                let prefix = &model[..at];
                self.wildcards.retain(|(p, m, _)| !(p == provider && m == prefix));
                self.wildcards.push((provider.to_owned(), prefix.to_owned(), price));
                self.wildcards.sort_by_key(|w| std::cmp::Reverse(w.1.len()));
            }
            Some(_) => return Err(invalid("`*` is only allowed at the end of the model part")),
        }
        Ok(self)
    }

    /// Adds a price, builder style.
    ///
    /// # Errors
    /// As [`PriceTable::insert`].
    pub fn with(mut self, pattern: &str, price: Price) -> Result<Self, BudgetConfigError> {
        self.insert(pattern, price)?;
        Ok(self)
    }

    /// The price of `target` (`provider/model`), if the table has one.
    pub fn lookup(&self, target: &str) -> Option<Price> {
        self.lookup_target(&target.parse().ok()?)
    }

    /// The price of `target`, if the table has one.
    pub fn lookup_target(&self, target: &Target) -> Option<Price> {
        if let Some(price) = self.exact.get(target) {
            return Some(*price);
        }
        self.wildcards
            .iter()
            .find(|(p, prefix, _)| *p == target.provider && target.model.starts_with(prefix.as_str()))
            .map(|w| w.2)
    }

    /// True if the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty()
    }
}

#[cfg(test)]
mod tests;
