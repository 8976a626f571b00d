//! The host's own sections — what the CLI wires into the core's ports — read as raw serde
//! values by figment, then validated into [`HostConfig`]. Every error names the dotted key
//! and the file or environment variable it came from.
//!
//! | section | what it configures |
//! | --- | --- |
//! | `[personas] dir` | persona files loaded into the persona store at start-up |
//! | `[skills.NAME]` | skills (instructions + tools) kept in the skill store, active |
//! | `[audit] enabled` | the audit writer over the audit store |
//! | `[budget]` | `executus-budget`'s `BudgetConfig` (prices, caps, window) |
//! | `[critic]` | `model` plus `executus-critic`'s `CriticConfig` |
//! | `[policy]` | `require_approval` / `block`: tool names, for every run |
//! | `[swarm]` | models, lenses, concurrency, deadline, exclude globs, token budgets, context size and review cache of `executus-run swarm` |
//! | `[schedule.jobs.ID]` | cron jobs of `executus-run schedule` |
//! | `[chat] persona` | the persona `executus-run chat` talks to by default |
//! | `[worker]` | `concurrency`, `tenant_cap`, `poll`, `schedule` of `executus-run worker` |
//! | `[mcp.servers.NAME]` | MCP servers whose tools agents select as `mcp:NAME/TOOL` (`executus-mcp`) |
//! | `[telemetry]` | OpenTelemetry export (see `crate::telemetry`) |

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use executus::Identity;
use executus::config::{ConfigError, source_of};
use executus::llm::ImageSize;
use executus_budget::{BudgetConfig, BudgetConfigError, BudgetSettings};
use executus_critic::{CriticConfig, CriticConfigError};
use executus_schedule::{CatchUp, Job, JobDef, Overlap, ScheduleError};
use executus_skill::SkillContent;
use executus_swarm::LensKind;
use executus_swarm::glob::{DEFAULT_EXCLUDES, Glob, compile_all};
use figment::Figment;
use serde::Deserialize;

use super::providers::relative_to_file;

/// `[personas]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPersonas {
    /// Folder of persona files, relative to the configuration file.
    pub dir: Option<PathBuf>,
}

/// `[skills.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSkill {
    /// Instructions appended to the system prompt of agents carrying the skill.
    pub instructions: String,
    /// Tools the skill adds to the agent's allowlist.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// `[audit]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Write audit records to the store.
    pub enabled: Option<bool>,
}

/// `[critic]`: the judge's model plus `CriticConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct RawCritic {
    /// Model spec of the judge (a tier or a chain).
    pub model: Option<String>,
    /// The critic's settings.
    #[serde(flatten)]
    pub config: CriticConfig,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Tools whose calls wait for `executus-run approve` / `deny`.
    #[serde(default)]
    pub require_approval: Vec<String>,
    /// Tools whose calls are refused (the model is told why).
    #[serde(default)]
    pub block: Vec<String>,
}

/// A list written as a TOML array or as one comma-separated string (handy in `EXECUTUS_*`
/// variables).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringList {
    /// `["a", "b"]`.
    List(Vec<String>),
    /// `"a, b"`.
    Csv(String),
}

impl StringList {
    /// The items, trimmed.
    pub(crate) fn items(&self) -> Vec<String> {
        match self {
            Self::List(items) => items.iter().map(|s| s.trim().to_owned()).collect(),
            Self::Csv(text) => text.split(',').map(|s| s.trim().to_owned()).collect(),
        }
    }
}

/// `[swarm]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwarm {
    /// Models, one matrix row each (`provider/model` or a tier).
    pub models: Option<StringList>,
    /// Lenses, one column each (`correctness`, `security`, `performance`, `maintainability`).
    pub lenses: Option<StringList>,
    /// Cells at once.
    pub concurrency: Option<i64>,
    /// Swarm deadline (`90s`, `5m`, `none`).
    pub deadline: Option<String>,
    /// Globs of files not to review (replaces the defaults; `[]` reviews everything).
    pub exclude: Option<StringList>,
    /// The most diff tokens one cell is sent.
    pub max_cell_tokens: Option<i64>,
    /// The most diff tokens per model and lens (`"none"`: no limit).
    pub max_total_tokens: Option<CountOrNone>,
    /// The smallest context window of the models, in tokens.
    pub context_tokens: Option<i64>,
    /// Keep answered cells in the store and reuse them (default true).
    pub cache: Option<bool>,
}

