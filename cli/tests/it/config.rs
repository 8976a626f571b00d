//! `config` and configuration errors: the effective configuration with each value's source
//! and secrets redacted; every configuration error exits 2 naming the key and the file or
//! variable it came from — core sections, host sections and provider DSNs alike.

use crate::common::*;

const BASE: &str = r#"
[tiers]
fast = "mock/small, mock/large"

[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[agents.helper]
system = "You help."
model = "fast"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn config_prints_each_value_with_its_source_and_redacts_secrets() {
    let ws = Workspace::new(BASE);
    let mut command = ws.command(&["config"]);
    command
        .env("EXECUTUS_LANES__DEFAULT__CAPACITY", "3")
        .env("EXECUTUS_LLM_CLOUD", "openai://sk-very-secret-key@api.example.invalid");
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    // figment names the file relative to the working directory when it is under it.
    let file = "TOML file executus.toml";
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .to_owned()
    };
    assert!(line("tiers.fast").contains("\"mock/small, mock/large\"") && line("tiers.fast").contains(file));
    assert!(line("lanes.default.capacity").contains("EXECUTUS_LANES__DEFAULT__CAPACITY"), "{stdout}");
    assert!(
        line("lanes.default.capacity").starts_with("lanes.default.capacity = 3 "),
        "numbers print: {stdout}"
    );
    assert!(
        line("providers.cloud").contains("redacted")
            && line("providers.cloud").contains("EXECUTUS_LLM_CLOUD")
    );
    assert!(!stdout.contains("sk-very-secret-key"), "the key never appears: {stdout}");
    assert!(stdout.contains("# store: sqlite://executus.db"), "the embedded default store: {stdout}");
}

/// Runs `config` with `toml` (and `env`) and returns stderr, asserting exit 2.
async fn config_error(toml: &str, env: &[(&str, &str)]) -> (String, String) {
    let ws = Workspace::new(toml);
    let mut command = ws.command(&["config"]);
    command.envs(env.iter().copied());
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 2);
    (text(&out.stderr), "TOML file executus.toml".to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_value_names_the_key_and_the_file() {
    let (stderr, file) = config_error(&format!("{BASE}\n[lanes.default]\ncapacity = 0\n"), &[]).await;
    assert!(stderr.contains("lanes.default.capacity") && stderr.contains(&file), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_value_from_the_environment_names_the_variable() {
    let (stderr, _) = config_error(BASE, &[("EXECUTUS_AGENTS__HELPER__MAX_STEPS", "0")]).await;
    assert!(
        stderr.contains("agents.helper.max_steps") && stderr.contains("EXECUTUS_AGENTS__HELPER__MAX_STEPS"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_sections_name_their_keys_too() {
    let cases = [
        ("[budget.caps]\ndefault_user = -1.0\n", "budget.caps.default_user"),
        ("[critic]\njudge_timeout = \"0s\"\nmodel = \"fast\"\n", "critic.judge_timeout"),
        ("[critic]\nmax_extensions = 1\n", "critic.model"),
        ("[swarm]\nconcurrency = 0\n", "swarm.concurrency"),
        (
            "[schedule.jobs.nightly]\ncron = \"61 * * * *\"\nagent = \"helper\"\ninput = \"x\"\n",
            "schedule.jobs.nightly.cron",
        ),
        (
            "[schedule.jobs.nightly]\ncron = \"@daily\"\nagent = \"helper\"\ninput = \"x\"\ntimezone = \"Mars/Olympus\"\n",
            "schedule.jobs.nightly.timezone",
        ),
        ("[personas]\ndir = \"no-such-folder\"\n", "personas.dir"),
        ("[providers.other]\nkind = \"carrier-pigeon\"\n", "providers.other.kind"),
        (
            "[providers.other]\nkind = \"openai\"\napi_key_env = \"EXECUTUS_TEST_UNSET_KEY\"\n",
            "providers.other.api_key_env",
        ),
    ];
    for (section, key) in cases {
        let (stderr, file) = config_error(&format!("{BASE}\n{section}"), &[]).await;
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(stderr.contains(&file), "{key} names the file: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn syntax_errors_unknown_keys_and_missing_files_exit_2() {
    let (stderr, file) =
        config_error(&format!("{BASE}\n[store]\nurl = \"sqlite://x.db\"\npath = \"typo\"\n"), &[]).await;
    assert!(stderr.contains("default.store.path") && stderr.contains("executus.toml"), "{stderr}");
    let _ = file;

    let (stderr, _) = config_error(&format!("{BASE}\n[store]\nurl = \"mysql://db\"\n"), &[]).await;
    assert!(stderr.contains("store.url"), "{stderr}");

    let (stderr, _) = config_error(BASE, &[("EXECUTUS_LLM_BAD", "nonsense")]).await;
    assert!(stderr.contains("EXECUTUS_LLM_BAD"), "{stderr}");

    let ws = Workspace::new(BASE);
    let mut command = ws.command(&["config"]);
    command.arg("--config").arg(ws.path().join("absent.toml"));
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("absent.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_has_help() {
    let ws = Workspace::new(BASE);
    for command in ["run", "swarm", "chat", "resume", "approve", "deny", "schedule", "models", "config"] {
        let out = ws.run(&[command, "--help"], None).await;
        assert_exit(&out, 0);
        let help = text(&out.stdout);
        assert!(help.contains(&format!("Usage: executus-run {command}")), "{command}: {help}");
    }
    let out = ws.run(&["--help"], None).await;
    assert!(text(&out.stdout).contains("Exit codes: 0 success, 1 the run failed, 2 usage"));
}
