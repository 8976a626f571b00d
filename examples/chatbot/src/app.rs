//! [`App`]: the heavy host's wiring — every battery over the stores, the shipped personas,
//! the skill, the per-user budget, the critic, the daily cron job — around one runtime.
//!
//! What the app guarantees: personas are loaded all-or-nothing from the folder (a bad file
//! is an error naming its path and line); the skill is installed and active before the
//! first turn; every run is audited (the writer drains at [`App::close`]); every model call
//! is priced and capped per user over a rolling day; a run that reaches its step cap or its
//! soft deadline is judged by the critic, which may extend or stop it; the digest job is
//! registered with its time zone. What outlives the process is what [`HostStores::open`]
//! puts in the SQLite file: checkpoints, conversations, audit records, spend and the job's
//! watermark (personas and the skill are loaded again at each start).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use executus::meta::MetaLlm;
use executus::ports::{Delivery, Ports, StdoutDelivery};
use executus::tool::ToolRegistry;
use executus::{Identity, RunHandle, RunRequest, Runtime};
use executus_audit::AuditWriter;
use executus_budget::{BudgetConfig, SpendBudget};
use executus_critic::{CriticConfig, LlmCritic};
use executus_llm::Registry;
use executus_persona::PersonaLibrary;
use executus_schedule::{CronSchedule, JobDef};
use executus_skill::{SkillContent, SkillLibrary, SkillState};
use executus_tools::{Calc, Clock};

use crate::error::ChatbotError;
use executus_chat::{ChatHistory, ChatSession};
use executus_store::HostStores;

/// The persona people chat with.
pub const CHAT_PERSONA: &str = "concierge";

/// The persona of the daily job.
pub const DIGEST_PERSONA: &str = "digest";

/// The skill the concierge carries.
pub const SKILL: &str = "arithmetic";

/// The skill's instructions.
pub const SKILL_INSTRUCTIONS: &str = "When a question involves arithmetic, call the calc tool for each \
operation instead of working it out yourself, then give the result in one sentence.";

/// The daily job: id, cron (6 fields, seconds first), time zone, input.
pub const DAILY_JOB: (&str, &str, &str, &str) =
    ("morning-digest", "0 0 8 * * *", "Europe/Paris", "Write today's digest for the team.");

/// Who the daily digest runs as (its spend counts against this user).
pub const DIGEST_USER: &str = "digest-bot";

/// The tier the personas use (`model = "chat"`).
pub const CHAT_TIER: &str = "chat";

/// The tier the critic judges with.
pub const JUDGE_TIER: &str = "judge";

/// Prices and caps: every model costs something, each user may spend 5 cents a day, and
/// `mallory` — the test user — almost nothing.
pub const BUDGET_TOML: &str = r#"
window = "1d"
unknown_model = "deny"

[caps]
default_user = 0.05
users = { mallory = 0.000001 }

[prices]
"replay/*" = { input = 1.0, output = 4.0 }
"openai/*" = { input = 0.4, output = 1.6 }
"anthropic/*" = { input = 3.0, output = 15.0 }
"ollama/*" = { input = 0.0, output = 0.0 }
"#;

/// The personas folder this example ships.
pub fn shipped_personas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("personas")
}

/// Every store the app uses: executus-store's [`HostStores`] (the CLI's wiring too). Open
/// a file with `Stores::open("sqlite://chatbot.db")`, or use `Stores::in_memory()`.
pub type Stores = HostStores;

/// How to build an [`App`].
pub struct AppOptions {
    /// Models: a registry defining the `chat` and `judge` tiers (see [`crate::models`]).
    pub registry: Registry,
    /// The stores.
    pub stores: Stores,
    /// The personas folder.
    pub personas: PathBuf,
    /// Where scheduled runs' outputs go.
    pub delivery: Arc<dyn Delivery>,
    /// The schedule's calendar (default: the system clock).
    pub clock: Option<Arc<dyn executus::llm::Clock>>,
}

impl AppOptions {
    /// Options over `registry` and `stores`, with the shipped personas and stdout delivery.
    pub fn new(registry: Registry, stores: Stores) -> Self {
        Self {
            registry,
            stores,
            personas: shipped_personas(),
            delivery: Arc::new(StdoutDelivery),
            clock: None,
        }
    }
}

/// The wired heavy host.
pub struct App {
    /// The runtime.
    pub runtime: Runtime,
    /// Conversations.
    pub chats: Arc<dyn ChatHistory>,
    /// The audit writer (its store is [`AuditWriter::store`]).
    pub audit: Arc<AuditWriter>,
    /// The budget (for [`SpendBudget::status`]).
    pub budget: Arc<SpendBudget>,
    /// The cron schedule with the daily job.
    pub schedule: CronSchedule,
    /// True when the stores outlive the process.
    pub durable: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("durable", &self.durable).finish_non_exhaustive()
    }
}

