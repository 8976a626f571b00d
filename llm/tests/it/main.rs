//! executus-llm integration tests: one binary, one module per area.

mod fake;
mod structured;
