//! The file loader: format, folder rules, and every error by path and line.

use executus_persona::{LoadError, MAX_FILE_BYTES, load_dir, parse_file};

use crate::common::{dir_with, write};

/// The single error of loading a folder holding one file.
fn only_error(name: &str, text: &str) -> (LoadError, std::path::PathBuf) {
    let dir = dir_with(&[(name, text)]);
    let errors = load_dir(dir.path()).unwrap_err().into_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = errors.into_iter().next().unwrap();
    // Keep the path for assertions; the temp dir is gone after this returns.
    (error, dir.path().join(name))
}

#[test]
fn a_good_file_becomes_a_persona() {
    let text = "+++\ndescription = \"d\"\nmodel = \"fake/m\"\ntools = [\"a\", \"b\"]\n+++\n\n  Be helpful.\n\nTwice.\n\n";
    let dir = dir_with(&[("helper.md", text)]);
    let loaded = load_dir(dir.path()).unwrap();
    assert_eq!(loaded.len(), 1);
    let p = &loaded[0].persona;
    // Name from the file stem; body trimmed into the system prompt.
    assert_eq!((p.name.as_str(), p.description.as_str(), p.model.as_str()), ("helper", "d", "fake/m"));
    assert_eq!(p.system, "Be helpful.\n\nTwice.");
    assert_eq!(p.tools, ["a", "b"]);
}

#[test]
fn dash_delimiters_crlf_and_a_bom_are_accepted() {
    let text = "\u{feff}---\r\nname = \"dashed\"\r\nmodel = \"m\"\r\n---  \r\nBody line\r\n";
    let dir = dir_with(&[("whatever.md", text)]);
    let p = &load_dir(dir.path()).unwrap()[0].persona;
    assert_eq!((p.name.as_str(), p.model.as_str(), p.system.as_str()), ("dashed", "m", "Body line"));
}

#[test]
fn bad_toml_names_the_path_and_the_exact_line() {
    let text =
        "+++\n# a comment\ndescription = \"fine\"\nmodel = \"fake/m\"\ntemperature = = 0.2\n+++\nbody\n";
    let (error, path) = only_error("broken.md", text);
    match &error {
        LoadError::Toml { path: p, line, column, message } => {
            assert_eq!(p, &path);
            assert_eq!(*line, 5, "{message}");
            assert!(*column > 1, "{column}");
        }
        other => panic!("expected a TOML error, got {other:?}"),
    }
    assert_eq!(error.line(), Some(5));
    let shown = error.to_string();
    assert!(shown.starts_with(&format!("{}:5:", path.display())), "{shown}");
}

#[test]
fn a_line_deep_in_the_file_maps_through_the_front_matter_offset() {
    // With a BOM, CRLF and a multi-line array before the error.
    let text = "\u{feff}+++\r\nmodel = \"m\"\r\ntools = [\r\n  \"a\",\r\n  \"b\",\r\n]\r\n\r\nmax_tokens = \"many\"\r\n+++\r\nx\r\n";
    let (error, _) = only_error("deep.md", text);
    assert!(
        matches!(&error, LoadError::Toml { line: 8, message, .. } if message.contains("integer") || message.contains("u32")),
        "{error}"
    );
}

#[test]
fn an_unknown_field_is_an_error_on_its_line() {
    let (error, path) = only_error("typo.md", "+++\nmodel = \"m\"\nmodle = \"m\"\n+++\nb\n");
    assert!(
        matches!(&error, LoadError::Toml { line: 3, message, .. } if message.contains("unknown field `modle`")),
        "{error}"
    );
    assert_eq!(error.path(), path);

    // Inside the [limits] table too: a misspelt limit is not silently ignored.
    let (error, _) = only_error("limits.md", "+++\nmodel = \"m\"\n\n[limits]\nmax_step = 3\n+++\nb\n");
    assert!(
        matches!(&error, LoadError::Toml { line: 5, message, .. } if message.contains("max_step")),
        "{error}"
    );

    // `system` is the body, not a field.
    let (error, _) = only_error("sys.md", "+++\nmodel = \"m\"\nsystem = \"x\"\n+++\nb\n");
    assert!(
        matches!(&error, LoadError::Toml { line: 3, message, .. } if message.contains("system")),
        "{error}"
    );
}

