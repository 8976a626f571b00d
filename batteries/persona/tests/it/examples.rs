//! The example personas shipped in `personas/` load and convert as documented.

use std::time::Duration;

use executus::Limits;
use executus_persona::load_dir;

use crate::common::shipped;

#[test]
fn shipped_personas_load() {
    let loaded = load_dir(shipped()).unwrap();
    let names: Vec<&str> = loaded.iter().map(|l| l.persona.name.as_str()).collect();
    // File-name order: reviewer.md, summarizer.md, triage.md (which names itself).
    assert_eq!(names, ["reviewer", "summarizer", "issue-triage"]);

    let reviewer = &loaded[0].persona;
    assert!(loaded[0].path.ends_with("reviewer.md"));
    assert_eq!(reviewer.model, "smart");
    assert_eq!(reviewer.tools, ["read_file"]);
    assert_eq!(reviewer.skills, ["code-review"]);
    assert_eq!(reviewer.temperature, Some(0.2));
    assert!(reviewer.system.starts_with("You are a careful senior code reviewer.\n\nRead the change"));
    assert!(reviewer.system.ends_with("say so in one line."));

    let agent = reviewer.to_agent();
    let defaults = Limits::default();
    assert_eq!(agent.limits.max_steps, 8);
    assert_eq!(agent.limits.timeout, Duration::from_secs(300));
    assert_eq!(agent.limits.tool_timeout, Duration::from_secs(30));
    assert_eq!(agent.limits.tool_concurrency, defaults.tool_concurrency);
    assert_eq!(agent.limits.soft_timeout, None);
    assert_eq!(agent.description, reviewer.description);
    assert_eq!(agent.skills, ["code-review"]);

    let summarizer = &loaded[1].persona;
    assert_eq!(summarizer.model, "fast, ollama/qwen3:30b");
    assert_eq!(summarizer.max_tokens, Some(800));
    assert!(summarizer.system.starts_with("You summarise text"));

    let triage = loaded[2].persona.to_agent();
    assert_eq!(triage.lane.as_deref(), Some("background"));
    assert_eq!(triage.policy_profile.as_deref(), Some("read-only"));
    assert_eq!(triage.limits.soft_timeout, Some(Duration::from_secs(60)));
    assert_eq!(triage.limits.timeout, Duration::from_secs(120));
    assert_eq!(triage.limits.max_steps, 3);
}
