//! Wires the validated configuration into a runtime: the stores (all from
//! [`open_stores`]), the batteries over them (personas, skills, audit, budget, critic,
//! schedule), the tools (built-in and MCP servers') and the policy.
//!
//! MCP servers (`[mcp.servers.*]`) start with the host; their tools are registered like the
//! built-in ones and the `mcp:SERVER/TOOL` / `mcp:SERVER/*` selections of agents
//! (`[agents.NAME] tools`), skills and `[policy]` are expanded to their names
//! (`mcp__SERVER__TOOL`). [`Host::close`] closes the servers after the runtime.
//!
//! Every store comes from [`open_stores`] ([`HostStores`], shared with the chat bot): with a
//! store file, checkpoints (so `resume`, `approve` / `deny`), chat history, audit records,
//! budget spend and schedule watermarks outlive the process ([`HostStores::durable`]);
//! personas and skills are read from the configuration at every start.
//! They live in a SQLite file or in PostgreSQL (`[store] url`); with `[runtime] mode =
//! "queue"` (PostgreSQL only), commands that ask for it ([`HostOptions::queue`]) hand their
//! top-level runs to the run queue the workers share instead of driving them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use executus::meta::MetaLlm;
use executus::ports::{Delivery, Ports};
use executus::tool::ToolRegistry;
use executus::tool::dispatch_agent::DispatchAgent;
use executus::tool::policy::{Decision, FnRule, Policy, RequireApprovalFor};
use executus::{Runtime, RuntimeConfig};
use executus_audit::AuditWriter;
use executus_budget::SpendBudget;
use executus_critic::LlmCritic;
use executus_llm::ImageChain;
use executus_mcp::McpHub;
use executus_persona::PersonaLibrary;
use executus_schedule::CronSchedule;
use executus_skill::SkillLibrary;
use executus_store::{HostStores, StoreError};
use executus_tools::{GenerateImage, standard_tools};

use crate::UsageError;
use crate::config::CliConfig;

/// Every store the CLI uses: [`HostStores`] (one wiring for every host).
pub type Stores = HostStores;

/// Whether a command keeps anything past the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persistence {
    /// The store at `[store] url` (commands whose runs can be resumed or continued).
    #[default]
    Store,
    /// Nothing is written anywhere (`swarm`: one-shot cells, nothing to resume).
    Memory,
}

/// Opens the stores `config` names: with [`Persistence::Store`], the SQLite file at
/// `[store] url` (created, with its folder, if missing) for checkpoints, chat history, audit,
/// budget and schedule watermarks; personas and skills come from the configuration, in memory.
/// With [`Persistence::Memory`], an in-memory database: no file is touched.
///
/// # Errors
/// The store's error naming the path: a file that is not SQLite, another program's database,
/// a newer schema, a folder that cannot be created.
pub async fn open_stores(config: &CliConfig, persistence: Persistence) -> anyhow::Result<Stores> {
    let url = match persistence {
        Persistence::Store => config.store_url.as_str(),
        Persistence::Memory => "sqlite::memory:",
    };
    HostStores::open_with(url, config.store.options()).await.map_err(|e| store_error(config, url, e))
}

/// A store that refuses the file `[store] url` names (not SQLite, another program's
/// database, not a store URL) is a configuration problem (exit 2); anything else is a failure.
fn store_error(config: &CliConfig, url: &str, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::InvalidUrl { .. }
        | StoreError::NotSqlite { .. }
        | StoreError::Foreign { .. }
        | StoreError::ForeignSchema { .. } => UsageError(format!(
            "invalid configuration value for store.url (from {}): {e}",
            source(config, "store.url")
        ))
        .into(),
        other => anyhow::Error::new(other)
            .context(format!("opening the store {} ([store] url)", executus_store::postgres::redact(url))),
    }
}

/// What a command asks of the host beyond the configuration.
#[derive(Default)]
pub struct HostOptions {
    /// Where delivered runs' outputs go (scheduled runs).
    pub delivery: Option<Arc<dyn Delivery>>,
    /// Build the cron schedule from `[schedule.jobs.*]`.
    pub schedule: bool,
    /// Lanes to add (name -> capacity), e.g. the swarm's.
    pub extra_lanes: Vec<(String, std::num::NonZeroUsize)>,
    /// Whether the store file is used.
    pub persistence: Persistence,
    /// In `[runtime] mode = "queue"`: hand top-level runs to the shared run queue.
    pub queue: bool,
    /// Build the cron schedule shared (several processes run the same jobs; each fire is
    /// claimed once across them).
    pub shared_schedule: bool,
}

/// A runtime with its ports, and the handles a command needs at the end.
pub struct Host {
    /// The runtime.
    pub runtime: Runtime,
    /// The stores under it.
    pub stores: Stores,
    /// The audit writer, when `[audit] enabled`.
    pub audit: Option<Arc<AuditWriter>>,
    /// The cron schedule, when asked for.
    pub schedule: Option<CronSchedule>,
    /// The MCP servers (empty when none are configured).
    pub mcp: Arc<McpHub>,
}

