//! SIGINT (Ctrl-C) and SIGTERM: the handlers are installed before a command starts any work,
//! so a signal that arrives early is never the default "die at once". The first signal
//! cancels the [`Interrupt`] token (the command then cancels, checkpoints or drains, as it
//! documents); a second one ends the process at once with exit code 130.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Cancelled by the first SIGINT or SIGTERM.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    token: CancellationToken,
    which: Arc<OnceLock<&'static str>>,
}

impl Interrupt {
    /// Installs the handlers and starts watching. Must run inside the tokio runtime.
    ///
    /// # Errors
    /// The handler could not be installed (not on a normal Unix system).
    pub fn install() -> std::io::Result<Self> {
        let interrupt = Self::default();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut int = signal(SignalKind::interrupt())?;
            let mut term = signal(SignalKind::terminate())?;
            let watcher = interrupt.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                loop {
                    let name = tokio::select! {
                        Some(()) = int.recv() => "SIGINT",
                        Some(()) = term.recv() => "SIGTERM",
                        else => return,
                    };
                    seen += 1;
                    if seen > 1 {
                        eprintln!("executus-run: second {name}: exiting now");
                        crate::telemetry::flush_installed();
                        std::process::exit(130);
                    }
                    let _ = watcher.which.set(name);
                    watcher.token.cancel();
                }
            });
        }
        #[cfg(not(unix))]
        {
            let watcher = interrupt.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    let _ = watcher.which.set("SIGINT");
                    watcher.token.cancel();
                }
            });
        }
        Ok(interrupt)
    }

    /// Completes at the first signal.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// The token (cancelled at the first signal).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Which signal arrived, if one did.
    pub fn which(&self) -> Option<&'static str> {
        self.which.get().copied()
    }
}
