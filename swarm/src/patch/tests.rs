use super::*;

const GIT: &str = "\
diff --git a/src/lib.rs b/src/lib.rs
index 1..2 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -10,4 +10,5 @@ fn f() {
 keep
--- removed line that looks like a header
+++ added line that looks like a header
+another
 tail

diff --git a/gone.rs b/gone.rs
deleted file mode 100644
index 3..0
--- a/gone.rs
+++ /dev/null
@@ -1 +0,0 @@
-bye
\\ No newline at end of file
diff --git a/old name.rs b/new name.rs
similarity index 90%
rename from old name.rs
rename to new name.rs
index 4..5 100644
--- a/old name.rs
+++ b/new name.rs
@@ -1,2 +1,2 @@
-one
+uno
 two
diff --git a/img.png b/img.png
new file mode 100644
index 0..6
Binary files /dev/null and b/img.png differ
diff --git a/moved.rs b/elsewhere/moved.rs
similarity index 100%
rename from moved.rs
rename to elsewhere/moved.rs
diff --git \"a/tab\\there.rs\" \"b/tab\\there.rs\"
new file mode 100644
--- /dev/null
+++ \"b/tab\\there.rs\"
@@ -0,0 +1 @@
+x
";

#[test]
fn reads_files_hunks_renames_deletes_and_binaries() {
    let files = parse_patch(GIT);
    let paths: Vec<&str> = files.iter().map(FilePatch::path).collect();
    assert_eq!(
        paths,
        ["src/lib.rs", "gone.rs", "new name.rs", "img.png", "elsewhere/moved.rs", "tab\there.rs"]
    );
    let lib = &files[0];
    assert_eq!(lib.hunks.len(), 1);
    assert_eq!(lib.hunks[0].lines.len(), 6, "{:?}", lib.hunks[0].lines);
    assert_eq!(lib.hunks[0].lines[4], " tail");
    assert_eq!(lib.hunks[0].lines[5], " ", "an empty line is a context line");
    assert_eq!(lib.changed_lines(), 3);
    assert!(files[1].is_deleted());
    assert_eq!(files[1].hunks[0].lines, ["-bye", "\\ No newline at end of file"]);
    assert!(files[2].is_renamed());
    assert_eq!(files[2].old_path.as_deref(), Some("old name.rs"));
    assert_eq!(files[2].rename_similarity, Some(90));
    assert!(files[3].binary && files[3].is_added());
    assert!(files[4].is_renamed() && files[4].hunks.is_empty());
    assert!(files[5].is_added());
}

#[test]
fn plain_unified_diffs_have_files_too() {
    let plain = "--- a.txt\t2024-01-01\n+++ a.txt\t2024-01-02\n@@ -1 +1 @@\n-a\n+b\n--- b.txt\n+++ b.txt\n@@ -3,0 +4 @@\n+c\n";
    let files = parse_patch(plain);
    assert_eq!(files.iter().map(FilePatch::path).collect::<Vec<_>>(), ["a.txt", "b.txt"]);
    assert_eq!(files[1].hunks[0].new_start, 4);
    assert!(parse_patch("not a diff\n@@ nonsense @@\n").is_empty());
}

#[test]
fn a_rendered_file_parses_back_to_itself() {
    for file in parse_patch(GIT).into_iter().filter(|f| !f.hunks.is_empty()) {
        let text = file.render(&file.hunks);
        let back = parse_patch(&text);
        assert_eq!(back.len(), 1, "{text}");
        assert_eq!(back[0].hunks, file.hunks, "{text}");
        assert_eq!(back[0].path(), file.path(), "{text}");
    }
}

#[test]
fn split_pieces_carry_the_exact_line_numbers() {
    let mut hunk = Hunk { old_start: 100, new_start: 200, section: "fn big()".into(), ..Hunk::default() };
    for i in 0..60 {
        let line = match i % 3 {
            0 => format!(" context {i}"),
            1 => format!("+added {i}"),
            _ => format!("-removed {i}"),
        };
        hunk.lines.push(line);
    }
    hunk.old_count = 40;
    hunk.new_count = 40;
    let pieces = hunk.split_lines(200);
    assert!(pieces.len() > 3, "{}", pieces.len());
    // Walking every piece from its own header gives the same numbers as walking the whole.
    let walk = |h: &Hunk| -> Vec<(String, u32)> {
        let (mut old, mut new) = (h.old_start, h.new_start);
        if h.old_count == 0 {
            old += 1;
        }
        if h.new_count == 0 {
            new += 1;
        }
        h.lines
            .iter()
            .map(|l| match l.as_bytes()[0] {
                b'+' => {
                    new += 1;
                    (l.clone(), new - 1)
                }
                b'-' => {
                    old += 1;
                    (l.clone(), old - 1)
                }
                _ => {
                    old += 1;
                    new += 1;
                    (l.clone(), new - 1)
                }
            })
            .collect()
    };
    let whole = walk(&hunk);
    let pieced: Vec<(String, u32)> = pieces.iter().flat_map(walk).collect();
    assert_eq!(pieced, whole);
    for piece in &pieces {
        assert!(piece.rendered_len() <= 200, "{}", piece.rendered_len());
        let back = parse_patch(&format!("--- a/x\n+++ b/x\n{}", {
            let mut s = String::new();
            piece.render_into(&mut s);
            s
        }));
        assert_eq!(back[0].hunks[0].lines, piece.lines, "a piece is a valid hunk");
    }
    assert_eq!(hunk.split_lines(1 << 20), vec![hunk.clone()]);
}

#[test]
fn quoting_round_trips() {
    for path in ["plain/path.rs", "with space.rs", "tab\there", "quote\"d", "back\\slash", "é.rs"] {
        assert_eq!(unquote(&quote(path)), path);
    }
    assert_eq!(unquote("\"caf\\303\\251\""), "café");
}