impl Host {
    /// Builds the host `config` describes.
    ///
    /// # Errors
    /// Store and persona-folder failures; [`UsageError`] for a store file that is not an
    /// executus store, a persona folder that changed since it was checked, a critic that
    /// cannot be built, or a policy naming an unregistered tool (every name the configuration
    /// uses was checked at load, in [`crate::config::check`]).
    pub async fn build(config: &CliConfig, options: HostOptions) -> anyhow::Result<Self> {
        let stores = open_stores(config, options.persistence).await?;
        let host = &config.host;
        let personas = PersonaLibrary::new(stores.personas.clone());
        if let Some(dir) = &host.personas_dir {
            personas.load_dir(dir).await.map_err(|e| {
                UsageError(format!("personas.dir (from {}): {e}", source(config, "personas.dir")))
            })?;
        }
        // MCP servers first: their tools are named in agents, skills and the policy.
        let mcp = if host.mcp.is_empty() {
            McpHub::empty()
        } else {
            McpHub::start(host.mcp.clone()).await.context("starting the MCP servers of [mcp.servers]")?
        };
        let mcp = Arc::new(mcp);
        let expand = |key: String, names: &[String]| -> anyhow::Result<Vec<String>> {
            mcp.expand(&key, names).map_err(|e| UsageError(e.to_string()).into())
        };
        let skills = SkillLibrary::new(stores.skills.clone());
        for (name, content) in &host.skills {
            let mut content = content.clone();
            content.tools = expand(format!("skills.{name}.tools"), &content.tools)?;
            install_skill(&skills, name, content)
                .await
                .with_context(|| format!("installing skill {name:?} from skills.{name}"))?;
        }

        let mut tools = tool_registry(config)?;
        mcp.register(&mut tools).map_err(|e| UsageError(e.to_string()))?;
        let lists = PolicyLists {
            require_approval: expand("policy.require_approval".into(), &host.require_approval)?,
            block: expand("policy.block".into(), &host.block)?,
        };
        let policy = policy(config, &tools, lists)?;
        let mut ports = Ports {
            personas: Arc::new(personas),
            skills: Arc::new(skills),
            checkpoints: stores.checkpoints.clone(),
            ..Ports::default()
        };
        let audit = host.audit.then(|| Arc::new(AuditWriter::new(stores.audit.clone())));
        if let Some(writer) = &audit {
            ports.audit = writer.clone();
        }
        if let Some(settings) = &host.budget {
            ports.budget = Arc::new(SpendBudget::new(settings.clone(), stores.budget.clone()));
        }
        if let Some(critic) = &host.critic {
            let meta = MetaLlm::new(&config.registry, &critic.model).map_err(|e| {
                UsageError(format!("critic.model (from {}): {e}", source(config, "critic.model")))
            })?;
            let critic = LlmCritic::new(meta, critic.config.clone())
                .map_err(|e| UsageError(format!("critic (from {}): {e}", source(config, "critic"))))?;
            ports.critic = Arc::new(critic);
        }
        if let Some(delivery) = options.delivery {
            ports.delivery = delivery;
        }
        let schedule = options.schedule.then(|| {
            CronSchedule::builder().store(stores.schedule.clone()).shared(options.shared_schedule).build()
        });
        if let Some(schedule) = &schedule {
            ports.schedule = Arc::new(schedule.clone());
        }

        let mut runtime_config: RuntimeConfig = config.runtime.clone();
        for (name, agent) in &mut runtime_config.agents {
            agent.tools = expand(format!("agents.{name}.tools"), &agent.tools)?;
        }
        for (name, capacity) in options.extra_lanes {
            runtime_config.lanes.insert(
                name,
                executus::config::LaneSettings { capacity, ..executus::config::LaneSettings::default() },
            );
        }
        let mut builder = Runtime::builder()
            .registry(config.registry.clone())
            .config(runtime_config)
            .tools(tools)
            .policy(policy)
            .ports(ports);
        if options.queue && config.runtime.mode == executus::config::RunMode::Queue {
            let Some(pg) = stores.store.as_ref().and_then(|s| s.as_postgres()) else {
                return Err(UsageError(
                    "[runtime] mode = \"queue\" needs [store] url = \"postgres://...\"".into(),
                )
                .into());
            };
            builder = builder.queue(Arc::new(pg.queue()));
        }
        let runtime = builder.try_build().map_err(|e| UsageError(e.to_string()))?;
        Ok(Self { runtime, stores, audit, schedule, mcp })
    }