/// A count, or `"none"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CountOrNone {
    /// A number.
    Count(i64),
    /// `"none"` (or a number written as a string, from the environment).
    Text(String),
}

/// `[schedule.jobs.ID]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// Cron expression (5 or 6 fields, or `@daily`...).
    pub cron: String,
    /// Agent or persona name.
    pub agent: String,
    /// The run's input.
    pub input: String,
    /// IANA time zone (default UTC).
    pub timezone: Option<String>,
    /// Lane override.
    pub lane: Option<String>,
    /// `user[@tenant]` the runs act for.
    pub identity: Option<String>,
    /// `skip` (default), `queue` or `allow`.
    pub overlap: Option<Overlap>,
    /// Largest random delay per fire.
    #[serde(default, with = "executus::duration_serde::option")]
    pub jitter: Option<Duration>,
    /// `run_once` (default) or `skip`.
    pub catch_up: Option<CatchUp>,
}

/// `[schedule]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// Jobs by id.
    #[serde(default)]
    pub jobs: BTreeMap<String, RawJob>,
}

/// `[image]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    /// The image chain (a tier or `provider/model, ...`) for `image` and `generate_image`.
    pub model: Option<String>,
    /// Where `generate_image` writes its files; the tool exists only when this is set.
    pub output_dir: Option<PathBuf>,
    /// Default size, `WxH`.
    pub size: Option<String>,
}

/// `[chat]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChat {
    /// The default persona of `chat`.
    pub persona: Option<String>,
}

/// `[worker]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    /// Runs one worker drives at once.
    pub concurrency: Option<i64>,
    /// At most this many runs of one tenant active across all workers.
    pub tenant_cap: Option<i64>,
    /// Longest sleep between two looks at the queue.
    #[serde(default, with = "executus::duration_serde::option")]
    pub poll: Option<Duration>,
    /// Run the `[schedule.jobs.*]` too (each fire claimed once across workers); default true.
    pub schedule: Option<bool>,
}

/// `[worker]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Runs one worker drives at once (default 4).
    pub concurrency: usize,
    /// Per-tenant cap across workers (default none).
    pub tenant_cap: Option<u32>,
    /// Poll interval (default 1 s).
    pub poll: Duration,
    /// Whether workers run the cron jobs (default true).
    pub schedule: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { concurrency: 4, tenant_cap: None, poll: Duration::from_secs(1), schedule: true }
    }
}

/// The host sections as read (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawHostSections {
    /// `[personas]`.
    #[serde(default)]
    pub personas: RawPersonas,
    /// `[skills.NAME]`.
    #[serde(default)]
    pub skills: BTreeMap<String, RawSkill>,
    /// `[audit]`.
    #[serde(default)]
    pub audit: RawAudit,
    /// `[budget]`.
    pub budget: Option<BudgetConfig>,
    /// `[critic]`.
    pub critic: Option<RawCritic>,
    /// `[policy]`.
    #[serde(default)]
    pub policy: RawPolicy,
    /// `[swarm]`.
    pub swarm: Option<RawSwarm>,
    /// `[schedule]`.
    #[serde(default)]
    pub schedule: RawSchedule,
    /// `[chat]`.
    #[serde(default)]
    pub chat: RawChat,
    /// `[worker]`.
    #[serde(default)]
    pub worker: RawWorker,
    /// `[mcp]`.
    #[serde(default)]
    pub mcp: RawMcp,
    /// `[telemetry]` (read again, with the `OTEL_*` variables, before logging starts).
    #[serde(default)]
    pub telemetry: crate::telemetry::RawTelemetry,
    /// `[image]`.
    #[serde(default)]
    pub image: RawImage,
}

