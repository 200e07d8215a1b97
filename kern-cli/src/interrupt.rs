//! Ctrl-C, for the commands that run until interrupted (`watch`, `serve`): listened for from
//! the moment the command starts, so that an interrupt is never lost between two awaits and
//! the command ends cleanly (exit 0) instead of being killed.

use crate::exit::Outcome;

/// A listener for Ctrl-C (SIGINT).
pub struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    /// Starts listening; from now on Ctrl-C no longer kills the process.
    pub fn listen() -> Outcome<Self> {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|err| crate::exit::Failure::error(format!("cannot listen for Ctrl-C: {err}")))?;
            Ok(Interrupt { signal })
        }
        #[cfg(not(unix))]
        {
            Ok(Interrupt {})
        }
    }

    /// Waits for Ctrl-C.
    pub async fn received(&mut self) {
        #[cfg(unix)]
        self.signal.recv().await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
