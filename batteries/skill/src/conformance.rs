//! A behavioural check for any [`SkillStore`] (feature `conformance`).
//!
//! A store implementation (e.g. the SQLite one) runs [`check_skill_store`] in its own tests
//! against an empty store, and gets the same contract the in-memory default is held to:
//! creation, gapless immutable versions, the active pointer, lifecycle transitions checked
//! against the stored state, validation before writing, ordering of lists, and exactly one
//! winner among concurrent writers of the same version number.
//!
//! It reports the first broken expectation as an `Err` with a message; it does not panic.

use futures::future::join_all;

use crate::error::SkillError;
use crate::model::{SkillState, SkillVersion};
use crate::store::SkillStore;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn version(name: &str, n: u32, at: u64) -> SkillVersion {
    SkillVersion {
        name: name.to_owned(),
        version: n,
        instructions: format!("{name} v{n} instructions"),
        tools: vec![format!("{name}_tool_{n}")],
        created_ms: at,
        note: (n > 1).then(|| format!("change {n}")),
    }
}

/// Runs the whole check against `store`, which must be empty (it creates skills named
/// `conf-*`).
///
/// # Errors
/// A message describing the first expectation the store broke.
pub async fn check_skill_store(store: &dyn SkillStore) -> Result<(), String> {
    create_and_read(store).await?;
    versions(store).await?;
    lifecycle(store).await?;
    validation(store).await?;
    concurrent_puts(store).await?;
    Ok(())
}

async fn create_and_read(store: &dyn SkillStore) -> Result<(), String> {
    let v1 = version("conf-b", 1, 1_000);
    let skill = store.create(v1.clone()).await.map_err(|e| format!("create failed: {e}"))?;
    ensure!(skill.state == SkillState::Draft, "a new skill must be a draft, got {}", skill.state);
    ensure!(skill.active_version == 1 && skill.latest_version == 1, "new skill pointers wrong: {skill:?}");
    ensure!(skill.created_ms == 1_000 && skill.updated_ms == 1_000, "new skill times wrong: {skill:?}");
    let got = store.get("conf-b").await.map_err(|e| e.to_string())?;
    ensure!(got.as_ref() == Some(&skill), "get after create: {got:?}");
    let again = store.create(version("conf-b", 1, 2_000)).await;
    ensure!(
        matches!(&again, Err(SkillError::AlreadyExists { skill }) if skill == "conf-b"),
        "creating an existing skill must be AlreadyExists, got {again:?}"
    );
    let not_one = store.create(version("conf-x", 2, 1_000)).await;
    ensure!(
        matches!(not_one, Err(SkillError::VersionOutOfOrder { version: 2, expected: 1, .. })),
        "create with version 2 must be VersionOutOfOrder, got {not_one:?}"
    );
    ensure!(store.get("conf-x").await.map_err(|e| e.to_string())?.is_none(), "a refused create left a row");
    store.create(version("conf-a", 1, 1_500)).await.map_err(|e| format!("create conf-a: {e}"))?;
    let names: Vec<String> =
        store.list().await.map_err(|e| e.to_string())?.into_iter().map(|s| s.name).collect();
    ensure!(names == ["conf-a", "conf-b"], "list must be ordered by name, got {names:?}");
    let stored = store.get_version("conf-b", 1).await.map_err(|e| e.to_string())?;
    ensure!(stored.as_ref() == Some(&v1), "get_version round trip: {stored:?}");
    ensure!(store.get("conf-none").await.map_err(|e| e.to_string())?.is_none(), "unknown skill found");
    ensure!(store.active("conf-none").await.map_err(|e| e.to_string())?.is_none(), "unknown skill active");
    Ok(())
}

