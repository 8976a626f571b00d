//! executus-budget integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod common;
mod config;
mod runtime;
mod spend;
mod store;