impl App {
    /// Wires everything (see the module docs).
    ///
    /// # Errors
    /// [`ChatbotError`] naming what failed: the personas folder, the skill, the budget or
    /// critic configuration, the daily job, a tier that does not resolve.
    pub async fn build(options: AppOptions) -> Result<Self, ChatbotError> {
        let AppOptions { registry, stores, personas: folder, delivery, clock } = options;

        let personas = PersonaLibrary::new(stores.personas.clone());
        personas.load_dir(&folder).await.map_err(|e| ChatbotError::Personas(e.to_string()))?;
        let skills = SkillLibrary::new(stores.skills.clone());
        install_skill(&skills).await?;

        let audit = Arc::new(AuditWriter::new(stores.audit.clone()));
        let budget_config: BudgetConfig =
            toml::from_str(BUDGET_TOML).map_err(|e| ChatbotError::Config(format!("budget: {e}")))?;
        let settings = budget_config.validate().map_err(|e| ChatbotError::Config(e.to_string()))?;
        let budget = Arc::new(SpendBudget::new(settings, stores.budget.clone()));
        let judge =
            MetaLlm::new(&registry, JUDGE_TIER).map_err(|e| ChatbotError::Config(format!("critic: {e}")))?;
        let critic = LlmCritic::new(judge, CriticConfig::default())
            .map_err(|e| ChatbotError::Config(format!("critic: {e}")))?;

        let mut schedule = CronSchedule::builder().store(stores.schedule.clone());
        if let Some(clock) = clock {
            schedule = schedule.clock(clock);
        }
        let schedule = schedule.build();
        let (id, cron, tz, input) = DAILY_JOB;
        schedule
            .add_job(
                JobDef::new(id, cron, DIGEST_PERSONA, input)
                    .timezone(tz)
                    .identity(Identity::new(DIGEST_USER, "team")),
            )
            .await
            .map_err(|e| ChatbotError::Config(format!("daily job: {e}")))?;

        let ports = Ports {
            personas: Arc::new(personas),
            skills: Arc::new(skills),
            audit: audit.clone(),
            critic: Arc::new(critic),
            budget: budget.clone(),
            schedule: Arc::new(schedule.clone()),
            checkpoints: stores.checkpoints.clone(),
            delivery,
        };
        let tools = ToolRegistry::new().with(Arc::new(Calc::new())).with(Arc::new(Clock::system()));
        let runtime = Runtime::builder()
            .registry(registry)
            .tools(tools)
            .ports(ports)
            .try_build()
            .map_err(|e| ChatbotError::Config(e.to_string()))?;
        for tier in [CHAT_TIER, JUDGE_TIER] {
            runtime
                .registry()
                .resolve(tier)
                .map_err(|e| ChatbotError::Config(format!("tier {tier}: {e}")))?;
        }
        Ok(Self { runtime, chats: stores.chats, audit, budget, schedule, durable: stores.durable })
    }

    /// The conversation of `user` (tenant `team`) with `persona`.
    ///
    /// # Errors
    /// [`crate::ChatError`] when the persona does not exist.
    pub async fn session(&self, user: &str, persona: &str) -> Result<ChatSession, crate::ChatError> {
        ChatSession::open(&self.runtime, self.chats.clone(), persona, Identity::new(user, "team")).await
    }

    /// Starts the daily job's run now, exactly as a fire of the schedule would (same agent,
    /// input and identity; delivered).
    ///
    /// # Errors
    /// [`ChatbotError::Runtime`] when the run is not admitted.
    pub async fn run_digest_now(&self) -> Result<RunHandle, ChatbotError> {
        let (_, _, _, input) = DAILY_JOB;
        let agent = self.runtime.agent(DIGEST_PERSONA).await?;
        let request = RunRequest::new(agent, input).identity(Identity::new(DIGEST_USER, "team")).deliver();
        Ok(self.runtime.spawn_with(request).await?)
    }

    /// Shuts down: runs get `grace`, then are checkpointed; the audit writer drains.
    pub async fn close(&self, grace: Duration) {
        self.runtime.shutdown(grace).await;
        self.audit.shutdown().await;
    }
}

/// Installs [`SKILL`] (created, or a new version when its text changed) and makes it active.
async fn install_skill(skills: &SkillLibrary) -> Result<(), ChatbotError> {
    let content = SkillContent::new(SKILL_INSTRUCTIONS).with_tools(["calc"]);
    let fail = |e: executus_skill::SkillError| ChatbotError::Config(format!("skill {SKILL}: {e}"));
    let state = match skills.active(SKILL).await.map_err(fail)? {
        None => skills.create(SKILL, content).await.map_err(fail)?.state,
        Some(active) => {
            if active.version.instructions != content.instructions || active.version.tools != content.tools {
                let version = skills.new_version(SKILL, content).await.map_err(fail)?;
                skills.activate(SKILL, version.version).await.map_err(fail)?;
            }
            active.skill.state
        }
    };
    if state == SkillState::Active {
        return Ok(());
    }
    skills.enable(SKILL).await.map_err(fail)?;
    Ok(())
}
