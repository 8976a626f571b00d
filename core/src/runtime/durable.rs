//! Runs in the checkpoint store: resume after a crash, answers to approvals, discard, and
//! [`Runtime::stored_outcome`] — the one place a stored log is loaded and replayed.

use super::Runtime;
use super::admission::Submission;
use crate::checkpoint::{StoredOutcome, load_stored};
use crate::error::RuntimeError;
use crate::ids::RunId;
use crate::ports::{AuditEvent, AuditRecord, RunClaim, StoredStatus, ToolDecision};
use crate::run::RunEnd;
use crate::run::handle::RunHandle;
use crate::run::machine::{Fact, RunState};

impl Runtime {
    /// A run as the checkpoint store holds it (pending saves flushed first): its log replayed
    /// into the state and the stored status; `None` if the store has no such run. The one
    /// place a stored log is loaded and replayed (resume, approvals, discard, the executor's
    /// failure path through [`load_stored`], and hosts reporting an interrupted run).
    ///
    /// # Errors
    /// [`RuntimeError::Port`] if the store fails or a payload is corrupt,
    /// [`RuntimeError::Replay`] if the log does not replay.
    pub async fn stored_outcome(&self, run: RunId) -> Result<Option<StoredOutcome>, RuntimeError> {
        let started = self.started().await?;
        started.env.checkpoint.flush().await?;
        load_stored(self.inner.ports.checkpoints.as_ref(), run).await
    }

    /// [`Runtime::stored_outcome`] for a run that must exist.
    async fn load_state(&self, run: RunId) -> Result<(RunState, StoredStatus), RuntimeError> {
        let stored = self.stored_outcome(run).await?.ok_or(RuntimeError::UnknownRun { run })?;
        Ok((stored.state, stored.status))
    }

    /// Resumes every interrupted run (not those waiting for approval). Call at start-up.
    ///
    /// # Errors
    /// A [`RuntimeError`] if the store cannot be listed; runs that fail to resume are
    /// logged and skipped.
    pub async fn resume_interrupted(&self) -> Result<Vec<RunHandle>, RuntimeError> {
        let interrupted = self.inner.ports.checkpoints.list_interrupted().await?;
        let mut handles = Vec::new();
        for (meta, status) in interrupted {
            if status != StoredStatus::Running || self.is_active(meta.run_id) {
                continue;
            }
            match self.resume(meta.run_id).await {
                Ok(h) => handles.push(h),
                Err(RuntimeError::ActiveElsewhere { .. }) => {
                    tracing::debug!(run_id = %meta.run_id, "not resumed: another process drives it");
                }
                Err(e) => tracing::error!(run_id = %meta.run_id, error = %e, "could not resume run"),
            }
        }
        Ok(handles)
    }

    /// Resumes one interrupted run from its last checkpoint. Completed tool calls are not
    /// executed again; a call that was in flight is re-run if its tool is idempotent,
    /// otherwise it becomes an error result saying it was interrupted.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownRun`], [`RuntimeError::AlreadyActive`], a replay error, or a
    /// lane refusal.
    pub async fn resume(&self, run: RunId) -> Result<RunHandle, RuntimeError> {
        if self.is_active(run) {
            return Err(RuntimeError::AlreadyActive { run });
        }
        // Claimed before the log is read: another process may be writing it.
        let claim = self.claim(run).await?;
        let (mut state, _) = self.load_state(run).await?;
        let mut unsaved = Vec::new();
        let unfinished: Vec<_> = state.unfinished_calls().into_iter().cloned().collect();
        for call in unfinished {
            let idempotent = self.inner.tools.get(&call.name).is_some_and(|t| t.idempotent());
            if !idempotent {
                let fact = Fact::ToolResult {
                    result: executus_llm::ToolResult {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        content: format!(
                            "tool {} was interrupted by a restart while running and was not re-run \
                             (it is not idempotent); check its effect before calling it again",
                            call.name
                        ),
                        is_error: true,
                    },
                    blocked: false,
                };
                let payload = crate::checkpoint::encode(&fact);
                state.apply_owned(fact).map_err(|source| RuntimeError::Replay { run, source })?;
                unsaved.push(payload);
            }
        }
        self.start_existing(state, unsaved, claim).await
    }

