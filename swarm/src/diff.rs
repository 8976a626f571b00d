//! A small unified-diff reader: which files a diff touches and the text of each line of the
//! new version that the diff shows (context and added lines), by 1-based line number.
//!
//! Used to resolve the paths models report (`b/src/x.rs` -> `src/x.rs`), to quote the flagged
//! line in the Markdown, and to fingerprint findings by line content rather than line number
//! (SARIF `partialFingerprints` then survive unrelated edits above the finding).
//!
//! Hunk bodies are read by the counts in their `@@ -a,b +c,d @@` headers, so a removed line
//! that happens to start with `--` is not mistaken for a file header. Anything that is not a
//! diff (or a malformed header) is skipped, never an error: the index is a convenience, the
//! models see the diff text itself.

use std::collections::BTreeMap;

/// The files of a diff and the new-version lines it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffIndex {
    files: BTreeMap<String, BTreeMap<u32, String>>,
    /// New path -> old path, for files the diff renames.
    renamed: BTreeMap<String, String>,
}

struct Hunk {
    file: Option<String>,
    line: u32,
    old_left: u32,
    new_left: u32,
}

impl DiffIndex {
    /// Reads `diff`; never fails (see the module docs).
    pub fn parse(diff: &str) -> Self {
        let mut index = Self::default();
        let mut file: Option<String> = None;
        let mut old: Option<String> = None;
        let mut hunk: Option<Hunk> = None;
        for raw in diff.lines() {
            if let Some(h) = hunk.as_mut().filter(|h| h.old_left > 0 || h.new_left > 0) {
                match raw.as_bytes().first() {
                    Some(b'+') => {
                        index.record(h, &raw[1..]);
                        h.new_left = h.new_left.saturating_sub(1);
                        continue;
                    }
                    Some(b'-') => {
                        h.old_left = h.old_left.saturating_sub(1);
                        continue;
                    }
                    Some(b' ') | None => {
                        // An empty line is a context line whose leading space was stripped.
                        index.record(h, raw.get(1..).unwrap_or(""));
                        h.new_left = h.new_left.saturating_sub(1);
                        h.old_left = h.old_left.saturating_sub(1);
                        continue;
                    }
                    Some(b'\\') => continue,
                    Some(_) => hunk = None,
                }
            }
            if raw.starts_with('\\') {
                continue; // "\ No newline at end of file" after a hunk's last line
            }
            if let Some(rest) = raw.strip_prefix("--- ") {
                old = new_path(rest).map(|p| p.strip_prefix("a/").map(str::to_owned).unwrap_or(p));
            } else if let Some(rest) = raw.strip_prefix("+++ ") {
                file = new_path(rest);
                if let Some(f) = &file {
                    index.files.entry(f.clone()).or_default();
                    if let Some(o) = old.take().filter(|o| o != f) {
                        index.renamed.insert(f.clone(), o);
                    }
                }
                hunk = None;
            } else if raw.starts_with("diff ") {
                file = None;
                hunk = None;
            } else if raw.starts_with("@@") {
                hunk = parse_header(raw).map(|(line, old_left, new_left)| Hunk {
                    file: file.clone(),
                    line,
                    old_left,
                    new_left,
                });
            }
        }
        index
    }

    fn record(&mut self, hunk: &mut Hunk, text: &str) {
        if let Some(file) = &hunk.file {
            self.files.entry(file.clone()).or_default().insert(hunk.line, text.to_owned());
        }
        hunk.line = hunk.line.saturating_add(1);
    }

    /// The files the diff adds or changes (deleted files are not listed), sorted.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The path `file` had before the change, when the diff renames it.
    pub fn old_path(&self, file: &str) -> Option<&str> {
        self.renamed.get(file).map(String::as_str)
    }

    /// True when the diff names no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The text of line `line` of `file` in the new version, when the diff shows it.
    pub fn line(&self, file: &str, line: u32) -> Option<&str> {
        self.files.get(file)?.get(&line).map(String::as_str)
    }

