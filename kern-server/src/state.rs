//! What every handler shares: the store, the agents and teams it runs, how callers sign in,
//! the metrics, and the answers kept for idempotent retries.

use std::collections::HashMap;
use std::sync::Arc;

use kern_core::agent::Agent;
use kern_core::store::Store;
use kern_core::team::Team;

use crate::auth::Auth;
use crate::idempotency::Replies;
use crate::metrics::Metrics;

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
}
