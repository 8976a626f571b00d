//! [`PersonaSource`]: named agent definitions. Default: none (inline agents only).

use async_trait::async_trait;

use super::PortError;
use crate::agent::RunnableAgent;

/// Looks up named agents ("personas").
#[async_trait]
pub trait PersonaSource: Send + Sync {
    /// The persona called `name`, as a runnable agent, if there is one.
    ///
    /// # Errors
    /// A [`PortError`] when the backing store fails.
    async fn persona(&self, name: &str) -> Result<Option<RunnableAgent>, PortError>;

    /// Names of all personas.
    ///
    /// # Errors
    /// A [`PortError`] when the backing store fails.
    async fn list(&self) -> Result<Vec<String>, PortError>;
}

/// The default: no personas; agents are given inline.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPersonas;

#[async_trait]
impl PersonaSource for NoPersonas {
    async fn persona(&self, _name: &str) -> Result<Option<RunnableAgent>, PortError> {
        Ok(None)
    }

    async fn list(&self) -> Result<Vec<String>, PortError> {
        Ok(Vec::new())
    }
}
