//! Personas loaded from files run through the real core runtime, with their skills.

use executus::llm::ToolCall;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::{RunEnd, RuntimeError};
use executus_persona::PersonaLibrary;
use executus_skill::{SkillContent, SkillLibrary};

use crate::common::{dir_with, runtime, shipped, tools};

fn call(id: &str, name: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), args: serde_json::json!({ "text": "x" }), signature: None }
}

const HELPER: &str = "+++
description = \"Answers with sources\"
model = \"fake/m\"
tools = [\"read\"]
skills = [\"search\", \"cite\"]
temperature = 0.2
max_tokens = 300

[limits]
max_steps = 4
+++
You are the helper persona.
";

#[tokio::test]
async fn a_persona_from_files_runs_with_its_skills() {
    let dir = dir_with(&[("helper.md", HELPER)]);
    let personas = PersonaLibrary::in_memory();
    personas.load_dir(dir.path()).await.unwrap();
    let skills = SkillLibrary::in_memory();
    skills
        .create("search", SkillContent::new("Search before answering.").with_tools(["grep"]))
        .await
        .unwrap();
    skills.create("cite", SkillContent::new("Cite every source.").with_tools(["fetch"])).await.unwrap();
    skills.enable("search").await.unwrap();
    skills.enable("cite").await.unwrap();

    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "grep")]));
    fake.push("m", Outcome::text("answer [1]"));
    let rt = runtime(&fake, tools(&["read", "grep", "fetch", "other"]), personas, skills);

    let agent = rt.agent("helper").await.unwrap();
    assert_eq!(agent.limits.max_steps, 4);
    let out = rt.run(agent, "What is executus?").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.output.as_deref(), Some("answer [1]"));

    let first = &fake.requests_for("m")[0];
    let system = first.system.as_deref().unwrap();
    let body = system.find("You are the helper persona.").unwrap();
    let search = system.find("Search before answering.").unwrap();
    let cite = system.find("Cite every source.").unwrap();
    assert!(body == 0 && body < search && search < cite, "{system}");
    let mut offered: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
    offered.sort_unstable();
    assert_eq!(offered, ["fetch", "grep", "read"]);
    assert_eq!(first.temperature, Some(0.2));
    assert_eq!(first.max_tokens, Some(300));
    // The skill's tool ran and its result went back to the model.
    assert!(format!("{:?}", fake.requests_for("m")[1].messages).contains("grep ok"));
}

#[tokio::test]
async fn the_shipped_reviewer_runs_on_its_tier() {
    let personas = PersonaLibrary::in_memory();
    personas.load_dir(shipped()).await.unwrap();
    let skills = SkillLibrary::in_memory();
    skills
        .create("code-review", SkillContent::new("Check error handling first.").with_tools(["git_diff"]))
        .await
        .unwrap();
    skills.enable("code-review").await.unwrap();
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("LGTM"));
    let rt = runtime(&fake, tools(&["read_file", "git_diff"]), personas, skills);

    let out = rt.run(rt.agent("reviewer").await.unwrap(), "diff --git ...").await.unwrap();
    assert_eq!(out.output.as_deref(), Some("LGTM"));
    let request = fake.last_request("m").unwrap();
    let system = request.system.unwrap();
    assert!(system.starts_with("You are a careful senior code reviewer."), "{system}");
    assert!(system.ends_with("Check error handling first."), "{system}");
    let offered: Vec<String> = request.tools.iter().map(|t| t.name.clone()).collect();
    assert_eq!(offered.len(), 2, "{offered:?}");
}

#[tokio::test]
async fn unknown_names_and_skill_conflicts_are_errors_from_the_runtime() {
    let text = "+++\nmodel = \"fake/m\"\nskills = [\"one\", \"two\"]\n+++\nBody.\n";
    let dir = dir_with(&[("clash.md", text)]);
    let personas = PersonaLibrary::in_memory();
    personas.load_dir(dir.path()).await.unwrap();
    let skills = SkillLibrary::in_memory();
    skills.create("one", SkillContent::new("One.").with_tools(["shared"])).await.unwrap();
    skills.create("two", SkillContent::new("Two.").with_tools(["shared"])).await.unwrap();
    skills.enable("one").await.unwrap();
    skills.enable("two").await.unwrap();
    let fake = FakeProvider::new("fake");
    let rt = runtime(&fake, tools(&["shared"]), personas, skills);

    let err = rt.agent("nobody").await.unwrap_err();
    assert!(matches!(&err, RuntimeError::UnknownAgent { known, .. } if known.contains("clash")), "{err}");

    let err = rt.run(rt.agent("clash").await.unwrap(), "hi").await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::SkillConflict { agent, tool, first, second }
            if agent == "clash" && tool == "shared" && first == "one" && second == "two"),
        "{err}"
    );
    assert_eq!(fake.calls(), 0);
}
