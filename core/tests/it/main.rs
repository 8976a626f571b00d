//! executus (core) integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod common;
mod dispatch;
mod dispatch_tool;
mod fanout;
mod lane;
mod run_loop;
mod ssrf;
mod tools;
