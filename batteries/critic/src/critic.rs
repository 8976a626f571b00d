//! [`LlmCritic`]: the [`Critic`] port implemented with one structured one-shot model call
//! per review, the [`WatchState`] machine, and an [`Escalator`].
//!
//! Guarantees:
//! - `review` never panics and never hangs: the judge call is bounded by `judge_timeout`
//!   and the escalator by `escalate_timeout`; a failed, slow or undecodable judge falls back
//!   to `on_judge_failure`, under the same extension limit.
//! - At most `max_extensions` extensions per run, counted as the core reports them
//!   (`CriticReview::extensions`), so the limit holds even if this critic's own records
//!   were evicted or the process restarted.
//! - A second review of a run while one is in progress (which the core never does) gets
//!   `Continue` and a warning instead of a second judge call.
//!
//! Not guaranteed: the per-run records behind [`LlmCritic::watch`] are in memory and
//! bounded (`max_tracked_runs`, oldest forgotten first); they are an observation aid, not
//! an audit trail (the core audits every verdict through its `AuditSink`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use executus::RunId;
use executus::llm::Message;
use executus::meta::MetaLlm;
use executus::ports::{Critic, CriticReview, Verdict};
use serde::{Deserialize, Serialize};

use crate::config::{CriticConfig, CriticConfigError};
use crate::escalate::{Escalation, Escalator, LogEscalator};
use crate::judge::{JUDGE_SYSTEM, Judgement, render_review};
use crate::machine::{DecisionSource, WatchEvent, WatchState};

/// What the critic remembers about one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunWatch {
    /// Where the run stands.
    pub state: WatchState,
    /// Reviews started for this run.
    pub reviews: u32,
    /// Escalations sent for this run.
    pub escalations: u32,
    /// The last verdict given, if a review finished.
    pub last_verdict: Option<Verdict>,
    /// Where the last verdict came from.
    pub last_source: Option<DecisionSource>,
}

impl RunWatch {
    fn new() -> Self {
        Self { state: WatchState::start(), reviews: 0, escalations: 0, last_verdict: None, last_source: None }
    }
}

/// Bounded per-run records, oldest evicted first.
#[derive(Debug)]
struct Ledger {
    runs: HashMap<RunId, RunWatch>,
    order: VecDeque<RunId>,
    cap: usize,
}

impl Ledger {
    fn entry(&mut self, run: RunId) -> &mut RunWatch {
        if !self.runs.contains_key(&run) {
            while self.runs.len() >= self.cap.max(1) {
                let Some(oldest) = self.order.pop_front() else { break };
                self.runs.remove(&oldest);
            }
            self.order.push_back(run);
        }
        self.runs.entry(run).or_insert_with(RunWatch::new)
    }
}

/// The LLM-judged critic. Cheap to clone (clones share their records).
#[derive(Clone)]
pub struct LlmCritic {
    meta: MetaLlm,
    config: Arc<CriticConfig>,
    escalator: Arc<dyn Escalator>,
    ledger: Arc<Mutex<Ledger>>,
}

