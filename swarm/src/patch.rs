//! A unified diff as data: [`parse_patch`] reads `git diff` output (or a plain `diff -u`) into
//! one [`FilePatch`] per file, each with its [`Hunk`]s, so that a review can be split per file
//! and per hunk group ([`crate::plan`]) and each piece written back as a valid diff with its
//! real line numbers ([`FilePatch::render`]).
//!
//! Guarantees: hunk bodies are read by the counts in their `@@ -a,b +c,d @@` headers (a
//! removed line that starts with `--` is not a file header); a hunk split with
//! [`Hunk::split_lines`] gives pieces whose headers carry the exact old and new line numbers of
//! their first line, so a model counting from a piece's header lands on the real line of the
//! new file. Renames, deletions, new files, mode-only changes and binary files are recognised
//! from git's extended headers.
//!
//! What it does not do: apply patches, or read combined (`diff --cc`) diffs, whose files are
//! skipped. Anything that is not a diff is ignored, never an error.

use std::fmt::Write as _;

/// One file of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePatch {
    /// The path before the change; `None` for a new file.
    pub old_path: Option<String>,
    /// The path after the change; `None` for a deleted file.
    pub new_path: Option<String>,
    /// git said `Binary files ... differ` or carried a binary patch.
    pub binary: bool,
    /// git's rename similarity, when the file was renamed (`similarity index N%`).
    pub rename_similarity: Option<u8>,
    /// The hunks, in order.
    pub hunks: Vec<Hunk>,
}

/// One hunk: its header's numbers and its lines (each with its `' '`, `'+'`, `'-'` or `'\\'`
/// prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hunk {
    /// First old line (`-a`).
    pub old_start: u32,
    /// Old lines covered (`,b`).
    pub old_count: u32,
    /// First new line (`+c`).
    pub new_start: u32,
    /// New lines covered (`,d`).
    pub new_count: u32,
    /// The text after the closing `@@` (git's function context), without the leading space.
    pub section: String,
    /// The body lines, prefix included, without line endings.
    pub lines: Vec<String>,
}

impl FilePatch {
    /// The path a review names the file by: the new path, else (deleted) the old one.
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or("")
    }

    /// True for a file the change deletes.
    pub fn is_deleted(&self) -> bool {
        self.new_path.is_none() && self.old_path.is_some()
    }

    /// True for a file the change adds.
    pub fn is_added(&self) -> bool {
        self.old_path.is_none() && self.new_path.is_some()
    }

    /// True when the old and new paths differ.
    pub fn is_renamed(&self) -> bool {
        matches!((&self.old_path, &self.new_path), (Some(a), Some(b)) if a != b)
    }

    /// Lines added plus lines removed.
    pub fn changed_lines(&self) -> usize {
        self.hunks.iter().map(Hunk::changed_lines).sum()
    }

    /// This file's header and `hunks` as a unified diff (`diff --git`, `---`, `+++`, then the
    /// hunks), paths quoted the way git quotes them when they need it.
    pub fn render(&self, hunks: &[Hunk]) -> String {
        let old = self.old_path.as_deref().map(|p| quote(&format!("a/{p}")));
        let new = self.new_path.as_deref().map(|p| quote(&format!("b/{p}")));
        let mut out = String::new();
        let a = old.clone().unwrap_or_else(|| quote(&format!("a/{}", self.path())));
        let b = new.clone().unwrap_or_else(|| quote(&format!("b/{}", self.path())));
        let _ = writeln!(out, "diff --git {a} {b}");
        if self.is_added() {
            out.push_str("new file mode 100644\n");
        } else if self.is_deleted() {
            out.push_str("deleted file mode 100644\n");
        } else if self.is_renamed() {
            let _ = writeln!(out, "rename from {}", quote(self.old_path.as_deref().unwrap_or("")));
            let _ = writeln!(out, "rename to {}", quote(self.new_path.as_deref().unwrap_or("")));
        }
        let _ = writeln!(out, "--- {}", old.as_deref().unwrap_or("/dev/null"));
        let _ = writeln!(out, "+++ {}", new.as_deref().unwrap_or("/dev/null"));
        for hunk in hunks {
            hunk.render_into(&mut out);
        }
        out
    }
}

impl Hunk {
    /// Lines added plus lines removed.
    pub fn changed_lines(&self) -> usize {
        self.lines.iter().filter(|l| l.starts_with('+') || l.starts_with('-')).count()
    }

    /// The `@@ -a,b +c,d @@ section` header.
    pub fn header(&self) -> String {
        let mut header =
            format!("@@ -{},{} +{},{} @@", self.old_start, self.old_count, self.new_start, self.new_count);
        if !self.section.is_empty() {
            header.push(' ');
            header.push_str(&self.section);
        }
        header
    }

    /// Appends the header and the body, each line ending with `\n`.
    pub fn render_into(&self, out: &mut String) {
        out.push_str(&self.header());
        out.push('\n');
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
    }

