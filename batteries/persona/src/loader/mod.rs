//! The built-in loader: a folder of persona files, each Markdown with TOML front matter.
//!
//! ```text
//! +++
//! description = "Reviews a diff for bugs"
//! model = "smart"
//! tools = ["read_file"]
//! skills = ["code-review"]
//! temperature = 0.2
//!
//! [limits]
//! max_steps = 8
//! timeout = "5m"
//! +++
//! You are a careful code reviewer...
//! ```
//!
//! File format:
//! - The first line is `+++`; the front matter runs to the next `+++` line. `---` delimiters
//!   are accepted too (the same on both ends), but what is between them is still **TOML**,
//!   never YAML. Trailing whitespace on delimiter lines, CRLF line ends and a UTF-8
//!   byte-order mark are accepted.
//! - The front matter holds [`Persona`]'s fields except `system`: `name`, `description`,
//!   `model` (required), `tools`, `skills`, `temperature`, `max_tokens`, `lane`,
//!   `policy_profile` and a `[limits]` table (`max_steps`, `timeout`, `soft_timeout`,
//!   `tool_timeout` as `"90s"`-style strings, `tool_concurrency`, `tool_error_limit`, and a
//!   `[limits.loops]` table: `cycle`, `stagnation`, `unproductive`, `finalize_turns`).
//!   Unknown fields are errors.
//! - The body, with leading and trailing whitespace removed, is the system prompt.
//! - `name` defaults to the file stem (`reviewer.md` is persona `reviewer`).
//!
//! Folder rules: every regular file ending in `.md` directly in the folder is a persona
//! (subfolders, hidden files and other extensions are ignored); files are read in name
//! order; a file larger than [`MAX_FILE_BYTES`] is refused.
//!
//! Errors: [`load_dir`] reads every file and returns **all** problems at once
//! ([`LoadErrors`]), sorted by path, never a partial set of personas. Each [`LoadError`]
//! names the file and, where there is one, the 1-based line (and column) in the file —
//! TOML error positions are mapped from the front matter back to the file. Two files
//! defining the same persona name are an error naming both files.

mod front_matter;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::persona::{Persona, PersonaLimits};
use front_matter::{SplitError, line_col, split};

/// The largest persona file the loader reads (1 MiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One bad persona file (or folder).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The folder or a file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: {size} bytes is more than the {max} a persona file may have", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The file is not UTF-8.
    #[error("{}:{line}:{column}: not valid UTF-8 (byte offset {offset})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line of the first invalid byte.
        line: usize,
        /// Its column (characters before it on that line, plus one).
        column: usize,
        /// Its byte offset in the file.
        offset: usize,
    },
    /// The first line is not a front-matter delimiter.
    #[error("{}:1: no front matter: a persona file starts with a `+++` (or `---`) line", path.display())]
    NoFrontMatter {
        /// The file.
        path: PathBuf,
    },
    /// The front matter is never closed.
    #[error("{}:{line}: front matter opened with `{delimiter}` is never closed by a `{delimiter}` line", path.display())]
    Unclosed {
        /// The file.
        path: PathBuf,
        /// The line of the opening delimiter (1).
        line: usize,
        /// The delimiter.
        delimiter: &'static str,
    },
    /// The front matter is not valid TOML, has an unknown field, or a value of the wrong
    /// type or format.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// Line in the file.
        line: usize,
        /// Column in that line.
        column: usize,
        /// The parser's message (on one line).
        message: String,
    },
    /// A required field is missing from the front matter.
    #[error("{}:{line}: missing required field `{field}` in the front matter", path.display())]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The line of the opening delimiter.
        line: usize,
        /// The field.
        field: &'static str,
    },
    /// A field parsed but failed validation.
    #[error("{}:{line}: invalid `{field}`: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line where the field is set (1 for a name taken from the file name).
        line: usize,
        /// The field, dotted for nested ones.
        field: String,
        /// Why.
        reason: String,
    },
    /// Two files define the same persona name.
    #[error("{}: persona {name:?} is already defined in {}", second.display(), first.display())]
    DuplicateName {
        /// The name.
        name: String,
        /// The file that defined it first (in name order).
        first: PathBuf,
        /// The file that defined it again.
        second: PathBuf,
    },
}