/// `[mcp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    /// `[mcp.servers.NAME]`.
    #[serde(default)]
    pub servers: BTreeMap<String, executus_mcp::RawServer>,
}

/// `[image]`, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSettings {
    /// The image chain spec.
    pub model: Option<String>,
    /// `generate_image`'s folder (resolved against the configuration file).
    pub output_dir: Option<PathBuf>,
    /// Default size.
    pub size: Option<ImageSize>,
}

/// `[swarm]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmSettings {
    /// Models (rows); empty when not configured (the command then says so).
    pub models: Vec<String>,
    /// Lenses (columns).
    pub lenses: Vec<LensKind>,
    /// Cells at once.
    pub concurrency: NonZeroUsize,
    /// Swarm deadline.
    pub deadline: Option<Duration>,
    /// Files not to review.
    pub exclude: Vec<Glob>,
    /// The most diff tokens one cell is sent.
    pub max_cell_tokens: usize,
    /// The most diff tokens per model and lens.
    pub max_total_tokens: Option<usize>,
    /// The smallest context window of the models.
    pub context_tokens: usize,
    /// Use the review cache in the store.
    pub cache: bool,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            lenses: LensKind::ALL.to_vec(),
            concurrency: NonZeroUsize::new(executus_swarm::config::DEFAULT_CONCURRENCY)
                .unwrap_or(NonZeroUsize::MIN),
            deadline: Some(executus_swarm::config::DEFAULT_DEADLINE),
            exclude: compile_all(DEFAULT_EXCLUDES).unwrap_or_default(),
            max_cell_tokens: executus_swarm::plan::DEFAULT_MAX_CELL_TOKENS,
            max_total_tokens: None,
            context_tokens: executus_swarm::config::DEFAULT_CONTEXT_TOKENS,
            cache: true,
        }
    }
}

/// `[critic]`, validated.
#[derive(Debug, Clone)]
pub struct CriticSettings {
    /// The judge's model spec.
    pub model: String,
    /// The critic's settings.
    pub config: CriticConfig,
}

/// The validated host sections.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Persona folder (resolved against the configuration file).
    pub personas_dir: Option<PathBuf>,
    /// Skills by name.
    pub skills: BTreeMap<String, SkillContent>,
    /// Audit on or off (default off).
    pub audit: bool,
    /// Budget settings, when `[budget]` is present.
    pub budget: Option<BudgetSettings>,
    /// Critic, when `[critic]` is present.
    pub critic: Option<CriticSettings>,
    /// Tools that need approval.
    pub require_approval: Vec<String>,
    /// Tools that are blocked.
    pub block: Vec<String>,
    /// `swarm` settings.
    pub swarm: SwarmSettings,
    /// Cron jobs (each validated).
    pub jobs: Vec<JobDef>,
    /// The default persona of `chat`.
    pub chat_persona: Option<String>,
    /// `worker` settings.
    pub worker: WorkerConfig,
    /// MCP servers, validated (variables read).
    pub mcp: Vec<executus_mcp::ServerConfig>,
    /// OpenTelemetry export, when configured.
    pub telemetry: Option<crate::telemetry::Settings>,
    /// `[image]`.
    pub image: ImageSettings,
}

/// Parses `user[@tenant]` (tenant `default` when omitted).
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_identity(text: &str) -> Result<Identity, String> {
    let text = text.trim();
    let (user, tenant) = match text.split_once('@') {
        Some((user, tenant)) => (user, tenant),
        None => (text, "default"),
    };
    let ok = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace) && !s.contains('@');
    if !ok(user) || !ok(tenant) {
        return Err(format!("{text:?} is not USER or USER@TENANT (non-empty, no spaces)"));
    }
    Ok(Identity::new(user, tenant))
}

