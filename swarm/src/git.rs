//! The diff of a branch from git, the way CI needs it: [`diff_from_git`] runs
//! `git diff --merge-base BASE HEAD` (what the pull request adds on top of the point where it
//! left its base), and [`ci_base`] picks BASE from the CI's environment when none is given:
//! `origin/$GITHUB_BASE_REF` on GitHub Actions, `$CI_MERGE_REQUEST_DIFF_BASE_SHA` on GitLab
//! merge-request pipelines, else `origin/main`.
//!
//! The diff is made with options that do not depend on the user's git configuration: no
//! colour, no external diff or textconv, `a/` and `b/` prefixes, renames detected, three lines
//! of context, paths not octal-escaped. The merge base and the head commit are returned too
//! (GitLab's inline comments need them).
//!
//! What it does not do: fetch. A shallow clone without the base gives an error that says how
//! to fetch enough history.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the base came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// The ref or commit to diff against.
    pub reference: String,
    /// `GITHUB_BASE_REF`, `CI_MERGE_REQUEST_DIFF_BASE_SHA`, `default` or `given`.
    pub source: &'static str,
}

/// The base a CI run reviews against (see the module docs); `env` reads a variable.
pub fn ci_base(env: &dyn Fn(&str) -> Option<String>) -> Base {
    let set = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(branch) = set("GITHUB_BASE_REF") {
        return Base { reference: format!("origin/{branch}"), source: "GITHUB_BASE_REF" };
    }
    if let Some(sha) = set("CI_MERGE_REQUEST_DIFF_BASE_SHA") {
        return Base { reference: sha, source: "CI_MERGE_REQUEST_DIFF_BASE_SHA" };
    }
    Base { reference: "origin/main".to_owned(), source: "default" }
}

/// A diff computed by git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDiff {
    /// The base as given.
    pub base: Base,
    /// The merge base of the base and `HEAD` (full SHA).
    pub merge_base: String,
    /// The commit the base ref points at (full SHA).
    pub base_sha: String,
    /// `HEAD` (full SHA).
    pub head: String,
    /// The unified diff.
    pub diff: String,
}

/// Why git could not give the diff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// git could not be started.
    #[error("cannot run git in {}: {source}", repo.display())]
    Spawn {
        /// The repository folder.
        repo: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// git failed.
    #[error("`git {command}` failed in {}: {stderr}{hint}", repo.display())]
    Failed {
        /// The repository folder.
        repo: PathBuf,
        /// The arguments.
        command: String,
        /// git's message.
        stderr: String,
        /// What to do about it, or empty.
        hint: String,
    },
    /// The diff is larger than a review reads.
    #[error("the diff against {base} is {bytes} bytes; the limit is {max} bytes")]
    TooLarge {
        /// The base.
        base: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

fn git(repo: &Path, args: &[&str]) -> Result<String, GitError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "core.quotepath=false", "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_EXTERNAL_DIFF")
        .output()
        .map_err(|source| GitError::Spawn { repo: repo.to_owned(), source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let hint = if stderr.contains("unknown revision")
            || stderr.contains("bad revision")
            || stderr.contains("no merge base")
            || stderr.contains("Not a valid object name")
            || stderr.contains("Needed a single revision")
        {
            " (is the base fetched? check out with enough history: actions/checkout with \
             `fetch-depth: 0`, or GIT_DEPTH: \"0\" on GitLab)"
                .to_owned()
        } else {
            String::new()
        };
        return Err(GitError::Failed { repo: repo.to_owned(), command: args.join(" "), stderr, hint });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `git diff --merge-base BASE HEAD` in `repo` (see the module docs), at most `max_bytes`.
///
/// # Errors
/// [`GitError`] naming the command and git's message (with a hint for a missing base), or
/// [`GitError::TooLarge`].
pub fn diff_from_git(repo: &Path, base: &Base, max_bytes: usize) -> Result<GitDiff, GitError> {
    let reference = base.reference.as_str();
    if reference.starts_with('-') {
        return Err(GitError::Failed {
            repo: repo.to_owned(),
            command: format!("rev-parse {reference}"),
            stderr: "a base cannot start with `-`".into(),
            hint: String::new(),
        });
    }
    let rev = |spec: &str| -> Result<String, GitError> {
        Ok(git(repo, &["rev-parse", "--verify", "--end-of-options", &format!("{spec}^{{commit}}")])?
            .trim()
            .to_owned())
    };
    let base_sha = rev(reference)?;
    let head = rev("HEAD")?;
    let merge_base = git(repo, &["merge-base", &base_sha, &head])?.trim().to_owned();
    let diff = git(
        repo,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--find-renames",
            "--unified=3",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            "--merge-base",
            &base_sha,
            &head,
        ],
    )?;
    if diff.len() > max_bytes {
        return Err(GitError::TooLarge { base: reference.to_owned(), bytes: diff.len(), max: max_bytes });
    }
    Ok(GitDiff { base: base.clone(), merge_base, base_sha, head, diff })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ci_base_follows_the_platform() {
        let github = |name: &str| (name == "GITHUB_BASE_REF").then(|| "release/1.x".to_owned());
        assert_eq!(
            ci_base(&github),
            Base { reference: "origin/release/1.x".into(), source: "GITHUB_BASE_REF" }
        );
        let gitlab = |name: &str| (name == "CI_MERGE_REQUEST_DIFF_BASE_SHA").then(|| "abc123".to_owned());
        assert_eq!(ci_base(&gitlab).reference, "abc123");
        let blank = |_: &str| Some("  ".to_owned());
        assert_eq!(ci_base(&blank), Base { reference: "origin/main".into(), source: "default" });
    }
}
