//! M1: normalising a 12-megapixel phone-size JPEG for Anthropic (decode, scale into 1568 px
//! and 1.15 megapixels, re-encode within 3.75 MB), time and peak memory, beside the floor any
//! conversion pays: decoding the same JPEG alone. And what a later step of the same run pays
//! for the same image: a cache hit.
//!
//! Each measurement runs in a fresh worker process (`media-worker`), so the peak resident
//! set (VmHWM) belongs to that operation alone: the worker reads the file, records VmRSS as the
//! baseline, runs the operation once, reads VmHWM, then repeats the operation for the timing.

use std::time::Instant;

use anyhow::{Context, bail, ensure};
use executus::llm::media::{MediaCache, MediaKind, inspect, normalise_image, normalise_request};
use executus::llm::{Message, Part, Request, Role};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::Opts;
use crate::report::{Row, Section};
use crate::stats::percentile;
use crate::sys;

/// What a worker reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerResult {
    /// RSS with the input file loaded, before the operation (bytes).
    pub baseline: u64,
    /// VmHWM right after the first operation (bytes).
    pub peak: u64,
    /// Wall time of each repetition, in milliseconds (the first included).
    pub times_ms: Vec<f64>,
    /// What came out: `WxH FORMAT BYTES`.
    pub output: String,
}

/// A `w` x `h` photo-like JPEG (smooth gradients, texture, noise) at quality 90.
fn photo(w: u32, h: u32) -> anyhow::Result<Vec<u8>> {
    let mut state = 0x2c1b_3c6d_u32;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 0x0f) as u8;
        let wave = ((f64::from(x) / 37.0).sin() * 40.0 + (f64::from(y) / 53.0).cos() * 40.0) as i32;
        let c = |base: u32| (i32::try_from(base % 256).unwrap_or(0) + wave).clamp(0, 255) as u8 ^ n;
        image::Rgb([c(x / 16), c(y / 12), c((x + y) / 28)])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img)?;
    Ok(out)
}

/// Runs M1.
///
/// # Errors
/// A worker that fails or reports nonsense.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    // 12 megapixels; the smoke run uses 3 (still over Anthropic's limits, so converted).
    let (reps, w, h) = if opts.smoke { (2, 2000, 1500) } else { (7, 4000, 3000) };
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("photo.jpg");
    let bytes = photo(w, h)?;
    std::fs::write(&input, &bytes)?;
    let info = inspect(&bytes).context("the generated photo inspects")?;
    let exe = std::env::current_exe()?;
    let mut results = Vec::new();
    for mode in ["normalise", "decode", "cached"] {
        let out = Command::new(&exe)
            .args(["media-worker", "--mode", mode, "--input"])
            .arg(&input)
            .args(["--reps", &reps.to_string()])
            .kill_on_drop(true)
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        let result: WorkerResult = serde_json::from_str(line).with_context(|| {
            format!("media worker ({mode}) exited {}: {}", out.status, String::from_utf8_lossy(&out.stderr))
        })?;
        results.push(result);
    }
    let mb = |b: u64| b as f64 / 1e6;
    let median = |r: &WorkerResult| percentile(&r.times_ms, 50.0);
    let range = |r: &WorkerResult| {
        let min = r.times_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.times_ms.iter().copied().fold(0.0, f64::max);
        format!("{min:.0}..{max:.0}")
    };
    let (norm, decode, cached) = (&results[0], &results[1], &results[2]);
    let mut section = Section::new(
        "M1",
        format!(
            "a {}x{} JPEG ({:.1} MB) normalised for Anthropic, in fresh worker processes",
            info.width,
            info.height,
            mb(bytes.len() as u64)
        ),
    );
    section.rows.push(Row::info(
        "normalise for Anthropic: time, median of runs",
        format!("{:.0} ms [{}] -> {}", median(norm), range(norm), norm.output),
        format!("decode alone: {:.0} ms [{}]", median(decode), range(decode)),
    ));
    section.rows.push(Row::info(
        "  peak memory above the loaded file",
        format!("{:.1} MB (VmHWM {:.1} MB)", mb(norm.peak.saturating_sub(norm.baseline)), mb(norm.peak)),
        format!(
            "decode alone: {:.1} MB; the decoded bitmap is {:.1} MB (RGB, 3 bytes per pixel)",
            mb(decode.peak.saturating_sub(decode.baseline)),
            mb(info.pixels() * 3)
        ),
    ));
    section.rows.push(Row::info(
        "a later step resending it (cache hit, whole request)",
        format!(
            "{:.2} ms median [{}]",
            median(cached),
            cached.times_ms.iter().skip(1).map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ")
        ),
        format!("first step (miss): {:.0} ms", cached.times_ms.first().copied().unwrap_or(0.0)),
    ));
    section.notes.push(format!(
        "**Method.** The bench generates a {w}x{h} photo-like JPEG (gradients, texture and noise, \
         quality 90; {size:.1} MB, about what a 12-megapixel phone camera writes) and hands its path \
         to three fresh worker processes (`executus-bench media-worker`). Each reads the file, \
         records VmRSS as its baseline, runs its operation once and reads VmHWM (the peak resident \
         set, which only this operation can have raised), then repeats the operation for {reps} \
         timings in all. `normalise`: `executus_llm::media::normalise_image` with Anthropic's row \
         of the limits table (1568 px long side, 1.15 megapixels, 3.75 MB): decode under the \
         decoding limits, scale (each output pixel the average of its source area), encode JPEG at \
         quality 85 (lower only if over the budget). `decode`: the `image` crate's JPEG decoder alone on the same bytes, the floor \
         of any conversion. `cached`: the request a run sends at every step, through \
         `normalise_request` and one `MediaCache` — the first call converts, every later one \
         hashes the image and serves the cached copy. Built with the bench's release profile.",
        w = info.width,
        h = info.height,
        size = mb(bytes.len() as u64),
    ));
    Ok(section)
}

