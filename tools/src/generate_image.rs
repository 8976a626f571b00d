//! `generate_image`: makes images from a prompt with an image chain and writes them as files
//! under one folder the host configured.
//!
//! Opt-in twice: a host registers the tool only when it has an output folder and an image
//! model (the CLI: an `[image]` section), and an agent gets it only by naming it in its tool
//! allowlist.
//!
//! Guarantees:
//! - files are written only directly inside the configured folder, under names this tool
//!   makes (`image-<run id>-<8 random hex>-<n>.<ext>`, the extension from the image's own
//!   bytes); the arguments hold no path or name at all, and unknown arguments are refused, so
//!   a model cannot choose where anything goes;
//! - a file is created new (`O_EXCL`): nothing existing is ever overwritten or followed
//!   through a symlink;
//! - the result names each file (path, MIME type, size in pixels and bytes) so the model can
//!   refer to it; a failed generation is an error result carrying the chain's classified
//!   error (no key: errors are scrubbed where they are made);
//! - a cancelled run stops waiting for the image.
//!
//! What it does not do: edit images, clean the folder up, or return the image bytes to the
//! model (they would bloat the transcript; the file is the reference).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use executus::llm::{GeneratedImage, ImageModel, ImageRequest, ImageSize};
use executus::tool::{Tool, ToolContext, ToolError, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{parse_args, schema_of};

/// The tool's name.
pub const NAME: &str = "generate_image";

/// Most images one call may ask for.
pub const MAX_PER_CALL: u32 = 4;

/// Arguments of `generate_image`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateImageArgs {
    /// What the image should show: subject, style, composition.
    pub prompt: String,
    /// Size as WIDTHxHEIGHT, e.g. `1024x1024` (the configured default when absent).
    #[serde(default)]
    pub size: Option<String>,
    /// How many images, 1 to 4 (default 1).
    #[serde(default)]
    pub n: Option<u32>,
}

/// Why the tool could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The output folder could not be created or resolved.
    #[error("image output folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The `generate_image` tool.
#[derive(Clone)]
pub struct GenerateImage {
    model: Arc<dyn ImageModel>,
    folder: PathBuf,
    default_size: Option<ImageSize>,
}

impl fmt::Debug for GenerateImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateImage")
            .field("model", &self.model.model_id())
            .field("folder", &self.folder)
            .field("default_size", &self.default_size)
            .finish()
    }
}

impl GenerateImage {
    /// The tool drawing with `model` into `folder` (created if missing, then resolved to an
    /// absolute path once, so a later change of working directory does not move it).
    ///
    /// # Errors
    /// [`SetupError::Folder`] when the folder cannot be created or resolved.
    pub fn new(model: Arc<dyn ImageModel>, folder: impl AsRef<Path>) -> Result<Self, SetupError> {
        let path = folder.as_ref();
        let folder_error = |source| SetupError::Folder { path: path.to_path_buf(), source };
        std::fs::create_dir_all(path).map_err(folder_error)?;
        let folder = std::fs::canonicalize(path).map_err(folder_error)?;
        Ok(Self { model, folder, default_size: None })
    }

    /// Sets the size used when the model gives none.
    #[must_use]
    pub fn with_default_size(mut self, size: ImageSize) -> Self {
        self.default_size = Some(size);
        self
    }

    /// The folder files go to.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    fn request(&self, args: GenerateImageArgs) -> Result<ImageRequest, ToolError> {
        let invalid = |message: String| ToolError::InvalidArgs { tool: NAME.to_owned(), message };
        if args.prompt.trim().is_empty() {
            return Err(invalid("`prompt` is empty".to_owned()));
        }
        let n = args.n.unwrap_or(1);
        if !(1..=MAX_PER_CALL).contains(&n) {
            return Err(invalid(format!("`n` must be 1 to {MAX_PER_CALL}, got {n}")));
        }
        let size = match args.size.as_deref().map(str::parse::<ImageSize>) {
            None => self.default_size,
            Some(Ok(size)) => Some(size),
            Some(Err(e)) => return Err(invalid(e.to_string())),
        };
        Ok(ImageRequest { n, size, ..ImageRequest::new(args.prompt) })
    }

    /// Writes one image under a fresh name; the path written.
    async fn write(&self, run: &str, index: usize, image: &GeneratedImage) -> Result<PathBuf, ToolError> {
        let name =
            format!("image-{run}-{:08x}-{}.{}", fastrand::u32(..), index + 1, image.format.extension());
        let path = self.folder.join(name);
        let data = image.data.clone();
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&target)?;
            file.write_all(&data)?;
            file.sync_all()
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(path),
            Ok(Err(e)) => Err(ToolError::failed(NAME, format!("could not write {}: {e}", path.display()))),
            Err(e) => Err(ToolError::failed(NAME, format!("the file writer stopped: {e}"))),
        }
    }
}

#[async_trait]
impl Tool for GenerateImage {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Generates images from a text prompt and saves them as files; returns each file's path, \
         type and size. Describe the subject, style and composition in `prompt`."
    }

    fn parameters(&self) -> Value {
        schema_of::<GenerateImageArgs>()
    }

    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let request = self.request(parse_args(NAME, args)?)?;
        let answer = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(ToolError::Cancelled { tool: NAME.to_owned() }),
            answer = self.model.generate_image(&request) => answer,
        }
        .map_err(|e| ToolError::failed(NAME, e.to_string()))?;
        let run = ctx.run_id.to_string();
        let mut files = Vec::with_capacity(answer.images.len());
        for (index, image) in answer.images.iter().enumerate() {
            let path = self.write(&run, index, image).await?;
            let mut file = json!({
                "path": path.display().to_string(),
                "mime": image.mime(),
                "width": image.width,
                "height": image.height,
                "bytes": image.data.len(),
            });
            if let (Some(revised), Value::Object(map)) = (&image.revised_prompt, &mut file) {
                map.insert("revised_prompt".into(), json!(revised));
            }
            files.push(file);
        }
        tracing::info!(
            tool = NAME,
            files = files.len(),
            provider = answer.provider.as_str(),
            model = answer.model.as_str(),
            "images written"
        );
        let mut out = json!({ "files": files, "model": format!("{}/{}", answer.provider, answer.model) });
        if let (Some(text), Value::Object(map)) = (&answer.text, &mut out) {
            map.insert("text".into(), json!(text));
        }
        Ok(ToolOutput::from(out))
    }
}