impl LoadError {
    /// The file (or folder) the error is about; for a duplicate name, the second file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::TooLarge { path, .. }
            | Self::NotUtf8 { path, .. }
            | Self::NoFrontMatter { path }
            | Self::Unclosed { path, .. }
            | Self::Toml { path, .. }
            | Self::MissingField { path, .. }
            | Self::Invalid { path, .. } => path,
            Self::DuplicateName { second, .. } => second,
        }
    }

    /// The 1-based line in the file, when the error has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::NotUtf8 { line, .. }
            | Self::Unclosed { line, .. }
            | Self::Toml { line, .. }
            | Self::MissingField { line, .. }
            | Self::Invalid { line, .. } => Some(*line),
            Self::NoFrontMatter { .. } => Some(1),
            Self::Io { .. } | Self::TooLarge { .. } | Self::DuplicateName { .. } => None,
        }
    }
}

/// Every problem found loading a folder (never empty).
#[derive(Debug)]
pub struct LoadErrors {
    dir: PathBuf,
    errors: Vec<LoadError>,
}

impl LoadErrors {
    /// The folder that was loaded.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The problems, sorted by path.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// The problems, owned.
    pub fn into_errors(self) -> Vec<LoadError> {
        self.errors
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} error{} loading personas from {}:",
            if n == 1 { "" } else { "s" },
            self.dir.display()
        )?;
        for error in &self.errors {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors.first().map(|e| e as _)
    }
}

/// A persona and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPersona {
    /// The file.
    pub path: PathBuf,
    /// The persona.
    pub persona: Persona,
}

/// Loads every persona file in `dir` (see the module docs for the rules). Blocking: it reads
/// the file system; from async code use
/// [`PersonaLibrary::load_dir`](crate::PersonaLibrary::load_dir) or
/// [`load_dir_into`](crate::load_dir_into).
///
/// # Errors
/// [`LoadErrors`] with every problem found, if there is any; an empty folder is not an
/// error.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<LoadedPersona>, LoadErrors> {
    let dir = dir.as_ref();
    let fail = |errors| LoadErrors { dir: dir.to_owned(), errors };
    let mut errors = Vec::new();
    let mut paths = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| fail(vec![io_error(dir, source)]))?;
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if !hidden && path.extension().is_some_and(|e| e == "md") && path.is_file() {
                    paths.push(path);
                }
            }
            Err(source) => errors.push(io_error(dir, source)),
        }
    }
    paths.sort();

    let mut loaded: Vec<LoadedPersona> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        match read_file(&path).and_then(|bytes| parse_file(&path, &bytes)) {
            Ok(persona) => {
                if let Some(first) = seen.get(&persona.name) {
                    errors.push(LoadError::DuplicateName {
                        name: persona.name.clone(),
                        first: first.clone(),
                        second: path,
                    });
                } else {
                    seen.insert(persona.name.clone(), path.clone());
                    loaded.push(LoadedPersona { path, persona });
                }
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        errors.sort_by(|a, b| a.path().cmp(b.path()));
        Err(fail(errors))
    }
}

fn io_error(path: &Path, source: io::Error) -> LoadError {
    LoadError::Io { path: path.to_owned(), source }
}

fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let size = std::fs::metadata(path).map_err(|e| io_error(path, e))?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge { path: path.to_owned(), size, max: MAX_FILE_BYTES });
    }
    std::fs::read(path).map_err(|e| io_error(path, e))
}

