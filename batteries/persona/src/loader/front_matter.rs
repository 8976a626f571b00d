//! Splitting a persona file into its front matter and body, and mapping byte offsets back to
//! 1-based line and column numbers of the file.

/// A file cut into its parts. Offsets are byte offsets into the text that was split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    /// `+++` or `---`.
    pub delimiter: &'static str,
    /// The TOML between the delimiter lines.
    pub toml: &'a str,
    /// Where `toml` starts in the file.
    pub toml_offset: usize,
    /// Everything after the closing delimiter line.
    pub body: &'a str,
}

/// Why a file could not be split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// The first line is not a delimiter.
    NoFrontMatter,
    /// The opening delimiter has no matching closing line.
    Unclosed {
        /// The opening delimiter.
        delimiter: &'static str,
    },
}

/// The delimiter a line is, if it is one (trailing whitespace and `\r` allowed).
fn delimiter(line: &str) -> Option<&'static str> {
    match line.trim_end() {
        "+++" => Some("+++"),
        "---" => Some("---"),
        _ => None,
    }
}

/// Cuts `text` (without a byte-order mark) into front matter and body. The first line must
/// be `+++` or `---`; the front matter ends at the next line that is the same delimiter.
pub(crate) fn split(text: &str) -> Result<Split<'_>, SplitError> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    let delimiter = self::delimiter(first).ok_or(SplitError::NoFrontMatter)?;
    let toml_offset = first.len();
    let mut pos = toml_offset;
    for line in lines {
        if self::delimiter(line) == Some(delimiter) {
            return Ok(Split {
                delimiter,
                toml: &text[toml_offset..pos],
                toml_offset,
                body: &text[pos + line.len()..],
            });
        }
        pos += line.len();
    }
    Err(SplitError::Unclosed { delimiter })
}

/// The 1-based line and column (in characters) of byte `offset` of `bytes`. Offsets past the
/// end point just after the last byte.
pub(crate) fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_both_delimiters_and_crlf() {
        let text = "+++\nmodel = \"x\"\n+++\nBody\n";
        let s = split(text).unwrap();
        assert_eq!((s.delimiter, s.toml, s.toml_offset, s.body), ("+++", "model = \"x\"\n", 4, "Body\n"));

        let text = "---  \r\na = 1\r\n---\r\n\r\nBody";
        let s = split(text).unwrap();
        assert_eq!((s.delimiter, s.toml, s.body), ("---", "a = 1\r\n", "\r\nBody"));

        // A `---` line does not close a `+++` block (and may appear inside TOML strings).
        let text = "+++\na = \"\"\"\n---\n\"\"\"\n+++\nB";
        assert_eq!(split(text).unwrap().body, "B");
        assert_eq!(split("+++\n+++").unwrap().toml, "");
    }

    #[test]
    fn refuses_missing_and_unclosed_front_matter() {
        assert_eq!(split("model = 1\n"), Err(SplitError::NoFrontMatter));
        assert_eq!(split(""), Err(SplitError::NoFrontMatter));
        assert_eq!(split("\n+++\n+++\n"), Err(SplitError::NoFrontMatter));
        assert_eq!(split("+++\nmodel = 1\n---\n"), Err(SplitError::Unclosed { delimiter: "+++" }));
        assert_eq!(split("---"), Err(SplitError::Unclosed { delimiter: "---" }));
    }

    #[test]
    fn maps_offsets_to_lines_and_columns() {
        let text = "ab\ncdé\nf".as_bytes();
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (1, 3));
        assert_eq!(line_col(text, 3), (2, 1));
        // After the two-byte é: column counts characters.
        assert_eq!(line_col(text, 7), (2, 4));
        assert_eq!(line_col(text, 8), (3, 1));
        assert_eq!(line_col(text, 1_000), (3, 2));
    }
}