    /// The diff's own spelling of a path a model reported: as is when the diff has it, else
    /// without a leading `./`, `a/` or `b/` when that names a file of the diff, else as is.
    pub fn resolve_path(&self, reported: &str) -> String {
        let reported = reported.trim();
        if self.files.contains_key(reported) {
            return reported.to_owned();
        }
        for prefix in ["./", "b/", "a/", "/"] {
            if let Some(stripped) = reported.strip_prefix(prefix)
                && self.files.contains_key(stripped)
            {
                return stripped.to_owned();
            }
        }
        reported.to_owned()
    }
}

/// The path in a `+++ ` header: `b/` and a trailing tab-separated timestamp removed, quotes
/// removed; `None` for `/dev/null` (a deleted file).
fn new_path(header: &str) -> Option<String> {
    let path = header.split('\t').next().unwrap_or(header).trim();
    let path = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')).unwrap_or(path);
    if path == "/dev/null" || path.is_empty() {
        return None;
    }
    Some(path.strip_prefix("b/").unwrap_or(path).to_owned())
}

/// `(new start, old count, new count)` of `@@ -a[,b] +c[,d] @@ ...`.
fn parse_header(line: &str) -> Option<(u32, u32, u32)> {
    let mut parts = line.split_whitespace().skip(1);
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let count = |range: &str| -> Option<(u32, u32)> {
        match range.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((range.parse().ok()?, 1)),
        }
    };
    let (_, old_count) = count(old)?;
    let (new_start, new_count) = count(new)?;
    Some((new_start, old_count, new_count))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "\
diff --git a/src/lib.rs b/src/lib.rs
index 1..2 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -10,4 +10,4 @@ fn f() {
 keep
--- removed line that looks like a header
+++ added line that looks like a header
 tail

\\ No newline at end of file
diff --git a/gone.rs b/gone.rs
deleted file mode 100644
--- a/gone.rs
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/new file.rs b/new file.rs
--- /dev/null
+++ \"b/new file.rs\"\t2024-01-01 00:00:00
@@ -0,0 +1,2 @@
+one
+two
";

    #[test]
    fn reads_new_lines_by_hunk_counts() {
        let index = DiffIndex::parse(DIFF);
        assert_eq!(index.files().collect::<Vec<_>>(), ["new file.rs", "src/lib.rs"]);
        assert_eq!(index.line("src/lib.rs", 10), Some("keep"));
        assert_eq!(index.line("src/lib.rs", 11), Some("++ added line that looks like a header"));
        assert_eq!(index.line("src/lib.rs", 12), Some("tail"));
        assert_eq!(index.line("src/lib.rs", 13), Some(""), "an empty context line counts");
        assert_eq!(index.line("src/lib.rs", 14), None);
        assert_eq!(index.line("new file.rs", 2), Some("two"));
        assert_eq!(index.line("gone.rs", 1), None);
        assert_eq!(index.old_path("src/lib.rs"), None);
        let renamed = DiffIndex::parse("--- a/old.rs\n+++ b/new.rs\n@@ -1 +1 @@\n-a\n+b\n");
        assert_eq!(renamed.old_path("new.rs"), Some("old.rs"));
    }

    #[test]
    fn resolves_reported_paths() {
        let index = DiffIndex::parse(DIFF);
        assert_eq!(index.resolve_path("b/src/lib.rs"), "src/lib.rs");
        assert_eq!(index.resolve_path("./src/lib.rs"), "src/lib.rs");
        assert_eq!(index.resolve_path(" src/lib.rs "), "src/lib.rs");
        assert_eq!(index.resolve_path("b/other.rs"), "b/other.rs", "unknown paths stay as reported");
    }

    #[test]
    fn garbage_is_an_empty_index() {
        assert!(DiffIndex::parse("not a diff\n@@ nonsense @@\n+++").is_empty());
        assert!(DiffIndex::parse("").is_empty());
    }
}
