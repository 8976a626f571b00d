//! `run --agent NAME [--input TEXT | -] [--model SPEC] [--json]`.

use std::io::Read as _;

use clap::Args;
use executus::RunOutcome;
use serde_json::json;

use crate::config::CliConfig;
use crate::{Exit, UsageError};

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent (configured in [agents.NAME] or a persona).
    #[arg(long)]
    pub agent: String,
    /// The input text; `-` reads stdin. Default: stdin when it is not a terminal.
    #[arg(long)]
    pub input: Option<String>,
    /// Override the agent's model spec (a tier or a chain such as `local/qwen3, openai/gpt-4.1`).
    #[arg(long)]
    pub model: Option<String>,
    /// Print one JSON object: run_id, status, output, steps, usage, error.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn read_input(input: Option<&str>) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    match input {
        Some("-") => read_stdin(),
        Some(text) => Ok(text.to_owned()),
        None if !std::io::stdin().is_terminal() => read_stdin(),
        None => Err(UsageError("no input: pass --input TEXT, or --input - to read stdin".into()).into()),
    }
}

fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

/// Prints an outcome (text or JSON) and returns its exit code.
pub(crate) fn report(outcome: &RunOutcome, as_json: bool) -> Exit {
    let status = outcome.status();
    if as_json {
        let doc = json!({
            "run_id": outcome.run_id.to_string(),
            "status": status,
            "output": outcome.output,
            "typed": outcome.typed,
            "steps": outcome.steps,
            "usage": outcome.usage,
            "error": outcome.end.reason(),
        });
        println!("{doc}");
    } else {
        if let Some(out) = &outcome.output {
            println!("{out}");
        }
        if let Some(reason) = outcome.end.reason() {
            eprintln!("run {} ended {status}: {reason}", outcome.run_id);
        }
    }
    Exit::for_status(status)
}

/// Runs one agent.
///
/// # Errors
/// Unknown agent (exit 2), runtime start failures.
pub async fn run(config: &CliConfig, args: RunArgs) -> anyhow::Result<Exit> {
    let runtime = crate::host::runtime(config)?;
    let mut agent = runtime.agent(&args.agent).await.map_err(|e| UsageError(e.to_string()))?;
    if let Some(model) = args.model {
        agent.model = model;
    }
    let input = read_input(args.input.as_deref())?;
    let handle = runtime.spawn(agent, input).await?;
    let outcome = tokio::select! {
        outcome = handle.outcome() => outcome,
        _ = tokio::signal::ctrl_c() => {
            handle.cancel().await;
            let outcome = handle.outcome().await;
            report(&outcome, args.json);
            return Ok(Exit::Interrupted);
        }
    };
    Ok(report(&outcome, args.json))
}
