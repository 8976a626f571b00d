use super::*;

#[test]
fn patterns_match_any_run_of_characters() {
    assert!(glob_match("mcp:files/*", "mcp:files/read_file"));
    assert!(glob_match("mcp:files/*", "mcp:files/"));
    assert!(glob_match("mcp:files/*", "mcp:files/*"), "a selection written with * matches");
    assert!(glob_match("a*b*c", "axxbyyc"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("mcp:files/*", "mcp:other/read_file"));
    assert!(!glob_match("a*b", "axxbc"));
    assert!(!glob_match("calc", "calcx"));
}

#[test]
fn known_tools_take_names_and_patterns_from_each_source() {
    let mut known = KnownTools::default();
    known.add_names(["calc", "clock"]);
    known.add_pattern("mcp:files/*");
    assert!(known.check(&["calc".into(), "mcp:files/read".into()]).is_ok());
    let reason = known.check(&["calc".into(), "rm_rf".into()]).unwrap_err();
    assert_eq!(reason, "unknown tool \"rm_rf\" (known: calc, clock, mcp:files/*)");
    let reason = known.check(&["clcok".into()]).unwrap_err();
    assert!(reason.contains("(did you mean \"clock\"?)"), "{reason}");
}

#[test]
fn edit_distance_counts_single_character_edits() {
    assert_eq!(edit_distance("web_fecth", "web_fetch"), 2);
    assert_eq!(edit_distance("calc", "calc"), 0);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn the_store_file_must_be_missing_empty_or_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    assert!(check_store_file(&url("missing.db")).is_ok());
    assert!(check_store_file("sqlite::memory:").is_ok());
    std::fs::write(dir.path().join("empty.db"), b"").unwrap();
    assert!(check_store_file(&url("empty.db")).is_ok());
    std::fs::write(dir.path().join("ours.db"), b"SQLite format 3\0and pages after it").unwrap();
    assert!(check_store_file(&url("ours.db")).is_ok());
    std::fs::write(dir.path().join("notes.txt"), b"shopping list").unwrap();
    let reason = check_store_file(&url("notes.txt")).unwrap_err();
    assert!(reason.contains("notes.txt is not a SQLite database"), "{reason}");
    let reason = check_store_file(&format!("sqlite:{}", dir.path().display())).unwrap_err();
    assert!(reason.contains("is a folder"), "{reason}");
}
