//! # executus-schedule — cron jobs feeding runs into the runtime
//!
//! Implements the core's [`Schedule`](executus::ports::Schedule) port with
//! [`CronSchedule`], built on the `cron` crate:
//!
//! - a [`JobDef`] is `{ id, cron, timezone (IANA), agent, input, lane, identity, overlap,
//!   jitter, catch_up }`; [`CronSchedule::add_job`] validates it into a [`Job`] and refuses
//!   a bad expression, time zone, id, agent, a schedule that never fires or a jitter that is
//!   not shorter than the interval — every error naming the job and the bad value;
//! - each fire submits `RunRequest { agent, input, identity, lane }.deliver()` through
//!   `Runtime::spawn_with` (admission by the lane; the outcome goes to the `Delivery` port);
//! - overlap policy per job ([`Overlap`]): skip, queue (at most one waiting) or allow;
//! - a [`ScheduleStore`] keeps per-job watermarks (and job definitions);
//!   [`MemoryScheduleStore`] is the default, executus-store has the SQLite one. At start-up
//!   missed fires are caught up per job ([`CatchUp`]: run once, or skip); see
//!   [`CronSchedule`] for exactly when watermarks move and what a crash can repeat;
//! - time comes from an [`executus::llm::Clock`] (the system clock, or `TokioClock` for tests under
//!   paused tokio time); the runner sleeps with tokio timers.
//!
//! ```no_run
//! use std::sync::Arc;
//! use executus::{Runtime, ports::Ports};
//! use executus_schedule::{CronSchedule, JobDef, Overlap};
//! # async fn demo() -> Result<(), executus_schedule::ScheduleError> {
//! let schedule = CronSchedule::builder().build();
//! schedule
//!     .add_job(
//!         JobDef::new("morning-report", "0 9 * * MON-FRI", "reporter", "Summarise yesterday.")
//!             .timezone("Europe/Paris")
//!             .overlap(Overlap::Skip),
//!     )
//!     .await?;
//! let runtime = Runtime::builder().ports(Ports { schedule: Arc::new(schedule), ..Ports::default() }).build();
//! runtime.run_schedule(tokio_util::sync::CancellationToken::new()).await;
//! # Ok(()) }
//! ```

mod clock;
mod error;
mod job;
mod runner;
mod store;

pub use error::ScheduleError;
pub use job::{CatchUp, Job, JobDef, Overlap};
pub use runner::{
    CronSchedule, CronScheduleBuilder, DEFAULT_LATE_TOLERANCE, EVENT_CAPACITY, LoadedJobs, ScheduleEvent,
    SkipReason,
};
pub use store::{MemoryScheduleStore, ScheduleStore};
