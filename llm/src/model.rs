//! The [`Model`] trait — the one abstraction everything else stands on — and [`Provider`],
//! which hands out models by id.
//!
//! `Arc<dyn Model>` is the currency: a single provider model, a failover chain and a fake all
//! look the same to a caller.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::imagegen::ImageModel;
use crate::media::MediaLimits;
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

    /// `provider/model` as a [`Target`](crate::Target).
    fn target(&self) -> crate::Target {
        crate::Target::new(self.provider(), self.model_id())
    }

    /// What the model is known to support. Unknown means "try".
    fn capabilities(&self) -> Capabilities {
        Capabilities::UNKNOWN
    }

    /// What this model accepts as image input; a failover chain shapes each request's images
    /// to it before calling (see [`crate::media`]). `None` (the default): images are sent as
    /// they are. Wire clients answer their provider kind's row of the limits table, or the
    /// override of their [`crate::providers::ProviderConfig::media`].
    fn media_limits(&self) -> Option<MediaLimits> {
        None
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

    /// [`Model::generate`] on a borrowed request. The default copies the request and calls
    /// `generate`. A wire client that only reads the request to encode its body overrides it
    /// to skip the copy; a failover chain, which keeps the request for a retry or the next
    /// target, calls its targets through it.
    ///
    /// # Errors
    /// As [`Model::generate`].
    async fn generate_ref(&self, request: &Request) -> Result<Response> {
        self.generate(request.clone()).await
    }

    /// [`Model::stream`] on a borrowed request (see [`Model::generate_ref`]).
    ///
    /// # Errors
    /// As [`Model::stream`].
    async fn stream_ref(&self, request: &Request) -> Result<EventStream> {
        self.stream(request.clone()).await
    }
}

/// Something that serves models by id: a configured provider endpoint.
pub trait Provider: Send + Sync + fmt::Debug {
    /// The registry name of this provider.
    fn name(&self) -> &str;

    /// The model with this id (verbatim: it may contain `/` and `:`). A handle, not per-call
    /// state: the [`Registry`](crate::Registry) keeps it and gives it to every chain built
    /// from the same spec until the registry changes.
    fn model(&self, id: &str) -> Arc<dyn Model>;

    /// The image-generation model with this id, when the provider can generate images
    /// (see [`crate::imagegen`]); `None` (the default) when it cannot.
    fn image_model(&self, id: &str) -> Option<Arc<dyn ImageModel>> {
        let _ = id;
        None
    }
}
