//! executus-schedule integration tests: the cron runner through the real core runtime over
//! the fake provider, with paused tokio time and a clock that follows it.

#![allow(clippy::unwrap_used)]

mod catch_up;
mod common;
mod firing;
mod jobs;
mod overlap;
