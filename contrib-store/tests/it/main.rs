//! executus-store integration tests: a real SQLite file in a temp dir for every store, and
//! a real child process killed with SIGKILL for the crash test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod budget;
mod budget_processes;
mod chat;
mod checkpoint;
mod common;
mod concurrency;
mod conformance;
#[cfg(unix)]
mod crash;
mod fleet;
mod mock_llm;
mod open;
mod persona_skill;
mod pg;
mod plan;
mod postgres;
mod retention;
mod review_cache;
mod schedule;
mod upgrade;
mod workers;
