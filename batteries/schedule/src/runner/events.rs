//! [`ScheduleEvent`]: what the runner did, for hosts (dashboards, logs) and tests.

use chrono::{DateTime, Utc};
use executus::RunId;
use serde::{Deserialize, Serialize};

/// Why a fire did not start a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// The previous run was still going (overlap `skip`).
    Overlap,
    /// A newer fire replaced this waiting one (overlap `queue`).
    Coalesced,
    /// Missed fires from `first` to the event's `fire` (catch-up `skip`).
    CatchUp {
        /// The earliest missed fire.
        first: DateTime<Utc>,
    },
    /// Another runner sharing the store claimed this fire first (a shared schedule; see
    /// [`CronScheduleBuilder::shared`](crate::CronScheduleBuilder::shared)).
    ClaimedElsewhere,
}

/// One thing the runner did. `at` is the wall-clock time it happened; `fire` the cron
/// fire time it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScheduleEvent {
    /// A run was submitted into the runtime.
    Fired {
        /// The job.
        job: String,
        /// The fire time.
        fire: DateTime<Utc>,
        /// When it was submitted.
        at: DateTime<Utc>,
        /// The run.
        run_id: RunId,
        /// For a catch-up run: the earliest missed fire it stands for.
        catch_up_from: Option<DateTime<Utc>>,
    },
    /// A fire started no run.
    Skipped {
        /// The job.
        job: String,
        /// The fire time.
        fire: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: SkipReason,
    },
    /// A fire waits for the job's running run to end (overlap `queue`).
    Queued {
        /// The job.
        job: String,
        /// The fire time.
        fire: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A fire could not be submitted (unknown agent, lane refused...). Its watermark still
    /// moves: the fire was handled.
    Failed {
        /// The job.
        job: String,
        /// The fire time.
        fire: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
        /// Why.
        error: String,
    },
    /// A run started by the schedule ended.
    RunEnded {
        /// The job.
        job: String,
        /// The run.
        run_id: RunId,
        /// How it ended.
        status: executus::RunStatus,
        /// When the runner noticed.
        at: DateTime<Utc>,
    },
}

impl ScheduleEvent {
    /// The job the event is about.
    pub fn job(&self) -> &str {
        match self {
            Self::Fired { job, .. }
            | Self::Skipped { job, .. }
            | Self::Queued { job, .. }
            | Self::Failed { job, .. }
            | Self::RunEnded { job, .. } => job,
        }
    }
}
