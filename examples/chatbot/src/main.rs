//! `chatbot`: the heavy host as a program.
//!
//! ```text
//! chatbot [--user NAME] [--persona NAME]   chat on stdin/stdout (/reset, /history, /exit)
//! chatbot digest                           run the daily digest now, as the 08:00 job would
//! chatbot serve                            run the daily job on its schedule until Ctrl-C
//! ```
//!
//! Offline by default (the bundled replay transcript answers the bundled scenes); live with
//! `EXECUTUS_LLM_<NAME>=<dsn>` and `CHATBOT_MODEL`. Exit codes: 0 ok, 1 failure, 2 usage or
//! configuration error, 130 interrupted.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use chatbot::app::CHAT_PERSONA;
use chatbot::{App, AppOptions, ChatbotError, ReplStop, Stores, models, repl};
use tokio_util::sync::CancellationToken;

const HELP: &str = "chatbot — the executus heavy host: personas, a skill, audit, per-user budgets, a daily cron job, the critic.

USAGE:
    chatbot [--user NAME] [--persona NAME]   chat on stdin/stdout (/reset, /history, /exit)
    chatbot digest                           run the daily digest now, as the 08:00 job would
    chatbot serve                            run the daily job on its schedule until Ctrl-C

ENVIRONMENT:
    EXECUTUS_LLM_<NAME>   provider DSN (e.g. openai://KEY@); without one, the bundled replay answers
    CHATBOT_MODEL         the chat model chain (required with live providers)
    CHATBOT_JUDGE         the critic's model (default: CHATBOT_MODEL)
    CHATBOT_USER          default user name (default: $USER, else guest)
    CHATBOT_STORE         the SQLite store (default: sqlite://target/chatbot/chatbot.db)

Offline, the bundled transcript answers the scenes in src/fixture.rs (hand-written answers,
not a live model): try `Hi, I'm Ada. I look after the build servers.` Conversations are kept in
the store: type /reset to play a scene again from its start.
";

/// Where conversations and checkpoints live by default (relative to the working directory).
const DEFAULT_STORE: &str = "sqlite://target/chatbot/chatbot.db";

enum Mode {
    Chat { user: String, persona: String },
    Digest,
    Serve,
}

fn parse_args() -> Result<Option<Mode>, String> {
    let mut args = std::env::args().skip(1);
    let mut user = std::env::var("CHATBOT_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "guest".to_owned());
    let mut persona = CHAT_PERSONA.to_owned();
    let mut mode = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--user" => user = args.next().ok_or("--user needs a name")?,
            "--persona" => persona = args.next().ok_or("--persona needs a name")?,
            "digest" if mode.is_none() => mode = Some(Mode::Digest),
            "serve" if mode.is_none() => mode = Some(Mode::Serve),
            other => return Err(format!("unexpected argument {other:?} (see --help)")),
        }
    }
    Ok(Some(mode.unwrap_or(Mode::Chat { user, persona })))
}

fn main() -> ExitCode {
    let mode = match parse_args() {
        Ok(Some(mode)) => mode,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(mode));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            let config = matches!(
                e,
                ChatbotError::Personas(_) | ChatbotError::Config(_) | ChatbotError::Models { .. }
            );
            ExitCode::from(if config { 2 } else { 1 })
        }
    }
}

async fn run(mode: Mode) -> Result<u8, ChatbotError> {
    let interrupt = CancellationToken::new();
    {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupt.cancel();
            }
        });
    }
    let url = std::env::var("CHATBOT_STORE")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_STORE.to_owned());
    let stores = Stores::open(&url).await?;
    let app = App::build(AppOptions::new(models::registry_from_env()?, stores)).await?;
    let code = match mode {
        Mode::Chat { user, persona } => {
            let session = app.session(&user, &persona).await?;
            let interactive = std::io::stdin().is_terminal();
            if interactive {
                eprintln!("chatting with {persona} as {user}. {}", executus_chat::HELP);
            }
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            let ended = repl(
                &session,
                stdin,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
                interactive,
                &interrupt,
            )
            .await?;
            match (ended.reason, ended.last_status) {
                (ReplStop::Interrupted, _) => 130,
                (_, None | Some(executus::RunStatus::Completed)) => 0,
                (_, Some(_)) => 1,
            }
        }
        Mode::Digest => {
            let handle = app.run_digest_now().await?;
            let outcome = handle.outcome().await;
            if outcome.is_completed() { 0 } else { 1 }
        }
        Mode::Serve => {
            let (id, cron, tz, _) = chatbot::app::DAILY_JOB;
            eprintln!("chatbot: job {id} fires at {cron} ({tz}); Ctrl-C stops");
            app.runtime.run_schedule(interrupt.clone()).await;
            0
        }
    };
    app.close(Duration::from_secs(2)).await;
    Ok(code)
}
