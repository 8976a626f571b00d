//! [`ChatSession`]: one user's conversation with one persona, turn by turn, with its history
//! in a [`ChatHistory`]; and [`repl`], the line-oriented loop hosts put on stdin/stdout.
//!
//! A turn runs the persona on the stored history plus the new message, as a run of the
//! core runtime for the session's identity (so budgets, audit and lanes apply per user).
//! Only a turn that completes is appended to the history — the user's message and
//! everything the run added (tool calls and results included) — so a failed, denied or
//! interrupted turn can simply be sent again.

use std::io::Write;
use std::sync::Arc;

use executus::llm::Message;
use executus::{Identity, RunHandle, RunOutcome, RunRequest, RunnableAgent, Runtime, RuntimeError};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _};
use tokio_util::sync::CancellationToken;

use crate::history::{ChatHistory, ChatKey};

/// Errors of a chat session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The persona does not exist, or the run could not be admitted.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The history store failed.
    #[error("chat history of {key}: {source}")]
    History {
        /// Whose history.
        key: ChatKey,
        /// The store's error.
        source: executus::ports::PortError,
    },
    /// Reading the input or writing the answer failed.
    #[error("chat I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// One conversation: an identity talking to a persona.
#[derive(Clone)]
pub struct ChatSession {
    runtime: Runtime,
    history: Arc<dyn ChatHistory>,
    agent: RunnableAgent,
    identity: Identity,
    key: ChatKey,
}

impl std::fmt::Debug for ChatSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSession").field("key", &self.key).finish_non_exhaustive()
    }
}

impl ChatSession {
    /// The conversation of `identity` with `persona` (an agent or persona the runtime
    /// knows).
    ///
    /// # Errors
    /// [`ChatError::Runtime`] with [`RuntimeError::UnknownAgent`] listing the known names.
    pub async fn open(
        runtime: &Runtime,
        history: Arc<dyn ChatHistory>,
        persona: &str,
        identity: Identity,
    ) -> Result<Self, ChatError> {
        let agent = runtime.agent(persona).await?;
        let key = ChatKey::new(&identity, persona);
        Ok(Self { runtime: runtime.clone(), history, agent, identity, key })
    }

    /// Whose conversation this is.
    pub fn key(&self) -> &ChatKey {
        &self.key
    }

    /// The persona's agent.
    pub fn agent(&self) -> &RunnableAgent {
        &self.agent
    }

    /// The stored conversation.
    ///
    /// # Errors
    /// [`ChatError::History`].
    pub async fn history(&self) -> Result<Vec<Message>, ChatError> {
        self.history.load(&self.key).await.map_err(|source| self.history_error(source))
    }

    /// Forgets the conversation; returns how many messages it held.
    ///
    /// # Errors
    /// [`ChatError::History`].
    pub async fn reset(&self) -> Result<usize, ChatError> {
        self.history.reset(&self.key).await.map_err(|source| self.history_error(source))
    }

    /// Starts a turn: the persona runs on the history plus `text`.
    ///
    /// # Errors
    /// [`ChatError::History`] if the history cannot be read, [`ChatError::Runtime`] if the
    /// run is not admitted.
    pub async fn send(&self, text: &str) -> Result<Turn, ChatError> {
        let mut input = self.history().await?;
        let stored = input.len();
        input.push(Message::user(text));
        let request = RunRequest::new(self.agent.clone(), input.clone()).identity(self.identity.clone());
        let handle = self.runtime.spawn_with(request).await?;
        Ok(Turn { session: self.clone(), handle, input, stored })
    }

    /// [`send`](Self::send) and [`Turn::finish`].
    ///
    /// # Errors
    /// As both.
    pub async fn turn(&self, text: &str) -> Result<Arc<RunOutcome>, ChatError> {
        self.send(text).await?.finish().await
    }

    fn history_error(&self, source: executus::ports::PortError) -> ChatError {
        ChatError::History { key: self.key.clone(), source }
    }
}

/// A turn in progress.
#[derive(Debug)]
pub struct Turn {
    session: ChatSession,
    handle: RunHandle,
    input: Vec<Message>,
    stored: usize,
}

impl Turn {
    /// The turn's run (to cancel it, or watch its events).
    pub fn handle(&self) -> &RunHandle {
        &self.handle
    }

    /// Waits for the run; when it completed, appends the user's message and everything the
    /// run added to the history.
    ///
    /// # Errors
    /// [`ChatError::History`] if the completed turn cannot be stored.
    pub async fn finish(self) -> Result<Arc<RunOutcome>, ChatError> {
        let outcome = self.handle.outcome().await;
        if outcome.is_completed() {
            // The transcript starts with the input; keep what follows the stored history.
            // Should a run ever return a transcript that does not (it never does today),
            // store the message and the answer rather than lose the turn.
            let new: Vec<Message> = if outcome.messages.starts_with(&self.input) {
                outcome.messages[self.stored..].to_vec()
            } else {
                let mut new = vec![self.input[self.stored].clone()];
                new.extend(outcome.output.as_deref().map(Message::assistant));
                new
            };
            self.session
                .history
                .append(&self.session.key, &new)
                .await
                .map_err(|source| self.session.history_error(source))?;
        }
        Ok(outcome)
    }
}

