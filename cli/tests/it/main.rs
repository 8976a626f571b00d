//! Integration tests of the `executus-run` binary: every subcommand run as a real process
//! against loopback mock servers (wiremock speaking the OpenAI wire format) or replay
//! transcripts, checking output, exit codes and signals.

#![allow(clippy::unwrap_used)]

mod chat;
mod checks;
mod common;
mod config;
mod crash;
mod durable;
#[path = "../../../core/tests/support/fault_cases.rs"]
mod fault_cases;
mod faults;
mod fleet;
mod image;
mod mcp;
mod models;
#[allow(dead_code, unused_macros)]
#[path = "../../../batteries/mcp/tests/support/peers.rs"]
mod peers;
#[allow(dead_code)]
#[path = "../../../contrib-store/tests/it/pg.rs"]
mod pg;
mod queue;
mod run;
mod runaway;
mod schedule;
mod secrets;
#[path = "../../../fleet/tests/support/standin.rs"]
mod standin;
mod stored;
mod swarm;
#[allow(dead_code)]
#[path = "../../../llm/tests/it/tcp_stub.rs"]
mod tcp_stub;
mod telemetry;
