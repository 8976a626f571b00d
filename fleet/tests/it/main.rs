//! executus-fleet's integration tests, against the llama-swap stand-in (`tests/support/
//! standin.rs`, a real HTTP server on 127.0.0.1 speaking llama-swap's wire format) and,
//! where a model must really run, real `llama-server` processes from the peers (skipped
//! with a loud notice when the peer is not built; a failure under `CI=true`).

#[path = "../support/standin.rs"]
mod standin;

mod actions;
mod browser;
mod common;
mod connector;
mod history;
mod real;
mod web;
mod wire;
