//! One cell: a full run through the runtime, or a one-shot model call through a lane.

use std::sync::Arc;
use std::time::Instant;

use executus_llm::Request;
use ractor::ActorRef;

use super::actor::FanoutMsg;
use super::{CellError, CellMode, CellOutput, FanoutSpec, Lens};
use crate::agent::RunnableAgent;
use crate::lane::JobSpec;
use crate::run::capability::Runs;
use crate::run::machine::parse_typed;
use crate::run::{RunEnd, RunEvent, RunRequest};

pub(super) async fn run_cell(
    runs: Arc<dyn Runs>,
    spec: Arc<FanoutSpec>,
    i: usize,
    model: String,
    lens: Lens,
    me: ActorRef<FanoutMsg>,
) {
    let started = Instant::now();
    let mut agent = lens.agent;
    agent.model = model;
    let result = match spec.mode {
        CellMode::Run => run_mode(runs.as_ref(), &spec, i, agent, &me, started).await,
        CellMode::OneShot => one_shot(runs.as_ref(), &spec, i, agent, &me, started).await,
    };
    let _ = me.send_message(FanoutMsg::Done(i, result));
}

async fn run_mode(
    runs: &dyn Runs,
    spec: &FanoutSpec,
    i: usize,
    agent: RunnableAgent,
    me: &ActorRef<FanoutMsg>,
    started: Instant,
) -> Result<CellOutput, CellError> {
    let mut request = RunRequest::new(agent, spec.input.clone()).identity(spec.identity.clone());
    request.lane = spec.lane.clone();
    let handle = runs.submit(request).await.map_err(|e| CellError::Admission { message: e.to_string() })?;
    let _ = me.send_message(FanoutMsg::RunId(i, handle.id()));
    let mut events = handle.events();
    let me2 = me.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if matches!(event, RunEvent::StepStarted { .. }) {
                let _ = me2.send_message(FanoutMsg::Started(i));
                break;
            }
        }
    });
    let outcome = handle.outcome().await;
    watcher.abort();
    match &outcome.end {
        RunEnd::Completed => Ok(CellOutput {
            text: outcome.output.clone(),
            typed: outcome.typed.clone(),
            usage: outcome.usage,
            run_id: Some(outcome.run_id),
            steps: outcome.steps,
            elapsed: started.elapsed(),
        }),
        end => Err(CellError::Run {
            run_id: outcome.run_id,
            status: end.status(),
            reason: end.reason().unwrap_or_default(),
        }),
    }
}

async fn one_shot(
    runs: &dyn Runs,
    spec: &FanoutSpec,
    i: usize,
    agent: RunnableAgent,
    me: &ActorRef<FanoutMsg>,
    started: Instant,
) -> Result<CellOutput, CellError> {
    let lane_name = spec.lane.clone().or_else(|| agent.lane.clone()).unwrap_or_else(|| "default".into());
    let lane = runs.lane(&lane_name).await.map_err(|e| CellError::Admission { message: e.to_string() })?;
    let model =
        runs.registry().parse(&agent.model).map_err(|e| CellError::Model { message: e.to_string() })?;
    let request = Request {
        system: (!agent.system.is_empty()).then(|| agent.system.clone()),
        messages: spec.input.clone(),
        temperature: agent.temperature,
        max_tokens: agent.max_tokens,
        response_schema: agent.output_schema.clone(),
        ..Request::default()
    };
    let me2 = me.clone();
    let job = lane
        .submit(
            JobSpec {
                tenant: spec.identity.tenant.clone(),
                label: format!("{} {}", agent.name, agent.model),
            },
            async move {
                let _ = me2.send_message(FanoutMsg::Started(i));
                model.generate(request).await
            },
        )
        .await
        .map_err(|e| CellError::Admission { message: e.to_string() })?;
    let response = job
        .await
        .map_err(|e| CellError::Admission { message: e.to_string() })?
        .map_err(|e| CellError::Model { message: e.to_string() })?;
    let text = response.text();
    let typed = match &agent.output_schema {
        Some(_) => Some(parse_typed(&text).map_err(|e| CellError::Model {
            message: format!("output is not valid JSON for the lens's schema: {e}"),
        })?),
        None => None,
    };
    Ok(CellOutput {
        text: Some(text),
        typed,
        usage: response.usage,
        run_id: None,
        steps: 1,
        elapsed: started.elapsed(),
    })
}
