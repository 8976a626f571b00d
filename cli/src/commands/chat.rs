//! `chat [--persona NAME] [--identity USER[@TENANT]]`: a conversation with a persona on
//! stdin/stdout, kept in the store per user and persona (the chatbot example's
//! [`ChatSession`] over the CLI's stores).
//!
//! Each line is a message; `/reset` forgets the conversation, `/history` shows it, `/exit`
//! (or end of input) leaves. Answers go to stdout, one block per answer; notes and turns that
//! did not complete go to stderr. It works the same with piped stdin (no prompt then).
//! SIGINT or SIGTERM cancels the turn in progress and exits 130.
//!
//! Exit code: 130 when interrupted; otherwise that of the last turn's status (0 when there
//! was none), so a script sending one message gets the turn's code.

use std::io::IsTerminal as _;

use clap::Args;
use executus::RuntimeError;
use executus_chat::{ChatError, ChatSession, ReplStop, repl};

use super::run::identity;
use crate::config::CliConfig;
use crate::host::{Host, HostOptions};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The persona (or configured agent) to talk to. Default: `[chat] persona`, else the only
    /// one there is.
    #[arg(long)]
    pub persona: Option<String>,
    /// Who is chatting (history, budget and audit are per user). Default: anonymous@default.
    #[arg(long, value_name = "USER[@TENANT]")]
    pub identity: Option<String>,
}

/// Runs the chat loop.
///
/// # Errors
/// Unknown persona or bad arguments (exit 2), store failures (exit 1).
pub async fn chat(config: &CliConfig, args: ChatArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let identity = identity(args.identity.as_deref())?;
    let host = Host::build(config, HostOptions::default()).await?;
    let persona = match args.persona.or_else(|| config.host.chat_persona.clone()) {
        Some(p) => p,
        None => only_persona(&host, config).await?,
    };
    let session = ChatSession::open(&host.runtime, host.stores.chats.clone(), &persona, identity)
        .await
        .map_err(|e| match e {
            ChatError::Runtime(e @ RuntimeError::UnknownAgent { .. }) => {
                UsageError(format!("--persona: {e}")).into()
            }
            other => anyhow::Error::from(other),
        })?;
    let interactive = std::io::stdin().is_terminal();
    if !host.stores.durable {
        eprintln!(
            "chat: note: the conversation is kept in memory for this session only (store: {})",
            host.stores.location
        );
    }
    if interactive {
        eprintln!(
            "chat with {} as {}@{}. {}",
            persona,
            session.key().user,
            session.key().tenant,
            executus_chat::HELP
        );
    }
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let ended = repl(&session, stdin, &mut out, &mut err, interactive, interrupt.token()).await;
    host.close(config.runtime.shutdown_grace).await;
    let ended = ended?;
    Ok(match ended.reason {
        ReplStop::Interrupted => Exit::Interrupted,
        ReplStop::Exit | ReplStop::EndOfInput => ended.last_status.map_or(Exit::Ok, Exit::for_status),
    })
}

/// The persona to use when none is named: the only agent or persona there is.
async fn only_persona(host: &Host, config: &CliConfig) -> anyhow::Result<String> {
    let mut names: Vec<String> = config.runtime.agents.keys().cloned().collect();
    names.extend(host.runtime.ports().personas.list().await.unwrap_or_default());
    names.sort();
    names.dedup();
    match names.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(UsageError(
            "no persona to chat with: configure [agents.NAME] or [personas] dir, or pass --persona".into(),
        )
        .into()),
        many => Err(UsageError(format!(
            "several personas ({}): pass --persona NAME or set [chat] persona",
            many.join(", ")
        ))
        .into()),
    }
}