/// `media-worker --mode normalise|decode|cached --input PATH --reps N`: prints a
/// [`WorkerResult`].
///
/// # Errors
/// A bad argument, an unreadable file, or an operation that fails.
pub fn worker(rest: &[String]) -> anyhow::Result<()> {
    let get = |name: &str| rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).cloned();
    let mode = get("--mode").context("--mode")?;
    let input = get("--input").context("--input")?;
    let reps: usize = get("--reps").and_then(|v| v.parse().ok()).context("--reps")?;
    let bytes = std::fs::read(&input)?;
    let limits = MediaKind::Anthropic.limits();
    let request = Request {
        messages: vec![Message {
            role: Role::User,
            parts: vec![
                Part::Text { text: "what is in this photo?".into() },
                Part::Image { mime: "image/jpeg".into(), data: bytes.clone() },
            ],
        }],
        ..Request::default()
    };
    let cache = MediaCache::default();
    let baseline = sys::rss().0;
    let mut peak = 0;
    let mut times_ms = Vec::with_capacity(reps);
    let mut output = String::new();
    for rep in 0..reps {
        let started = Instant::now();
        match mode.as_str() {
            "normalise" => {
                let out = normalise_image(&bytes, "image/jpeg", &limits)?;
                ensure!(out.converted(), "a 12 MP photo must be converted for Anthropic");
                ensure!(
                    out.data.len() <= limits.max_image_bytes
                        && out.width.max(out.height) <= limits.max_long_side
                );
                output = format!(
                    "{}x{} {} {:.0} kB",
                    out.width,
                    out.height,
                    out.format,
                    out.data.len() as f64 / 1e3
                );
            }
            "decode" => {
                let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)?;
                output = format!("{}x{}", img.width(), img.height());
            }
            "cached" => {
                let out = normalise_request(&request, &limits, &cache)?;
                ensure!(matches!(out, std::borrow::Cow::Owned(_)), "the image must be replaced");
                output = format!("{} hits", cache.stats().hits);
            }
            other => bail!("unknown mode {other:?}"),
        }
        times_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if rep == 0 {
            peak = sys::rss().1;
        }
    }
    println!("{}", serde_json::to_string(&WorkerResult { baseline, peak, times_ms, output })?);
    Ok(())
}
