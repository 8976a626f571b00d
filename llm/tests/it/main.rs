//! The integration test binary of executus-llm: one module per provider or concern.

mod gemini;
mod ollama;