impl RawHostSections {
    /// Validates into [`HostConfig`]. `file` resolves relative paths.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key and its source.
    pub fn validate(self, figment: &Figment, file: Option<&Path>) -> Result<HostConfig, ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            origin: source_of(figment, &key),
            key,
            reason: reason.clone(),
        };
        let mut host = HostConfig::default();

        if let Some(dir) = self.personas.dir {
            let dir = relative_to_file(&dir, file);
            if !dir.is_dir() {
                return Err(invalid("personas.dir".into(), format!("{} is not a folder", dir.display())));
            }
            host.personas_dir = Some(dir);
        }
        for (name, raw) in self.skills {
            executus_skill::validate_name(&name)
                .map_err(|e| invalid(format!("skills.{name}"), e.to_string()))?;
            if raw.instructions.trim().is_empty() {
                return Err(invalid(format!("skills.{name}.instructions"), "must not be empty".into()));
            }
            host.skills.insert(name, SkillContent::new(raw.instructions).with_tools(raw.tools));
        }
        host.audit = self.audit.enabled.unwrap_or(false);
        if let Some(budget) = self.budget {
            host.budget = Some(budget.validate().map_err(|e| budget_error(figment, e))?);
        }
        if let Some(critic) = self.critic {
            let model = critic.model.filter(|m| !m.trim().is_empty()).ok_or_else(|| {
                invalid("critic.model".into(), "the critic needs a model (a tier or a chain)".into())
            })?;
            critic.config.validate().map_err(|e| critic_error(figment, e))?;
            host.critic = Some(CriticSettings { model, config: critic.config });
        }
        host.require_approval = self.policy.require_approval;
        host.block = self.policy.block;
        if let Some(swarm) = self.swarm {
            host.swarm = validate_swarm(swarm, &invalid)?;
        }
        for (id, raw) in self.schedule.jobs {
            host.jobs.push(validate_job(&id, raw, figment)?);
        }
        host.chat_persona = self.chat.persona.filter(|p| !p.trim().is_empty());
        if let Some(n) = self.worker.concurrency {
            host.worker.concurrency =
                usize::try_from(n).ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                    invalid("worker.concurrency".into(), format!("must be 1 to 10000, got {n}"))
                })?;
        }
        if let Some(n) = self.worker.tenant_cap {
            host.worker.tenant_cap = Some(u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                invalid("worker.tenant_cap".into(), format!("must be at least 1, got {n}"))
            })?);
        }
        if let Some(poll) = self.worker.poll {
            if poll < Duration::from_millis(10) || poll > Duration::from_secs(3600) {
                return Err(invalid("worker.poll".into(), format!("must be 10ms to 1h, got {poll:?}")));
            }
            host.worker.poll = poll;
        }
        if let Some(on) = self.worker.schedule {
            host.worker.schedule = on;
        }
        for (name, raw) in &self.mcp.servers {
            let mut server = raw.validate(name, &|v| std::env::var(v).ok()).map_err(|e| {
                ConfigError::Invalid { origin: source_of(figment, &e.key), key: e.key, reason: e.reason }
            })?;
            if let executus_mcp::Transport::Stdio { cwd: Some(dir), .. } = &mut server.transport {
                *dir = relative_to_file(dir, file);
            }
            host.mcp.push(server);
        }
        host.telemetry =
            crate::telemetry::Settings::from_raw(&self.telemetry, figment, &|v| std::env::var(v).ok())?;
        host.image = validate_image(self.image, file, &invalid)?;
        Ok(host)
    }
}

fn validate_image(
    raw: RawImage,
    file: Option<&Path>,
    invalid: &dyn Fn(String, String) -> ConfigError,
) -> Result<ImageSettings, ConfigError> {
    let model = raw.model.map(|m| m.trim().to_owned());
    if model.as_deref() == Some("") {
        return Err(invalid("image.model".into(), "must not be empty (a tier or provider/model)".into()));
    }
    let size = match raw.size {
        None => None,
        Some(text) => {
            Some(text.parse::<ImageSize>().map_err(|e| invalid("image.size".into(), e.to_string()))?)
        }
    };
    let output_dir = raw.output_dir.map(|dir| relative_to_file(&dir, file));
    if output_dir.is_some() && model.is_none() {
        return Err(invalid(
            "image.output_dir".into(),
            "generate_image needs `image.model` too (the image chain it draws with)".into(),
        ));
    }
    Ok(ImageSettings { model, output_dir, size })
}

