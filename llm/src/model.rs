//! The [`Model`] trait — the one abstraction everything else stands on — and [`Provider`],
//! which hands out models by id.
//!
//! `Arc<dyn Model>` is the currency: a single provider model, a failover chain and a fake all
//! look the same to a caller.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::stream::EventStream;
use crate::types::{Capabilities, Request, Response};

/// A model that can answer requests, whole or streamed.
///
/// Implementations must be cheap to share (`Arc<dyn Model>`) and safe to call concurrently.
/// Dropping a returned stream cancels the underlying request.
#[async_trait]
pub trait Model: Send + Sync + fmt::Debug {
    /// The provider name (registry name, e.g. `local`; `chain` for a failover chain).
    fn provider(&self) -> &str;

    /// The model id as sent to the provider (for a chain, its spec).
    fn model_id(&self) -> &str;

    /// What the model is known to support. Unknown means "try".
    fn capabilities(&self) -> Capabilities {
        Capabilities::UNKNOWN
    }

    /// Generates a complete response.
    ///
    /// # Errors
    /// A classified [`crate::Error`] naming provider and model.
    async fn generate(&self, request: Request) -> Result<Response>;

    /// Starts a streamed response. Errors that happen before the first event (connection,
    /// HTTP status) are returned here; later ones arrive as the stream's items.
    ///
    /// # Errors
    /// A classified [`crate::Error`] naming provider and model.
    async fn stream(&self, request: Request) -> Result<EventStream>;
}

/// Something that serves models by id: a configured provider endpoint.
pub trait Provider: Send + Sync + fmt::Debug {
    /// The registry name of this provider.
    fn name(&self) -> &str;

    /// The model with this id (verbatim: it may contain `/` and `:`).
    fn model(&self, id: &str) -> Arc<dyn Model>;
}
