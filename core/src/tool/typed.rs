//! [`typed`]: a tool from an args struct and an async function; the schema is derived. The
//! arguments must be a JSON object (`null` counts as `{}`); anything else is `InvalidArgs`.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Tool, ToolContext, ToolError, ToolOutput};

/// A tool built by [`typed`].
pub struct TypedTool<A, F> {
    name: String,
    description: String,
    schema: Value,
    idempotent: bool,
    read_only: bool,
    f: F,
    _args: PhantomData<fn(A)>,
}

impl<A, F> TypedTool<A, F> {
    /// Marks the tool idempotent (re-run on resume if it was in flight at a crash).
    #[must_use]
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Marks the tool read-only (allowed by read-only policy profiles).
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Shares the tool.
    pub fn arc(self) -> Arc<dyn Tool>
    where
        Self: Tool + 'static,
    {
        Arc::new(self)
    }
}

/// Builds a tool from an args type and an async function.
///
/// ```
/// use executus::tool::{typed, ToolError};
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Add { a: f64, b: f64 }
/// let tool = typed("add", "Adds two numbers", |_ctx, args: Add| async move {
///     Ok::<_, ToolError>((args.a + args.b).to_string())
/// }).read_only().arc();
/// assert_eq!(tool.name(), "add");
/// ```
pub fn typed<A, F, Fut, O>(name: impl Into<String>, description: impl Into<String>, f: F) -> TypedTool<A, F>
where
    A: JsonSchema + DeserializeOwned + Send + 'static,
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    O: Into<ToolOutput>,
{
    let schema = super::schema_of::<A>();
    TypedTool {
        name: name.into(),
        description: description.into(),
        schema,
        idempotent: false,
        read_only: false,
        f,
        _args: PhantomData,
    }
}

#[async_trait]
impl<A, F, Fut, O> Tool for TypedTool<A, F>
where
    A: JsonSchema + DeserializeOwned + Send + 'static,
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    O: Into<ToolOutput>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.schema.clone()
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let args: A = super::decode_args(&self.name, args)?;
        (self.f)(ctx, args).await.map(Into::into)
    }
}
