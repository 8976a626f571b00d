//! Integration tests of executus-llm: every provider against a real HTTP server on loopback.

mod llama_swap;
mod openai;
