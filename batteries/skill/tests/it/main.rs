//! executus-skill integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod common;
mod compose;
mod lifecycle;
mod runtime;
mod versions;
