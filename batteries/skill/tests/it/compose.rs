//! Composition onto an agent: order, headings, merged tools, loud conflicts.

use executus::RunnableAgent;
use executus::ports::SkillDef;
use executus_skill::{SkillContent, SkillError, compose};

use crate::common::library;

fn def(name: &str, instructions: &str, tools: &[&str]) -> SkillDef {
    SkillDef {
        name: name.into(),
        version: 1,
        instructions: instructions.into(),
        tools: tools.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[test]
fn instructions_are_appended_in_order_and_tools_merged() {
    let agent = RunnableAgent::new("a", "You are a reviewer.", "fake/m")
        .with_tools(["read"])
        .with_skills(["first", "second", "other"]);
    let skills = [def("first", "Look for bugs.\n", &["grep", "read"]), def("second", "  ", &["blame"])];
    let out = compose(agent, &skills).unwrap();
    assert_eq!(out.system, "You are a reviewer.\n\n## Skill: first\n\nLook for bugs.");
    // `read` was already allowed: not a conflict, not duplicated.
    assert_eq!(out.tools, ["read", "grep", "blame"]);
    // Composed skills are no longer pending; others stay for the runtime to resolve.
    assert_eq!(out.skills, ["other"]);

    let out =
        compose(RunnableAgent::new("b", "", "fake/m"), &[def("x", "X.", &[]), def("y", "Y.", &[])]).unwrap();
    assert_eq!(out.system, "## Skill: x\n\nX.\n\n## Skill: y\n\nY.");
}

#[test]
fn a_tool_from_two_skills_is_an_error_naming_both() {
    let agent = RunnableAgent::new("a", "sys", "fake/m");
    let skills =
        [def("search", "s", &["grep", "find"]), def("misc", "m", &["ls"]), def("audit", "a", &["grep"])];
    let err = compose(agent.clone(), &skills).unwrap_err();
    assert_eq!(
        err,
        SkillError::DuplicateTool { tool: "grep".into(), first: "search".into(), second: "audit".into() }
    );
    let message = err.to_string();
    assert!(message.contains("search") && message.contains("audit") && message.contains("grep"), "{message}");

    // The same skill given twice conflicts with itself, as in the core runtime.
    let err = compose(agent, &[def("s", "", &["t"]), def("s", "", &["t"])]).unwrap_err();
    assert!(matches!(err, SkillError::DuplicateTool { .. }));
}

#[tokio::test]
async fn the_library_composes_only_served_skills() {
    let (skills, _clock) = library();
    skills.create("a", SkillContent::new("Do A.").with_tools(["ta"])).await.unwrap();
    skills.create("b", SkillContent::new("Do B.").with_tools(["tb"])).await.unwrap();
    skills.enable("a").await.unwrap();
    let agent = RunnableAgent::new("x", "Base.", "fake/m").with_skills(["a", "b"]);

    let err = skills.compose_agent(agent.clone()).await.unwrap_err();
    assert!(matches!(err, SkillError::NotActive { ref skill, .. } if skill == "b"), "{err}");

    skills.enable("b").await.unwrap();
    let out = skills.compose_agent(agent).await.unwrap();
    assert_eq!(out.system, "Base.\n\n## Skill: a\n\nDo A.\n\n## Skill: b\n\nDo B.");
    assert_eq!(out.tools, ["ta", "tb"]);
    assert!(out.skills.is_empty());
}
