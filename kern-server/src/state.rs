//! What every handler shares: the store, the agents and teams it runs, how callers sign in,
//! the metrics, the answers kept for idempotent retries, and the inbox's sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use kern_core::agent::Agent;
use kern_core::store::Store;
use kern_core::team::Team;

use crate::auth::Auth;
use crate::idempotency::Replies;
use crate::metrics::Metrics;
use crate::origin::PublicOrigin;
use crate::session::Sessions;

/// The state of a server, cheap to clone (every handler gets a copy).
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) agents: Arc<HashMap<String, Agent>>,
    pub(crate) teams: Arc<HashMap<String, Team>>,
    pub(crate) auth: Auth,
    pub(crate) user_isolation: bool,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) replies: Arc<Replies>,
    /// The inbox's sign-in sessions.
    pub(crate) sessions: Arc<Sessions>,
    /// Whether the inbox's cookies are marked `Secure` (served over https).
    pub(crate) secure_cookies: bool,
    /// The origin the inbox is reached at from outside, when a proxy rewrites `Host`.
    pub(crate) public_origin: Option<PublicOrigin>,
    /// How long a run may stay `running` before the inbox offers to recover it, and the least
    /// a release through the API waits.
    pub(crate) stale_after: Duration,
    /// Turns `true` once the server is asked to stop: event streams, which never end by
    /// themselves, end then, so that the requests under way can all be answered.
    pub(crate) stopping: watch::Receiver<bool>,
}
