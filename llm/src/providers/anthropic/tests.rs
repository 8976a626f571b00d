//! Unit tests for the Anthropic wire client.