/// The front matter as written: every field optional and spanned, so validation errors can
/// point at the line that set the field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    name: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    tools: Option<Spanned<Vec<String>>>,
    skills: Option<Spanned<Vec<String>>>,
    // Not spanned: toml 0.8 cannot span a table created implicitly by a sub-table header
    // (`[limits.loops]` alone) or a dotted key; its line is found in the text instead.
    limits: Option<PersonaLimits>,
    temperature: Option<Spanned<f32>>,
    max_tokens: Option<Spanned<u32>>,
    lane: Option<Spanned<String>>,
    policy_profile: Option<Spanned<String>>,
}

/// Spans of the fields set in the front matter, by top-level field name.
#[derive(Default)]
struct Spans(HashMap<&'static str, Range<usize>>);

impl Spans {
    fn take<T>(&mut self, field: &'static str, value: Option<Spanned<T>>) -> Option<T> {
        value.map(|v| {
            self.0.insert(field, v.span());
            v.into_inner()
        })
    }
}

/// Parses one persona file's contents (see the module docs for the format). `path` is used
/// for the default name (its stem) and in errors; nothing is read from it.
///
/// # Errors
/// A [`LoadError`] naming `path` and the line of the problem.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Persona, LoadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let (line, column) = line_col(bytes, offset);
        LoadError::NotUtf8 { path: path.to_owned(), line, column, offset }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parts = split(text).map_err(|e| match e {
        SplitError::NoFrontMatter => LoadError::NoFrontMatter { path: path.to_owned() },
        SplitError::Unclosed { delimiter } => {
            LoadError::Unclosed { path: path.to_owned(), line: 1, delimiter }
        }
    })?;
    let at = |relative: usize| line_col(text.as_bytes(), parts.toml_offset + relative);

    let front: FrontMatter = toml::from_str(parts.toml).map_err(|e| {
        let (line, column) = at(e.span().map_or(0, |s| s.start));
        LoadError::Toml {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    })?;

    let mut spans = Spans::default();
    let model = spans.take("model", front.model).ok_or_else(|| LoadError::MissingField {
        path: path.to_owned(),
        line: 1,
        field: "model",
    })?;
    let name = match spans.take("name", front.name) {
        Some(name) => name,
        None => path.file_stem().and_then(|s| s.to_str()).map(str::to_owned).ok_or_else(|| {
            LoadError::Invalid {
                path: path.to_owned(),
                line: 1,
                field: "name".into(),
                reason: "the file name is not UTF-8; set `name` in the front matter".into(),
            }
        })?,
    };
    let persona = Persona {
        name,
        description: spans.take("description", front.description).unwrap_or_default(),
        system: parts.body.trim().to_owned(),
        model,
        tools: spans.take("tools", front.tools).unwrap_or_default(),
        skills: spans.take("skills", front.skills).unwrap_or_default(),
        limits: front.limits.map_or_else(PersonaLimits::default, |limits| {
            if let Some(at) = first_mention(parts.toml, "limits") {
                spans.0.insert("limits", at..at);
            }
            limits
        }),
        temperature: spans.take("temperature", front.temperature),
        max_tokens: spans.take("max_tokens", front.max_tokens),
        lane: spans.take("lane", front.lane),
        policy_profile: spans.take("policy_profile", front.policy_profile),
    };
    persona.validate().map_err(|invalid| {
        let top = invalid.field.split('.').next().unwrap_or_default();
        // A field not set in the front matter (a name from the file name) points at line 1.
        let line = spans.0.get(top).map_or(1, |span| at(span.start).0);
        LoadError::Invalid { path: path.to_owned(), line, field: invalid.field, reason: invalid.reason }
    })?;
    Ok(persona)
}

/// The byte offset of the first line of `toml` that opens table `key` (`[key]`, `[key.sub]`)
/// or sets it (`key = ...`, `key.sub = ...`).
fn first_mention(toml: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in toml.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let rest = trimmed.strip_prefix('[').map_or(trimmed, str::trim_start);
        if let Some(after) = rest.strip_prefix(key)
            && after.trim_start().starts_with(['.', ']', '='])
        {
            return Some(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    None
}
