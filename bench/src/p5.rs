//! P5: `executus-run` cold start — from the moment the bench spawns the process to the first
//! byte of its first request arriving at an in-process mock (one clock: both instants are
//! taken in the bench process). The figure includes fork/exec, the dynamic loader,
//! configuration loading, opening the SQLite store, building the runtime and connecting.
//!
//! The binary is the `executus-run` beside the bench's own executable (same profile); when it
//! is missing or older than the workspace's sources, it is built first with the cargo that
//! runs the bench.
//!
//! What it does not measure: the run after its first byte (the mock answers at once), or a
//! page cache emptied between samples (a warm-up run precedes the measured ones).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::Opts;
use crate::mock::{Mock, MockConfig};
use crate::p1::peers::{repo_root, tail};
use crate::report::{Row, Section, Verdict};
use crate::stats::{ms, percentile};

/// The target: median start to first byte.
const TARGET_MS: f64 = 10.0;
/// The agent the configuration defines.
const AGENT: &str = "bench";
/// One sample may take this long before it counts as hung.
const SAMPLE_LIMIT: Duration = Duration::from_secs(60);

/// Runs P5.
///
/// # Errors
/// If the binary cannot be built, a sample does not exit 0, or never reaches the mock.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let n = if opts.smoke { 3 } else { 30 };
    let mut section =
        Section::new("P5", "`executus-run` process start to the first byte sent to the mock".to_owned());
    let bin = binary().await?;
    // No tools: the mock answers with text at once, so each process makes one call and exits.
    let mock = Mock::start(MockConfig { tool_steps: 0, ..MockConfig::default() }).await?;
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("executus.db").display());
    let config = write_config(dir.path(), "executus.toml", &mock.url(), &store)?;

    // The first start creates the store file (and warms the page cache); not in the figures.
    let cold = sample(&bin, &config, &mock).await.context("the first (warm-up) run")?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        samples.push(ms(sample(&bin, &config, &mock).await.with_context(|| format!("start {}", i + 1))?));
    }
    let (p50, p90, min) = (percentile(&samples, 50.0), percentile(&samples, 90.0), percentile(&samples, 0.0));
    section.rows.push(Row::new(
        "start to first byte, median",
        format!("{p50:.2} ms"),
        format!("{n} starts; the warm-up start (creates the store file): {:.2} ms", ms(cold)),
        format!("<= {TARGET_MS} ms"),
        Verdict::of(p50 <= TARGET_MS),
    ));
    section.rows.push(Row::info("  p90 / min", format!("{p90:.2} / {min:.2} ms"), format!("{n} starts")));
    section.notes.push(format!(
        "**Method.** `executus-run` is spawned {n} times, one after the other (after one warm-up start \
         that creates the store and runs its migrations), as \
         `executus-run --config <tmp>/executus.toml run --agent {AGENT} --input ...`, with a clean \
         environment (PATH only) and stdin, stdout and stderr not a terminal. The configuration \
         defines one provider of kind `openai` at an in-process mock, the SQLite store in a temp \
         dir, and one agent without tools; the mock answers at once and each process exits 0 \
         after its one call (checked, with its output). The time is from just before the spawn \
         to the first byte of the request read by the mock, both instants on the bench's \
         monotonic clock, so it includes fork/exec and the dynamic loader as well as the \
         binary's own start (configuration, store, runtime, connection). Built with the bench's \
         own profile{}.",
        if cfg!(debug_assertions) { " (a debug build: the figure means little)" } else { " (release)" },
    ));
    Ok(section)
}

