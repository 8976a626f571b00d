//! Integration tests of the `executus` core crate, one module per concept.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod dispatch;
mod lane;
