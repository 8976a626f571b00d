//! The diff from git (`git diff --merge-base`) of a real repository with a base and a branch:
//! renames, deletions, binary files and excludes end up where the plan says.

use pr_review_swarm::git::{Base, diff_from_git};
use pr_review_swarm::{LeftOutReason, SplitOptions, plan_review};

use crate::gitrepo::{Repo, numbered};

fn given(reference: &str) -> Base {
    Base { reference: reference.to_owned(), source: "given" }
}

#[test]
fn the_branch_diff_against_its_merge_base_splits_and_skips_as_planned() {
    let repo = Repo::new();
    repo.write("src/lib.rs", numbered(40, "lib", &[]));
    repo.write("src/old_name.rs", numbered(30, "mv", &[]));
    repo.write("src/moved_as_is.rs", numbered(20, "same", &[]));
    repo.write("src/gone.rs", numbered(10, "gone", &[]));
    repo.write("assets/logo.png", [0x89, b'P', b'N', b'G', 0, 1, 2, 3, 0, 0xff]);
    repo.write("Cargo.lock", "version = 3\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    // Modified, with a planted line; renamed with an edit; renamed as is; deleted; a new file;
    // binary changed; lock and vendored files changed.
    repo.write("src/lib.rs", numbered(40, "lib", &[12]));
    repo.git(&["mv", "src/old_name.rs", "src/new_name.rs"]);
    repo.write("src/new_name.rs", numbered(30, "mv", &[29]));
    std::fs::create_dir_all(repo.path().join("src/elsewhere")).unwrap();
    repo.git(&["mv", "src/moved_as_is.rs", "src/elsewhere/moved_as_is.rs"]);
    repo.git(&["rm", "-q", "src/gone.rs"]);
    repo.write("src/new file.rs", "fn added() {}\n");
    repo.write("assets/logo.png", [0x89, b'P', b'N', b'G', 0, 9, 9, 9, 0, 0xff]);
    repo.write("Cargo.lock", "version = 4\n");
    repo.write("vendor/dep/lib.c", "int x;\n");
    repo.commit("feature");
    // main moves on after the branch: its change is not part of the review.
    repo.git(&["checkout", "-q", "main"]);
    repo.write("README.md", "main only\n");
    repo.commit("main moves");
    repo.git(&["checkout", "-q", "feature"]);

    let diff = diff_from_git(repo.path(), &given("main"), 1 << 20).unwrap();
    assert_eq!(diff.head, repo.git(&["rev-parse", "HEAD"]).trim());
    assert_eq!(diff.merge_base, repo.git(&["rev-parse", "main~1"]).trim());
    assert!(!diff.diff.contains("README.md"), "the base's own later change is not reviewed");

    let plan = plan_review(&diff.diff, &SplitOptions::default());
    let files: Vec<&str> = plan.chunks.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, ["src/lib.rs", "src/new file.rs", "src/new_name.rs"]);
    let renamed = plan.chunks.iter().find(|c| c.file == "src/new_name.rs").unwrap();
    assert_eq!(renamed.renamed_from.as_deref(), Some("src/old_name.rs"));
    assert!(renamed.text.contains("+    let planted = unsafe_call(\"PLANTED-mv-29\");"));
    let reasons: Vec<(&str, &LeftOutReason)> =
        plan.left_out.iter().map(|l| (l.file.as_str(), &l.reason)).collect();
    assert_eq!(
        reasons,
        [
            ("Cargo.lock", &LeftOutReason::Excluded { pattern: "Cargo.lock".into() }),
            ("assets/logo.png", &LeftOutReason::Binary),
            ("src/elsewhere/moved_as_is.rs", &LeftOutReason::NoContentChange),
            ("src/gone.rs", &LeftOutReason::Deleted),
            ("vendor/dep/lib.c", &LeftOutReason::Excluded { pattern: "**/vendor/**".into() }),
        ]
    );
    // The planted line of src/lib.rs is at line 12 of the new file, and the chunk says so.
    let lib = plan.chunks.iter().find(|c| c.file == "src/lib.rs").unwrap();
    assert!(lib.first_line <= 12 && 12 <= lib.last_line, "{lib:?}");
}

#[test]
fn a_missing_base_is_an_error_that_says_how_to_fetch_it() {
    let repo = Repo::new();
    repo.write("a.txt", "a\n");
    repo.commit("one");
    let error = diff_from_git(repo.path(), &given("origin/main"), 1 << 20).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("origin/main"), "{message}");
    assert!(message.contains("fetch-depth: 0"), "{message}");
    let error = diff_from_git(repo.path(), &given("--output=/tmp/x"), 1 << 20).unwrap_err();
    assert!(error.to_string().contains("cannot start with `-`"), "{error}");
    let big = diff_from_git(repo.path(), &given("HEAD"), 0);
    assert!(big.is_ok(), "an empty diff is not over any limit: {big:?}");
}
