//! [`Schedule`]: something that feeds runs into the runtime over time (cron jobs).
//! Default: nothing is scheduled.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::run::RunSubmitter;

/// Feeds runs into a runtime until `shutdown` fires.
#[async_trait]
pub trait Schedule: Send + Sync {
    /// Runs the schedule in the foreground, submitting runs through `runs`; returns after
    /// `shutdown` is cancelled.
    async fn run(&self, runs: RunSubmitter, shutdown: CancellationToken);
}

/// The default: no scheduled jobs; `run` returns at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchedule;

#[async_trait]
impl Schedule for NoSchedule {
    async fn run(&self, _runs: RunSubmitter, _shutdown: CancellationToken) {}
}
