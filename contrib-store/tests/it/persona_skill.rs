//! The SQLite persona and skill stores beyond the batteries' conformance suites: batches
//! are atomic to readers in another `Store`, version races between two `Store`s on one file
//! have exactly one winner, versions are immutable in the schema itself, bad rows are
//! reported by name, and both work behind the batteries' own libraries, across reopening.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use executus::ports::PortError;
use executus_persona::{Persona, PersonaLibrary, PersonaStore};
use executus_skill::{SkillContent, SkillError, SkillLibrary, SkillState, SkillStore, SkillVersion};

use crate::common::TempStore;
use crate::conformance::{Db, backends};
use executus_store::Store;

fn version(name: &str, n: u32, text: &str) -> SkillVersion {
    SkillVersion {
        name: name.into(),
        version: n,
        instructions: text.into(),
        tools: vec![format!("tool_{n}")],
        created_ms: u64::from(n) * 1_000,
        note: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persona_batches_are_atomic_to_a_reader_in_another_store() {
    const TEST: &str = "persona_batches_are_atomic_to_a_reader_in_another_store";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        persona_batches(db.open().await, db.open().await).await;
    }
}

async fn persona_batches(writer: Store, reader: Store) {
    let done = Arc::new(AtomicBool::new(false));
    let watch = {
        let (done, store) = (done.clone(), reader.personas());
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let n = store.list().await.unwrap().len();
                assert_eq!(n % 10, 0, "a reader saw half a batch ({n} personas)");
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    let store = writer.personas();
    for b in 0..20 {
        let batch = (0..10).map(|i| Persona::new(format!("p{b:02}-{i}"), "You help.", "fast")).collect();
        store.put_all(batch).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(watch.await.unwrap() > 0);
    assert_eq!(reader.personas().list().await.unwrap().len(), 200);
}

#[tokio::test]
async fn personas_survive_reopening_and_bad_rows_are_reported_by_name() {
    let tmp = TempStore::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("reviewer.md"),
        "+++\nname = \"reviewer\"\nmodel = \"smart\"\ntools = [\"read_file\"]\n+++\nYou review code.\n",
    )
    .unwrap();
    {
        let store = tmp.open().await;
        let library = PersonaLibrary::new(Arc::new(store.personas()));
        library.load_dir(dir.path()).await.unwrap();
        store.close().await;
    }
    let store = tmp.open().await;
    let got = store.personas().get("reviewer").await.unwrap().expect("stored across reopening");
    assert_eq!(got.tools, ["read_file"]);
    assert_eq!(store.personas().count().await.unwrap(), 1);
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    sqlx::query("UPDATE personas SET record = '{\"name\": \"reviewer\", \"modle\": 1}'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = store.personas().get("reviewer").await.unwrap_err();
    assert!(
        matches!(&err, PortError::Corrupt { port: "persona", message } if message.contains("\"reviewer\"")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_versions_from_two_stores_have_exactly_one_winner() {
    const TEST: &str = "racing_versions_from_two_stores_have_exactly_one_winner";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        racing_versions(db.open().await, db.open().await).await;
    }
}

async fn racing_versions(a: Store, b: Store) {
    a.skills().create(version("race", 1, "v1")).await.unwrap();
    for n in 2..=6u32 {
        let attempts: Vec<_> = (0..12)
            .map(|i| {
                let store = if i % 2 == 0 { a.skills() } else { b.skills() };
                tokio::spawn(
                    async move { store.put_version(version("race", n, &format!("writer {i}"))).await },
                )
            })
            .collect();
        let mut won = 0;
        for t in attempts {
            match t.await.unwrap() {
                Ok(skill) => {
                    won += 1;
                    assert_eq!(skill.latest_version, n);
                }
                Err(SkillError::VersionExists { version, .. }) => assert_eq!(version, n),
                Err(other) => panic!("unexpected: {other:?}"),
            }
        }
        assert_eq!(won, 1, "version {n}: exactly one writer wins");
    }
    let versions = b.skills().list_versions("race").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn versions_are_immutable_in_the_schema_and_bad_rows_are_reported() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    store.skills().create(version("s", 1, "original")).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    for sql in ["UPDATE skill_versions SET record = '{}'", "DELETE FROM skill_versions"] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("skill versions are immutable"), "{sql}: {err}");
    }
    assert_eq!(store.skills().get_version("s", 1).await.unwrap().unwrap().instructions, "original");
    // A skill row pointing past its versions (someone edited the file) is reported.
    sqlx::query("PRAGMA ignore_check_constraints = ON").execute(&pool).await.unwrap();
    sqlx::query("UPDATE skills SET active_version = 3, latest_version = 3").execute(&pool).await.unwrap();
    pool.close().await;
    let err = store.skills().active("s").await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Port(PortError::Corrupt { message, .. }) if message.contains("version 3")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_skill_library_works_on_the_sqlite_store_across_reopening() {
    let tmp = TempStore::new();
    {
        let store = tmp.open().await;
        let skills = SkillLibrary::new(Arc::new(store.skills()));
        skills.create("grep", SkillContent::new("Search first.").with_tools(["grep"])).await.unwrap();
        skills
            .new_version("grep", SkillContent::new("Search, then read.").with_tools(["grep", "read"]))
            .await
            .unwrap();
        skills.enable("grep").await.unwrap();
        store.close().await;
    }
    let store = tmp.open().await;
    let skills = SkillLibrary::new(Arc::new(store.skills()));
    assert_eq!(skills.served("grep").await.unwrap().tools, ["grep"], "the pointer still names version 1");
    skills.activate("grep", 2).await.unwrap();
    assert_eq!(skills.served("grep").await.unwrap().tools, ["grep", "read"]);
    skills.disable("grep").await.unwrap();
    assert!(matches!(
        skills.served("grep").await,
        Err(SkillError::NotActive { state: SkillState::Disabled, .. })
    ));
    let err = skills.set_state("grep", SkillState::Draft).await.unwrap_err();
    assert!(matches!(
        err,
        SkillError::BadTransition { from: SkillState::Disabled, to: SkillState::Draft, .. }
    ));
}
