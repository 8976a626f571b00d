//! `image --prompt TEXT [--model SPEC] [--out FILE] [--size WxH] [--json]`: one image from the
//! image chain (`--model`, else `[image] model`), written to `--out`, else under
//! `[image] output_dir`, else in the current folder, under a generated name.
//!
//! The file gets the image's bytes as the server sent them; its real format (read from the
//! bytes) is reported, with a warning when `--out`'s extension says otherwise. A generated
//! name never replaces an existing file. SIGINT or SIGTERM abandons the request (exit 130).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use executus_llm::{ImageModel, ImageRequest, ImageSize};
use serde_json::json;

use crate::config::CliConfig;
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// What to draw.
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    /// The image chain: a tier or `provider/model, ...` (default: `[image] model`).
    #[arg(long, value_name = "SPEC")]
    pub model: Option<String>,
    /// The file to write (default: a generated name under `[image] output_dir`, or here).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Size, e.g. `1024x1024` (default: `[image] size`, else the server's).
    #[arg(long, value_name = "WxH")]
    pub size: Option<ImageSize>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// Generates the image and writes it.
///
/// # Errors
/// Configuration problems (no model, a bad spec or size: exit 2); a failed generation or
/// write (exit 1).
pub async fn image(config: &CliConfig, args: ImageArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let settings = &config.host.image;
    let spec = args.model.clone().or_else(|| settings.model.clone()).ok_or_else(|| {
        UsageError("no image model: pass --model SPEC or set `model` in the [image] section".into())
    })?;
    let chain = crate::host::image_chain(config, &spec)?;
    let mut request = ImageRequest::new(args.prompt.clone());
    request.size = args.size.or(settings.size);
    if let Some(problem) = request.problem() {
        return Err(UsageError(format!("--prompt: {problem}")).into());
    }
    let answer = tokio::select! {
        () = interrupt.wait() => {
            eprintln!("executus-run: {}: image request abandoned", interrupt.which().unwrap_or("signal"));
            return Ok(Exit::Interrupted);
        }
        answer = chain.generate_image(&request) => answer,
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Failed);
        }
    };
    let image = answer.images.first().context("the image chain answered without an image")?;
    let path = match &args.out {
        Some(out) => {
            write_to(out, &image.data)?;
            if let Some(ext) = out.extension().and_then(|e| e.to_str())
                && ext.parse::<executus_llm::ImageFormat>().ok() != Some(image.format)
            {
                eprintln!(
                    "warning: {} holds a {} image (its extension says {ext:?})",
                    out.display(),
                    image.format
                );
            }
            out.clone()
        }
        None => {
            let dir = settings.output_dir.clone().unwrap_or_else(|| PathBuf::from("."));
            write_new(&dir, image.format.extension(), &image.data)?
        }
    };
    let target = format!("{}/{}", answer.provider, answer.model);
    if args.json {
        let mut out = json!({
            "path": path.display().to_string(),
            "mime": image.mime(),
            "width": image.width,
            "height": image.height,
            "bytes": image.data.len(),
            "model": target,
        });
        if let (Some(revised), serde_json::Value::Object(map)) = (&image.revised_prompt, &mut out) {
            map.insert("revised_prompt".into(), json!(revised));
        }
        outln!("{out}");
    } else {
        outln!(
            "wrote {} ({} {}x{}, {} bytes) from {target}",
            path.display(),
            image.format,
            image.width,
            image.height,
            image.data.len()
        );
        if let Some(revised) = &image.revised_prompt {
            outln!("revised prompt: {revised}");
        }
    }
    Ok(Exit::Ok)
}

/// Writes `data` to `path` (replacing it: the user named it).
fn write_to(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

/// Writes `data` under a fresh name in `dir`, never replacing a file.
fn write_new(dir: &Path, extension: &str, data: &[u8]) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    for _ in 0..16 {
        let path = dir.join(format!("image-{stamp}-{:04x}.{extension}", fastrand::u16(..)));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(data).with_context(|| format!("writing {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    anyhow::bail!("no free file name in {} after 16 tries", dir.display())
}
