//! Where the test peers live (installed by `scripts/peer-mcp.sh` into `target/peers/`), and
//! what happens when they are missing: under `CI=true` the test fails; elsewhere it prints a
//! loud notice (stderr and the terminal) and returns without asserting.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use executus_mcp::ServerConfig;

/// The installed peers.
pub struct Peers {
    root: PathBuf,
}

impl Peers {
    /// The peers, or `None` (after the notice) when they are not installed.
    pub fn get() -> Option<Self> {
        let peers = Self { root: workspace().join("target/peers") };
        let needed = [peers.everything(), peers.filesystem(), peers.python()];
        if let Some(absent) = needed.iter().find(|p| !p.exists()) {
            missing(&format!("{} is not installed (run scripts/peer-mcp.sh)", absent.display()));
            return None;
        }
        Some(peers)
    }

    /// `mcp-server-everything`.
    pub fn everything(&self) -> PathBuf {
        self.root.join("mcp/node_modules/.bin/mcp-server-everything")
    }

    /// `mcp-server-filesystem`.
    pub fn filesystem(&self) -> PathBuf {
        self.root.join("mcp/node_modules/.bin/mcp-server-filesystem")
    }

    /// The venv's Python (with the `mcp` package).
    pub fn python(&self) -> PathBuf {
        self.root.join("venv/bin/python")
    }

    /// The Python test server, started in `mode` (`serve`, `hang`, `crash-at-start`).
    pub fn py_server(&self, name: &str, mode: &str) -> ServerConfig {
        let script = self.py_script();
        let python = self.python();
        ServerConfig::stdio(name, python.to_string_lossy(), &[script.to_string_lossy().as_ref(), mode])
    }

    /// The Python test server's script.
    pub fn py_script(&self) -> PathBuf {
        workspace().join("batteries/mcp/tests/support/py_server.py")
    }

    /// rotel's agent binary (the OTLP receiver), inside the venv.
    pub fn rotel(&self) -> Option<PathBuf> {
        let lib = self.root.join("venv/lib");
        std::fs::read_dir(lib)
            .ok()?
            .flatten()
            .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
            .find(|p| p.exists())
    }

    /// server-everything over stdio.
    pub fn everything_stdio(&self, name: &str) -> ServerConfig {
        ServerConfig::stdio(name, self.everything().to_string_lossy(), &["stdio"])
    }
}

/// The workspace root (the folder holding Cargo.lock), from the crate being tested.
pub fn workspace() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("Cargo.lock").exists() {
        if !dir.pop() {
            return Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        }
    }
    dir
}

/// A peer is missing: fail under CI, say so loudly elsewhere.
pub fn missing(what: &str) {
    let line = format!("SKIPPED (peer missing): {what}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{line}; CI=true requires the MCP peers");
    }
    eprintln!("{line}");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "executus-mcp tests: {line}");
    }
}

/// The peers, or return from the test (after the notice).
#[macro_export]
macro_rules! peers {
    () => {
        match $crate::peers::Peers::get() {
            Some(p) => p,
            None => return,
        }
    };
}

/// Sets `PIDFILE` for a stdio server: it appends its process id there at start.
pub fn with_pidfile(mut config: ServerConfig, file: &Path) -> ServerConfig {
    if let executus_mcp::Transport::Stdio { env, .. } = &mut config.transport {
        env.push(("PIDFILE".into(), executus::llm::Secret::new(file.to_string_lossy())));
    }
    config
}

/// The process ids written to `file` so far.
pub fn pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// True while process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (a hang guard, not a timing claim) until `pid` has gone; false if it never does.
pub async fn gone(pid: u32) -> bool {
    for _ in 0..600 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}