/// What a line of chat input means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A message to the persona.
    Message(String),
    /// `/reset`: forget the conversation.
    Reset,
    /// `/exit` (or `/quit`): leave.
    Exit,
    /// `/history`: show the stored conversation.
    History,
    /// `/help`.
    Help,
    /// A blank line.
    Blank,
    /// A `/command` this loop does not know.
    Unknown(String),
}

impl Line {
    /// Parses one input line.
    pub fn parse(line: &str) -> Self {
        let line = line.trim();
        match line {
            "" => Self::Blank,
            "/reset" => Self::Reset,
            "/exit" | "/quit" => Self::Exit,
            "/history" => Self::History,
            "/help" => Self::Help,
            // `//text` sends `/text` verbatim.
            _ if line.starts_with("//") => Self::Message(line[1..].to_owned()),
            _ if line.starts_with('/') => Self::Unknown(line.to_owned()),
            _ => Self::Message(line.to_owned()),
        }
    }
}

/// Help text of [`repl`].
pub const HELP: &str = "Type a message and press Enter. Commands: /reset forgets this conversation, \
/history shows it, /exit leaves (so does end of input). Start a line with // to send one that \
begins with /.";

/// How [`repl`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplEnd {
    /// Why it stopped.
    pub reason: ReplStop,
    /// Status of the last turn, if there was one.
    pub last_status: Option<executus::RunStatus>,
}

/// Why [`repl`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplStop {
    /// `/exit`.
    Exit,
    /// End of input.
    EndOfInput,
    /// `interrupt` fired (the turn in progress was cancelled).
    Interrupted,
}

/// Reads lines from `input` until `/exit`, end of input or `interrupt`; each message is a
/// turn whose answer is written to `out` (one block per answer). Turns that do not complete
/// are reported on `err` with their status and reason and the loop goes on. With `prompt`,
/// a `you> ` prompt is written before each line (for terminals).
///
/// # Errors
/// [`ChatError::History`] when the history store fails, [`ChatError::Io`] when reading or
/// writing fails, [`ChatError::Runtime`] when a turn is not admitted.
pub async fn repl<R, O, E>(
    session: &ChatSession,
    input: R,
    out: &mut O,
    err: &mut E,
    prompt: bool,
    interrupt: &CancellationToken,
) -> Result<ReplEnd, ChatError>
where
    R: AsyncBufRead + Unpin,
    O: Write,
    E: Write,
{
    let mut lines = input.lines();
    let mut last_status = None;
    loop {
        if prompt {
            write!(out, "you> ")?;
            out.flush()?;
        }
        let line = tokio::select! {
            line = lines.next_line() => line?,
            () = interrupt.cancelled() => return Ok(ReplEnd { reason: ReplStop::Interrupted, last_status }),
        };
        let Some(line) = line else {
            return Ok(ReplEnd { reason: ReplStop::EndOfInput, last_status });
        };
        match Line::parse(&line) {
            Line::Blank => {}
            Line::Exit => return Ok(ReplEnd { reason: ReplStop::Exit, last_status }),
            Line::Help => writeln!(err, "{HELP}")?,
            Line::Unknown(cmd) => writeln!(err, "unknown command {cmd} ({HELP})")?,
            Line::Reset => {
                let n = session.reset().await?;
                writeln!(err, "(forgot {n} messages of the conversation {})", session.key())?;
            }
            Line::History => {
                for message in session.history().await? {
                    writeln!(out, "{}: {}", role(&message), message.text())?;
                }
            }
            Line::Message(text) => {
                let turn = session.send(&text).await?;
                let handle = turn.handle().clone();
                let finished = turn.finish();
                tokio::pin!(finished);
                let outcome = tokio::select! {
                    outcome = &mut finished => outcome?,
                    () = interrupt.cancelled() => {
                        handle.cancel().await;
                        let outcome = finished.await?;
                        return Ok(ReplEnd { reason: ReplStop::Interrupted, last_status: Some(outcome.status()) });
                    }
                };
                last_status = Some(outcome.status());
                if outcome.is_completed() {
                    writeln!(out, "{}", outcome.output.as_deref().unwrap_or_default())?;
                    out.flush()?;
                } else {
                    let reason = outcome.end.reason().unwrap_or_default();
                    writeln!(
                        err,
                        "(the turn ended {}: {reason}; it was not added to the conversation)",
                        outcome.status()
                    )?;
                }
            }
        }
    }
}

fn role(message: &Message) -> &'static str {
    match message.role {
        executus::llm::Role::User => "you",
        executus::llm::Role::Assistant => "bot",
        executus::llm::Role::Tool => "tool",
    }
}