#[test]
fn a_missing_model_is_named() {
    let (error, path) = only_error("nomodel.md", "+++\ndescription = \"no model\"\n+++\nbody\n");
    assert!(matches!(&error, LoadError::MissingField { field: "model", line: 1, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("{}:1: missing required field `model` in the front matter", path.display())
    );
}

#[test]
fn a_missing_closing_delimiter_is_named() {
    let (error, _) = only_error("open.md", "+++\nmodel = \"m\"\n\nYou are...\n");
    assert!(matches!(error, LoadError::Unclosed { line: 1, delimiter: "+++", .. }), "{error:?}");
    // A `---` does not close a `+++` block.
    let (error, _) = only_error("mixed.md", "+++\nmodel = \"m\"\n---\nbody\n");
    assert!(matches!(error, LoadError::Unclosed { delimiter: "+++", .. }), "{error:?}");
    assert!(error.to_string().contains("never closed"));
}

#[test]
fn a_file_without_front_matter_is_refused() {
    let (error, _) = only_error("plain.md", "You are a helper.\n");
    assert!(matches!(error, LoadError::NoFrontMatter { .. }), "{error:?}");
    assert_eq!(error.line(), Some(1));
}

#[test]
fn duplicate_names_across_files_name_both_files() {
    let dir = dir_with(&[
        ("a.md", "+++\nname = \"shared\"\nmodel = \"m\"\n+++\nA\n"),
        ("shared.md", "+++\nmodel = \"m\"\n+++\nB\n"),
        ("z.md", "+++\nmodel = \"m\"\n+++\nZ\n"),
    ]);
    let errors = load_dir(dir.path()).unwrap_err();
    assert_eq!(errors.errors().len(), 1, "{errors}");
    match &errors.errors()[0] {
        LoadError::DuplicateName { name, first, second } => {
            assert_eq!(name, "shared");
            assert_eq!(first, &dir.path().join("a.md"));
            assert_eq!(second, &dir.path().join("shared.md"));
        }
        other => panic!("expected DuplicateName, got {other:?}"),
    }
    let shown = errors.to_string();
    assert!(shown.contains("a.md") && shown.contains("shared.md") && shown.contains("\"shared\""), "{shown}");
}

#[test]
fn invalid_utf8_is_reported_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bin.md", b"+++\nmodel = \"m\"\ndescription = \"caf\xe9\"\n+++\nb\n");
    let errors = load_dir(dir.path()).unwrap_err().into_errors();
    assert!(
        matches!(&errors[..], [LoadError::NotUtf8 { path: p, line: 3, column: 19, offset: 34 }] if *p == path),
        "{errors:?}"
    );
}

#[test]
fn validation_errors_point_at_the_field_line() {
    let (error, _) = only_error("hot.md", "+++\nmodel = \"m\"\n\ntemperature = 5.0\n+++\nb\n");
    assert!(
        matches!(&error, LoadError::Invalid { line: 4, field, reason, .. } if field == "temperature" && reason.contains('5')),
        "{error:?}"
    );

    let text = "+++\nmodel = \"m\"\n[limits]\ntimeout = \"1m\"\nsoft_timeout = \"2m\"\n+++\nb\n";
    let (error, _) = only_error("soft.md", text);
    assert!(
        matches!(&error, LoadError::Invalid { line: 3, field, .. } if field == "limits.soft_timeout"),
        "{error:?}"
    );

    let (error, _) = only_error("blank.md", "+++\nmodel = \"   \"\n+++\nb\n");
    assert!(matches!(&error, LoadError::Invalid { line: 2, field, .. } if field == "model"), "{error:?}");

    // A name from the file name that is not usable points at line 1.
    let (error, _) = only_error("two words.md", "+++\nmodel = \"m\"\n+++\nb\n");
    assert!(matches!(&error, LoadError::Invalid { line: 1, field, .. } if field == "name"), "{error:?}");
}

#[test]
fn a_bad_duration_is_a_toml_error_on_its_line() {
    let (error, _) = only_error("dur.md", "+++\nmodel = \"m\"\n[limits]\ntimeout = \"soon\"\n+++\nb\n");
    assert!(
        matches!(&error, LoadError::Toml { line: 4, message, .. } if message.contains("invalid duration")),
        "{error:?}"
    );
}

