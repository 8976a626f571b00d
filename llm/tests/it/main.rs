//! Integration tests of executus-llm: one binary, one module per provider or concern.

mod anthropic;
