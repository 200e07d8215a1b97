//! Ctrl-C and a process manager's stop, for the commands that run until interrupted (`watch`,
//! `serve`): listened for from the moment the command starts, so that an interrupt is never
//! lost between two awaits and the command ends cleanly (exit 0, a server after draining its
//! requests) instead of being killed.

use crate::exit::Outcome;

/// A listener for Ctrl-C (SIGINT) and, on Unix, SIGTERM: what systemd, Docker and Kubernetes
/// send to stop a process before they kill it.
pub struct Interrupt {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 2],
}

impl Interrupt {
    /// Starts listening; from now on neither signal kills the process.
    pub fn listen() -> Outcome<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind| {
                signal(kind).map_err(|err| crate::exit::Failure::error(format!("cannot listen for signals: {err}")))
            };
            Ok(Interrupt { signals: [listen(SignalKind::interrupt())?, listen(SignalKind::terminate())?] })
        }
        #[cfg(not(unix))]
        {
            Ok(Interrupt {})
        }
    }

    /// Waits for Ctrl-C or, on Unix, SIGTERM.
    pub async fn received(&mut self) {
        #[cfg(unix)]
        {
            let [interrupt, terminate] = &mut self.signals;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
