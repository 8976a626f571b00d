//! executus-llm integration tests: one binary, one module per provider or concern.

#![allow(clippy::unwrap_used)]

mod anthropic;
mod chain;
mod dsn;
mod fake;
mod faults;
mod gemini;
mod http2;
mod images;
mod llama_swap;
mod media;
mod ollama;
mod openai;
mod peer_llama;
mod registry;
mod scripted;
mod structured;
mod tcp_stub;
