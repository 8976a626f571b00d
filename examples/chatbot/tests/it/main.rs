//! Integration tests of the heavy host, offline on the bundled replay transcript: a
//! remembered conversation with the skill's tool call, per-user budgets, the audit trail,
//! the critic extending a run at its step cap, the daily cron job firing at 08:00 Paris
//! time, the transcript reproducible from the hand-written answers, and the binary.

#![allow(clippy::unwrap_used)]

mod binary;
mod common;
mod conversation;
mod critic;
mod fixture;
mod history;
mod schedule;
