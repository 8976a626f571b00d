//! executus (core) integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod approvals;
mod checkpoint;
mod common;
mod compaction;
mod config;
mod dispatch;
mod dispatch_tool;
mod doubles;
mod events;
mod executor;
mod fairness;
mod fanout;
#[path = "../support/fault_cases.rs"]
mod fault_cases;
mod faults;
mod hostile;
mod lane;
mod loops;
mod media;
mod ports;
mod queue;
mod restarts;
mod resume;
mod run_loop;
#[allow(dead_code)]
#[path = "../../../llm/tests/it/tcp_stub.rs"]
mod tcp_stub;
mod typed;