    /// The bytes [`Hunk::render_into`] writes.
    pub fn rendered_len(&self) -> usize {
        self.header().len() + 1 + self.lines.iter().map(|l| l.len() + 1).sum::<usize>()
    }

    /// The last new-version line this hunk shows (its first when it shows none).
    pub fn new_end(&self) -> u32 {
        (self.new_start + self.new_count).saturating_sub(1).max(self.new_start)
    }

    /// Splits this hunk into consecutive pieces whose rendered size is at most `max_bytes`,
    /// cutting only between lines; each piece's header has the exact old and new numbers of
    /// its first line. A `\ No newline` marker stays with the line it follows. A single line
    /// longer than `max_bytes` becomes a piece of its own (the caller decides what to do with
    /// a piece that is still too large).
    pub fn split_lines(&self, max_bytes: usize) -> Vec<Hunk> {
        if self.rendered_len() <= max_bytes {
            return vec![self.clone()];
        }
        let mut pieces = Vec::new();
        let (mut old_line, mut new_line) = (self.old_start, self.new_start);
        let mut current = self.piece_at(old_line, new_line);
        let mut size = self.header_bound(old_line, new_line);
        let mut i = 0;
        while i < self.lines.len() {
            // A line and the `\` marker that may follow it travel together.
            let mut group = vec![self.lines[i].clone()];
            if self.lines.get(i + 1).is_some_and(|l| l.starts_with('\\')) {
                group.push(self.lines[i + 1].clone());
            }
            let group_len: usize = group.iter().map(|l| l.len() + 1).sum();
            if !current.lines.is_empty() && size + group_len > max_bytes {
                pieces.push(current);
                current = self.piece_at(old_line, new_line);
                size = self.header_bound(old_line, new_line);
            }
            let first = group[0].as_bytes().first().copied();
            match first {
                Some(b'+') => {
                    current.new_count += 1;
                    new_line += 1;
                }
                Some(b'-') => {
                    current.old_count += 1;
                    old_line += 1;
                }
                _ => {
                    current.old_count += 1;
                    current.new_count += 1;
                    old_line += 1;
                    new_line += 1;
                }
            }
            i += group.len();
            size += group_len;
            current.lines.extend(group);
        }
        if !current.lines.is_empty() {
            pieces.push(current);
        }
        // Pieces that start with no old (or new) line keep git's convention: the start is the
        // line before, and a zero count.
        for piece in &mut pieces {
            if piece.old_count == 0 {
                piece.old_start = piece.old_start.saturating_sub(1);
            }
            if piece.new_count == 0 {
                piece.new_start = piece.new_start.saturating_sub(1);
            }
        }
        pieces
    }

    /// The most bytes the header (and its newline) of a piece starting at these lines can
    /// take: its counts are at most this hunk's.
    fn header_bound(&self, old_line: u32, new_line: u32) -> usize {
        Hunk { old_count: self.old_count, new_count: self.new_count, ..self.piece_at(old_line, new_line) }
            .header()
            .len()
            + 1
    }

    fn piece_at(&self, old_line: u32, new_line: u32) -> Hunk {
        Hunk {
            old_start: old_line,
            old_count: 0,
            new_start: new_line,
            new_count: 0,
            section: self.section.clone(),
            lines: Vec::new(),
        }
    }
}

