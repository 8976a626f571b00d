//! Integration tests of the `executus-run` binary: every subcommand run as a real process
//! against loopback mock servers (wiremock speaking the OpenAI wire format) or replay
//! transcripts, checking output, exit codes and signals.

#![allow(clippy::unwrap_used)]

mod chat;
mod common;
mod config;
mod durable;
mod models;
mod run;
mod schedule;
mod swarm;
