//! The light host's invariant: its normal dependency tree holds the executus core and the
//! provider crate, never a battery, the store, a database or cron (ci/check-deps.sh checks
//! the same in CI).

use std::process::Command;

fn cargo_tree(extra: &[&str]) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", "pr-review-swarm", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn no_battery_store_database_or_cron_in_the_normal_tree() {
    let crates = cargo_tree(&[]);
    assert!(crates.iter().any(|c| c == "executus"), "{crates:?}");
    assert!(crates.iter().any(|c| c == "executus-llm"), "{crates:?}");
    let forbidden = |name: &str| {
        name.starts_with("sqlx")
            || name.contains("sqlite")
            || name == "cron"
            || ["persona", "skill", "audit", "critic", "budget", "schedule", "store"]
                .iter()
                .any(|b| name == format!("executus-{b}"))
    };
    let bad: Vec<&String> = crates.iter().filter(|c| forbidden(c)).collect();
    assert!(bad.is_empty(), "forbidden crates in pr-review-swarm's normal tree: {bad:?}");
}

#[test]
fn direct_dependencies_are_the_core_the_provider_crate_and_small_general_crates() {
    let direct = cargo_tree(&["--depth", "1"]);
    let allowed = [
        "pr-review-swarm",
        // The swarm library: itself held to the same list by ci/check-deps.sh.
        "executus-swarm",
        "executus",
        "executus-llm",
        "tokio",
        "serde",
        "serde_json",
        "schemars",
        "thiserror",
        "humantime",
        "anyhow",
        // The review cache's trait, its concurrent conformance check and its content hashes.
        "async-trait",
        "futures",
        "sha2",
        // Posting the review on GitHub / GitLab; already in the tree through executus-llm.
        "reqwest",
    ];
    for name in &direct {
        assert!(allowed.contains(&name.as_str()), "unexpected direct dependency {name}");
    }
}
