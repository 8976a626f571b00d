//! # executus-chat — conversations on executus
//!
//! A conversation is one user (within a tenant) talking to one persona, turn by turn. This
//! battery holds what every chat host needs:
//!
//! - [`ChatHistory`]: the storage port, one atomic operation per method, with
//!   [`MemoryChatHistory`] as its default; `executus-store` implements it on SQLite
//!   (`SqliteChatStore`). Every backend runs [`conformance`].
//! - [`ChatSession`]: a conversation's turns as runs of the core runtime (so budgets, audit and
//!   lanes apply per user); only a completed turn joins the history.
//! - [`repl`]: the line-oriented loop on stdin/stdout (`/reset`, `/history`, `/exit`), used by
//!   `executus-run chat` and the chat bot example.
//!
//! ## What it does not do
//! - No trimming: a long conversation is kept whole; the core's context compaction decides
//!   what the model sees.
//! - No database of its own: durable storage comes from `executus-store`.

pub mod conformance;
pub mod history;
pub mod session;

pub use history::{ChatHistory, ChatKey, MemoryChatHistory};
pub use session::{ChatError, ChatSession, HELP, Line, ReplEnd, ReplStop, Turn, repl};