fn validate_swarm(
    raw: RawSwarm,
    invalid: &dyn Fn(String, String) -> ConfigError,
) -> Result<SwarmSettings, ConfigError> {
    let mut swarm = SwarmSettings::default();
    if let Some(models) = raw.models {
        let mut list: Vec<String> = Vec::new();
        for model in models.items() {
            if model.is_empty() || model.chars().any(char::is_whitespace) {
                return Err(invalid("swarm.models".into(), format!("{model:?} is not a model spec")));
            }
            if list.contains(&model) {
                return Err(invalid("swarm.models".into(), format!("model {model:?} is listed twice")));
            }
            list.push(model);
        }
        swarm.models = list;
    }
    if let Some(lenses) = raw.lenses {
        let known = LensKind::ALL.map(LensKind::name).join(", ");
        let mut list = Vec::new();
        for name in lenses.items() {
            let lens = LensKind::from_name(&name).ok_or_else(|| {
                invalid("swarm.lenses".into(), format!("unknown lens {name:?} (known: {known})"))
            })?;
            if !list.contains(&lens) {
                list.push(lens);
            }
        }
        if list.is_empty() {
            return Err(invalid("swarm.lenses".into(), format!("name at least one lens ({known})")));
        }
        swarm.lenses = list;
    }
    if let Some(n) = raw.concurrency {
        let max = executus_swarm::config::MAX_CONCURRENCY;
        swarm.concurrency = usize::try_from(n)
            .ok()
            .filter(|n| *n <= max)
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| invalid("swarm.concurrency".into(), format!("must be 1 to {max}, got {n}")))?;
    }
    if let Some(d) = raw.deadline {
        swarm.deadline = if d.trim().eq_ignore_ascii_case("none") {
            None
        } else {
            let parsed = humantime::parse_duration(d.trim()).map_err(|e| {
                invalid("swarm.deadline".into(), format!("{d:?} is not a duration like 90s or 5m ({e})"))
            })?;
            if parsed.is_zero() {
                return Err(invalid(
                    "swarm.deadline".into(),
                    "must be longer than zero (or \"none\")".into(),
                ));
            }
            Some(parsed)
        };
    }
    if let Some(exclude) = raw.exclude {
        let patterns: Vec<String> = exclude.items().into_iter().filter(|p| !p.is_empty()).collect();
        swarm.exclude = compile_all(&patterns).map_err(|e| invalid("swarm.exclude".into(), e.to_string()))?;
    }
    let count = |key: &str, n: i64| -> Result<usize, ConfigError> {
        usize::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(key.into(), format!("must be a whole number above zero, got {n}")))
    };
    if let Some(n) = raw.max_cell_tokens {
        swarm.max_cell_tokens = count("swarm.max_cell_tokens", n)?;
    }
    if let Some(n) = raw.context_tokens {
        swarm.context_tokens = count("swarm.context_tokens", n)?;
    }
    match raw.max_total_tokens {
        None => {}
        Some(CountOrNone::Count(n)) => swarm.max_total_tokens = Some(count("swarm.max_total_tokens", n)?),
        Some(CountOrNone::Text(text)) if text.trim().eq_ignore_ascii_case("none") => {
            swarm.max_total_tokens = None
        }
        Some(CountOrNone::Text(text)) => {
            let n = text.trim().parse::<i64>().map_err(|_| {
                invalid("swarm.max_total_tokens".into(), format!("{text:?} is not a number or \"none\""))
            })?;
            swarm.max_total_tokens = Some(count("swarm.max_total_tokens", n)?);
        }
    }
    executus_swarm::config::check_budgets(
        swarm.max_cell_tokens,
        swarm.max_total_tokens,
        swarm.context_tokens,
    )
    .map_err(|(var, reason)| {
        let key = match var {
            "PR_REVIEW_MAX_CELL_TOKENS" => "swarm.max_cell_tokens",
            "PR_REVIEW_MAX_TOTAL_TOKENS" => "swarm.max_total_tokens",
            _ => "swarm.context_tokens",
        };
        invalid(key.into(), reason)
    })?;
    if let Some(cache) = raw.cache {
        swarm.cache = cache;
    }
    Ok(swarm)
}

