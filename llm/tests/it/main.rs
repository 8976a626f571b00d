//! executus-llm integration tests: one binary, one module per provider or concern.

mod chain;
mod dsn;
mod gemini;
mod ollama;
mod registry;
mod scripted;
