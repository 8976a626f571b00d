//! Gating a merge on findings: [`FailOn`] (`--fail-on`, `PR_REVIEW_FAIL_ON`) and the exit code
//! a host returns when the review has findings at or above it ([`FINDINGS_EXIT`]).
//!
//! The codes of both hosts: 0 reviewed (and nothing at or above the threshold), 1 every cell
//! failed or an output could not be written or posted, 2 configuration error, 5 findings at or
//! above the threshold. `executus-run` keeps its own 3 (budget denied), 4 (partial) and 130
//! (interrupted) for other commands; 5 collides with none of them.

use std::str::FromStr;

use crate::finding::Severity;
use crate::review::Review;

/// The exit code for "findings at or above the threshold".
pub const FINDINGS_EXIT: u8 = 5;

/// The lowest severity that fails the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    /// Errors fail the job.
    Error,
    /// Warnings and errors.
    Warning,
    /// Any finding.
    Note,
    /// Never fail on findings.
    #[default]
    None,
}

impl FailOn {
    /// The threshold as a severity (`None` for [`FailOn::None`]).
    pub fn threshold(self) -> Option<Severity> {
        match self {
            Self::Error => Some(Severity::Error),
            Self::Warning => Some(Severity::Warning),
            Self::Note => Some(Severity::Note),
            Self::None => None,
        }
    }

    /// The findings of `review` at or above the threshold.
    pub fn count(self, review: &Review) -> usize {
        match self.threshold() {
            Some(min) => review.findings.iter().filter(|f| f.severity >= min).count(),
            None => 0,
        }
    }

    /// True when `review` has a finding at or above the threshold.
    pub fn tripped(self, review: &Review) -> bool {
        self.count(review) > 0
    }

    /// `error`, `warning`, `note` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
            Self::None => "none",
        }
    }
}

impl FromStr for FailOn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "warning" => Ok(Self::Warning),
            "note" => Ok(Self::Note),
            "none" => Ok(Self::None),
            _ => Err(format!("{s:?} is not one of error, warning, note, none")),
        }
    }
}

impl std::fmt::Display for FailOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_thresholds_order() {
        for name in ["error", "warning", "note", "none"] {
            assert_eq!(name.parse::<FailOn>().unwrap().as_str(), name);
        }
        assert!("fatal".parse::<FailOn>().is_err());
        assert_eq!(FailOn::Warning.threshold(), Some(Severity::Warning));
        assert_eq!(FailOn::None.threshold(), None);
    }
}
