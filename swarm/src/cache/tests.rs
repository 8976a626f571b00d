use super::*;
use crate::finding::Severity;

fn finding(line: u32, end: Option<u32>) -> Finding {
    Finding {
        file: "x.rs".into(),
        line,
        end_line: end,
        severity: Severity::Error,
        category: "panic".into(),
        title: "t".into(),
        detail: String::new(),
        suggestion: None,
    }
}

#[test]
fn findings_move_with_their_chunk() {
    let cached = CachedFinding::relative(finding(105, Some(107)), 100);
    assert_eq!((cached.line_offset, cached.end_offset), (5, Some(7)));
    let moved = cached.at(300);
    assert_eq!((moved.line, moved.end_line), (305, Some(307)));
    let before = CachedFinding::relative(finding(3, None), 10).at(5);
    assert_eq!(before.line, 1, "never before line 1");
}

#[test]
fn prompt_versions_differ_per_lens_and_are_stable() {
    let versions: Vec<String> = LensKind::ALL.iter().map(|l| prompt_version(*l)).collect();
    assert_eq!(versions[0], prompt_version(LensKind::Correctness));
    for (i, a) in versions.iter().enumerate() {
        assert_eq!(a.len(), 16);
        for b in &versions[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[tokio::test]
async fn memory_and_no_cache_behave() {
    conformance::check_review_cache(&MemoryReviewCache::new()).await.unwrap();
    let key = CacheKey {
        model: "m".into(),
        lens: "l".into(),
        prompt_version: "v".into(),
        content_hash: "h".into(),
    };
    let cell = CachedCell { findings: Vec::new(), dropped: 0, usage: Usage::default() };
    NoCache.put(&key, &cell).await.unwrap();
    assert!(NoCache.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn the_file_cache_keeps_entries_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let cache = FileReviewCache::open(dir.path()).unwrap();
    conformance::check_review_cache(&cache).await.unwrap();
    let n = cache.len();
    drop(cache);
    let reopened = FileReviewCache::open(dir.path()).unwrap();
    assert_eq!(reopened.len(), n, "every entry survived the flush");
    assert!(reopened.warnings().is_empty());
    assert!(!dir.path().join("review-cache.json.partial").exists());

    std::fs::write(dir.path().join(CACHE_FILE), "{ not json").unwrap();
    let broken = FileReviewCache::open(dir.path()).unwrap();
    assert!(broken.is_empty());
    assert!(broken.warnings()[0].contains("does not parse"), "{:?}", broken.warnings());
    conformance::check_review_cache(&broken).await.unwrap();
}
