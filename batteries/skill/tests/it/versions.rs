//! Versions: immutable, gapless, with an active pointer; concurrent writers never lose or
//! overwrite a version.

use std::sync::Arc;

use executus::ports::SkillSource;
use executus_skill::{MemorySkillStore, SkillContent, SkillError, SkillLibrary, SkillStore, SkillVersion};

use crate::common::library;

#[tokio::test]
async fn new_versions_are_immutable_and_the_pointer_chooses_what_is_served() {
    let (skills, clock) = library();
    skills.create("review", SkillContent::new("v1 text").with_tools(["diff"])).await.unwrap();
    skills.enable("review").await.unwrap();

    clock.set_ms(5_000);
    let v2 = skills
        .new_version(
            "review",
            SkillContent::new("v2 text").with_tools(["diff", "blame"]).with_note("adds blame"),
        )
        .await
        .unwrap();
    assert_eq!((v2.version, v2.created_ms, v2.note.as_deref()), (2, 5_000, Some("adds blame")));

    // A new version is not served until the pointer moves to it.
    assert_eq!(skills.skill("review").await.unwrap().unwrap().version, 1);
    let skill = skills.activate("review", 2).await.unwrap();
    assert_eq!((skill.active_version, skill.latest_version), (2, 2));
    let served = skills.skill("review").await.unwrap().unwrap();
    assert_eq!((served.version, served.instructions.as_str()), (2, "v2 text"));
    assert_eq!(served.tools, ["diff", "blame"]);

    // Putting an existing version number again is refused; the stored one is unchanged.
    let overwrite = SkillVersion {
        name: "review".into(),
        version: 2,
        instructions: "tampered".into(),
        tools: vec![],
        created_ms: 9_000,
        note: None,
    };
    let err = skills.store().put_version(overwrite).await.unwrap_err();
    assert_eq!(err, SkillError::VersionExists { skill: "review".into(), version: 2 });
    assert_eq!(skills.version("review", 2).await.unwrap().unwrap(), v2);

    // Roll back by pointing at version 1; both versions are kept.
    skills.activate("review", 1).await.unwrap();
    assert_eq!(skills.skill("review").await.unwrap().unwrap().instructions, "v1 text");
    let numbers: Vec<u32> = skills.versions("review").await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2]);

    let err = skills.activate("review", 7).await.unwrap_err();
    assert_eq!(err, SkillError::VersionNotFound { skill: "review".into(), version: 7, latest: 2 });
    assert_eq!(
        skills.new_version("ghost", SkillContent::new("x")).await.unwrap_err(),
        SkillError::NotFound { skill: "ghost".into() }
    );
}

#[tokio::test]
async fn invalid_content_is_rejected_before_anything_is_written() {
    let (skills, _clock) = library();
    let err = skills.create("dup", SkillContent::new("x").with_tools(["a", "a"])).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Invalid { skill, field: "tools", reason } if skill == "dup" && reason.contains("\"a\""))
    );
    assert!(skills.get("dup").await.unwrap().is_none());
    let err = skills.create("two words", SkillContent::new("x")).await.unwrap_err();
    assert!(matches!(err, SkillError::Invalid { field: "name", .. }));
    let err = skills.create("ok", SkillContent::new("x").with_tools([""])).await.unwrap_err();
    assert!(matches!(err, SkillError::Invalid { field: "tools", .. }));
    skills.create("dupe", SkillContent::new("x")).await.unwrap();
    assert_eq!(
        skills.create("dupe", SkillContent::new("y")).await.unwrap_err(),
        SkillError::AlreadyExists { skill: "dupe".into() }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_new_versions_get_distinct_gapless_numbers() {
    let skills = SkillLibrary::in_memory();
    skills.create("busy", SkillContent::new("v1")).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let skills = skills.clone();
            tokio::spawn(
                async move { skills.new_version("busy", SkillContent::new(format!("writer {i}"))).await },
            )
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap().unwrap().version);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (2..=17).collect::<Vec<u32>>());
    let stored = skills.versions("busy").await.unwrap();
    assert_eq!(stored.len(), 17);
    // Every writer's content is stored exactly once.
    for i in 0..16 {
        let text = format!("writer {i}");
        assert_eq!(stored.iter().filter(|v| v.instructions == text).count(), 1, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_puts_of_one_version_number_have_exactly_one_winner() {
    let store = Arc::new(MemorySkillStore::new());
    let first = SkillVersion {
        name: "race".into(),
        version: 1,
        instructions: "v1".into(),
        tools: vec![],
        created_ms: 1,
        note: None,
    };
    store.create(first.clone()).await.unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let store = store.clone();
            let version =
                SkillVersion { version: 2, instructions: format!("w{i}"), created_ms: i, ..first.clone() };
            tokio::spawn(async move { store.put_version(version).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(skill) => won.push(skill),
            Err(err) => assert_eq!(err, SkillError::VersionExists { skill: "race".into(), version: 2 }),
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!(store.list_versions("race").await.unwrap().len(), 2);
    assert_eq!(store.get("race").await.unwrap().unwrap().latest_version, 2);
}

#[tokio::test]
async fn records_round_trip_through_json() {
    let (skills, _clock) = library();
    skills.create("j", SkillContent::new("text").with_tools(["t"]).with_note("first")).await.unwrap();
    let skill = skills.get("j").await.unwrap().unwrap();
    let version = skills.version("j", 1).await.unwrap().unwrap();
    let skill_back: executus_skill::Skill =
        serde_json::from_str(&serde_json::to_string(&skill).unwrap()).unwrap();
    let version_back: SkillVersion = serde_json::from_str(&serde_json::to_string(&version).unwrap()).unwrap();
    assert_eq!(skill_back, skill);
    assert_eq!(version_back, version);
    assert_eq!(serde_json::to_value(&skill).unwrap()["state"], "draft");
}
