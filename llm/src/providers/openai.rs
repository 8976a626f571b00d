//! (in progress: the wire client is being written; this skeleton fixes the constructor only)

use std::sync::Arc;

use async_trait::async_trait;

use super::ProviderConfig;
use crate::error::{Error, Result};
use crate::model::{Model, Provider};
use crate::stream::EventStream;
use crate::types::{Request, Response};

/// The provider (skeleton).
#[derive(Debug, Clone)]
pub struct OpenAi {
    config: Arc<ProviderConfig>,
}

impl OpenAi {
    /// A provider from its config.
    pub fn new(config: ProviderConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(SkeletonModel {
            provider: self.config.name.clone(),
            id: id.to_owned(),
        })
    }
}

#[derive(Debug)]
struct SkeletonModel {
    provider: String,
    id: String,
}

#[async_trait]
impl Model for SkeletonModel {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    async fn generate(&self, _request: Request) -> Result<Response> {
        Err(Error::unsupported(&self.provider, &self.id, "skeleton"))
    }

    async fn stream(&self, _request: Request) -> Result<EventStream> {
        Err(Error::unsupported(&self.provider, &self.id, "skeleton"))
    }
}
