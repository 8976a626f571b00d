//! Configuration checked at load, tried as a user would: each mistake below used to be
//! accepted (an agent ran without its tool, a run failed later with exit 1, `models` printed
//! a cycle and exited 0, a bad URL was retried as transient, a wrong store file was exit 1).
//! Now every command refuses it with exit 2 and a message naming the key, the bad value and
//! the file, before any model is called; `config --check` runs the same checks and nothing
//! else.

use wiremock::{MockServer, ResponseTemplate};

use crate::common::*;

/// A server that would answer every call, so a run that is not refused completes.
async fn answering_server() -> MockServer {
    openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("done"))).await
}

const FILE: &str = "TOML file executus.toml";

/// Runs each of `commands` against `toml` and returns their stderr, asserting exit 2 and that
/// no model was called.
async fn refused(server: &MockServer, toml: &str, commands: &[&[&str]]) -> Vec<String> {
    let ws = Workspace::new(toml);
    let mut errors = Vec::new();
    for args in commands {
        let out = ws.run(args, None).await;
        assert_exit(&out, 2);
        errors.push(text(&out.stderr));
    }
    assert!(calls(server).await.is_empty(), "no model was called");
    assert!(!ws.path().join("executus.db").exists(), "no store was created");
    errors
}

const EVERY_COMMAND: &[&[&str]] = &[
    &["run", "--agent", "helper", "--input", "hi", "--json"],
    &["models"],
    &["config", "--check"],
    &["config"],
];

