//! executus (core) integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod approvals;
mod checkpoint;
mod common;
mod config;
mod dispatch;
mod dispatch_tool;
mod doubles;
mod events;
mod executor;
mod fanout;
mod hostile;
mod lane;
mod loops;
mod ports;
mod resume;
mod run_loop;
mod ssrf;
mod tools;
mod typed;
