//! executus (core) integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod approvals;
mod checkpoint;
mod common;
mod config;
mod dispatch;
mod doubles;
mod events;
mod executor;
mod lane;
mod loops;
mod ports;
mod resume;
mod run_loop;
mod typed;
