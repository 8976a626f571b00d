//! # chatbot — the heavy host
//!
//! A chat bot on executus that opts into every battery: personas from a folder it ships
//! (`personas/`), a skill (`arithmetic`: use `calc` for sums), an audit trail, a per-user
//! budget over a rolling day, a daily cron job (the 08:00 Europe/Paris digest), and the
//! critic judging runs that hit their step cap or soft deadline. Conversations are kept per
//! user and persona ([`ChatHistory`], from the `executus-chat` battery).
//!
//! - [`App`]: the wiring ([`app`] says what is guaranteed); [`ChatSession`] / [`repl`] (from
//!   `executus-chat`): the conversation loop the `chatbot` binary runs on stdin/stdout.
//! - [`models`]: the bundled replay transcript by default, live providers from
//!   `EXECUTUS_LLM_*` + `CHATBOT_MODEL`.
//! - [`fixture`]: the scenes the transcript was recorded from. **The bundled answers were
//!   written by hand, not produced by a live model.**
//!
//! ```no_run
//! # async fn demo() -> Result<(), chatbot::ChatbotError> {
//! use chatbot::{App, AppOptions, Stores, models};
//!
//! let app = App::build(AppOptions::new(models::bundled_registry()?, Stores::in_memory())).await?;
//! let session = app.session("ada", chatbot::app::CHAT_PERSONA).await?;
//! let outcome = session.turn("Hi, I'm Ada. I look after the build servers.").await?;
//! println!("{}", outcome.output.as_deref().unwrap_or_default());
//! app.close(std::time::Duration::from_secs(2)).await;
//! # Ok(()) }
//! ```

pub mod app;
pub mod error;
pub mod fixture;
pub mod models;

pub use app::{App, AppOptions, Stores};
pub use error::ChatbotError;
pub use executus_chat::{
    ChatError, ChatHistory, ChatKey, ChatSession, Line, MemoryChatHistory, ReplEnd, ReplStop, Turn, repl,
};
