//! executus-audit integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod capture;
mod common;
mod query;
mod runtime;
mod writer;
