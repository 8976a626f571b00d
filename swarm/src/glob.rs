//! [`Glob`]: the path patterns of `exclude` (`PR_REVIEW_EXCLUDE`, `[swarm] exclude`), and
//! [`DEFAULT_EXCLUDES`]: lock files, generated and vendored code.
//!
//! Semantics (a small subset of `.gitignore`'s): a pattern without `/` matches a file name at
//! any depth (`Cargo.lock`, `*.min.js`); a pattern with `/` matches the whole path from the
//! repository root (`docs/*.md`); a trailing `/` means "everything under" (`vendor/`).
//! `*` matches within one path segment, `?` one character, `[abc]`, `[a-z]` and `[!x]` one
//! character of a class, and `**` any number of whole segments (`**/generated/**`).
//!
//! What it does not do: negation (`!pattern`), escapes, or case folding.

use std::fmt;

/// Files a review skips unless told otherwise: lock files, minified and generated code,
/// vendored and third-party trees.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "composer.lock",
    "Gemfile.lock",
    "go.sum",
    "flake.lock",
    "*.min.js",
    "*.min.css",
    "*.map",
    "*.pb.go",
    "*_pb2.py",
    "*_pb2_grpc.py",
    "*.generated.*",
    "*.g.dart",
    "**/generated/**",
    "**/vendor/**",
    "**/node_modules/**",
    "**/third_party/**",
];

/// A compiled pattern (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    anchored: bool,
    segments: Vec<String>,
}

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("glob {pattern:?}: {reason}")]
pub struct GlobError {
    /// The pattern.
    pub pattern: String,
    /// What is wrong.
    pub reason: String,
}

impl Glob {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// [`GlobError`] for an empty pattern, an unclosed `[`, or `**` inside a segment.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let err = |reason: &str| GlobError { pattern: pattern.to_owned(), reason: reason.to_owned() };
        let text = pattern.trim();
        if text.is_empty() {
            return Err(err("empty pattern"));
        }
        let mut body = text.strip_prefix('/').unwrap_or(text).to_owned();
        if body.ends_with('/') {
            body.push_str("**");
        }
        let anchored = text.starts_with('/') || body.trim_end_matches("/**").contains('/');
        let segments: Vec<String> = body.split('/').map(str::to_owned).collect();
        for segment in &segments {
            if segment.is_empty() {
                return Err(err("empty path segment (`//`)"));
            }
            if segment.contains("**") && segment != "**" {
                return Err(err("`**` must be a whole segment (`a/**/b`)"));
            }
            let mut open = false;
            for c in segment.chars() {
                match c {
                    '[' if !open => open = true,
                    ']' if open => open = false,
                    _ => {}
                }
            }
            if open {
                return Err(err("unclosed `[`"));
            }
        }
        Ok(Self { text: text.to_owned(), anchored, segments })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when `path` (relative, `/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if self.anchored {
            match_segments(&self.segments, &parts)
        } else {
            // Unanchored: the pattern matches the path's tail (a file name, or `name/**`).
            (0..parts.len()).any(|start| match_segments(&self.segments, &parts[start..]))
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Compiles every pattern of `patterns`.
///
/// # Errors
/// The first pattern that does not compile.
pub fn compile_all<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<Glob>, GlobError> {
    patterns.iter().map(|p| Glob::new(p.as_ref())).collect()
}

/// The first of `globs` that matches `path`.
pub fn first_match<'a>(globs: &'a [Glob], path: &str) -> Option<&'a Glob> {
    globs.iter().find(|g| g.matches(path))
}

fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, tail)) => {
                match_segment(first.as_bytes(), segment.as_bytes()) && match_segments(rest, tail)
            }
            None => false,
        },
    }
}

/// `*`, `?` and classes within one segment (bytes: patterns and paths compare as UTF-8, and
/// `?` matches one byte of a multi-byte character only together with `*`).
fn match_segment(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += utf8_len(text[t]);
                    continue;
                }
                b'[' => {
                    if let Some((true, next)) = match_class(&pattern[p..], text[t]) {
                        p += next;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}

/// Whether `c` is in the class at the start of `pattern`, and the class's length.
fn match_class(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(1), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        if pattern[i] == b']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            if pattern[i] <= c && c <= pattern[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if pattern[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).unwrap_or_else(|e| panic!("{e}")).matches(path)
    }

    #[test]
    fn names_match_at_any_depth_and_paths_from_the_root() {
        assert!(m("Cargo.lock", "Cargo.lock"));
        assert!(m("Cargo.lock", "crates/x/Cargo.lock"));
        assert!(!m("Cargo.lock", "Cargo.lock.bak"));
        assert!(m("*.min.js", "web/app.min.js"));
        assert!(!m("*.min.js", "web/app.js"));
        assert!(m("docs/*.md", "docs/a.md"));
        assert!(!m("docs/*.md", "x/docs/a.md"), "a pattern with a slash is anchored");
        assert!(!m("docs/*.md", "docs/sub/a.md"), "`*` stays within a segment");
        assert!(m("/build.rs", "build.rs"));
        assert!(!m("/build.rs", "src/build.rs"));
    }

    #[test]
    fn double_stars_and_trailing_slashes() {
        assert!(m("**/vendor/**", "vendor/lib.c"));
        assert!(m("**/vendor/**", "third/vendor/x/y.c"));
        assert!(!m("**/vendor/**", "vendored.c"));
        assert!(m("vendor/", "vendor/a/b.c"));
        assert!(m("src/**/gen.rs", "src/gen.rs"));
        assert!(m("src/**/gen.rs", "src/a/b/gen.rs"));
        assert!(m("*.generated.*", "api/client.generated.ts"));
    }

    #[test]
    fn classes_and_question_marks() {
        assert!(m("file[0-9].txt", "file7.txt"));
        assert!(!m("file[!0-9].txt", "file7.txt"));
        assert!(m("file[!0-9].txt", "fileX.txt"));
        assert!(m("?.rs", "é.rs"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_pattern() {
        for bad in ["", "  ", "a//b", "a**b", "[abc"] {
            let e = Glob::new(bad).unwrap_err();
            assert_eq!(e.pattern, bad);
        }
        assert!(compile_all(DEFAULT_EXCLUDES).is_ok());
    }

    #[test]
    fn the_defaults_skip_lock_files_generated_and_vendored_code() {
        let globs = compile_all(DEFAULT_EXCLUDES).unwrap();
        for path in
            ["Cargo.lock", "web/package-lock.json", "go.sum", "vendor/github.com/x/y.go", "a/b.min.js"]
        {
            assert!(first_match(&globs, path).is_some(), "{path}");
        }
        for path in ["src/main.rs", "README.md", "src/vendoring.rs", "Cargo.toml"] {
            assert!(first_match(&globs, path).is_none(), "{path}");
        }
    }
}
