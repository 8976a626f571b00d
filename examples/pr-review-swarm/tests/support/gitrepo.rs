//! A real git repository built in a temp dir: a base branch and a feature branch with
//! modified, added, renamed (with and without edits), deleted, binary, lock and vendored
//! files. Shared by the light host's git, split and cache tests and the CLI's swarm tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A repository in a temp dir (or in a folder someone else owns).
pub struct Repo {
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Repo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Self { root: dir.path().to_owned(), _dir: Some(dir) };
        repo.init();
        repo
    }

    /// A repository in `root`, a folder the caller owns (e.g. a CLI test's workspace).
    pub fn at(root: &Path) -> Self {
        let repo = Self { root: root.to_owned(), _dir: None };
        repo.init();
        repo
    }

    fn init(&self) {
        let repo = self;
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "test@example.invalid"]);
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Runs git; panics with its stderr when it fails.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        full
    }

    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }
}

/// `n` numbered lines of Rust-looking text, `plant` lines (1-based) carrying a marker.
pub fn numbered(n: usize, tag: &str, plant: &[usize]) -> String {
    let mut out = String::new();
    for i in 1..=n {
        if plant.contains(&i) {
            out.push_str(&format!("    let planted = unsafe_call(\"PLANTED-{tag}-{i}\");\n"));
        } else {
            out.push_str(&format!("    let {tag}_{i} = compute({i}); // line {i}\n"));
        }
    }
    out
}
