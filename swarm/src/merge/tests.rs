use super::*;

fn finding(file: &str, line: u32, severity: Severity, category: &str, title: &str) -> Finding {
    Finding {
        file: file.into(),
        line,
        end_line: None,
        severity,
        category: category.into(),
        title: title.into(),
        detail: format!("detail of {title}"),
        suggestion: None,
    }
}

fn reported(model: &str, lens: &str, finding: Finding) -> Reported {
    Reported { model: model.into(), lens: lens.into(), finding }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn similar_titles_on_near_lines_merge_keeping_the_highest_severity() {
    let input = vec![
        reported(
            "m/b",
            "security",
            finding(
                "db.rs",
                32,
                Severity::Warning,
                "injection",
                "User input interpolated into SQL query (injection)",
            ),
        ),
        reported(
            "m/a",
            "security",
            finding(
                "db.rs",
                30,
                Severity::Error,
                "sql-injection",
                "SQL injection via string-formatted query",
            ),
        ),
        reported("m/a", "correctness", finding("db.rs", 90, Severity::Note, "naming", "Unclear name")),
    ];
    let merged =
        merge(input, &DiffIndex::default(), &names(&["m/a", "m/b"]), &names(&["correctness", "security"]));
    assert_eq!(merged.len(), 2, "{merged:#?}");
    let sql = &merged[0];
    assert_eq!(sql.severity, Severity::Error);
    assert_eq!(sql.title, "SQL injection via string-formatted query", "the most severe report leads");
    assert_eq!((sql.line, sql.end_line), (30, Some(32)), "the range spans every report");
    assert_eq!(sql.models, ["m/a", "m/b"]);
    assert_eq!(sql.agreement, 2);
    assert_eq!(sql.lenses, ["security"]);
    assert_eq!(sql.reports.len(), 2);
    assert_eq!(merged[1].agreement, 1);
}

#[test]
fn distant_lines_other_files_and_different_titles_stay_apart() {
    let title = "Unwrap on user supplied page parameter";
    let input = vec![
        reported("m/a", "correctness", finding("a.rs", 10, Severity::Error, "panic", title)),
        reported(
            "m/b",
            "correctness",
            finding("a.rs", 10 + LINE_WINDOW + 1, Severity::Error, "panic", title),
        ),
        reported("m/b", "correctness", finding("b.rs", 10, Severity::Error, "panic", title)),
        reported(
            "m/b",
            "performance",
            finding("a.rs", 11, Severity::Warning, "dos", "per_page is never capped"),
        ),
    ];
    let merged = merge(input, &DiffIndex::default(), &names(&["m/a", "m/b"]), &names(&["correctness"]));
    // a.rs:10 and a.rs:14 share a title but are 4 lines apart; b.rs is another file; the cap
    // finding is near both a.rs ones but has an unrelated title and category.
    assert_eq!(merged.len(), 4, "{merged:#?}");
    assert!(merged.iter().all(|m| m.agreement == 1 && m.reports.len() == 1));
}

#[test]
fn same_category_on_overlapping_lines_merges_despite_different_titles() {
    let input = vec![
        reported(
            "m/a",
            "security",
            Finding {
                end_line: Some(5),
                ..finding(
                    "t.rs",
                    4,
                    Severity::Error,
                    "hardcoded-secret",
                    "Hard-coded AWS credentials in test",
                )
            },
        ),
        reported(
            "m/b",
            "maintainability",
            finding("t.rs", 5, Severity::Warning, "hardcoded-secret", "Secret key committed"),
        ),
        // Same category, near but not overlapping: a different problem.
        reported(
            "m/b",
            "maintainability",
            finding("t.rs", 7, Severity::Note, "hardcoded-secret", "Token in comment"),
        ),
    ];
    let merged = merge(
        input,
        &DiffIndex::default(),
        &names(&["m/a", "m/b"]),
        &names(&["security", "maintainability"]),
    );
    assert_eq!(merged.len(), 2, "{merged:#?}");
    assert_eq!(merged[0].lenses, ["security", "maintainability"]);
    assert_eq!((merged[0].line, merged[0].end_line), (4, Some(5)));
    assert_eq!(merged[0].agreement, 2);
    assert_eq!(merged[1].title, "Token in comment");
}

#[test]
fn merging_is_transitive_and_independent_of_input_order() {
    let make = || {
        vec![
            reported("m/a", "l", finding("f", 10, Severity::Note, "x", "off by one in end index")),
            reported("m/b", "l", finding("f", 12, Severity::Warning, "y", "end index off by one")),
            // Near 12 but not 10 (4 lines apart): it joins 10 through 12.
            reported("m/c", "l", finding("f", 14, Severity::Error, "z", "end index is off by one again")),
        ]
    };
    let order = names(&["m/a", "m/b", "m/c"]);
    let forward = merge(make(), &DiffIndex::default(), &order, &names(&["l"]));
    let mut reversed_input = make();
    reversed_input.reverse();
    let backward = merge(reversed_input, &DiffIndex::default(), &order, &names(&["l"]));
    assert_eq!(forward, backward);
    assert_eq!(forward.len(), 1, "{forward:#?}");
    assert_eq!(forward[0].agreement, 3);
    assert_eq!(forward[0].severity, Severity::Error);
    assert_eq!((forward[0].line, forward[0].end_line), (10, Some(14)));
}

#[test]
fn sorted_by_severity_then_agreement_and_ids_are_stable_and_unique() {
    let diff = DiffIndex::parse("+++ b/f\n@@ -0,0 +1,3 @@\n+let a = 1;\n+let a = 1;\n+other\n");
    let input = vec![
        reported("m/a", "l", finding("f", 3, Severity::Warning, "c", "lonely warning")),
        reported("m/a", "l", finding("f", 1, Severity::Note, "c", "duplicate line one")),
        reported("m/a", "l", finding("f", 30, Severity::Warning, "c", "agreed warning")),
        reported("m/b", "l", finding("f", 30, Severity::Warning, "c", "agreed warning")),
        reported("m/a", "l", finding("f", 2 + 3 * LINE_WINDOW, Severity::Note, "c", "same text elsewhere")),
    ];
    let merged = merge(input.clone(), &diff, &names(&["m/a", "m/b"]), &names(&["l"]));
    let titles: Vec<&str> = merged.iter().map(|m| m.title.as_str()).collect();
    assert_eq!(titles, ["agreed warning", "lonely warning", "duplicate line one", "same text elsewhere"]);
    assert_eq!(merged[2].snippet.as_deref(), Some("let a = 1;"));
    let again = merge(input, &diff, &names(&["m/a", "m/b"]), &names(&["l"]));
    let ids: Vec<&str> = merged.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, again.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), "ids are stable");
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "ids are unique: {ids:?}");
    assert!(ids.iter().all(|id| id.len() >= 16));
}

#[test]
fn tokens_are_normalised() {
    let tokens = title_tokens("N+1 queries: the team lookup is querying in a loop");
    let expected: BTreeSet<String> =
        ["n", "1", "query", "team", "lookup", "loop"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(tokens, expected, "stop words dropped, `queries` and `querying` stemmed to `query`");
    assert_eq!(dice(&title_tokens("SQL injection"), &title_tokens("sql INJECTIONS")), 1.0);
    assert_eq!(dice(&BTreeSet::new(), &BTreeSet::new()), 0.0);
    assert_eq!(fnv1a(&["a", "b"]), fnv1a(&["a", "b"]));
    assert_ne!(fnv1a(&["ab", ""]), fnv1a(&["a", "b"]), "parts are separated");
}