    async fn start_existing(
        &self,
        state: RunState,
        unsaved: Vec<Vec<u8>>,
        claim: RunClaim,
    ) -> Result<RunHandle, RuntimeError> {
        let started = self.started().await?;
        let lane_name = state.agent.lane.clone().unwrap_or_else(|| "default".into());
        let lane = self.lane(&lane_name).await?;
        self.submit(
            started,
            Some(&lane),
            state,
            unsaved,
            Submission { resumed: true, deliver: false, watched: true, conversation: None },
            claim,
        )
        .await
    }

    /// Approves a tool call a run is waiting on; the run continues (also after a restart).
    ///
    /// # Errors
    /// [`RuntimeError::NotAwaitingApproval`] if that call is not waiting.
    pub async fn approve(&self, run: RunId, call: &str) -> Result<RunHandle, RuntimeError> {
        self.answer_approval(run, call, None).await
    }

    /// Denies a tool call a run is waiting on; the model is told why and the run continues.
    ///
    /// # Errors
    /// [`RuntimeError::NotAwaitingApproval`] if that call is not waiting.
    pub async fn deny(&self, run: RunId, call: &str, reason: &str) -> Result<RunHandle, RuntimeError> {
        self.answer_approval(run, call, Some(reason)).await
    }

    async fn answer_approval(
        &self,
        run: RunId,
        call: &str,
        denial: Option<&str>,
    ) -> Result<RunHandle, RuntimeError> {
        if self.is_active(run) {
            return Err(RuntimeError::AlreadyActive { run });
        }
        let claim = self.claim(run).await?;
        let (mut state, _) = self.load_state(run).await?;
        let pending = state.pending_approvals().into_iter().find(|c| c.id == call).cloned();
        let Some(pending) = pending else {
            return Err(RuntimeError::NotAwaitingApproval { run, call: call.to_owned() });
        };
        let fact = match denial {
            None => Fact::Approved { call_id: pending.id.clone() },
            Some(reason) => Fact::ToolResult {
                result: executus_llm::ToolResult {
                    id: pending.id.clone(),
                    name: pending.name.clone(),
                    content: format!("a human denied this call: {reason}"),
                    is_error: true,
                },
                blocked: true,
            },
        };
        let payload = crate::checkpoint::encode(&fact);
        state.apply_owned(fact).map_err(|source| RuntimeError::Replay { run, source })?;
        let record = |event| {
            AuditRecord::now(Some(run), state.identity.clone(), Some(state.agent.name.clone()), event)
        };
        let audit = &self.inner.ports.audit;
        audit
            .record(record(AuditEvent::ApprovalAnswered {
                call_id: pending.id.clone(),
                approved: denial.is_none(),
                reason: denial.map(str::to_owned),
            }))
            .await;
        if let Some(reason) = denial {
            audit
                .record(record(AuditEvent::ToolCall {
                    step: state.step,
                    tool: pending.name.clone(),
                    call_id: pending.id.clone(),
                    decision: ToolDecision::Deny,
                    rule: Some("human-approval".into()),
                    reason: Some(reason.to_owned()),
                    is_error: true,
                    latency_ms: 0,
                }))
                .await;
        }
        self.start_existing(state, vec![payload], claim).await
    }

    /// Gives up on a run: an active one is cancelled; a stored one (interrupted, or paused
    /// for approval) is marked failed and its log deleted, so it is never resumed.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownRun`] if the run is neither active nor stored.
    pub async fn discard(&self, run: RunId) -> Result<(), RuntimeError> {
        if self.is_active(run) {
            self.cancel(run).await;
            return Ok(());
        }
        let _claim = self.claim(run).await?;
        let (state, _) = self.load_state(run).await?;
        let started = self.started().await?;
        started.env.checkpoint.finish(run, StoredStatus::Failed).await?;
        self.inner
            .ports
            .audit
            .record(AuditRecord::now(
                Some(run),
                state.identity.clone(),
                Some(state.agent.name.clone()),
                AuditEvent::RunEnded {
                    status: RunEnd::Cancelled.status(),
                    reason: Some("discarded".into()),
                    steps: state.step,
                    usage: state.usage,
                },
            ))
            .await;
        Ok(())
    }
}
