//! Port test doubles that record their calls.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use executus::RunnableAgent;
use executus::ids::RunId;
use executus::llm::Usage;
use executus::ports::{
    AuditEvent, AuditRecord, AuditSink, Budget, BudgetDenied, CheckpointStore, Critic, CriticReview,
    MemoryCheckpointStore, PersonaSource, PortError, Reservation, RunAppend, RunMeta, SkillDef, SkillSource,
    SpendRequest, StoredRun, StoredStatus, Verdict,
};

/// Records every audit record; optionally panics on records matching a predicate.
#[derive(Default)]
pub struct AuditLog {
    records: Mutex<Vec<AuditRecord>>,
    #[allow(clippy::type_complexity)]
    panic_on: Option<Box<dyn Fn(&AuditRecord) -> bool + Send + Sync>>,
}

impl AuditLog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A sink that panics (after recording) on records matching `pred`.
    pub fn panicking(pred: impl Fn(&AuditRecord) -> bool + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self { records: Mutex::new(Vec::new()), panic_on: Some(Box::new(pred)) })
    }

    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<AuditEvent> {
        self.records().into_iter().map(|r| r.event).collect()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.records().iter().map(|r| r.event.kind()).collect()
    }

    /// `(tool, call_id, decision, rule, is_error)` of every tool_call record.
    pub fn tool_calls(&self) -> Vec<(String, String, String, Option<String>, bool)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                AuditEvent::ToolCall { tool, call_id, decision, rule, is_error, .. } => {
                    Some((tool, call_id, decision.to_string(), rule, is_error))
                }
                _ => None,
            })
            .collect()
    }
}

#[async_trait]
impl AuditSink for AuditLog {
    async fn record(&self, record: AuditRecord) {
        let panic = self.panic_on.as_ref().is_some_and(|p| p(&record));
        self.records.lock().unwrap().push(record);
        if panic {
            panic!("audit sink exploded");
        }
    }
}

/// What the budget double saw.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetCall {
    Reserve(SpendRequest),
    Settle { reservation: Reservation, usage: Usage, provider: String, model: String },
}

/// Grants reservations until `deny_at` (1-based reserve number), which it refuses; may panic
/// instead.
pub struct RecordingBudget {
    pub calls: Mutex<Vec<BudgetCall>>,
    reserves: AtomicU64,
    deny_at: Option<u64>,
    panic: bool,
}

impl RecordingBudget {
    pub fn denying_at(n: u64) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            reserves: AtomicU64::new(0),
            deny_at: Some(n),
            panic: false,
        })
    }

    pub fn panicking() -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            reserves: AtomicU64::new(0),
            deny_at: None,
            panic: true,
        })
    }

    pub fn calls(&self) -> Vec<BudgetCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Budget for RecordingBudget {
    async fn reserve(&self, request: &SpendRequest) -> Result<Reservation, BudgetDenied> {
        self.calls.lock().unwrap().push(BudgetCall::Reserve(request.clone()));
        if self.panic {
            panic!("budget exploded");
        }
        let n = self.reserves.fetch_add(1, Ordering::SeqCst) + 1;
        if Some(n) == self.deny_at {
            return Err(BudgetDenied::Exhausted {
                scope: format!("user:{}", request.identity.user),
                spent: 1.0,
                reserved: 0.0,
                requested: 0.5,
                cap: 1.2,
                window: std::time::Duration::from_secs(86_400),
            });
        }
        Ok(Reservation { id: n, amount: 0.25 })
    }

    async fn settle(&self, reservation: Reservation, usage: &Usage, provider: &str, model: &str) {
        self.calls.lock().unwrap().push(BudgetCall::Settle {
            reservation,
            usage: *usage,
            provider: provider.to_owned(),
            model: model.to_owned(),
        });
    }
}

/// Answers reviews from a script (then `Continue`), after an optional delay; records reviews.
pub struct ScriptedCritic {
    verdicts: Mutex<VecDeque<Verdict>>,
    delay: Duration,
    pub reviews: Mutex<Vec<CriticReview>>,
}

impl ScriptedCritic {
    pub fn new(verdicts: impl IntoIterator<Item = Verdict>) -> Arc<Self> {
        Self::slow(verdicts, Duration::ZERO)
    }

    pub fn slow(verdicts: impl IntoIterator<Item = Verdict>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            verdicts: Mutex::new(verdicts.into_iter().collect()),
            delay,
            reviews: Mutex::default(),
        })
    }

    pub fn reviews(&self) -> Vec<CriticReview> {
        self.reviews.lock().unwrap().clone()
    }
}

#[async_trait]
impl Critic for ScriptedCritic {
    async fn review(&self, review: CriticReview) -> Verdict {
        self.reviews.lock().unwrap().push(review);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.verdicts.lock().unwrap().pop_front().unwrap_or(Verdict::Continue)
    }
}

/// Personas from a map.
#[derive(Default)]
pub struct Personas(pub BTreeMap<String, RunnableAgent>);

#[async_trait]
impl PersonaSource for Personas {
    async fn persona(&self, name: &str) -> Result<Option<RunnableAgent>, PortError> {
        Ok(self.0.get(name).cloned())
    }

    async fn list(&self) -> Result<Vec<String>, PortError> {
        Ok(self.0.keys().cloned().collect())
    }
}

/// Skills from a map; records lookups.
#[derive(Default)]
pub struct Skills {
    pub skills: BTreeMap<String, SkillDef>,
    pub asked: Mutex<Vec<String>>,
}

#[async_trait]
impl SkillSource for Skills {
    async fn skill(&self, name: &str) -> Result<Option<SkillDef>, PortError> {
        self.asked.lock().unwrap().push(name.to_owned());
        Ok(self.skills.get(name).cloned())
    }
}

/// A memory store whose appends take `latency` of tokio time (like an fsync) and which
/// counts entries appended.
pub struct SlowStore {
    pub inner: MemoryCheckpointStore,
    latency: Duration,
    pub entries: AtomicU64,
}

impl SlowStore {
    pub fn new(latency: Duration) -> Arc<Self> {
        Arc::new(Self { inner: MemoryCheckpointStore::new(), latency, entries: AtomicU64::new(0) })
    }
}

#[async_trait]
impl CheckpointStore for SlowStore {
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError> {
        tokio::time::sleep(self.latency).await;
        let n: usize = batch.iter().map(|a| a.entries.len()).sum();
        self.entries.fetch_add(n as u64, Ordering::SeqCst);
        self.inner.append(batch).await
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
