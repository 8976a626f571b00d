//! Skills through the real core runtime over the fake provider.

use executus::llm::ToolCall;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::{RunEnd, RunnableAgent, RuntimeError};
use executus_skill::SkillContent;

use crate::common::{library, runtime, tools};

fn call(id: &str, name: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), args: serde_json::json!({ "text": "x" }), signature: None }
}

#[tokio::test]
async fn an_agent_runs_with_its_active_skills() {
    let (skills, _clock) = library();
    skills
        .create("search", SkillContent::new("Search before answering.").with_tools(["grep"]))
        .await
        .unwrap();
    skills.create("cite", SkillContent::new("Cite your sources.").with_tools(["fetch"])).await.unwrap();
    skills.enable("search").await.unwrap();
    skills.enable("cite").await.unwrap();
    skills.new_version("cite", SkillContent::new("Cite every source.").with_tools(["fetch"])).await.unwrap();
    skills.activate("cite", 2).await.unwrap();

    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "grep")]));
    fake.push("m", Outcome::text("answer"));
    let rt = runtime(&fake, tools(&["grep", "fetch", "unrelated"]), skills);
    let agent = RunnableAgent::new("helper", "You help.", "fake/m").with_skills(["search", "cite"]);
    let out = rt.run(agent, "question").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.output.as_deref(), Some("answer"));

    let request = &fake.requests_for("m")[0];
    let system = request.system.as_deref().unwrap();
    let base = system.find("You help.").unwrap();
    let search = system.find("Search before answering.").unwrap();
    let cite = system.find("Cite every source.").unwrap();
    assert!(base < search && search < cite, "{system}");
    assert!(!system.contains("Cite your sources."), "version 1 must not be served: {system}");
    let mut offered: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
    offered.sort_unstable();
    assert_eq!(offered, ["fetch", "grep"]);
    // The skill's tool really ran.
    assert!(format!("{:?}", fake.requests_for("m")[1].messages).contains("grep ok"));
}

#[tokio::test]
async fn a_skill_that_is_not_active_is_refused_by_the_runtime() {
    let (skills, _clock) = library();
    skills.create("draft", SkillContent::new("Never seen.")).await.unwrap();
    let fake = FakeProvider::new("fake");
    let rt = runtime(&fake, tools(&[]), skills.clone());
    let agent = RunnableAgent::new("a", "sys", "fake/m").with_skills(["draft"]);

    let err = rt.run(agent.clone(), "hi").await.unwrap_err();
    assert!(matches!(&err, RuntimeError::UnknownSkill { skill, .. } if skill == "draft"), "{err}");

    skills.enable("draft").await.unwrap();
    skills.disable("draft").await.unwrap();
    let err = rt.run(agent, "hi").await.unwrap_err();
    assert!(matches!(&err, RuntimeError::UnknownSkill { skill, .. } if skill == "draft"), "{err}");
    assert_eq!(fake.calls(), 0, "no model call for a refused run");
}

#[tokio::test]
async fn a_tool_from_two_skills_is_a_runtime_conflict_naming_both() {
    let (skills, _clock) = library();
    skills.create("one", SkillContent::new("One.").with_tools(["shared", "own"])).await.unwrap();
    skills.create("two", SkillContent::new("Two.").with_tools(["shared"])).await.unwrap();
    skills.enable("one").await.unwrap();
    skills.enable("two").await.unwrap();
    let fake = FakeProvider::new("fake");
    let rt = runtime(&fake, tools(&["shared", "own"]), skills.clone());
    let agent = RunnableAgent::new("a", "sys", "fake/m").with_skills(["one", "two"]);

    let err = rt.run(agent.clone(), "hi").await.unwrap_err();
    match err {
        RuntimeError::SkillConflict { agent, tool, first, second } => {
            assert_eq!(
                (agent.as_str(), tool.as_str(), first.as_str(), second.as_str()),
                ("a", "shared", "one", "two")
            );
        }
        other => panic!("expected SkillConflict, got {other}"),
    }
    // compose says the same thing.
    let err = skills.compose_agent(agent).await.unwrap_err();
    assert_eq!(
        err,
        executus_skill::SkillError::DuplicateTool {
            tool: "shared".into(),
            first: "one".into(),
            second: "two".into()
        }
    );
    assert_eq!(fake.calls(), 0);
}
