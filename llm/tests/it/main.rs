//! executus-llm integration tests: one binary, one module per area.

mod chain;
mod dsn;
mod registry;
mod scripted;