fn validate_job(id: &str, raw: RawJob, figment: &Figment) -> Result<JobDef, ConfigError> {
    let key = |field: &str| format!("schedule.jobs.{id}.{field}");
    let invalid =
        |key: String, reason: String| ConfigError::Invalid { origin: source_of(figment, &key), key, reason };
    let mut def = JobDef::new(id, raw.cron, raw.agent, raw.input);
    if let Some(tz) = raw.timezone {
        def = def.timezone(tz);
    }
    if let Some(lane) = raw.lane {
        def = def.lane(lane);
    }
    if let Some(identity) = raw.identity {
        def = def.identity(parse_identity(&identity).map_err(|e| invalid(key("identity"), e))?);
    }
    if let Some(overlap) = raw.overlap {
        def = def.overlap(overlap);
    }
    def.jitter = raw.jitter;
    if let Some(catch_up) = raw.catch_up {
        def.catch_up = catch_up;
    }
    let job = Job::new(def.clone()).map_err(|e| invalid(key(schedule_field(&e)), e.to_string()))?;
    job.check_fires(chrono::Utc::now()).map_err(|e| invalid(key(schedule_field(&e)), e.to_string()))?;
    Ok(def)
}

/// The job field a schedule error is about.
fn schedule_field(e: &ScheduleError) -> &'static str {
    match e {
        ScheduleError::InvalidCron { .. } | ScheduleError::NeverFires { .. } => "cron",
        ScheduleError::InvalidTimeZone { .. } => "timezone",
        ScheduleError::InvalidJob { field, .. } => field,
        ScheduleError::JitterTooLarge { .. } => "jitter",
        _ => "cron",
    }
}

fn budget_error(figment: &Figment, e: BudgetConfigError) -> ConfigError {
    let key = match &e {
        BudgetConfigError::InvalidPattern { pattern, .. } => format!("budget.prices.{pattern}"),
        BudgetConfigError::InvalidAmount { key, .. }
        | BudgetConfigError::InvalidDuration { key, .. }
        | BudgetConfigError::UnknownWord { key, .. } => format!("budget.{key}"),
        _ => "budget".to_owned(),
    };
    ConfigError::Invalid { origin: source_of(figment, &key), key, reason: e.to_string() }
}

fn critic_error(figment: &Figment, e: CriticConfigError) -> ConfigError {
    let key = match &e {
        CriticConfigError::Invalid { key, .. } => format!("critic.{key}"),
        _ => "critic".to_owned(),
    };
    ConfigError::Invalid { origin: source_of(figment, &key), key, reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_with_a_default_tenant() {
        assert_eq!(parse_identity("ada").unwrap(), Identity::new("ada", "default"));
        assert_eq!(parse_identity(" ada@lab ").unwrap(), Identity::new("ada", "lab"));
        for bad in ["", "@lab", "ada@", "a b", "ada@lab@x"] {
            assert!(parse_identity(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_arrays_or_comma_separated_strings() {
        let list: StringList = serde_json::from_str(r#"["a/x", " b/y"]"#).unwrap();
        assert_eq!(list.items(), ["a/x", "b/y"]);
        let csv: StringList = serde_json::from_str(r#""a/x, b/y""#).unwrap();
        assert_eq!(csv.items(), ["a/x", "b/y"]);
    }
}