async fn versions(store: &dyn SkillStore) -> Result<(), String> {
    let v2 = version("conf-b", 2, 2_000);
    let skill = store.put_version(v2.clone()).await.map_err(|e| format!("put v2: {e}"))?;
    ensure!(
        skill.latest_version == 2 && skill.active_version == 1,
        "put must not move the pointer: {skill:?}"
    );
    ensure!(skill.updated_ms == 2_000 && skill.state == SkillState::Draft, "put changed the wrong fields");
    let mut changed = version("conf-b", 2, 3_000);
    changed.instructions = "overwritten".into();
    let dup = store.put_version(changed).await;
    ensure!(
        matches!(dup, Err(SkillError::VersionExists { version: 2, .. })),
        "putting an existing version must be VersionExists, got {dup:?}"
    );
    let old = store.put_version(version("conf-b", 1, 3_000)).await;
    ensure!(matches!(old, Err(SkillError::VersionExists { version: 1, .. })), "re-put of v1: {old:?}");
    let gap = store.put_version(version("conf-b", 5, 3_000)).await;
    ensure!(
        matches!(gap, Err(SkillError::VersionOutOfOrder { version: 5, expected: 3, .. })),
        "a gap must be VersionOutOfOrder, got {gap:?}"
    );
    let unknown = store.put_version(version("conf-none", 2, 3_000)).await;
    ensure!(matches!(unknown, Err(SkillError::NotFound { .. })), "put on unknown skill: {unknown:?}");
    let stored = store.get_version("conf-b", 2).await.map_err(|e| e.to_string())?;
    ensure!(stored.as_ref() == Some(&v2), "version 2 must be unchanged, got {stored:?}");
    let listed = store.list_versions("conf-b").await.map_err(|e| e.to_string())?;
    let numbers: Vec<u32> = listed.iter().map(|v| v.version).collect();
    ensure!(numbers == [1, 2], "list_versions must be oldest first, got {numbers:?}");
    ensure!(
        store.list_versions("conf-none").await.map_err(|e| e.to_string())?.is_empty(),
        "versions of none"
    );

    let skill = store.set_active_version("conf-b", 2, 4_000).await.map_err(|e| format!("activate 2: {e}"))?;
    ensure!(skill.active_version == 2 && skill.updated_ms == 4_000, "activate: {skill:?}");
    let active = store.active("conf-b").await.map_err(|e| e.to_string())?;
    ensure!(active.as_ref().map(|a| &a.version) == Some(&v2), "active must be v2, got {active:?}");
    let missing = store.set_active_version("conf-b", 3, 5_000).await;
    ensure!(
        matches!(missing, Err(SkillError::VersionNotFound { version: 3, latest: 2, .. })),
        "activating a missing version: {missing:?}"
    );
    let zero = store.set_active_version("conf-b", 0, 5_000).await;
    ensure!(matches!(zero, Err(SkillError::VersionNotFound { version: 0, .. })), "activating v0: {zero:?}");
    let skill = store.set_active_version("conf-b", 1, 5_000).await.map_err(|e| format!("activate 1: {e}"))?;
    ensure!(skill.active_version == 1, "rollback to v1: {skill:?}");
    Ok(())
}

async fn lifecycle(store: &dyn SkillStore) -> Result<(), String> {
    let bad = store.set_state("conf-a", SkillState::Disabled, 10).await;
    ensure!(
        matches!(&bad, Err(SkillError::BadTransition { skill, from: SkillState::Draft, to: SkillState::Disabled })
            if skill == "conf-a"),
        "draft -> disabled must be BadTransition, got {bad:?}"
    );
    let s = store.set_state("conf-a", SkillState::Active, 20).await.map_err(|e| e.to_string())?;
    ensure!(s.state == SkillState::Active && s.updated_ms == 20, "draft -> active: {s:?}");
    let s = store.set_state("conf-a", SkillState::Active, 30).await.map_err(|e| e.to_string())?;
    ensure!(s.updated_ms == 20, "a same-state set must change nothing: {s:?}");
    let back = store.set_state("conf-a", SkillState::Draft, 40).await;
    ensure!(
        matches!(
            back,
            Err(SkillError::BadTransition { from: SkillState::Active, to: SkillState::Draft, .. })
        ),
        "active -> draft: {back:?}"
    );
    let s = store.set_state("conf-a", SkillState::Disabled, 50).await.map_err(|e| e.to_string())?;
    ensure!(s.state == SkillState::Disabled, "active -> disabled: {s:?}");
    let active = store.active("conf-a").await.map_err(|e| e.to_string())?;
    ensure!(
        active.as_ref().is_some_and(|a| a.skill.state == SkillState::Disabled && a.served().is_none()),
        "a disabled skill's snapshot must say so: {active:?}"
    );
    let s = store.set_state("conf-a", SkillState::Active, 60).await.map_err(|e| e.to_string())?;
    ensure!(s.state == SkillState::Active, "disabled -> active: {s:?}");
    let none = store.set_state("conf-none", SkillState::Active, 70).await;
    ensure!(matches!(none, Err(SkillError::NotFound { .. })), "set_state on unknown: {none:?}");
    Ok(())
}

async fn validation(store: &dyn SkillStore) -> Result<(), String> {
    let mut dup_tools = version("conf-v", 1, 1);
    dup_tools.tools = vec!["t".into(), "t".into()];
    let r = store.create(dup_tools).await;
    ensure!(matches!(r, Err(SkillError::Invalid { field: "tools", .. })), "duplicate tools: {r:?}");
    let r = store.create(version("bad name", 1, 1)).await;
    ensure!(matches!(r, Err(SkillError::Invalid { field: "name", .. })), "bad name: {r:?}");
    ensure!(store.get("conf-v").await.map_err(|e| e.to_string())?.is_none(), "invalid create wrote a row");
    Ok(())
}

async fn concurrent_puts(store: &dyn SkillStore) -> Result<(), String> {
    store.create(version("conf-c", 1, 1)).await.map_err(|e| format!("create conf-c: {e}"))?;
    let results = join_all((0..8u64).map(|i| {
        let mut v = version("conf-c", 2, 100 + i);
        v.instructions = format!("writer {i}");
        store.put_version(v)
    }))
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let lost =
        results.iter().filter(|r| matches!(r, Err(SkillError::VersionExists { version: 2, .. }))).count();
    ensure!(
        won == 1 && lost == 7,
        "8 racing puts of v2: {won} won, {lost} lost with VersionExists: {results:?}"
    );
    let versions = store.list_versions("conf-c").await.map_err(|e| e.to_string())?;
    ensure!(versions.len() == 2, "after the race there must be exactly 2 versions, got {}", versions.len());
    Ok(())
}