impl std::fmt::Debug for LlmCritic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmCritic")
            .field("meta", &self.meta)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LlmCritic {
    /// A critic judging with `meta` under `config`, escalating to [`LogEscalator`].
    ///
    /// # Errors
    /// [`CriticConfigError`] if `config` does not validate.
    pub fn new(meta: MetaLlm, config: CriticConfig) -> Result<Self, CriticConfigError> {
        config.validate()?;
        let cap = config.max_tracked_runs;
        Ok(Self {
            meta,
            config: Arc::new(config),
            escalator: Arc::new(LogEscalator),
            ledger: Arc::new(Mutex::new(Ledger { runs: HashMap::new(), order: VecDeque::new(), cap })),
        })
    }

    /// Escalates to `escalator` instead of the log.
    #[must_use]
    pub fn with_escalator(mut self, escalator: Arc<dyn Escalator>) -> Self {
        self.escalator = escalator;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &CriticConfig {
        &self.config
    }

    /// What the critic remembers about `run` (see the module docs for the bound).
    pub fn watch(&self, run: RunId) -> Option<RunWatch> {
        self.ledger().runs.get(&run).cloned()
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // The lock is held only for map updates, never across an await or user code, so a
        // poisoned lock still holds consistent data.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the run to `Reviewing`; `None` if the machine refuses.
    fn begin(&self, review: &CriticReview) -> Option<WatchState> {
        let mut ledger = self.ledger();
        let watch = ledger.entry(review.run_id);
        let event = WatchEvent::Review { trigger: review.trigger, extensions: review.extensions };
        match watch.state.on(event, &self.config) {
            Ok(t) => {
                watch.state = t.state.clone();
                watch.reviews += 1;
                Some(t.state)
            }
            Err(e) => {
                tracing::warn!(run_id = %review.run_id, error = %e, "critic review refused; answering continue");
                None
            }
        }
    }

    async fn judge(&self, review: &CriticReview, extensions: u32) -> WatchEvent {
        let left = self.config.max_extensions.saturating_sub(extensions);
        let prompt = render_review(review, left, self.config.max_message_chars);
        let call = self.meta.typed::<Judgement>(JUDGE_SYSTEM, vec![Message::user(prompt)]);
        match tokio::time::timeout(self.config.judge_timeout, call).await {
            Ok(Ok(typed)) => WatchEvent::Judged(typed.value),
            Ok(Err(e)) => WatchEvent::JudgeFailed { error: e.to_string() },
            Err(_) => {
                WatchEvent::JudgeFailed { error: format!("no answer within {:?}", self.config.judge_timeout) }
            }
        }
    }

    async fn escalate(&self, review: &CriticReview, verdict: &Verdict, reason: String, extensions: u32) {
        let escalation = Escalation {
            run_id: review.run_id,
            agent: review.agent.clone(),
            identity: review.identity.clone(),
            trigger: review.trigger,
            verdict: verdict.name().to_owned(),
            reason,
            step: review.step,
            elapsed: review.elapsed,
            extensions,
        };
        match tokio::time::timeout(self.config.escalate_timeout, self.escalator.escalate(escalation)).await {
            Ok(Ok(())) => {
                if let Some(watch) = self.ledger().runs.get_mut(&review.run_id) {
                    watch.escalations += 1;
                }
            }
            Ok(Err(e)) => tracing::error!(run_id = %review.run_id, error = %e, "critic escalation failed"),
            Err(_) => tracing::error!(
                run_id = %review.run_id,
                timeout = ?self.config.escalate_timeout,
                "critic escalation timed out"
            ),
        }
    }
}

/// Puts a run back to `Watching` if its review is dropped half-way (the future cancelled),
/// so the run is not stuck in `Reviewing` for later reviews.
struct ReviewGuard<'a> {
    critic: &'a LlmCritic,
    run: RunId,
    extensions: u32,
    armed: bool,
}

impl Drop for ReviewGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(watch) = self.critic.ledger().runs.get_mut(&self.run)
            && matches!(watch.state, WatchState::Reviewing { .. })
        {
            watch.state = WatchState::Watching { extensions: self.extensions };
        }
    }
}

#[async_trait]
impl Critic for LlmCritic {
    async fn review(&self, review: CriticReview) -> Verdict {
        let Some(reviewing) = self.begin(&review) else {
            return Verdict::Continue;
        };
        let extensions = reviewing.extensions();
        let mut guard = ReviewGuard { critic: self, run: review.run_id, extensions, armed: true };
        let event = self.judge(&review, extensions).await;
        if let WatchEvent::JudgeFailed { error } = &event {
            tracing::warn!(run_id = %review.run_id, %error, "critic judge failed; using the configured fallback");
        }
        let transition = match reviewing.on(event, &self.config) {
            Ok(t) => t,
            // Unreachable: `reviewing` is a Reviewing state, which accepts both judge
            // events; answer the harmless verdict rather than trust that.
            Err(e) => {
                tracing::error!(run_id = %review.run_id, error = %e, "critic state machine refused a judgement");
                return Verdict::Continue;
            }
        };
        guard.armed = false;
        drop(guard);
        let Some(decision) = transition.decision else {
            return Verdict::Continue;
        };
        {
            let mut ledger = self.ledger();
            let watch = ledger.entry(review.run_id);
            watch.state = transition.state.clone();
            watch.last_verdict = Some(decision.verdict.clone());
            watch.last_source = Some(decision.source);
        }
        tracing::info!(
            run_id = %review.run_id,
            trigger = review.trigger.as_str(),
            verdict = decision.verdict.name(),
            source = ?decision.source,
            state = transition.state.name(),
            "critic reviewed run"
        );
        if let Some(reason) = decision.escalate {
            self.escalate(&review, &decision.verdict, reason, transition.state.extensions().max(extensions))
                .await;
        }
        decision.verdict
    }
}
