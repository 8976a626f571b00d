//! [`Money`]: an exact amount of US dollars, in whole nano-dollars.
//!
//! Budgets compare sums of many small costs against caps; doing that in floating point
//! would make "spent + reserved + this call <= limit" depend on summation order. Amounts
//! are therefore integers (1 USD = 10^9 units), which a SQL store keeps in an `INTEGER`
//! column and sums exactly. Every amount fits in an `i64` ([`Money::MAX`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Nano-dollars per dollar.
const NANOS_PER_USD: f64 = 1e9;

/// An amount of US dollars, exact to the nano-dollar, never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(u64);

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);
    /// The largest amount: `i64::MAX` nano-dollars (about 9.2 billion USD), so every
    /// amount fits a signed 64-bit SQL integer.
    pub const MAX: Money = Money(i64::MAX as u64);

    /// An amount in nano-dollars (clamped to [`Money::MAX`]).
    pub fn from_nanos(nanos: u64) -> Self {
        Self(nanos.min(Self::MAX.0))
    }

    /// The amount in nano-dollars.
    pub fn nanos(self) -> u64 {
        self.0
    }

    /// An amount in dollars, rounded to the nearest nano-dollar; `None` for a negative,
    /// NaN or infinite value. Amounts past [`Money::MAX`] are clamped.
    pub fn try_usd(usd: f64) -> Option<Self> {
        if !usd.is_finite() || usd < 0.0 {
            return None;
        }
        Some(Self::from_f64_nanos((usd * NANOS_PER_USD).round()))
    }

    /// An amount in dollars for code that holds a known-good literal: like
    /// [`Money::try_usd`], but a negative or NaN value is zero and infinity is
    /// [`Money::MAX`]. Configuration goes through validation instead.
    pub fn usd(usd: f64) -> Self {
        if usd == f64::INFINITY {
            return Self::MAX;
        }
        Self::try_usd(usd).unwrap_or(Self::ZERO)
    }

    /// The amount in dollars (rounded to the nearest `f64`).
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD
    }

    /// `self + other`, clamped to [`Money::MAX`].
    #[must_use]
    pub fn saturating_add(self, other: Money) -> Money {
        Self::from_nanos(self.0.saturating_add(other.0))
    }

    /// `self - other`, or zero.
    #[must_use]
    pub fn saturating_sub(self, other: Money) -> Money {
        Self(self.0.saturating_sub(other.0))
    }

    /// An amount from a non-negative nano-dollar value computed in floating point, rounded
    /// up to the next nano-dollar unless it is within rounding noise of a whole one (so
    /// costs are never under-counted, and exact products are not bumped by float error).
    pub(crate) fn from_f64_nanos_ceil(nanos: f64) -> Self {
        let nearest = nanos.round();
        let value = if (nanos - nearest).abs() < 1e-6 { nearest } else { nanos.ceil() };
        Self::from_f64_nanos(value)
    }

    fn from_f64_nanos(nanos: f64) -> Self {
        if nanos.is_nan() || nanos <= 0.0 {
            Self::ZERO
        } else if nanos >= Self::MAX.0 as f64 {
            Self::MAX
        } else {
            // In range and integral by construction; `as` truncates nothing here.
            Self(nanos as u64)
        }
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Self {
        iter.fold(Money::ZERO, Money::saturating_add)
    }
}

impl fmt::Display for Money {
    /// `$1.25`, `$0.000123`: dollars with at least two and at most nine decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000_000;
        let frac = format!("{:09}", self.0 % 1_000_000_000);
        let trimmed = frac.trim_end_matches('0');
        let frac = if trimmed.len() < 2 { &frac[..2] } else { trimmed };
        write!(f, "${whole}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_trip_and_display() {
        assert_eq!(Money::usd(1.25).nanos(), 1_250_000_000);
        assert_eq!(Money::usd(1.25).to_string(), "$1.25");
        assert_eq!(Money::from_nanos(123_000).to_string(), "$0.000123");
        assert_eq!(Money::ZERO.to_string(), "$0.00");
        assert_eq!(Money::usd(0.1).as_usd(), 0.1);
    }

    #[test]
    fn bad_values_are_rejected_or_clamped() {
        assert_eq!(Money::try_usd(-1.0), None);
        assert_eq!(Money::try_usd(f64::NAN), None);
        assert_eq!(Money::try_usd(f64::INFINITY), None);
        assert_eq!(Money::usd(-1.0), Money::ZERO);
        assert_eq!(Money::usd(f64::INFINITY), Money::MAX);
        assert_eq!(Money::try_usd(1e300), Some(Money::MAX));
        assert_eq!(Money::MAX.saturating_add(Money::usd(1.0)), Money::MAX);
        assert_eq!(Money::from_nanos(u64::MAX), Money::MAX);
        assert_eq!(Money::usd(1.0).saturating_sub(Money::usd(2.0)), Money::ZERO);
    }

    #[test]
    fn computed_costs_round_up_but_not_on_float_noise() {
        assert_eq!(Money::from_f64_nanos_ceil(2_500.000_000_001).nanos(), 2500);
        assert_eq!(Money::from_f64_nanos_ceil(0.3).nanos(), 1);
        assert_eq!(Money::from_f64_nanos_ceil(10.5).nanos(), 11);
        assert_eq!(Money::from_f64_nanos_ceil(0.0), Money::ZERO);
    }
}
