//! executus-critic integration tests: the critic through the real core runtime (paused
//! time) and on its own.

#![allow(clippy::unwrap_used)]

mod common;
mod direct;
mod runtime;
