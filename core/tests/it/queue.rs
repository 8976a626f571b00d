//! The `RunQueue` hook: with a queue, top-level runs are handed to it (nothing is driven or
//! checkpointed here) and the handle's outcome is the one the queue reports; a refusing
//! queue is the caller's error.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use executus::llm::fake::FakeProvider;
use executus::ports::{CheckpointStore, MemoryCheckpointStore, PortError, Ports, RunQueue};
use executus::{RunEnd, RunId, RunOutcome, RunRequest, Runtime};
use futures::future::BoxFuture;

use crate::common::{agent, registry};

#[derive(Default)]
struct Recorder {
    queued: Mutex<Vec<(RunId, String, String)>>,
}

#[async_trait]
impl RunQueue for Recorder {
    async fn enqueue(
        &self,
        run_id: RunId,
        request: &RunRequest,
    ) -> Result<BoxFuture<'static, RunOutcome>, PortError> {
        if request.agent.name == "refused" {
            return Err(PortError::Backend { port: "queue", message: "the queue is down".into() });
        }
        let input = request.input.first().map(|m| m.text()).unwrap_or_default();
        self.queued.lock().unwrap().push((run_id, request.agent.name.clone(), input.clone()));
        let agent = request.agent.name.clone();
        Ok(Box::pin(async move {
            RunOutcome {
                run_id,
                agent,
                end: RunEnd::Completed,
                output: Some(format!("done elsewhere: {input}")),
                typed: None,
                messages: Vec::new(),
                steps: 3,
                usage: Default::default(),
            }
        }))
    }
}

#[tokio::test]
async fn top_level_runs_go_to_the_queue_and_their_outcome_comes_back() {
    let fake = FakeProvider::new("fake");
    let queue = Arc::new(Recorder::default());
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let rt = Runtime::builder()
        .registry(registry(&fake))
        .ports(Ports { checkpoints: checkpoints.clone(), ..Ports::default() })
        .queue(queue.clone())
        .build();
    let run = RunId::new();
    let handle = rt.spawn_with(RunRequest::new(agent(), "summarise").run_id(run)).await.unwrap();
    assert_eq!(handle.id(), run);
    let outcome = handle.outcome().await;
    assert_eq!(outcome.output.as_deref(), Some("done elsewhere: summarise"));
    assert_eq!(outcome.steps, 3);
    assert_eq!(queue.queued.lock().unwrap().as_slice(), [(run, "tester".to_owned(), "summarise".to_owned())]);
    assert!(fake.requests().is_empty(), "nothing was driven here");
    assert!(checkpoints.list_interrupted().await.unwrap().is_empty() && checkpoints.append_calls() == 0);
    // A queue that refuses: the caller gets the error, nothing is started.
    let mut refused = agent();
    refused.name = "refused".into();
    let err = rt.spawn_with(RunRequest::new(refused, "x")).await.unwrap_err();
    assert!(err.to_string().contains("the queue is down"), "{err}");
}
