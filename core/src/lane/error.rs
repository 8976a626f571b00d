//! [`LaneError`]: every way a submission or a job can end without a value.

use std::fmt;
use std::time::Duration;

use crate::JobId;

/// How many pending jobs a [`LaneError::Full`] carries and displays; the rest are counted.
pub const PENDING_LISTED: usize = 20;

/// Why a lane refused a submission, or why a job ended without its value.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// Every slot is busy and the queue is at its cap: the submission was refused before any
    /// of its work ran.
    #[error(
        "lane `{lane}` is full: {running} of {capacity} slots busy, {}",
        QueueDetail::new(*.max_queue, *.queued, .pending)
    )]
    Full {
        /// The lane's name.
        lane: String,
        /// How many jobs may run at once.
        capacity: usize,
        /// How many jobs may wait beyond the running ones.
        max_queue: usize,
        /// The first [`PENDING_LISTED`] waiting jobs, in the order the lane would start them.
        pending: Vec<PendingJob>,
        /// How many jobs were running when the submission was refused.
        running: usize,
        /// How many jobs were waiting in total (`pending` lists at most [`PENDING_LISTED`]).
        queued: usize,
    },
    /// The lane is shutting down: it admits nothing new, discards its queue and, past the
    /// shutdown deadline, aborts what still runs.
    #[error("lane `{lane}` is shutting down")]
    ShuttingDown {
        /// The lane's name.
        lane: String,
    },
    /// The job was cancelled with [`LaneHandle::cancel`](super::LaneHandle::cancel).
    #[error("{job} on lane `{lane}` was cancelled")]
    Cancelled {
        /// The lane's name.
        lane: String,
        /// The cancelled job.
        job: JobId,
    },
    /// The job's future panicked. Its slot was freed; the lane keeps serving.
    #[error("{job} on lane `{lane}` panicked: {message}")]
    Panicked {
        /// The lane's name.
        lane: String,
        /// The job that panicked.
        job: JobId,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The lane has stopped (every handle was dropped).
    #[error("lane `{lane}` is gone")]
    Gone {
        /// The lane's name.
        lane: String,
    },
    /// The lane could not be started (no longer produced: a lane is a lock, not an actor).
    #[error("lane `{lane}` could not start: {reason}")]
    Spawn {
        /// The lane's name.
        lane: String,
        /// What went wrong.
        reason: String,
    },
}

/// A job waiting in a lane's queue, as listed by [`LaneError::Full`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJob {
    /// The job's id.
    pub id: JobId,
    /// The tenant it was submitted for.
    pub tenant: String,
    /// Its label.
    pub label: String,
    /// How long it had been waiting when the list was taken.
    pub queued_for: Duration,
}

impl fmt::Display for PendingJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Millisecond precision is plenty for a human reading an overload error.
        let waited = Duration::from_millis(u64::try_from(self.queued_for.as_millis()).unwrap_or(u64::MAX));
        write!(
            f,
            "{} (tenant `{}`, `{}`, queued {})",
            self.id,
            self.tenant,
            self.label,
            humantime::format_duration(waited)
        )
    }
}

/// The queue half of [`LaneError::Full`]'s message: occupancy, then up to [`PENDING_LISTED`]
/// waiting jobs and "and N more".
struct QueueDetail<'a> {
    max_queue: usize,
    queued: usize,
    pending: &'a [PendingJob],
}

impl<'a> QueueDetail<'a> {
    fn new(max_queue: usize, queued: usize, pending: &'a [PendingJob]) -> Self {
        Self { max_queue, queued, pending }
    }
}

impl fmt::Display for QueueDetail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.max_queue == 0 {
            return f.write_str("and it keeps no queue");
        }
        write!(f, "{} of {} queue places taken", self.queued, self.max_queue)?;
        let shown = &self.pending[..self.pending.len().min(PENDING_LISTED)];
        if shown.is_empty() {
            return Ok(());
        }
        f.write_str("; pending: ")?;
        for (i, job) in shown.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{job}")?;
        }
        let more = self.queued.saturating_sub(shown.len());
        if more > 0 {
            write!(f, ", and {more} more")?;
        }
        Ok(())
    }
}
