//! Configuring a worker: what it runs, on which store, how many at once, how often, checked
//! into the parts a worker is made of (the worker module builds it from them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::Agent;
use crate::store::Store;
use crate::team::Team;

/// Continues one worker runs at once, unless told otherwise: enough to keep a database busy
/// while models answer, few enough not to flood a model provider's rate limit.
const DEFAULT_CONCURRENCY: usize = 16;

/// The longest a worker sleeps without reading the store, unless told otherwise. Wake-ups
/// normally come first; this bounds the delay when one is lost (or, on SQLite, when another
/// process wrote and the store's own poll has not yet read it).
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often a worker sweeps expired rows and looks for stale runs, unless told otherwise.
const DEFAULT_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long a run may stay `running` before a worker takes it over, unless told otherwise:
/// longer than any continue should take (see [`Agent::recover_run`]).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(600);

/// The least `stale_after`: a continue under way renews its claim every 20 s, so a run
/// unrenewed for a minute has lost its continue (or its database). A shorter wait could take
/// over a continue still under way, whose outcome and the recovery's would then both be stored,
/// its approved calls run twice.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(60);

/// Why a [`WorkerBuilder`] could not build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerBuildError {
    /// No `.store(..)`: the worker would have nowhere to find runs.
    #[error("a worker needs a store: call `.store(db)` with the database its agents use")]
    NoStore,
    /// Neither `.agent(..)` nor `.team(..)`: the worker could continue nothing.
    #[error("a worker needs at least one agent or team to continue runs of: call `.agent(a)` or `.team(t)`")]
    NothingToRun,
    /// Two agents (or two teams) share an id, so their runs cannot be told apart.
    #[error("two agents, or two teams, have the id `{0}`: give each its own `.id(..)`")]
    DuplicateId(String),
    /// A concurrency of zero would continue nothing.
    #[error("a worker's concurrency must be at least 1")]
    ZeroConcurrency,
    /// A `stale_after` under [`MIN_STALE_AFTER`] could take over a continue still under way.
    #[error(
        "a worker's `stale_after` must be at least 1 min: a continue under way renews its claim every 20 s, and \
         one taken over while alive has its approved calls run twice"
    )]
    StaleAfterTooShort,
    /// An interval of zero would read the store without a pause; one past [`MAX_INTERVAL`]
    /// would never come round.
    #[error("a worker's `{setting}` must be more than zero and at most a day")]
    IntervalOutOfRange {
        /// The setting, such as `upkeep_interval`.
        setting: &'static str,
    },
}

/// The longest a worker's poll or upkeep interval may be.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The worker's timings and bound.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) concurrency: usize,
    pub(super) poll_interval: Duration,
    pub(super) upkeep_interval: Duration,
    pub(super) stale_after: Duration,
    pub(super) shutdown_grace: Option<Duration>,
}

/// Configures a [`Worker`](super::Worker).
#[derive(Default)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct WorkerBuilder {
    store: Option<Arc<dyn Store>>,
    agents: Vec<Agent>,
    teams: Vec<Team>,
    concurrency: Option<usize>,
    poll_interval: Option<Duration>,
    upkeep_interval: Option<Duration>,
    stale_after: Option<Duration>,
    shutdown_grace: Option<Duration>,
}

impl WorkerBuilder {
    /// The store the agents and teams keep their runs in.
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Continues the runs of `agent`.
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// Continues the runs of `team` (and so of its members' child runs).
    pub fn team(mut self, team: Team) -> Self {
        self.teams.push(team);
        self
    }

    /// How many runs it continues at once (16 by default).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// The longest it sleeps without reading the store (1 s by default).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// How often it sweeps expired rows and looks for stale runs (5 s by default).
    pub fn upkeep_interval(mut self, interval: Duration) -> Self {
        self.upkeep_interval = Some(interval);
        self
    }

    /// How long a run may stay `running` without its claim renewed before it is taken over as
    /// abandoned (10 min by default, at least [`MIN_STALE_AFTER`]). A continue under way renews
    /// its claim every 20 s: a continue still under way that is taken over (one that could not
    /// write its renewals for that long) has its approved tools run a second time, with the
    /// same idempotency key.
    pub fn stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = Some(stale_after);
        self
    }

    /// How long a stopping worker waits for the runs it continues to finish (for as long as
    /// they take by default). Past it, `run` returns: a run still under way goes on while the
    /// process does, and is otherwise left `running`, for a worker to recover once stale, its
    /// approved calls perhaps run again with the same idempotency key. Set it below the time a
    /// process manager gives a stopping process (30 s by Kubernetes' default), so that the
    /// worker says what it leaves rather than being killed mid-way.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = Some(grace);
        self
    }

    /// The checked configuration.
    pub(super) fn check(self) -> Result<Checked, WorkerBuildError> {
        let store = self.store.ok_or(WorkerBuildError::NoStore)?;
        if self.agents.is_empty() && self.teams.is_empty() {
            return Err(WorkerBuildError::NothingToRun);
        }
        let concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(WorkerBuildError::ZeroConcurrency);
        }
        let agents = by_id(self.agents, |agent| agent.id())?;
        let teams = by_id(self.teams, |team| team.id())?;
        let interval = |setting, interval: Option<Duration>, default| match interval.unwrap_or(default) {
            interval if interval.is_zero() || interval > MAX_INTERVAL => {
                Err(WorkerBuildError::IntervalOutOfRange { setting })
            }
            interval => Ok(interval),
        };
        let settings = Settings {
            concurrency,
            poll_interval: interval("poll_interval", self.poll_interval, DEFAULT_POLL_INTERVAL)?,
            upkeep_interval: interval("upkeep_interval", self.upkeep_interval, DEFAULT_UPKEEP_INTERVAL)?,
            stale_after: match self.stale_after.unwrap_or(DEFAULT_STALE_AFTER) {
                short if short < MIN_STALE_AFTER => return Err(WorkerBuildError::StaleAfterTooShort),
                stale_after => stale_after,
            },
            shutdown_grace: self.shutdown_grace,
        };
        Ok(Checked { store, agents, teams, settings })
    }
}

/// What a worker is made of, checked.
pub(super) struct Checked {
    pub(super) store: Arc<dyn Store>,
    pub(super) agents: HashMap<String, Agent>,
    pub(super) teams: HashMap<String, Team>,
    pub(super) settings: Settings,
}

/// `items` by their ids, each id once.
fn by_id<T>(items: Vec<T>, id: impl Fn(&T) -> &str) -> Result<HashMap<String, T>, WorkerBuildError> {
    let mut by_id = HashMap::new();
    for item in items {
        let key = id(&item).to_owned();
        if by_id.contains_key(&key) {
            return Err(WorkerBuildError::DuplicateId(key));
        }
        by_id.insert(key, item);
    }
    Ok(by_id)
}
