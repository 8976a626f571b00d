//! `GET /v1/models`, and `agent:NAME`: a configured executus agent run server-side for any
//! OpenAI or Anthropic client.
//!
//! The model list holds the tiers, the `provider/model` targets they resolve to, `agent:NAME`
//! for every configured agent, and the host's virtual models, filtered by the key's
//! allow-list; it is written in the Anthropic form when the request carries
//! `anthropic-version`, in the OpenAI form otherwise.
//!
//! An agent runs with its own tools, budget, checkpoints and lane, exactly as
//! `executus-run run` would run it, for the key's identity; the client's messages are its
//! input (its system prompt and tools are the agent's own). A streamed answer carries the
//! agent's text as it is written, across its steps; a whole answer is its final text.
//!
//! When the runtime hands runs to a shared queue (the host's `[runtime] mode = "queue"`),
//! a worker process drives the run and this server waits for its outcome: a whole answer is
//! the same; a streamed one carries the final text in one piece once the run ended (a queued
//! run's handle reports no deltas). A queued run that fails or is cancelled answers with the
//! same errors as one driven here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use bytes::Bytes;
use executus::run::RunEnd;
use executus::{Identity, RunEvent, RunHandle, RunRequest, RuntimeError};
use executus_llm::server::{ApiError, ClientRequest, Dialect, ErrorClass};
use executus_llm::{FinishReason, Message, Part, Response, Role, StreamEvent, Usage};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::Shared;
use crate::handler::{InFlight, error_response, json_response, lane_error, sse_response};
use crate::session::SessionId;

pub(crate) async fn list(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> http::Response<Body> {
    let anthropic = headers.contains_key("anthropic-version");
    let dialect = if anthropic { Dialect::Messages } else { Dialect::Chat };
    let key = match shared.keys.authenticate(&headers) {
        Ok(key) => key,
        Err(error) => return error_response(dialect, &error, None),
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (alias, spec) in shared.registry.aliases() {
        names.insert(alias);
        for target in shared.registry.resolve(&spec).unwrap_or_default() {
            names.insert(target.to_string());
        }
    }
    if let Some(runtime) = &shared.runtime {
        names.extend(runtime.config().agents.keys().map(|a| format!("agent:{a}")));
    }
    names.extend(shared.extra_models.iter().cloned());
    let names: Vec<String> = names.into_iter().filter(|n| key.allows(n)).collect();
    let body = if anthropic {
        let data: Vec<_> = names
            .iter()
            .map(|n| json!({"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}))
            .collect();
        json!({"data": data, "has_more": false, "first_id": names.first(), "last_id": names.last()})
    } else {
        let data: Vec<_> = names
            .iter()
            .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "executus"}))
            .collect();
        json!({"object": "list", "data": data})
    };
    json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

/// Runs agent `name` for the request.
pub(crate) async fn agent(
    shared: &Arc<Shared>,
    request: ClientRequest,
    name: &str,
    identity: Identity,
    session: &SessionId,
    flight: InFlight,
) -> Result<http::Response<Body>, ApiError> {
    let Some(runtime) = shared.runtime.as_ref() else {
        return Err(ApiError::new(
            ErrorClass::NotFound,
            format!("unknown model agent:{name}: no agents are served here"),
        ));
    };
    let agent = runtime
        .agent(name)
        .await
        .map_err(|e| ApiError::new(ErrorClass::NotFound, format!("unknown model agent:{name}: {e}")))?;
    if request.request.messages.is_empty() {
        return Err(ApiError::new(ErrorClass::InvalidRequest, "an agent needs at least one message"));
    }
    // The session is the run's conversation (`gen_ai.conversation.id` on its spans), so a
    // client's requests group into one conversation in traces.
    let run = RunRequest::new(agent, request.request.messages.clone())
        .identity(identity)
        .conversation(session.id.clone());
    let handle = runtime.spawn_with(run).await.map_err(|e| match e {
        RuntimeError::Lane(lane) => lane_error(lane),
        other => ApiError::new(ErrorClass::Internal, other.to_string()),
    })?;
    let served = format!("agent:{name}");
    let mut response = if request.stream {
        let events = handle.events();
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let dialect = request.dialect;
        let sess = session.id.clone();
        tokio::spawn(async move {
            let _flight = flight;
            stream_run(events, &handle, &request, tx).await;
            tracing::info!(target: "executus_gateway", sess = %sess, run = %handle.id(), dialect = dialect.as_str(), "agent stream ended");
        });
        let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), rx))
        }));
        sse_response(body)
    } else {
        drop(flight);
        let started = Instant::now();
        let outcome = handle.outcome().await;
        tracing::info!(target: "executus_gateway", sess = %session.id, run = %outcome.run_id, status = outcome.status().as_str(), elapsed_ms = started.elapsed().as_millis() as u64, "agent run ended");
        let finish = finish_for(&outcome.end)?;
        let answer = Response {
            message: Message {
                role: Role::Assistant,
                parts: vec![Part::Text { text: outcome.output.clone().unwrap_or_default() }],
            },
            usage: outcome.usage,
            finish_reason: finish,
            provider: "agent".into(),
            model: name.to_owned(),
        };
        json_response(StatusCode::OK, Bytes::from(request.dialect.encode(&request, &answer)))
    };
    crate::handler::set_answer_headers(&mut response, session, served, String::new());
    Ok(response)
}