/// Writes an `executus-run` configuration named `name` in `dir`: provider `mock` (kind
/// `openai`) at `url`, the store at `store`, agent [`AGENT`] on the mock, no tools.
///
/// # Errors
/// The write error.
pub fn write_config(dir: &Path, name: &str, url: &str, store: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, config_text(url, store)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The configuration [`write_config`] writes.
pub fn config_text(url: &str, store: &str) -> String {
    format!(
        "[providers.mock]\nkind = \"openai\"\nbase_url = {}\n\n\
         [runtime]\nstreaming = false\n\n\
         [store]\nurl = {}\n\n\
         [agents.{AGENT}]\nsystem = \"You answer.\"\nmodel = \"mock/bench-model\"\nmax_steps = 2\n",
        toml_string(url),
        toml_string(store)
    )
}

/// `text` as a TOML basic string: quotes, backslashes and control characters escaped.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One start: spawn, wait for the exit (it must be 0), and the time from the spawn to the
/// mock's first byte.
async fn sample(bin: &Path, config: &Path, mock: &Mock) -> anyhow::Result<Duration> {
    mock.reset();
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--config")
        .arg(config)
        .args(["run", "--agent", AGENT, "--input", "Say something."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let t0 = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawning {}", bin.display()))?;
    let out = tokio::time::timeout(SAMPLE_LIMIT, child.wait_with_output())
        .await
        .with_context(|| format!("executus-run did not exit within {SAMPLE_LIMIT:?}"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.starts_with("done after") {
        bail!(
            "executus-run exited {} with stdout {:?}; stderr:\n{}",
            out.status,
            tail(&stdout, 5),
            tail(&String::from_utf8_lossy(&out.stderr), 15)
        );
    }
    let first = mock.first_byte_at().context("executus-run exited 0 without sending a byte to the mock")?;
    Ok(first.saturating_duration_since(t0))
}

/// The `executus-run` beside the bench's executable, built first (with the bench's profile)
/// when missing or older than the workspace's sources.
///
/// # Errors
/// If the bench's own path is unknown or the build fails.
pub(crate) async fn binary() -> anyhow::Result<PathBuf> {
    built_binary("executus-run", "executus-run").await
}

/// Binary `name` of `package` beside the bench's executable, built first (with the bench's
/// profile) when missing or older than the workspace's sources.
///
/// # Errors
/// If the bench's own path is unknown or the build fails.
pub async fn built_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let dir = exe.parent().context("the bench binary has no folder")?;
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let root = repo_root();
    let newest = newest_source(&root);
    if built.is_some_and(|b| b >= newest) {
        return Ok(bin);
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).args(["build", "-p", package, "--bin", name]);
    // `cargo run` gave the bench its package's variables; build scripts that watch them
    // (ring's watch CARGO_PKG_NAME, CARGO_MANIFEST_DIR...) would otherwise see a change and
    // rebuild here, then again at the next plain cargo command.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_by_cargo_run) {
            cmd.env_remove(&key);
        }
    }
    if release {
        cmd.arg("--release");
    }
    eprintln!("building {name} ({})...", if release { "release" } else { "debug" });
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .with_context(|| format!("running cargo to build {name}"))?;
    if !out.status.success() {
        bail!("building {name} failed:\n{}", tail(&String::from_utf8_lossy(&out.stderr), 20));
    }
    if !bin.is_file() {
        bail!("cargo built {name} but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// Whether `cargo run` sets the variable `key` for the binary it runs (its package's).
fn set_by_cargo_run(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// The newest modification time among the files `executus-run` may be built from: every
/// file of the workspace (sources, manifests, the lock file, migrations, embedded data)
/// except Markdown, hidden entries, the bench's own folder, test folders and build output.
/// Cargo decides what is really stale; this only decides whether to ask it.
fn newest_source(root: &Path) -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                if !(name.starts_with('.') || matches!(name.as_ref(), "target" | "tests" | "bench" | "fuzz"))
                {
                    walk(&path, newest);
                }
            } else if path.extension().is_none_or(|e| e != "md")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            {
                *newest = (*newest).max(modified);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(root, &mut newest);
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_toml_with_the_provider_store_and_agent() {
        let text = config_text("http://127.0.0.1:1234/v1", "sqlite:///tmp/a \"b\"/executus.db");
        assert!(
            text.contains("[providers.mock]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1234/v1\"")
        );
        assert!(text.contains("url = \"sqlite:///tmp/a \\\"b\\\"/executus.db\""), "{text}");
        assert!(text.contains("[agents.bench]") && text.contains("model = \"mock/bench-model\""));
    }

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string(r"C:\a"), r#""C:\\a""#);
        assert_eq!(toml_string("a\"b"), r#""a\"b""#);
        assert_eq!(toml_string("a\nb\u{7f}"), r#""a\u000Ab\u007F""#);
        assert_eq!(toml_string("héllo"), "\"héllo\"");
    }

    #[test]
    fn the_package_variables_of_cargo_run_are_recognised_and_user_settings_kept() {
        for key in ["CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "CARGO_MANIFEST_DIR", "CARGO_BIN_NAME"] {
            assert!(set_by_cargo_run(key), "{key}");
        }
        for key in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "RUSTFLAGS", "PATH"] {
            assert!(!set_by_cargo_run(key), "{key}");
        }
    }

    #[test]
    fn the_newest_source_is_after_the_epoch_and_ignores_the_bench() {
        let root = repo_root();
        let newest = newest_source(&root);
        assert!(newest > SystemTime::UNIX_EPOCH, "the workspace has sources");
        let core = std::fs::metadata(root.join("core/src/lib.rs")).and_then(|m| m.modified()).ok();
        assert!(core.is_some_and(|c| newest >= c));
    }
}
