use serde_json::json;

use super::*;
use crate::Identity;

fn input<'a>(
    tool: &'a str,
    args: &'a Value,
    profile: Option<&'a str>,
    identity: &'a Identity,
) -> PolicyInput<'a> {
    PolicyInput { tool, args, identity, run_id: RunId::new(), agent: "a", profile, read_only: false }
}

#[test]
fn globs() {
    assert!(glob_match("local/*", "local/qwen3:30b"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*b*c", "aXbYc"));
    assert!(glob_match("fast", "fast"));
    assert!(!glob_match("fast", "faster"));
    assert!(!glob_match("a*b*c", "aXcYb"));
    assert!(!glob_match("ab*ba", "aba"), "prefix and suffix may not overlap");
    assert!(glob_match("git push*", "git push --force"));
}

#[cfg(feature = "config")]
mod from_config {
    use super::*;

    fn policy(toml_text: &str) -> Result<Policy, crate::config::ConfigError> {
        use figment::providers::Format as _;
        let raw: PolicyConfig = figment::Figment::new()
            .merge(figment::providers::Toml::string(toml_text))
            .extract_inner("policy")
            .unwrap();
        raw.validate(&|key| format!("test ({key})"))
    }

    const BUILD: &str = r#"
        [policy]
        block = ["danger"]
        [[policy.profiles.build.rules]]
        id = "no-push"
        tool = ["Bash", "shell*"]
        args = { "/command" = "git push*" }
        action = "block"
        hint = "Do not push."
        [[policy.profiles.build.rules]]
        id = "worktree"
        tool = ["Edit", "Write"]
        action = "rewrite"
        replace = { "/file_path" = { prefix = "/repo/", with = "/repo/.wt/feat/" } }
        set = { "/backup" = false }
        [[policy.profiles.build.rules]]
        id = "rm"
        tool = "Bash"
        args = { "/command" = { regex = "^rm\\s+-rf" } }
        action = "require_approval"
        [[policy.profiles.build.rules]]
        id = "ok-ls"
        args = { "/command" = "ls*" }
        action = "allow"
        [[policy.profiles.build.gates]]
        id = "tests-ran"
        tool = "Bash"
        args = { "/command" = "cargo test*" }
        hint = "Run the tests."
        [policy.profiles.empty]
    "#;

    #[test]
    fn rules_match_tools_and_arguments_in_order() {
        let p = policy(BUILD).unwrap();
        let who = Identity::default();
        let push = json!({"command": "git push origin main"});
        let verdict = p.evaluate(&input("Bash", &push, Some("build"), &who));
        assert_eq!(
            (verdict.decision, verdict.rule.as_str()),
            (Decision::Block("Do not push.".into()), "no-push")
        );
        let shell = json!({"command": "git push"});
        assert_eq!(p.evaluate(&input("shell_exec", &shell, Some("build"), &who)).rule, "no-push");
        let status = json!({"command": "git status"});
        assert_eq!(p.evaluate(&input("Bash", &status, Some("build"), &who)).decision, Decision::Allow);
        let rm = json!({"command": "rm -rf /"});
        assert!(matches!(
            p.evaluate(&input("Bash", &rm, Some("build"), &who)).decision,
            Decision::RequireApproval(_)
        ));
        let ls = json!({"command": "ls -la"});
        assert_eq!(p.evaluate(&input("Bash", &ls, Some("build"), &who)).rule, "ok-ls");
        let danger = json!({});
        assert_eq!(p.evaluate(&input("danger", &danger, None, &who)).rule, "config:policy.block");
        assert!(p.has_profile("empty"));
        assert!(p.has_profile("read-only"), "the built-in profile stays");
    }

    #[test]
    fn rewrites_move_paths_and_set_values_and_record_the_rule() {
        let p = policy(BUILD).unwrap();
        let who = Identity::default();
        let edit = json!({"file_path": "/repo/src/lib.rs", "backup": true});
        let verdict = p.evaluate(&input("Edit", &edit, Some("build"), &who));
        assert_eq!(
            verdict.decision,
            Decision::Rewrite(json!({"file_path": "/repo/.wt/feat/src/lib.rs", "backup": false}))
        );
        assert_eq!(verdict.rewrites, vec!["worktree".to_owned()]);
        let elsewhere = json!({"file_path": "/tmp/x", "backup": false});
        assert_eq!(
            p.evaluate(&input("Write", &elsewhere, Some("build"), &who)).decision,
            Decision::Allow,
            "a rewrite that changes nothing has no opinion"
        );
    }

    #[test]
    fn gates_open_on_a_matching_call() {
        let p = policy(BUILD).unwrap();
        let gates = p.gates(Some("build"));
        assert_eq!(gates.len(), 1);
        let test = json!({"command": "cargo test -p x"});
        let other = json!({"command": "cargo build"});
        assert!(!gates[0].met_by([("Bash", &other)].into_iter()));
        assert!(gates[0].met_by([("Bash", &other), ("Bash", &test)].into_iter()));
        assert!(p.gates(Some("empty")).is_empty());
        assert!(p.gates(None).is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                r#"[[policy.profiles.p.rules]]
                action = "block""#,
                "policy.profiles.p.rules[0].id",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x""#,
                "policy.profiles.p.rules[0].action",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x"
                action = "explode""#,
                "unknown action",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x"
                action = "block"
                args = { "command" = "x" }"#,
                "policy.profiles.p.rules[0].args.command",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x"
                action = "block"
                args = { "/c" = { regex = "(" } }"#,
                "not a regular expression",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x"
                action = "rewrite""#,
                "needs `set` or `replace`",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x"
                action = "allow"
                set = { "/a" = 1 }"#,
                "policy.profiles.p.rules[0].set",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x"
                action = "rewrite"
                replace = { "/a" = { with = "b" } }"#,
                "policy.profiles.p.rules[0].replace./a",
            ),
            (
                r#"[[policy.profiles.p.rules]]
                id = "x"
                action = "allow"
                [[policy.profiles.p.rules]]
                id = "x"
                action = "allow""#,
                "policy.profiles.p.rules[1].id",
            ),
            (
                r#"[[policy.profiles.p.gates]]
                id = "g""#,
                "policy.profiles.p.gates[0].hint",
            ),
        ];
        for (body, expected) in cases {
            let err = policy(&format!("[policy]\n{body}")).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}\n=> {err}");
        }
    }
}
