//! executus-persona integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod common;
mod examples;
mod loader;
mod runtime;
mod store;
