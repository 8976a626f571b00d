//! The gateway's integration suite: a real server on loopback in front of scripted upstreams,
//! the official SDKs and the real llama.cpp server as peers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../../llm/tests/it/tcp_stub.rs"]
#[allow(dead_code)]
mod tcp_stub;

mod guard;
mod lifecycle;
mod peers;
mod policy;
mod sdk;
mod security;
mod support;
mod wire;
