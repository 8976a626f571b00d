//! The meta-LLM helper: one-shot model calls that features make on their own behalf
//! (summaries for context compaction, critic verdicts, ...), outside any agent run.
//!
//! It resolves a model spec through the runtime's registry (so it fails over like every other
//! call), and offers a text call and a typed call (`generate_typed`: strict schema, fence
//! stripping, one corrective retry). It keeps no state between calls.

use std::sync::Arc;

use executus_llm::{Message, Model, Registry, Request, Typed, Usage, generate_typed};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// Why a meta call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The model spec does not resolve.
    #[error("meta-LLM model spec {spec:?}: {source}")]
    Spec {
        /// The spec.
        spec: String,
        /// Why.
        source: executus_llm::ConfigError,
    },
    /// The model call (or decoding its typed answer) failed.
    #[error(transparent)]
    Model(#[from] executus_llm::Error),
}

/// One-shot calls through a registry.
#[derive(Clone)]
pub struct MetaLlm {
    model: Arc<dyn Model>,
    spec: String,
}

impl std::fmt::Debug for MetaLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaLlm").field("spec", &self.spec).finish()
    }
}

impl MetaLlm {
    /// A helper calling `spec` (a tier or chain) through `registry`.
    ///
    /// # Errors
    /// [`MetaError::Spec`] if the spec does not resolve.
    pub fn new(registry: &Registry, spec: &str) -> Result<Self, MetaError> {
        let model =
            registry.parse(spec).map_err(|source| MetaError::Spec { spec: spec.to_owned(), source })?;
        Ok(Self { model, spec: spec.to_owned() })
    }

    /// A helper over an existing model.
    pub fn from_model(model: Arc<dyn Model>) -> Self {
        let spec = model.target().to_string();
        Self { model, spec }
    }

    /// The model spec.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// One text call: `system` + the given messages.
    ///
    /// # Errors
    /// [`MetaError::Model`] when the call fails.
    pub async fn text(&self, system: &str, messages: Vec<Message>) -> Result<(String, Usage), MetaError> {
        let request = Request {
            system: (!system.is_empty()).then(|| system.to_owned()),
            messages,
            ..Request::default()
        };
        let response = self.model.generate(request).await?;
        Ok((response.text(), response.usage))
    }

    /// One typed call: the answer is decoded into `T` (strict JSON schema, one corrective
    /// retry on a decode failure).
    ///
    /// # Errors
    /// [`MetaError::Model`] when the call or the decoding fails.
    pub async fn typed<T: JsonSchema + DeserializeOwned>(
        &self,
        system: &str,
        messages: Vec<Message>,
    ) -> Result<Typed<T>, MetaError> {
        let request = Request {
            system: (!system.is_empty()).then(|| system.to_owned()),
            messages,
            ..Request::default()
        };
        Ok(generate_typed::<T>(self.model.as_ref(), request).await?)
    }
}
