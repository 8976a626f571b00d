//! The mock server in a child process (the bench binary's own `mock` sub-command), so that
//! the memory and CPU figures of the bench process are the client's alone. Counters are read
//! over HTTP (`GET /stats`); the child stops when its stdin closes or the handle is dropped.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{MockConfig, Snapshot};

/// A mock server running in a child process.
pub struct ChildMock {
    child: Child,
    addr: SocketAddr,
    client: reqwest::Client,
}

/// The address a bench child process (the mock, the proxy floor) announces as its first
/// line on stdout: `listening ADDR`. `who` names it in errors.
///
/// # Errors
/// No stdout, no line within 10 s, or a line that is not an address.
pub async fn announced_addr(child: &mut Child, who: &str) -> anyhow::Result<SocketAddr> {
    let stdout = child.stdout.take().with_context(|| format!("{who} has no stdout"))?;
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), BufReader::new(stdout).read_line(&mut line))
        .await
        .with_context(|| format!("{who} did not report its address within 10 s"))??;
    let Some(addr) = line.trim().strip_prefix("listening ").filter(|_| read > 0) else {
        bail!("{who} said {line:?} instead of its address");
    };
    addr.parse().with_context(|| format!("{who} address {addr:?}"))
}

impl ChildMock {
    /// Starts `executus-bench mock ...` and waits for its address.
    ///
    /// # Errors
    /// If the child cannot start or does not report an address.
    pub async fn spawn(config: &MockConfig) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        Self::spawn_exe(&exe, config).await
    }

    /// Starts `EXE mock ...` (`exe`: the bench binary) and waits for its address.
    ///
    /// # Errors
    /// If the child cannot start or does not report an address.
    pub async fn spawn_exe(exe: &std::path::Path, config: &MockConfig) -> anyhow::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.arg("mock")
            .arg("--latency-ms")
            .arg(config.latency.as_millis().to_string())
            .arg("--tool-steps")
            .arg(config.tool_steps.to_string());
        if config.record_gaps {
            cmd.arg("--record-gaps");
        }
        if let Some(key) = config.capture_key {
            cmd.arg("--capture-key").arg(key.to_string());
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the mock child process")?;
        let addr = announced_addr(&mut child, "mock child").await?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        Ok(Self { child, addr, client })
    }

    /// The OpenAI base URL.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The counters now.
    ///
    /// # Errors
    /// If the child does not answer.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let url = format!("http://{}/stats", self.addr);
        Ok(self.client.get(url).send().await?.error_for_status()?.json().await?)
    }

    /// Zeroes the counters.
    ///
    /// # Errors
    /// If the child does not answer.
    pub async fn reset(&self) -> anyhow::Result<()> {
        let url = format!("http://{}/reset", self.addr);
        self.client.post(url).send().await?.error_for_status()?;
        Ok(())
    }
}
