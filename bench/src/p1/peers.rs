//! The contenders that run in processes of their own: the rig agent (a separate Cargo
//! workspace, `bench/rig`, built here on first use) and the OpenAI Agents SDK (a virtualenv
//! made by `bench/python/run.sh`), plus the cold-start measurement of any command.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::process::Command;

use crate::mock::{Mock, MockConfig};

/// What a peer process prints as its last line.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerResult {
    /// Runs attempted.
    pub runs: usize,
    /// Runs that ended with the expected answer.
    pub ok: usize,
    /// Wall time of the measured batch.
    pub secs: f64,
    /// CPU time of the peer process over the batch.
    pub cpu_s: f64,
    /// The first error, if any run failed.
    pub error: Option<String>,
}

impl PeerResult {
    /// Expected completions per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.secs.max(1e-9)
    }
}

/// The repository root (the bench crate's parent folder).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Builds the rig reference (release) and returns its binary. The build log goes to
/// `target/rig-ref/build.log`.
///
/// # Errors
/// The tail of the build log when the build fails.
pub async fn build_rig() -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let target = root.join("target/rig-ref");
    let manifest = root.join("bench/rig/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--release").arg("--manifest-path").arg(&manifest).arg("--target-dir").arg(&target);
    if root.join("bench/rig/Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    let out = cmd.stdin(Stdio::null()).output().await.context("running cargo for the rig reference")?;
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(target.join("build.log"), &log);
    if !out.status.success() {
        bail!("building bench/rig failed:\n{}", tail(&log, 15));
    }
    Ok(target.join("release/executus-bench-rig"))
}

/// Makes (once) the Agents SDK virtualenv and returns its python.
///
/// # Errors
/// The tail of the setup's output when it fails.
pub async fn setup_python() -> anyhow::Result<PathBuf> {
    let script = repo_root().join("bench/python/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("setup")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running bench/python/run.sh setup")?;
    if !out.status.success() {
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        bail!("bench/python/run.sh setup failed:\n{}", tail(&log, 15));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or("").to_owned();
    Ok(PathBuf::from(path))
}

/// The command that runs the Python workload with `python`.
pub fn python_command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("bench/python/agents_bench.py"));
    cmd
}

/// Runs a peer command with the workload arguments and parses its JSON line.
///
/// # Errors
/// If the process fails or prints no result.
pub async fn run_peer(
    mut cmd: Command,
    url: &str,
    runs: usize,
    concurrency: usize,
    warmup: usize,
    key_base: u64,
) -> anyhow::Result<PeerResult> {
    cmd.arg("--url")
        .arg(url)
        .arg("--runs")
        .arg(runs.to_string())
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("--warmup")
        .arg(warmup.to_string())
        .arg("--key-base")
        .arg(key_base.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out =
        tokio::time::timeout(Duration::from_secs(900), cmd.output()).await.context("peer timed out")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    match serde_json::from_str::<PeerResult>(line) {
        Ok(r) if out.status.success() => Ok(r),
        _ => bail!(
            "peer exited {} without a result:\n{}",
            out.status,
            tail(&format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)), 15)
        ),
    }
}

/// Process start to the first request byte at a fresh in-process mock, `samples` times:
/// `make(url)` builds the command (one run of the agent).
///
/// # Errors
/// If a sample's process fails or never reaches the mock.
pub async fn cold_start<F>(samples: usize, make: F) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(&str) -> Command,
{
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mock = Mock::start(MockConfig::default()).await?;
        let mut cmd = make(&mock.url());
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        let t0 = Instant::now();
        let child = cmd.spawn().context("spawning a cold-start sample")?;
        let done = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .context("cold-start sample timed out")??;
        if !done.status.success() {
            bail!(
                "cold-start sample exited {}: {}",
                done.status,
                tail(&String::from_utf8_lossy(&done.stderr), 10)
            );
        }
        let first = mock.first_byte_at().context("the cold-start sample never reached the mock")?;
        out.push(first.saturating_duration_since(t0));
    }
    Ok(out)
}
