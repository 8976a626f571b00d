//! Fanout: N models x M lenses.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use executus::RunnableAgent;
use executus::fanout::{CellError, CellMode, FanoutProgress, FanoutSpec, Lens};
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::Ports;

use crate::common::runtime;

fn lenses() -> Vec<Lens> {
    ["security", "style", "tests"]
        .into_iter()
        .map(|name| Lens {
            name: name.into(),
            agent: RunnableAgent::new(name, format!("Review for {name}."), "unset"),
        })
        .collect()
}

#[tokio::test]
async fn matrix_is_complete_when_one_model_fails() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("good", Outcome::text("fine"));
    fake.fallback_for("other", Outcome::text("also fine"));
    fake.fallback_for("bad", Outcome::permanent("model is broken"));
    let rt = runtime(&fake, Arc::new(AtomicUsize::new(0)), Ports::default());
    for mode in [CellMode::Run, CellMode::OneShot] {
        let mut spec = FanoutSpec::new(
            vec!["fake/good".into(), "fake/bad".into(), "fake/other".into()],
            lenses(),
            "diff --git a b",
        );
        spec.mode = mode;
        let mut handle = rt.fanout(spec).await.unwrap();
        let mut events = Vec::new();
        while let Some(e) = handle.progress.recv().await {
            events.push(e);
        }
        let result = handle.result().await.unwrap();
        assert_eq!(result.cells.len(), 9, "{mode:?}");
        for cell in &result.cells {
            match cell.model.as_str() {
                "fake/bad" => assert!(cell.result.is_err(), "{cell:?}"),
                _ => assert!(cell.result.is_ok(), "{cell:?}"),
            }
        }
        assert_eq!(result.failed(), 3);
        let finished = events.iter().filter(|e| matches!(e, FanoutProgress::Finished { .. })).count();
        let failed = events.iter().filter(|e| matches!(e, FanoutProgress::Failed { .. })).count();
        assert_eq!((finished, failed), (6, 3), "{mode:?}: {events:?}");
        // Each lens's system prompt reached its cells.
        let good = fake.requests_for("good");
        assert!(good.iter().any(|r| r.system.as_deref() == Some("Review for security.")));
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_keeps_finished_cells_and_times_out_the_rest() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("quick", Outcome::text("done").after(Duration::from_secs(1)));
    fake.fallback_for("slow", Outcome::text("late").after(Duration::from_secs(60)));
    let rt = runtime(&fake, Arc::new(AtomicUsize::new(0)), Ports::default());
    let mut spec = FanoutSpec::new(vec!["fake/quick".into(), "fake/slow".into()], lenses(), "input");
    spec.deadline = Some(Duration::from_secs(5));
    let handle = rt.fanout(spec).await.unwrap();
    let result = handle.result().await.unwrap();
    assert_eq!(result.cells.len(), 6);
    for cell in &result.cells {
        if cell.model == "fake/quick" {
            assert_eq!(cell.result.as_ref().unwrap().text.as_deref(), Some("done"));
        } else {
            assert!(matches!(cell.result, Err(CellError::TimedOut { .. })), "{cell:?}");
        }
    }
    assert!(result.elapsed < Duration::from_secs(6), "{:?}", result.elapsed);
}