/// How a run's end reads as a finish reason, or the error it is for the client.
fn finish_for(end: &RunEnd) -> Result<FinishReason, ApiError> {
    match end {
        RunEnd::Completed => Ok(FinishReason::Stop),
        RunEnd::BudgetDenied(denied) => Err(ApiError::new(ErrorClass::RateLimited, denied.to_string())),
        RunEnd::Failed { error } => {
            Err(ApiError::new(ErrorClass::BadGateway, format!("the agent run failed: {error}")))
        }
        RunEnd::Cancelled => Err(ApiError::new(ErrorClass::Unavailable, "the agent run was cancelled")),
        // Partial, stopped or waiting for approval: the text so far, marked as cut short.
        _ => Ok(FinishReason::Length),
    }
}

/// Streams a run's text as it is written, then its end. A run that streamed no text (a
/// queued run, driven by a worker elsewhere, reports only its end) gets its final answer as
/// one delta before the end, so the client always reads the answer.
async fn stream_run(
    mut events: broadcast::Receiver<RunEvent>,
    handle: &RunHandle,
    request: &ClientRequest,
    tx: mpsc::Sender<Bytes>,
) {
    let mut encoder = request.dialect.encoder(request);
    let mut out = Vec::new();
    let mut streamed = false;
    encoder.start(&mut out);
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                encoder.fail(
                    &ApiError::new(ErrorClass::Internal, "the agent run ended without an outcome"),
                    &mut out,
                );
                break;
            }
        };
        match event {
            RunEvent::TextDelta { text, .. } => {
                streamed |= !text.is_empty();
                encoder.event(&StreamEvent::TextDelta { text }, &mut out);
            }
            RunEvent::Ended { end, .. } => {
                match finish_for(&end) {
                    Ok(finish_reason) => {
                        if !streamed {
                            let outcome = handle.outcome().await;
                            if let Some(text) = outcome.output.clone().filter(|t| !t.is_empty()) {
                                encoder.event(&StreamEvent::TextDelta { text }, &mut out);
                            }
                        }
                        encoder.event(&StreamEvent::Usage { usage: Usage::default() }, &mut out);
                        encoder.event(
                            &StreamEvent::Done {
                                finish_reason,
                                provider: "agent".into(),
                                model: request.model.clone(),
                            },
                            &mut out,
                        );
                    }
                    Err(error) => encoder.fail(&error, &mut out),
                }
                break;
            }
            _ => {}
        }
        if !out.is_empty() && tx.send(Bytes::from(std::mem::take(&mut out))).await.is_err() {
            return;
        }
    }
    if !out.is_empty() {
        let _ = tx.send(Bytes::from(out)).await;
    }
}