#[tokio::test(flavor = "multi_thread")]
async fn the_checks_pass_a_good_configuration_without_doing_anything_else() {
    let server = answering_server().await;
    let ws = Workspace::new(&format!(
        "{}\n[tiers]\nfast = \"mock/small, mock/large\"\n\n[skills.math]\ninstructions = \"Sum with calc.\"\n\
         tools = [\"calc\"]\n\n[agents.mathy]\nsystem = \"You sum.\"\nmodel = \"fast\"\nskills = [\"math\"]\n\
         tools = [\"dispatch_agent\", \"web_fetch\"]\n\n[policy]\nrequire_approval = [\"web_fetch\"]\n",
        base_config(&server.uri())
    ));
    let out = ws.run(&["config", "--check"], None).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("configuration OK: "), "{stdout}");
    assert!(stdout.contains("1 providers, 1 tiers, 2 agents, 1 skills, 0 jobs"), "{stdout}");
    assert!(!ws.path().join("executus.db").exists(), "the check opens no store");
    assert!(calls(&server).await.is_empty(), "the check calls no model");

    // The same configuration runs.
    let out = ws.run(&["run", "--agent", "mathy", "--input", "hi"], None).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "done\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_tool_names_the_key_the_tool_and_the_known_ones() {
    let server = answering_server().await;
    let base = base_config(&server.uri());
    let toml = base.replace("tools = [\"calc\", \"clock\"]", "tools = [\"calc\", \"rm_rf\"]");
    for stderr in refused(&server, &toml, EVERY_COMMAND).await {
        assert!(
            stderr.contains("invalid configuration value for agents.helper.tools")
                && stderr.contains(FILE)
                && stderr.contains("unknown tool \"rm_rf\" (known: calc, clock, dispatch_agent, web_fetch)"),
            "{stderr}"
        );
    }

    // A typo is pointed at the tool it was meant to be.
    let toml = base.replace("tools = [\"calc\", \"clock\"]", "tools = [\"web_fecth\"]");
    let stderr = &refused(&server, &toml, &[&["run", "--agent", "helper", "--input", "hi"]]).await[0];
    assert!(stderr.contains("unknown tool \"web_fecth\" (did you mean \"web_fetch\"?)"), "{stderr}");

    // Skills' tools and the policy's lists are tools too.
    let cases = [
        ("[skills.math]\ninstructions = \"Sum.\"\ntools = [\"calcc\"]\n", "skills.math.tools", "calcc"),
        ("[policy]\nblock = [\"shell\"]\n", "policy.block", "shell"),
        ("[policy]\nrequire_approval = [\"deploy\"]\n", "policy.require_approval", "deploy"),
    ];
    for (section, key, tool) in cases {
        let stderr = &refused(&server, &format!("{base}\n{section}"), &[&["config", "--check"]]).await[0];
        assert!(
            stderr.contains(&format!("invalid configuration value for {key} (from {FILE})"))
                && stderr.contains(&format!("unknown tool {tool:?}")),
            "{key}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_skill_names_the_key_and_the_configured_skills() {
    let server = answering_server().await;
    let toml = format!(
        "{}\n[skills.math]\ninstructions = \"Sum.\"\n",
        base_config(&server.uri()).replace("max_steps = 6", "max_steps = 6\nskills = [\"maths\"]")
    );
    for stderr in refused(&server, &toml, EVERY_COMMAND).await {
        assert!(
            stderr.contains("agents.helper.skills")
                && stderr.contains("unknown skill \"maths\" (did you mean \"math\"?) (known: math)"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_model_spec_resolves_at_load() {
    let server = answering_server().await;
    let base = base_config(&server.uri());
    // An agent on an unknown provider: `run` used to fail with exit 1 at run time.
    let toml = base.replace("model = \"mock/test-model\"", "model = \"nope/m\"");
    for stderr in refused(&server, &toml, EVERY_COMMAND).await {
        assert!(
            stderr.contains(&format!("invalid configuration value for agents.helper.model (from {FILE})"))
                && stderr.contains("unknown provider \"nope\"")
                && stderr.contains("(registered: mock)"),
            "{stderr}"
        );
    }

    // A tier alias cycle: `models` used to print it and exit 0.
    let toml = format!("{base}\n[tiers]\na = \"b\"\nb = \"a\"\n");
    for stderr in refused(&server, &toml, EVERY_COMMAND).await {
        assert!(stderr.contains("tiers.a") && stderr.contains("a -> b -> a"), "{stderr}");
    }

    // Every other place a model spec is written.
    let cases = [
        ("[tiers]\nfast = \"mock/x, gone/y\"\n", "tiers.fast"),
        ("[compaction]\nsummary_model = \"gone/summary\"\n", "compaction.summary_model"),
        ("[critic]\nmodel = \"judge\"\n", "critic.model"),
        ("[swarm]\nmodels = [\"mock/a\", \"gone/b\"]\n", "swarm.models"),
    ];
    for (section, key) in cases {
        let stderr = &refused(&server, &format!("{base}\n{section}"), &[&["models"], &["config", "--check"]])
            .await
            .join("\n");
        assert!(
            stderr.contains(&format!("invalid configuration value for {key} (from {FILE})"))
                && stderr.contains("does not resolve"),
            "{key}: {stderr}"
        );
    }

    // A model given on the command line is checked the same way (exit 2, naming the flag).
    let ws = Workspace::new(&base);
    let out = ws.run(&["run", "--agent", "helper", "--input", "hi", "--model", "nope/m"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("--model: model spec \"nope/m\" does not resolve"));
    assert!(calls(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_url_that_cannot_work_is_refused_at_load() {
    let server = answering_server().await;
    let base = base_config(&server.uri());
    for (url, reason) in [
        ("not a url", "is not a URL"),
        ("ftp://127.0.0.1/v1", "is not an http:// or https:// URL"),
        ("unix:/run/llm.sock", "is not an http:// or https:// URL"),
        ("http://", "is not a URL"),
    ] {
        let toml = format!("{base}\n[providers.other]\nkind = \"openai\"\nbase_url = \"{url}\"\n");
        for stderr in refused(&server, &toml, EVERY_COMMAND).await {
            assert!(
                stderr.contains(&format!(
                    "invalid configuration value for providers.other.base_url (from {FILE})"
                )) && stderr.contains(reason),
                "{url}: {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_file_that_is_not_sqlite_is_a_configuration_error() {
    let server = answering_server().await;
    let ws = Workspace::new(
        &base_config(&server.uri()).replace("sqlite://{dir}/executus.db", "sqlite://{dir}/notes.txt"),
    );
    std::fs::write(ws.path().join("notes.txt"), "shopping list\n").unwrap();
    for args in [&["run", "--agent", "helper", "--input", "hi", "--json"][..], &["config", "--check"]] {
        let out = ws.run(args, None).await;
        assert_exit(&out, 2);
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("invalid configuration value for store.url (from {FILE})"))
                && stderr.contains("notes.txt is not a SQLite database"),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(ws.path().join("notes.txt")).unwrap(), "shopping list\n");
    assert!(calls(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn persona_files_jobs_and_the_chat_persona_are_checked_too() {
    let server = answering_server().await;
    let base = format!("{}\n[personas]\ndir = \"personas\"\n", base_config(&server.uri()));
    let persona = |tools: &str, model: &str| {
        format!("+++\nmodel = \"{model}\"\ntools = [{tools}]\n+++\nYou are Ada.\n")
    };
    let ws = Workspace::new(&base);
    std::fs::create_dir(ws.path().join("personas")).unwrap();
    let file = ws.path().join("personas/ada.md");

    std::fs::write(&file, persona("\"calc\"", "mock/m")).unwrap();
    let out = ws.run(&["config", "--check"], None).await;
    assert_exit(&out, 0);

    for (body, expected) in [
        (persona("\"shell\"", "mock/m"), "persona \"ada\": tools: unknown tool \"shell\""),
        (persona("", "gone/m"), "persona \"ada\": model: model spec \"gone/m\" does not resolve"),
    ] {
        std::fs::write(&file, body).unwrap();
        for args in [&["chat", "--persona", "ada"][..], &["config", "--check"]] {
            let out = ws.run(args, None).await;
            assert_exit(&out, 2);
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("invalid configuration value for personas.dir")
                    && stderr.contains("ada.md")
                    && stderr.contains(expected),
                "{stderr}"
            );
        }
    }

    std::fs::write(&file, persona("", "mock/m")).unwrap();
    for (section, key) in [
        (
            "[schedule.jobs.nightly]\ncron = \"@daily\"\nagent = \"adda\"\ninput = \"x\"\n",
            "schedule.jobs.nightly.agent",
        ),
        ("[chat]\npersona = \"bob\"\n", "chat.persona"),
    ] {
        ws.write_config(&format!("{base}\n{section}"));
        let out = ws.run(&["config", "--check"], None).await;
        assert_exit(&out, 2);
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("invalid configuration value for {key}"))
                && stderr.contains("unknown agent or persona")
                && stderr.contains("(known: ada, helper)"),
            "{key}: {stderr}"
        );
    }
    assert!(calls(&server).await.is_empty());
}
