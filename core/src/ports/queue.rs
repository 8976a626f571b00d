//! [`RunQueue`]: where top-level runs go when this process should not drive them itself —
//! a queue that worker processes share (executus-store's PostgreSQL queue). Default: none,
//! every run is driven here.
//!
//! Set with [`RuntimeBuilder::queue`](crate::RuntimeBuilder::queue). With a queue,
//! [`Runtime::spawn_with`](crate::Runtime::spawn_with) (and everything built on it: `run`,
//! the cron schedule) hands each top-level run to the queue and returns a handle whose
//! outcome arrives when a worker finished the run. Child runs (`dispatch_agent`), resumes and
//! approvals are still driven here.
//!
//! What a queued run's handle does not do: stream events (it reports only `Ended`), answer
//! `status` or `steer`, or cancel the run on the worker.

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::PortError;
use crate::ids::RunId;
use crate::run::RunOutcome;
use crate::run::RunRequest;

/// A queue of runs that other processes drive.
#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Stores `request` as run `run_id` for a worker to drive. The returned future resolves
    /// with the run's outcome once a worker finished it (it follows the shared store; it never
    /// resolves for a run nobody finishes).
    ///
    /// # Errors
    /// A [`PortError`] when the run could not be stored (nothing was queued).
    async fn enqueue(
        &self,
        run_id: RunId,
        request: &RunRequest,
    ) -> Result<BoxFuture<'static, RunOutcome>, PortError>;
}
