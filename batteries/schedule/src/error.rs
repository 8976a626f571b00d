//! [`ScheduleError`]: why a job was refused or a store call failed. Every job error names
//! the job and the bad value.

use std::time::Duration;

use executus::ports::PortError;

/// Errors of the schedule API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("job {job:?}: invalid cron expression {expression:?}: {reason}")]
    InvalidCron {
        /// The job id.
        job: String,
        /// The expression as given.
        expression: String,
        /// Why.
        reason: String,
    },
    /// The time zone is not an IANA name this build knows.
    #[error("job {job:?}: unknown time zone {timezone:?} (expected an IANA name such as \"Europe/Paris\")")]
    InvalidTimeZone {
        /// The job id.
        job: String,
        /// The time zone as given.
        timezone: String,
    },
    /// A field of the job is not acceptable.
    #[error("job {job:?}: invalid {field}: {reason}")]
    InvalidJob {
        /// The job id (possibly the empty, invalid one).
        job: String,
        /// The field, e.g. `id` or `agent`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The expression parses but has no fire time after now (e.g. 30 February, a past year).
    #[error("job {job:?}: cron expression {expression:?} never fires after {after} in {timezone}")]
    NeverFires {
        /// The job id.
        job: String,
        /// The expression.
        expression: String,
        /// The time zone.
        timezone: String,
        /// The instant searched from (RFC 3339).
        after: String,
    },
    /// The jitter is not shorter than the schedule's shortest interval, so a delayed fire
    /// could overtake the next one.
    #[error(
        "job {job:?}: jitter {jitter:?} must be shorter than the schedule's shortest interval \
         {shortest_interval:?}"
    )]
    JitterTooLarge {
        /// The job id.
        job: String,
        /// The jitter asked for.
        jitter: Duration,
        /// The shortest interval between upcoming fires.
        shortest_interval: Duration,
    },
    /// A job with this id is already registered.
    #[error("job {job:?} is already registered")]
    DuplicateJob {
        /// The job id.
        job: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}
