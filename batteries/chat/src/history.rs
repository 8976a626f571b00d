//! [`ChatHistory`]: where conversations live between turns and between processes, one per
//! user (within a tenant) and persona ([`ChatKey`]).
//!
//! The trait is shaped for SQL, like the batteries' stores: each method is one atomic
//! operation. [`MemoryChatHistory`] keeps conversations for the life of the process;
//! `executus-store` keeps them in its SQLite file (`SqliteChatStore`). Every backend passes
//! [`conformance`](crate::conformance).
//!
//! Guarantees: `append` adds all of its messages after every message appended before it
//! returned, or none of them; `load` returns them in that order. Not provided: trimming —
//! a long conversation is kept whole and the core's context compaction decides what the
//! model sees.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use executus::Identity;
use executus::llm::Message;
use executus::ports::PortError;

/// Whose conversation: a user in a tenant, talking to a persona.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatKey {
    /// User id.
    pub user: String,
    /// Tenant id.
    pub tenant: String,
    /// Persona (agent) name.
    pub persona: String,
}

impl ChatKey {
    /// The conversation of `identity` with `persona`.
    pub fn new(identity: &Identity, persona: impl Into<String>) -> Self {
        Self { user: identity.user.clone(), tenant: identity.tenant.clone(), persona: persona.into() }
    }
}

impl std::fmt::Display for ChatKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{} with {}", self.user, self.tenant, self.persona)
    }
}

/// Conversation storage (see the module docs).
#[async_trait]
pub trait ChatHistory: Send + Sync {
    /// Every message of the conversation, oldest first (empty if there is none).
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails or a stored message does not decode.
    async fn load(&self, key: &ChatKey) -> Result<Vec<Message>, PortError>;

    /// Appends `messages` at the end of the conversation, all or none.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails; nothing was appended then.
    async fn append(&self, key: &ChatKey, messages: &[Message]) -> Result<(), PortError>;

    /// Deletes the conversation; returns how many messages it held.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn reset(&self, key: &ChatKey) -> Result<usize, PortError>;
}

/// Conversations in memory, for the life of the process.
#[derive(Debug, Default)]
pub struct MemoryChatHistory {
    chats: Mutex<HashMap<ChatKey, Vec<Message>>>,
}

impl MemoryChatHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChatKey, Vec<Message>>> {
        // Every operation is a single insert, extend or remove: a panic cannot leave a
        // half-written conversation behind, so a poisoned lock is safe to use.
        self.chats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ChatHistory for MemoryChatHistory {
    async fn load(&self, key: &ChatKey) -> Result<Vec<Message>, PortError> {
        Ok(self.lock().get(key).cloned().unwrap_or_default())
    }

    async fn append(&self, key: &ChatKey, messages: &[Message]) -> Result<(), PortError> {
        self.lock().entry(key.clone()).or_default().extend_from_slice(messages);
        Ok(())
    }

    async fn reset(&self, key: &ChatKey) -> Result<usize, PortError> {
        Ok(self.lock().remove(key).map_or(0, |m| m.len()))
    }
}
