//! The subcommands. Each builds what it needs from the validated configuration (through
//! [`crate::host`]) and returns the process exit code.

pub mod approve;
pub mod chat;
pub mod fleet;
pub mod image;
pub mod models;
pub mod report;
pub mod resume;
pub mod run;
pub mod schedule;
pub mod store;
pub mod swarm;
pub mod worker;

use crate::config::{CliConfig, effective};
use crate::signals::Interrupt;
use crate::{Cli, Command, Exit};

/// Runs the parsed command.
///
/// # Errors
/// Configuration errors (exit 2) and failures (exit 1).
pub async fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    // Before anything else, so that an early Ctrl-C is handled like a late one.
    let interrupt = Interrupt::install()?;
    let config = CliConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run(args) => run::run(&config, args, &interrupt).await,
        Command::Swarm(args) => swarm::swarm(&config, args, &interrupt).await,
        Command::Chat(args) => chat::chat(&config, args, &interrupt).await,
        Command::Resume(args) => resume::resume(&config, args, &interrupt).await,
        Command::Approve(args) => approve::approve(&config, args, &interrupt).await,
        Command::Deny(args) => approve::deny(&config, args, &interrupt).await,
        Command::Schedule(args) => schedule::schedule(&config, args, &interrupt).await,
        Command::Worker(args) => worker::worker(&config, args, &interrupt).await,
        Command::Store(args) => store::store(&config, args).await,
        Command::Models(args) => models::models(&config, args).await,
        Command::Image(args) => image::image(&config, args, &interrupt).await,
        Command::Fleet(args) => fleet::fleet(&config, args, &interrupt).await,
        Command::Config(args) if args.check => {
            report_checked(&config);
            Ok(Exit::Ok)
        }
        Command::Config(_) => {
            print_config(&config)?;
            Ok(Exit::Ok)
        }
    }
}

/// Arguments of `config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Check the configuration and exit: every section, every model spec resolved, every
    /// tool, skill, agent and persona named, the store file — without opening the store,
    /// starting anything or making a call. Exit 0, or 2 naming the key (for CI and editors).
    #[arg(long)]
    pub check: bool,
}

/// `config --check`: loading did every check ([`crate::config::check`]); say what was checked.
fn report_checked(config: &CliConfig) {
    let file = match &config.file {
        Some(f) => f.display().to_string(),
        None => "no configuration file (built-in defaults and environment)".to_owned(),
    };
    outln!(
        "configuration OK: {file} ({} providers, {} tiers, {} agents, {} skills, {} jobs; store {})",
        config.registry.provider_names().len(),
        config.runtime.tiers.len(),
        config.runtime.agents.len(),
        config.host.skills.len(),
        config.host.jobs.len(),
        config.store_url
    );
}

fn print_config(config: &CliConfig) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut text = String::new();
    match &config.file {
        Some(f) => text.push_str(&format!("# configuration file: {}\n", f.display())),
        None => text.push_str(
            "# no configuration file (./executus.toml absent): built-in defaults and environment\n",
        ),
    }
    text.push_str(&format!("# store: {}\n", config.store_location()));
    for (key, value, source) in effective(&config.figment) {
        text.push_str(&format!("{key} = {value}    # {source}\n"));
    }
    let env_providers: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("EXECUTUS_LLM_").map(|n| n.to_ascii_lowercase()))
        .collect();
    for name in env_providers {
        text.push_str(&format!(
            "providers.{name} = <dsn, key redacted>    # environment variable EXECUTUS_LLM_{}\n",
            name.to_uppercase()
        ));
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
