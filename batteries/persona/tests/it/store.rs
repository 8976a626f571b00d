//! Stores and the library: round trips, concurrent writers, all-or-nothing folder loads.

use std::sync::Arc;
use std::time::Duration;

use executus::ports::{PersonaSource, PortError};
use executus_persona::{
    LoadDirError, MemoryPersonaStore, Persona, PersonaLibrary, PersonaLimits, PersonaStore, load_dir_into,
};

use crate::common::{dir_with, shipped};

fn full(name: &str) -> Persona {
    let mut p = Persona::new(name, "You are careful.", "smart, ollama/qwen3:30b");
    p.description = "desc".into();
    p.tools = vec!["read_file".into()];
    p.skills = vec!["code-review".into()];
    p.limits = PersonaLimits {
        max_steps: Some(4),
        timeout: Some(Duration::from_secs(90)),
        soft_timeout: Some(Duration::from_secs(30)),
        tool_timeout: Some(Duration::from_millis(2_500)),
        tool_concurrency: Some(1),
        tool_error_limit: Some(2),
        loops: executus::config::RawLoops { cycle: Some(5), finalize_turns: Some(0), ..Default::default() },
    };
    p.temperature = Some(0.5);
    p.max_tokens = Some(512);
    p.lane = Some("bg".into());
    p.policy_profile = Some("read-only".into());
    p
}

#[tokio::test]
async fn memory_store_round_trips_every_field() {
    let store = MemoryPersonaStore::new();
    let p = full("a");
    store.put(p.clone()).await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), Some(p.clone()));
    assert_eq!(store.list().await.unwrap(), ["a"]);
    assert!(store.delete("a").await.unwrap());
    assert_eq!(store.get("a").await.unwrap(), None);
    assert!(!store.delete("a").await.unwrap());

    // The JSON record a SQL store keeps round-trips too, with humantime durations.
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["limits"]["tool_timeout"], "2s 500ms");
    assert_eq!(serde_json::from_value::<Persona>(json).unwrap(), p);
    // Unset fields stay out of the record; unknown ones are refused.
    let bare = serde_json::to_value(Persona::new("b", "", "m")).unwrap();
    assert_eq!(bare, serde_json::json!({ "name": "b", "system": "", "model": "m" }));
    assert!(
        serde_json::from_value::<Persona>(serde_json::json!({ "name": "b", "model": "m", "x": 1 })).is_err()
    );
}

#[tokio::test]
async fn invalid_personas_are_refused_by_store_and_library() {
    let store = MemoryPersonaStore::new();
    let mut p = full("bad");
    p.limits.max_steps = Some(0);
    let err = store.put(p.clone()).await.unwrap_err();
    assert!(matches!(&err, PortError::Invalid { what, .. } if what.contains("limits.max_steps")), "{err}");
    let library = PersonaLibrary::in_memory();
    assert!(matches!(library.put(p).await, Err(PortError::Invalid { .. })));
    assert!(library.names().await.unwrap().is_empty());

    let mut twice = full("t");
    twice.skills = vec!["s".into(), "s".into()];
    assert!(matches!(store.put(twice).await, Err(PortError::Invalid { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_all_land_whole() {
    let store = Arc::new(MemoryPersonaStore::new());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.put(full(&format!("p{i:02}"))).await.unwrap();
                let mut same = full("same");
                same.description = format!("writer {i}");
                same.max_tokens = Some(1_000 + i);
                store.put(same).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let names = store.list().await.unwrap();
    assert_eq!(names.len(), 33);
    assert_eq!(names[0], "p00");
    let same = store.get("same").await.unwrap().unwrap();
    let writer: u32 = same.description.strip_prefix("writer ").unwrap().parse().unwrap();
    assert_eq!(same.max_tokens, Some(1_000 + writer), "a record mixes two writes: {same:?}");
}

#[tokio::test]
async fn loading_a_folder_is_all_or_nothing() {
    let library = PersonaLibrary::in_memory();
    library.put(full("kept")).await.unwrap();
    let bad = dir_with(&[("good.md", "+++\nmodel = \"m\"\n+++\nok\n"), ("bad.md", "+++\nmodel = 1\n+++\n")]);
    match library.load_dir(bad.path()).await.unwrap_err() {
        LoadDirError::Files(errors) => assert_eq!(errors.errors().len(), 1),
        other => panic!("expected file errors, got {other}"),
    }
    // Nothing from the folder was stored; what was there stays.
    assert_eq!(library.names().await.unwrap(), ["kept"]);

    let names = library.load_dir(shipped()).await.unwrap();
    assert_eq!(names, ["reviewer", "summarizer", "issue-triage"]);
    assert_eq!(library.names().await.unwrap(), ["issue-triage", "kept", "reviewer", "summarizer"]);
    let agent = PersonaSource::persona(&library, "reviewer").await.unwrap().unwrap();
    assert_eq!(agent.model, "smart");
    assert_eq!(PersonaSource::list(&library).await.unwrap().len(), 4);
    assert!(PersonaSource::persona(&library, "nobody").await.unwrap().is_none());

    // Loading again replaces the same names (a reload), still one batch.
    let store = MemoryPersonaStore::new();
    load_dir_into(&store, shipped()).await.unwrap();
    load_dir_into(&store, shipped()).await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_failing_store_is_reported_with_the_folder() {
    struct Broken;
    #[async_trait::async_trait]
    impl PersonaStore for Broken {
        async fn get(&self, _: &str) -> Result<Option<Persona>, PortError> {
            Ok(None)
        }
        async fn list(&self) -> Result<Vec<String>, PortError> {
            Ok(vec![])
        }
        async fn put(&self, _: Persona) -> Result<(), PortError> {
            Ok(())
        }
        async fn put_all(&self, _: Vec<Persona>) -> Result<(), PortError> {
            Err(PortError::Backend { port: "persona", message: "disk full".into() })
        }
        async fn delete(&self, _: &str) -> Result<bool, PortError> {
            Ok(false)
        }
    }
    let err = load_dir_into(&Broken, shipped()).await.unwrap_err();
    assert!(matches!(&err, LoadDirError::Store { dir, .. } if *dir == shipped()), "{err}");
    assert!(err.to_string().contains("disk full"));
}
