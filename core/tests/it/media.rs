//! Images through a run: the chain shapes each step's request for its target (here a fake
//! model that reports Anthropic's limits), converting the image once for the whole run, while
//! the transcript — and so every checkpoint — keeps the original, stored once.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use executus::llm::fake::FakeProvider;
use executus::llm::media::{MediaKind, inspect};
use executus::llm::{Message, Part, Role};
use executus::ports::{
    CheckpointStore, MemoryCheckpointStore, PortError, Ports, RunAppend, RunMeta, StoredRun, StoredStatus,
};
use executus::{RunId, RunInput};

use crate::common::{agent, runtime, tool_loop};

/// A store that keeps, besides the memory store's state, every entry it ever accepted (the
/// memory store deletes a finished run's log).
#[derive(Default)]
struct Keeping {
    inner: MemoryCheckpointStore,
    kept: Mutex<BTreeMap<(RunId, u64), Vec<u8>>>,
}

#[async_trait]
impl CheckpointStore for Keeping {
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError> {
        self.inner.append(batch).await?;
        let mut kept = self.kept.lock().unwrap();
        for append in batch {
            for entry in &append.entries {
                kept.entry((append.meta.run_id, entry.seq)).or_insert_with(|| entry.payload.clone());
            }
        }
        Ok(())
    }

    async fn load(&self, run: RunId) -> Result<Option<StoredRun>, PortError> {
        self.inner.load(run).await
    }

    async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError> {
        self.inner.finish(run, status).await
    }

    async fn list_interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, PortError> {
        self.inner.list_interrupted().await
    }
}

/// A 2400 x 1600 photo-like JPEG: over Anthropic's 1568 px long side.
fn photo() -> Vec<u8> {
    let mut state = 0x1234_5678_u32;
    let img = image::RgbImage::from_fn(2400, 1600, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 0x1f) as u8;
        image::Rgb([(x / 10) as u8 ^ n, (y / 7) as u8 ^ n, 77 ^ n])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Jpeg).expect("jpeg");
    out.into_inner()
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

#[tokio::test]
async fn the_run_converts_once_and_checkpoints_keep_the_original_once() {
    let original = photo();
    let fake = FakeProvider::new("fake");
    fake.set_media_limits("m", MediaKind::Anthropic.limits());
    fake.fallback_for("m", tool_loop("echo", 3));
    let store = Arc::new(Keeping::default());
    let ports = Ports { checkpoints: store.clone(), ..Ports::default() };
    let rt = runtime(&fake, Arc::new(AtomicUsize::new(0)), ports);
    let input = Message {
        role: Role::User,
        parts: vec![
            Part::Text { text: "what is in this photo?".into() },
            Part::Image { mime: "image/jpeg".into(), data: original.clone() },
        ],
    };
    let out = rt.run(agent(), RunInput::from(input)).await.unwrap();
    assert!(out.is_completed(), "{:?}", out.end);
    assert_eq!(out.steps, 4);

    // Each step's request carried the same converted image, within the target's limits.
    let requests = fake.requests_for("m");
    assert_eq!(requests.len(), 4);
    let sent: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| match &r.messages[0].parts[1] {
            Part::Image { mime, data } => {
                assert_eq!(mime, "image/jpeg");
                data.clone()
            }
            other => panic!("expected the image, got {other:?}"),
        })
        .collect();
    assert!(sent.iter().all(|d| *d == sent[0]), "converted once, the same bytes at every step");
    let info = inspect(&sent[0]).unwrap();
    assert!(info.long_side() <= 1568 && info.pixels() <= 1_150_000, "{info:?}");
    assert_ne!(sent[0], original);

    // The transcript keeps the original.
    match &out.messages[0].parts[1] {
        Part::Image { data, .. } => {
            assert_eq!(*data, original, "the outcome's transcript holds the original")
        }
        other => panic!("expected the image, got {other:?}"),
    }

    // The checkpoint log holds the original exactly once and never the converted copy.
    let kept = store.kept.lock().unwrap();
    let log: Vec<u8> = kept.values().flatten().copied().collect();
    assert!(kept.len() >= 4, "a fact log was written: {} entries", kept.len());
    let original_b64 = STANDARD.encode(&original);
    let converted_b64 = STANDARD.encode(&sent[0]);
    assert_eq!(occurrences(&log, original_b64.as_bytes()), 1, "the original, once");
    assert_eq!(occurrences(&log, converted_b64.as_bytes()), 0, "no normalised copy");
}
