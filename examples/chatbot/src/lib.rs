//! # chatbot — the heavy host
//!
//! (being written)

pub mod history;
pub mod session;

pub use history::{ChatHistory, ChatKey, MemoryChatHistory};
pub use session::{ChatError, ChatSession, Line, ReplEnd, ReplStop, Turn, repl};
