//! [`ChatbotError`]: why the app could not be built or a command could not run.

use executus::RuntimeError;

/// Errors of the chatbot host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatbotError {
    /// The personas folder has bad files (each named with its path and line) or could not be
    /// stored.
    #[error("personas: {0}")]
    Personas(String),
    /// A piece of configuration does not work (budget, critic, skill, daily job, tiers).
    #[error("configuration: {0}")]
    Config(String),
    /// A model or transcript problem (which variable or file, and why).
    #[error("models ({source_name}): {message}")]
    Models {
        /// The variable or file involved.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// The store could not be opened (the error names the file and why).
    #[error(transparent)]
    Store(#[from] executus_store::StoreError),
    /// The runtime refused something.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A chat session failed.
    #[error(transparent)]
    Chat(#[from] executus_chat::ChatError),
    /// Recording the bundled transcript failed.
    #[error("fixture: {0}")]
    Fixture(String),
}
