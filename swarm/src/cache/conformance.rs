//! A behavioural check for any [`ReviewCache`]: every backend (memory, file, SQLite) runs
//! [`check_review_cache`] against an empty cache in its own tests and is held to the same
//! contract: a miss is `None`; a put is read back whole (findings with their offsets, text
//! in any script, the dropped count, the usage); a put replaces; keys that differ in any one
//! field are different entries; concurrent writers lose nothing; a flush keeps everything.
//!
//! It reports the first broken expectation as an `Err` with a message; it does not panic.

use executus_llm::Usage;

use super::{CacheKey, CachedCell, CachedFinding, ReviewCache};
use crate::finding::{Finding, Severity};

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn key(model: &str, lens: &str, version: &str, hash: &str) -> CacheKey {
    CacheKey {
        model: model.to_owned(),
        lens: lens.to_owned(),
        prompt_version: version.to_owned(),
        content_hash: hash.to_owned(),
    }
}

fn cell(title: &str, offset: i64) -> CachedCell {
    let finding = Finding {
        file: "src/naïve/файл.rs".into(),
        line: 1,
        end_line: Some(3),
        severity: Severity::Warning,
        category: "off-by-one".into(),
        title: title.to_owned(),
        detail: "Détail: \"quoted\", back\\slash,\nnew line, emoji 🦀.".into(),
        suggestion: Some("Use `..=`.".into()),
    };
    CachedCell {
        findings: vec![CachedFinding { finding, line_offset: offset, end_offset: Some(offset + 2) }],
        dropped: 3,
        usage: Usage { input_tokens: 1234, output_tokens: 56, ..Usage::default() },
    }
}

/// Runs the contract against `cache`, which must start empty.
///
/// # Errors
/// The first expectation the cache breaks.
pub async fn check_review_cache(cache: &dyn ReviewCache) -> Result<(), String> {
    let base = key("openai/gpt-4.1", "security", "v1", &"a".repeat(64));
    ensure!(cache.get(&base).await.map_err(|e| e.to_string())?.is_none(), "an empty cache has a hit");

    let first = cell("first", -2);
    cache.put(&base, &first).await.map_err(|e| e.to_string())?;
    let got = cache.get(&base).await.map_err(|e| e.to_string())?;
    ensure!(got.as_ref() == Some(&first), "read back {got:?}, put {first:?}");

    let second = CachedCell { findings: Vec::new(), dropped: 0, usage: Usage::default() };
    cache.put(&base, &second).await.map_err(|e| e.to_string())?;
    let got = cache.get(&base).await.map_err(|e| e.to_string())?;
    ensure!(got.as_ref() == Some(&second), "a put does not replace: read {got:?}");

    let variants = [
        key("openai/gpt-4.1-mini", "security", "v1", &"a".repeat(64)),
        key("openai/gpt-4.1", "correctness", "v1", &"a".repeat(64)),
        key("openai/gpt-4.1", "security", "v2", &"a".repeat(64)),
        key("openai/gpt-4.1", "security", "v1", &"b".repeat(64)),
    ];
    for variant in &variants {
        let got = cache.get(variant).await.map_err(|e| e.to_string())?;
        ensure!(got.is_none(), "{variant:?} differs from the stored key in one field but hits: {got:?}");
    }

    let writes = (0..16).map(|i| {
        let k = key("m/x", "performance", "v1", &format!("{i:064}"));
        let c = cell(&format!("cell {i}"), i);
        async move { cache.put(&k, &c).await.map(|()| (k, c)) }
    });
    let written = futures::future::join_all(writes).await;
    for result in written {
        let (k, c) = result.map_err(|e| e.to_string())?;
        let got = cache.get(&k).await.map_err(|e| e.to_string())?;
        ensure!(got.as_ref() == Some(&c), "concurrent put of {k:?} lost: {got:?}");
    }

    cache.flush().await.map_err(|e| e.to_string())?;
    let got = cache.get(&base).await.map_err(|e| e.to_string())?;
    ensure!(got.as_ref() == Some(&second), "a flush lost an entry: {got:?}");
    Ok(())
}
