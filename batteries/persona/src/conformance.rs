//! A behavioural check for any [`PersonaStore`] (feature `conformance`).
//!
//! A store implementation (e.g. the SQLite one) runs [`check_persona_store`] in its own
//! tests against an empty store and is held to the same contract as the in-memory default:
//! whole-record round trips (every field, durations included), sorted listing, replacing
//! puts, deletes that report whether something was there, validation before writing,
//! all-or-nothing batches, and concurrent writers that never lose a record or mix two.
//!
//! It reports the first broken expectation as an `Err` with a message; it does not panic.

use std::time::Duration;

use executus::ports::PortError;
use futures::future::join_all;

use crate::persona::{Persona, PersonaLimits};
use crate::store::PersonaStore;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A persona using every field.
fn full(name: &str) -> Persona {
    Persona {
        name: name.to_owned(),
        description: format!("{name} description"),
        system: format!("You are {name}.\n\nLine two."),
        model: "smart, ollama/qwen3:30b".into(),
        tools: vec!["read_file".into(), "grep".into()],
        skills: vec!["code-review".into()],
        limits: PersonaLimits {
            max_steps: Some(7),
            timeout: Some(Duration::from_secs(300)),
            soft_timeout: Some(Duration::from_secs(120)),
            tool_timeout: Some(Duration::from_millis(1_500)),
            tool_concurrency: Some(2),
            tool_error_limit: Some(3),
            loops: executus::config::RawLoops { stagnation: Some(3), ..Default::default() },
        },
        temperature: Some(0.25),
        max_tokens: Some(2_048),
        lane: Some("interactive".into()),
        policy_profile: Some("read-only".into()),
    }
}

fn err(e: PortError) -> String {
    e.to_string()
}

/// Runs the whole check against `store`, which must be empty (it writes personas named
/// `conf-*`).
///
/// # Errors
/// A message describing the first expectation the store broke.
pub async fn check_persona_store(store: &dyn PersonaStore) -> Result<(), String> {
    let b = full("conf-b");
    store.put(b.clone()).await.map_err(err)?;
    let got = store.get("conf-b").await.map_err(err)?;
    ensure!(got.as_ref() == Some(&b), "round trip changed the persona: {got:?}");
    store.put(Persona::new("conf-a", "", "fast")).await.map_err(err)?;
    let names = store.list().await.map_err(err)?;
    ensure!(names == ["conf-a", "conf-b"], "list must be sorted names, got {names:?}");
    ensure!(store.get("conf-none").await.map_err(err)?.is_none(), "unknown persona found");
    ensure!(store.get("CONF-B").await.map_err(err)?.is_none(), "names must be case-sensitive");

    let replaced = Persona::new("conf-b", "replaced", "fast");
    store.put(replaced.clone()).await.map_err(err)?;
    let got = store.get("conf-b").await.map_err(err)?;
    ensure!(got.as_ref() == Some(&replaced), "put must replace the whole record, got {got:?}");

    let bad = store.put(Persona::new("conf-bad", "", " ")).await;
    ensure!(matches!(bad, Err(PortError::Invalid { .. })), "an empty model must be Invalid, got {bad:?}");
    ensure!(store.get("conf-bad").await.map_err(err)?.is_none(), "an invalid put wrote a record");

    let batch = vec![full("conf-c"), Persona::new("conf-d", "", "")];
    let r = store.put_all(batch).await;
    ensure!(matches!(r, Err(PortError::Invalid { .. })), "a batch with an invalid persona: {r:?}");
    ensure!(store.get("conf-c").await.map_err(err)?.is_none(), "a refused batch wrote part of itself");
    let r = store.put_all(vec![full("conf-c"), full("conf-c")]).await;
    ensure!(matches!(r, Err(PortError::Invalid { .. })), "a batch naming one persona twice: {r:?}");
    store.put_all(vec![full("conf-c"), full("conf-d"), b.clone()]).await.map_err(err)?;
    let names = store.list().await.map_err(err)?;
    ensure!(names == ["conf-a", "conf-b", "conf-c", "conf-d"], "after the batch: {names:?}");
    ensure!(store.get("conf-b").await.map_err(err)? == Some(b), "a batch must replace existing records");

    ensure!(store.delete("conf-a").await.map_err(err)?, "deleting an existing persona must say true");
    ensure!(!store.delete("conf-a").await.map_err(err)?, "deleting it again must say false");
    ensure!(store.get("conf-a").await.map_err(err)?.is_none(), "a deleted persona is still there");

    // Concurrent writers: distinct names all land; one name ends as one whole record.
    let results = join_all((0..16).map(|i| store.put(full(&format!("conf-p{i:02}"))))).await;
    ensure!(results.iter().all(Result::is_ok), "concurrent puts failed: {results:?}");
    let names = store.list().await.map_err(err)?;
    ensure!(
        names.iter().filter(|n| n.starts_with("conf-p")).count() == 16,
        "lost concurrent puts: {names:?}"
    );
    let writers = (0..8).map(|i| {
        let mut p = full("conf-same");
        p.description = format!("writer {i}");
        p.max_tokens = Some(100 + i);
        store.put(p)
    });
    let results = join_all(writers).await;
    ensure!(results.iter().all(Result::is_ok), "concurrent puts of one name failed: {results:?}");
    let last = store.get("conf-same").await.map_err(err)?.ok_or("conf-same missing")?;
    let writer = last.description.strip_prefix("writer ").and_then(|n| n.parse::<u32>().ok());
    ensure!(
        writer.is_some_and(|w| last.max_tokens == Some(100 + w)),
        "the surviving record mixes two writes: {last:?}"
    );
    Ok(())
}
