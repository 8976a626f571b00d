//! [`ImageChain`]: the failover chain over [`ImageModel`]s, on the chat chain's loop.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::{ImageModel, ImageRequest, ImageResponse};
use crate::chain::{Answer, ChainObserver, ChainOptions, Failover, Link, Named, Prepared};
use crate::error::{Error, Result};
use crate::health::HealthTracker;

/// A failover chain of image models; itself an [`ImageModel`]. The rules are the chat
/// chain's ([`crate::chain`]): benched targets skipped, transient errors retried with backoff
/// and `Retry-After`, then a health failure and the next target; not-found and unsupported
/// advance without penalty; permanent errors end the call (unless
/// [`ChainOptions::advance_on_permanent`]); exhaustion lists every attempt and skip.
#[derive(Clone)]
pub struct ImageChain {
    core: Failover,
    targets: Vec<Link<dyn ImageModel>>,
}

impl fmt::Debug for ImageChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageChain")
            .field("spec", &self.core.spec)
            .field("targets", &self.targets().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Named for dyn ImageModel {
    fn provider(&self) -> &str {
        ImageModel::provider(self)
    }

    fn model_id(&self) -> &str {
        ImageModel::model_id(self)
    }
}

impl Answer for ImageResponse {
    fn record(&self, span: &tracing::Span) {
        span.record("gen_ai.response.model", self.model.as_str());
        span.record("gen_ai.usage.input_tokens", self.usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", self.usage.output_tokens);
    }
}

impl ImageChain {
    /// A chain named `spec` over `targets`, in order, sharing `health` (keys are
    /// `provider/model`, as for chat). Default options, no observer.
    pub fn new(
        spec: impl Into<String>,
        targets: impl IntoIterator<Item = Arc<dyn ImageModel>>,
        health: HealthTracker,
    ) -> Self {
        Self {
            core: Failover {
                spec: Arc::from(spec.into()),
                health,
                options: ChainOptions::default(),
                observer: crate::Chain::no_observer(),
            },
            targets: targets.into_iter().map(Link::new).collect(),
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: ChainOptions) -> Self {
        self.core.options = options;
        self
    }

    /// Sets the observer.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn ChainObserver>) -> Self {
        self.core.observer = observer;
        self
    }

    /// The targets, as `provider/model`, in order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| &*t.key)
    }

    /// The shared health tracker.
    pub fn health(&self) -> &HealthTracker {
        &self.core.health
    }
}

fn attempt<'a>(
    model: &'a (dyn ImageModel + 'static),
    request: &'a &ImageRequest,
) -> futures::future::BoxFuture<'a, Result<ImageResponse>> {
    model.generate_image(request)
}

#[async_trait]
impl ImageModel for ImageChain {
    fn provider(&self) -> &str {
        "chain"
    }

    fn model_id(&self) -> &str {
        &self.core.spec
    }

    /// # Errors
    /// A permanent error before any call when the request is invalid (empty prompt, `n` out
    /// of range); otherwise as the chat chain.
    async fn generate_image(&self, request: &ImageRequest) -> Result<ImageResponse> {
        if let Some(problem) = request.problem() {
            return Err(Error::permanent("chain", &self.core.spec, problem));
        }
        let prepare = |_: &(dyn ImageModel + 'static)| Prepared::Call(request);
        self.core.run(&self.targets, "image_generation", prepare, attempt).await
    }
}