    /// Ends the process's work cleanly: lanes drain for `grace`, runs still going are
    /// interrupted with their checkpoints flushed, the audit writer drains, and the MCP
    /// servers are closed (no child process outlives the host).
    pub async fn close(&self, grace: Duration) {
        self.runtime.shutdown(grace).await;
        if let Some(audit) = &self.audit {
            audit.shutdown().await;
        }
        self.mcp.shutdown().await;
    }
}

/// A runtime with the configured providers, tiers and tools and no other wiring (for
/// commands that only inspect models).
///
/// # Errors
/// [`UsageError`] naming a bad tier.
pub fn bare_runtime(config: &CliConfig) -> anyhow::Result<Runtime> {
    Runtime::builder()
        .registry(config.registry.clone())
        .config(config.runtime.clone())
        .tools(tool_registry(config)?)
        .try_build()
        .map_err(|e| UsageError(e.to_string()).into())
}

fn source(config: &CliConfig, key: &str) -> String {
    executus::config::source_of(&config.figment, key)
}

/// The built-in tools (`clock`, `calc`, `web_fetch` under `[tools.web_fetch]`),
/// `dispatch_agent`, and `generate_image` when `[image]` names a model and an output folder
/// (agents still opt in by listing it).
///
/// # Errors
/// [`UsageError`] naming `image.model` or `image.output_dir` when the tool cannot be built.
pub fn tool_registry(config: &CliConfig) -> anyhow::Result<ToolRegistry> {
    let mut tools = builtin_tools(&config.runtime);
    let image = &config.host.image;
    if let (Some(model), Some(dir)) = (&image.model, &image.output_dir) {
        let chain = image_chain(config, model)?;
        let mut tool = GenerateImage::new(Arc::new(chain), dir).map_err(|e| {
            UsageError(format!("image.output_dir (from {}): {e}", source(config, "image.output_dir")))
        })?;
        if let Some(size) = image.size {
            tool = tool.with_default_size(size);
        }
        tools.register(Arc::new(tool));
    }
    Ok(tools)
}

/// The tools every configuration has: the built-in tools and `dispatch_agent`.
pub fn builtin_tools(runtime: &RuntimeConfig) -> ToolRegistry {
    let mut tools = ToolRegistry::new().with(DispatchAgent::arc());
    for tool in standard_tools(runtime) {
        tools.register(tool);
    }
    tools
}

/// `[policy]` lists with `mcp:` selections expanded.
struct PolicyLists {
    require_approval: Vec<String>,
    block: Vec<String>,
}

/// The image chain `spec` resolves to; a bad spec is a [`UsageError`] naming `image.model`
/// when it came from there.
pub fn image_chain(config: &CliConfig, spec: &str) -> anyhow::Result<ImageChain> {
    config.registry.image_chain(spec).map_err(|e| {
        let from = if config.host.image.model.as_deref() == Some(spec) {
            format!("image.model (from {}): ", source(config, "image.model"))
        } else {
            String::new()
        };
        UsageError(format!("{from}{e}")).into()
    })
}

/// `[policy]`: approvals and blocks for every run, on top of the agent profiles.
fn policy(config: &CliConfig, tools: &ToolRegistry, lists: PolicyLists) -> anyhow::Result<Policy> {
    let mut policy = Policy::new();
    let check = |key: &str, names: &[String]| -> anyhow::Result<()> {
        for name in names {
            if tools.get(name).is_none() {
                return Err(UsageError(format!(
                    "invalid configuration value for {key} (from {}): unknown tool {name:?} (tools: {})",
                    source(config, key),
                    tools.names().collect::<Vec<_>>().join(", ")
                ))
                .into());
            }
        }
        Ok(())
    };
    check("policy.require_approval", &lists.require_approval)?;
    check("policy.block", &lists.block)?;
    if !lists.block.is_empty() {
        let blocked = lists.block;
        policy.add_global(FnRule::new("config:policy.block", move |input| {
            blocked
                .iter()
                .any(|t| t == input.tool)
                .then(|| Decision::Block(format!("tool {} is blocked by the configuration", input.tool)))
        }));
    }
    if !lists.require_approval.is_empty() {
        policy.add_global(RequireApprovalFor::new(lists.require_approval));
    }
    Ok(policy)
}

/// Makes `content` the active version of skill `name`: created if new, a new version if it
/// changed, enabled if it was not.
async fn install_skill(
    skills: &SkillLibrary,
    name: &str,
    content: executus_skill::SkillContent,
) -> Result<(), executus_skill::SkillError> {
    use executus_skill::SkillState;
    match skills.active(name).await? {
        None => {
            skills.create(name, content).await?;
        }
        Some(active) => {
            let same =
                active.version.instructions == content.instructions && active.version.tools == content.tools;
            if !same {
                let version = skills.new_version(name, content).await?;
                skills.activate(name, version.version).await?;
            }
            if active.skill.state == SkillState::Active {
                return Ok(());
            }
        }
    }
    skills.enable(name).await?;
    Ok(())
}
