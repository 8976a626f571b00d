//! The subcommands. Each builds what it needs from the validated configuration (through
//! [`crate::host`]) and returns the process exit code.

pub mod approve;
pub mod chat;
pub mod models;
pub mod report;
pub mod resume;
pub mod run;
pub mod schedule;
pub mod swarm;

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
        Command::Models(args) => models::models(&config, args).await,
        Command::Config => {
            print_config(&config);
            Ok(Exit::Ok)
        }
    }
}

fn print_config(config: &CliConfig) {
    match &config.file {
        Some(f) => println!("# configuration file: {}", f.display()),
        None => {
            println!("# no configuration file (./executus.toml absent): built-in defaults and environment")
        }
    }
    println!("# store: {}", config.store_url);
    for (key, value, source) in effective(&config.figment) {
        println!("{key} = {value}    # {source}");
    }
    let env_providers: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("EXECUTUS_LLM_").map(|n| n.to_ascii_lowercase()))
        .collect();
    for name in env_providers {
        println!(
            "providers.{name} = <dsn, key redacted>    # environment variable EXECUTUS_LLM_{}",
            name.to_uppercase()
        );
    }
}