/// Reads `diff` into its files (see the module docs); never fails.
pub fn parse_patch(diff: &str) -> Vec<FilePatch> {
    let mut files: Vec<FilePatch> = Vec::new();
    let mut current: Option<FilePatch> = None;
    let mut lines = diff.lines().peekable();
    while let Some(raw) = lines.next() {
        if let Some(rest) = raw.strip_prefix("diff --git ") {
            files.extend(current.take());
            let mut file = FilePatch::default();
            if let Some((a, b)) = split_git_paths(rest) {
                file.old_path = Some(a);
                file.new_path = Some(b);
            }
            current = Some(file);
            continue;
        }
        if raw.starts_with("diff --cc ") || raw.starts_with("diff --combined ") {
            files.extend(current.take());
            continue;
        }
        if let Some(rest) = raw.strip_prefix("--- ")
            && lines.peek().is_some_and(|next| next.starts_with("+++ "))
        {
            let plus = lines.next().unwrap_or_default();
            // A plain `diff -u` has no `diff --git` line: the `---` starts the file.
            let file = match current.take() {
                Some(file) if file.hunks.is_empty() => file,
                other => {
                    files.extend(other);
                    FilePatch::default()
                }
            };
            let mut file = file;
            file.old_path = header_path(rest, "a/");
            file.new_path = header_path(&plus[4..], "b/");
            current = Some(file);
            continue;
        }
        let Some(file) = current.as_mut() else { continue };
        if let Some(rest) = raw.strip_prefix("@@ ") {
            let Some(mut hunk) = parse_header(rest) else { continue };
            let (mut old_left, mut new_left) = (hunk.old_count, hunk.new_count);
            while old_left > 0 || new_left > 0 {
                let Some(line) = lines.peek() else { break };
                match line.as_bytes().first() {
                    Some(b'+') => new_left -= 1,
                    Some(b'-') => old_left -= 1,
                    Some(b' ') | None => {
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                    Some(b'\\') => {}
                    Some(_) => break,
                }
                let line = lines.next().unwrap_or_default();
                // An empty line is a context line whose leading space was stripped.
                hunk.lines.push(if line.is_empty() { " ".to_owned() } else { line.to_owned() });
            }
            if lines.peek().is_some_and(|l| l.starts_with('\\')) {
                hunk.lines.push(lines.next().unwrap_or_default().to_owned());
            }
            file.hunks.push(hunk);
        } else if raw.starts_with("new file mode") {
            file.old_path = None;
        } else if raw.starts_with("deleted file mode") {
            file.new_path = None;
        } else if let Some(path) = raw.strip_prefix("rename from ") {
            file.old_path = Some(unquote(path));
        } else if let Some(path) = raw.strip_prefix("rename to ") {
            file.new_path = Some(unquote(path));
        } else if let Some(n) = raw.strip_prefix("similarity index ") {
            file.rename_similarity = n.trim_end_matches('%').parse().ok();
        } else if raw.starts_with("Binary files ") || raw == "GIT binary patch" {
            file.binary = true;
        }
    }
    files.extend(current);
    files.retain(|f| f.old_path.is_some() || f.new_path.is_some());
    files
}

/// `a/X b/Y` of a `diff --git` line. Unambiguous when quoted, or when both sides name the
/// same path (then the halves have equal length); otherwise the first ` b/` splits them.
fn split_git_paths(rest: &str) -> Option<(String, String)> {
    if rest.starts_with('"') {
        let end = closing_quote(rest)?;
        let a = unquote(&rest[..=end]);
        let b = unquote(rest[end + 1..].trim_start());
        return Some((a.strip_prefix("a/")?.to_owned(), b.strip_prefix("b/")?.to_owned()));
    }
    if rest.len() % 2 == 1 {
        let half = (rest.len() - 1) / 2;
        if rest.is_char_boundary(half)
            && rest.is_char_boundary(half + 1)
            && rest.as_bytes()[half] == b' '
            && rest[..half].strip_prefix("a/").is_some()
            && rest[half + 1..].strip_prefix("b/") == rest[..half].strip_prefix("a/")
        {
            let path = rest[2..half].to_owned();
            return Some((path.clone(), path));
        }
    }
    let (a, b) = rest.split_once(" b/")?;
    let b = if b.starts_with('"') { unquote(b) } else { b.to_owned() };
    Some((a.strip_prefix("a/")?.to_owned(), b))
}

fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The path of a `---`/`+++` header: the timestamp after a tab removed, quotes undone, the
/// `a/`/`b/` prefix removed; `None` for `/dev/null`.
fn header_path(header: &str, prefix: &str) -> Option<String> {
    let path = if header.starts_with('"') {
        unquote(header.split('\t').next().unwrap_or(header).trim_end())
    } else {
        header.split('\t').next().unwrap_or(header).trim_end().to_owned()
    };
    if path == "/dev/null" || path.is_empty() {
        return None;
    }
    Some(path.strip_prefix(prefix).map(str::to_owned).unwrap_or(path))
}

/// Undoes git's C-style quoting (`"a\tb\303\251"`); text without quotes is returned as is.
pub fn unquote(text: &str) -> String {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return text.to_owned();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let raw = inner.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' || i + 1 == raw.len() {
            bytes.push(raw[i]);
            i += 1;
            continue;
        }
        let next = raw[i + 1];
        let simple = match next {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'v' => Some(0x0b),
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            _ => None,
        };
        if let Some(byte) = simple {
            bytes.push(byte);
            i += 2;
        } else if i + 4 <= raw.len() && raw[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = raw[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            bytes.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            bytes.push(b'\\');
            i += 1;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Quotes a path the way git does when it holds a quote, a backslash or a control character.
pub fn quote(path: &str) -> String {
    if !path.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return path.to_owned();
    }
    let mut out = String::from("\"");
    for c in path.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:03o}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A hunk with the numbers of `-a[,b] +c[,d] @@ section` and no lines.
fn parse_header(rest: &str) -> Option<Hunk> {
    let (ranges, section) = rest.split_once("@@")?;
    let mut parts = ranges.split_whitespace();
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let range = |r: &str| -> Option<(u32, u32)> {
        match r.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (old_start, old_count) = range(old)?;
    let (new_start, new_count) = range(new)?;
    Some(Hunk {
        old_start,
        old_count,
        new_start,
        new_count,
        section: section.strip_prefix(' ').unwrap_or(section).to_owned(),
        lines: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