#[test]
fn every_bad_file_is_reported_at_once_sorted_by_path() {
    let dir = dir_with(&[
        ("c.md", "+++\nmodel = \"m\"\n"),
        ("a.md", "+++\nmodel = = 1\n+++\nb\n"),
        ("good.md", "+++\nmodel = \"m\"\n+++\nfine\n"),
        ("b.md", "+++\n+++\nno model\n"),
    ]);
    let errors = load_dir(dir.path()).unwrap_err();
    let files: Vec<String> = errors
        .errors()
        .iter()
        .map(|e| e.path().file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["a.md", "b.md", "c.md"]);
    assert!(matches!(errors.errors()[0], LoadError::Toml { line: 2, .. }), "{errors}");
    assert!(matches!(errors.errors()[1], LoadError::MissingField { .. }));
    assert!(matches!(errors.errors()[2], LoadError::Unclosed { .. }));
    assert_eq!(errors.dir(), dir.path());
    let shown = errors.to_string();
    assert!(shown.starts_with("3 errors loading personas from"), "{shown}");
    assert_eq!(shown.lines().count(), 4, "{shown}");
}

#[test]
fn only_visible_markdown_files_directly_in_the_folder_are_read() {
    let dir = dir_with(&[
        ("one.md", "+++\nmodel = \"m\"\n+++\n1\n"),
        ("notes.txt", "not a persona"),
        (".draft.md", "garbage"),
        ("sub/two.md", "garbage"),
        ("README", "garbage"),
    ]);
    let loaded = load_dir(dir.path()).unwrap();
    let names: Vec<&str> = loaded.iter().map(|l| l.persona.name.as_str()).collect();
    assert_eq!(names, ["one"]);

    let empty = tempfile::tempdir().unwrap();
    assert!(load_dir(empty.path()).unwrap().is_empty());
}

#[test]
fn a_missing_folder_and_an_oversized_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let errors = load_dir(&missing).unwrap_err().into_errors();
    assert!(matches!(&errors[..], [LoadError::Io { path, .. }] if *path == missing), "{errors:?}");

    let mut big = b"+++\nmodel = \"m\"\n+++\n".to_vec();
    big.resize(usize::try_from(MAX_FILE_BYTES).unwrap() + 1, b'x');
    write(dir.path(), "big.md", &big);
    let errors = load_dir(dir.path()).unwrap_err().into_errors();
    assert!(
        matches!(&errors[..], [LoadError::TooLarge { size, .. }] if *size == MAX_FILE_BYTES + 1),
        "{errors:?}"
    );
}

#[test]
fn parse_file_reads_nothing_from_disk() {
    let p = parse_file(std::path::Path::new("/nonexistent/x.md"), b"+++\nmodel = \"m\"\n+++\nhi").unwrap();
    assert_eq!((p.name.as_str(), p.system.as_str()), ("x", "hi"));
}

#[test]
fn loop_protection_thresholds_are_read_and_checked() {
    let text = "+++\nmodel = \"m\"\n[limits]\ntool_error_limit = 2\n[limits.loops]\ncycle = 4\nfinalize_turns = 1\n+++\nb\n";
    let dir = dir_with(&[("looper.md", text)]);
    let persona = &load_dir(dir.path()).unwrap()[0].persona;
    let limits = persona.to_agent().limits;
    assert_eq!(limits.tool_error_limit, 2);
    assert_eq!(
        limits.loops,
        executus::LoopLimits { cycle: 4, finalize_turns: 1, ..executus::LoopLimits::default() }
    );

    let text = "+++\nmodel = \"m\"\n[limits.loops]\ncycle = 1\n+++\nb\n";
    let (error, _) = only_error("cycle.md", text);
    assert!(
        matches!(&error, LoadError::Invalid { line: 3, field, reason, .. }
            if field == "limits.loops.cycle" && reason.contains("at least 2")),
        "{error:?}"
    );
    // A limits table made implicitly by a dotted key is read (and located) too.
    let (error, _) = only_error("dotted.md", "+++\nmodel = \"m\"\n\nlimits.max_steps = 0\n+++\nb\n");
    assert!(
        matches!(&error, LoadError::Invalid { line: 4, field, .. } if field == "limits.max_steps"),
        "{error:?}"
    );
}
