//! The [`Server`]: its builder, the router (the API, and the inbox at `/`) with its layers
//! (body limit, timeout, request ids, tracing, metrics), and serving it with the expiry sweep.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use kern_core::agent::Agent;
use kern_core::store::Store;
use kern_core::team::Team;
use kern_core::worker::WorkerStats;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::BodyLimits;
use crate::idempotency::Replies;
use crate::inbox;
use crate::metrics::Metrics;
use crate::origin::{InvalidOrigin, PublicOrigin};
use crate::routes::{approvals, audit, config, events, keys, ops, runs};
use crate::state::AppState;

/// Why a server could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No store was given.
    #[error("no store: call .store(db) on the server builder")]
    NoStore,
    /// No authentication mode was chosen: a server never runs open by default.
    #[error(
        "no authentication: call .auth(Auth::api_keys()), or .auth(Auth::open_on_loopback(\"me\")) for a local server without credentials"
    )]
    NoAuth,
    /// Two agents or two teams share an id.
    #[error("two {kind} have the id `{id}`: ids must be unique")]
    DuplicateId {
        /// `agents` or `teams`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// The public origin given is not one.
    #[error("the public origin: {0}")]
    InvalidPublicOrigin(#[from] InvalidOrigin),
    /// A `stale_after` under [`MIN_STALE_AFTER`](kern_core::worker::MIN_STALE_AFTER) would offer
    /// to recover, and release, runs whose continue may still be under way.
    #[error(
        "`stale_after` must be at least 1 min: a continue under way renews its claim every 20 s, and one taken \
         over while alive has its approved calls run twice"
    )]
    StaleAfterTooShort,
    /// A server without authentication was given a public origin: behind a proxy on the same
    /// host, every caller from outside would arrive from loopback, and act as its principal.
    #[error(
        "a server without authentication cannot be reached through a proxy: leave out the public origin, or use .auth(Auth::api_keys())"
    )]
    OpenBehindProxy,
}

/// Builds a [`Server`].
#[must_use]
pub struct ServerBuilder {
    store: Option<Arc<dyn Store>>,
    agents: Vec<Agent>,
    teams: Vec<Team>,
    auth: Option<Auth>,
    user_isolation: bool,
    limits: RequestLimits,
    expiry_sweep: Duration,
    secure_cookies: bool,
    public_origin: Option<String>,
    stale_after: Duration,
    worker: Option<Arc<WorkerStats>>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            store: None,
            agents: Vec::new(),
            teams: Vec::new(),
            auth: None,
            user_isolation: false,
            limits: RequestLimits::default(),
            expiry_sweep: Duration::from_secs(30),
            secure_cookies: false,
            public_origin: None,
            stale_after: kern_core::worker::DEFAULT_STALE_AFTER,
            worker: None,
        }
    }
}

impl ServerBuilder {
    /// The store whose approvals and runs are served (the agents' and teams' store).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Serves `agent`'s run routes under `/agents/{its id}`.
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// Serves `team`'s run routes under `/teams/{its id}`.
    pub fn team(mut self, team: Team) -> Self {
        self.teams.push(team);
        self
    }

    /// How callers sign in. Required.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Confines each caller without the `admin` scope to the rows and runs of its own user
    /// (its principal's id), as the reference's user isolation does: another user's row
    /// answers 404, and only admins decide rows.
    pub fn user_isolation(mut self, on: bool) -> Self {
        self.user_isolation = on;
        self
    }

    /// The largest request body accepted (1 MiB by default); larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.limits.body.bytes = bytes;
        self
    }

    /// How long a client may take to send a request's body before it is answered 408 (30 s by
    /// default; keep it below the [`request_timeout`](Self::request_timeout)). Bodies are small
    /// (a decision, a form, a run's message): one still arriving after this comes from a
    /// stalled or hostile client, which is not to hold a connection for the whole request time.
    /// A body is read only once its caller is signed in, but for the inbox's sign-in form.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.limits.body.timeout = timeout;
        self
    }

    /// How long a request may take before it is answered 504 (120 s by default: a run waits
    /// for its model). A run or continue goes on on its own task, to be read with
    /// `GET /runs/{run_id}`. Event streams are not cut.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.limits.request_timeout = timeout;
        self
    }

    /// How often [`Server::serve`] marks rows past their expiry as expired (30 s by default).
    pub fn expiry_sweep(mut self, every: Duration) -> Self {
        self.expiry_sweep = every;
        self
    }

    /// Marks the inbox's cookies (the session's and the sign-in form's) `Secure`, so that
    /// browsers send them over https alone.
    /// Turn it on when the server is reached over https (behind a TLS proxy, say): the server
    /// cannot tell by itself, unless its [`public_origin`](Self::public_origin) is an https one,
    /// which turns it on. Off by default, so that the inbox works on plain
    /// `http://127.0.0.1`.
    pub fn secure_cookies(mut self, on: bool) -> Self {
        self.secure_cookies = on;
        self
    }

    /// The origin the inbox is reached at from outside (`https://kern.example.com`), for a
    /// server behind a proxy that passes requests on with a `Host` of its own: the inbox's forms
    /// are accepted from it as from the server's own address. Without it, a form posted through
    /// such a proxy is refused as posted from another site. Checked by
    /// [`build`](Self::build) ([`BuildError::InvalidPublicOrigin`]); an open server takes none
    /// ([`BuildError::OpenBehindProxy`]).
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into());
        self
    }

    /// How long a run may stay `running` before the inbox offers to recover it, and the least
    /// `POST /runs/{run_id}/release` waits (10 minutes by default, as a worker's), counted from
    /// the claim's last renewal (a continue under way renews it every 20 s): no shorter than the
    /// `stale_after` of a worker beside the server, or a continue that could not renew for a
    /// while may be recovered and run its approved tools twice; at least
    /// [`MIN_STALE_AFTER`](kern_core::worker::MIN_STALE_AFTER) ([`BuildError::StaleAfterTooShort`]).
    pub fn stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    /// Reports the counters of a worker running beside the server (see
    /// [`Worker::stats`](kern_core::worker::Worker::stats)) on `/metrics`.
    pub fn worker_stats(mut self, stats: Arc<WorkerStats>) -> Self {
        self.worker = Some(stats);
        self
    }

    /// The server. Errors: [`BuildError`].
    pub fn build(self) -> Result<Server, BuildError> {
        let store = self.store.ok_or(BuildError::NoStore)?;
        let auth = self.auth.ok_or(BuildError::NoAuth)?;
        let agents = by_id("agents", self.agents, |agent| agent.id().to_owned())?;
        let teams = by_id("teams", self.teams, |team| team.id().to_owned())?;
        let public_origin = self.public_origin.as_deref().map(PublicOrigin::parse).transpose()?;
        if public_origin.is_some() && matches!(auth, Auth::OpenOnLoopback { .. }) {
            return Err(BuildError::OpenBehindProxy);
        }
        if self.stale_after < kern_core::worker::MIN_STALE_AFTER {
            return Err(BuildError::StaleAfterTooShort);
        }
        let (stop, stopping) = watch::channel(false);
        let state = AppState {
            store,
            agents: Arc::new(agents),
            teams: Arc::new(teams),
            auth,
            user_isolation: self.user_isolation,
            metrics: Arc::new(self.worker.map_or_else(Metrics::default, Metrics::with_worker)),
            replies: Arc::new(Replies::default()),
            sessions: Arc::default(),
            secure_cookies: self.secure_cookies
                || public_origin.as_ref().is_some_and(|origin| origin.as_str().starts_with("https://")),
            public_origin,
            stale_after: self.stale_after,
            stopping,
        };
        let router = router(state.clone(), self.limits);
        Ok(Server { router, state, expiry_sweep: self.expiry_sweep, stop })
    }
}

fn by_id<T>(kind: &'static str, items: Vec<T>, id: impl Fn(&T) -> String) -> Result<HashMap<String, T>, BuildError> {
    let mut map = HashMap::new();
    for item in items {
        if let Some(taken) = map.insert(id(&item), item) {
            return Err(BuildError::DuplicateId { kind, id: id(&taken) });
        }
    }
    Ok(map)
}

/// A kern HTTP server: a router to mount, or to serve as is.
pub struct Server {
    router: Router,
    state: AppState,
    expiry_sweep: Duration,
    /// Tells the event streams the server stops.
    stop: watch::Sender<bool>,
}

impl Server {
    /// A builder; a store and an authentication mode are required.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The routes, to mount in an app of your own. An open server needs the peer's address
    /// (`into_make_service_with_connect_info::<SocketAddr>()`), or it refuses every request.
    /// Its event streams (`/events`) end only when their clients leave: a graceful shutdown of
    /// the app waits for them, where [`serve_until`](Self::serve_until) ends them.
    /// Expiry is then yours to sweep (`Store::expire_approvals`); pending rows past their
    /// expiry are treated as expired everywhere meanwhile.
    pub fn into_router(self) -> Router {
        self.router
    }

    /// Serves on `listener` until the process ends, sweeping expired rows in the background.
    /// An open server ([`Auth::open_on_loopback`]) refuses to start on a listener that is not
    /// on a loopback address.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        self.serve_until(listener, std::future::pending()).await
    }

    /// Serves as [`serve`](Self::serve) does until `stop` completes, then stops: it takes no
    /// more connections, ends the event streams, answers the requests under way, and returns
    /// once every run and continue this process carries is stored ([`run::settled`]: those whose
    /// requests were answered 504 go on, and a worker's in the same process count too, so stop
    /// it first). A process that ended at once would leave a continue cut half-way `running`,
    /// for a recovery that may run its approved calls again. It waits as long as they take:
    /// wrap the call in a `tokio::time::timeout` for a deadline.
    ///
    /// [`run::settled`]: kern_core::run::settled
    pub async fn serve_until(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let local = listener.local_addr()?;
        if matches!(self.state.auth, Auth::OpenOnLoopback { .. }) && !local.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("a server without authentication listens only on a loopback address, not {local}"),
            ));
        }
        let sweep = tokio::spawn(sweep_expired(self.state.clone(), self.expiry_sweep));
        let streams = self.stop;
        let stopped = async move {
            stop.await;
            streams.send_replace(true);
        };
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, service).with_graceful_shutdown(stopped).await;
        sweep.abort();
        kern_core::run::settled().await;
        served
    }
}

async fn sweep_expired(state: AppState, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match state.store.expire_approvals(kern_core::now()).await {
            Ok(0) => {}
            Ok(rows) => state.metrics.expired(rows),
            Err(err) => tracing::warn!(error = %err, "the expiry sweep failed"),
        }
    }
}

/// How much a request may send and how long it may take.
#[derive(Debug, Clone, Copy)]
struct RequestLimits {
    /// What its body may be.
    body: BodyLimits,
    /// The longest a request may take to be answered.
    request_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { body: BodyLimits::default(), request_timeout: Duration::from_secs(120) }
    }
}

fn router(state: AppState, limits: RequestLimits) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let routes = Router::new()
        .route("/approvals", get(approvals::list))
        .route("/approvals/count", get(approvals::count))
        .route("/approvals/{approval_id}", get(approvals::get).delete(approvals::delete))
        .route("/approvals/{approval_id}/status", get(approvals::status))
        .route("/approvals/{approval_id}/resolve", post(approvals::resolve))
        .route("/approvals/{approval_id}/votes", get(approvals::votes).post(approvals::vote))
        .route("/approvals/{approval_id}/cancel", post(approvals::cancel))
        .route("/approvals/{approval_id}/trail", get(approvals::trail))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/events", get(audit::events))
        .route("/agents/{agent_id}/runs", post(runs::agent_run))
        .route("/agents/{agent_id}/runs/{run_id}", get(runs::agent_poll))
        .route("/agents/{agent_id}/runs/{run_id}/continue", post(runs::agent_continue))
        .route("/teams/{team_id}/runs", post(runs::team_run))
        .route("/teams/{team_id}/runs/{run_id}", get(runs::team_poll))
        .route("/teams/{team_id}/runs/{run_id}/continue", post(runs::team_continue))
        .route("/runs", get(runs::list))
        .route("/runs/{run_id}", get(runs::get))
        .route("/runs/{run_id}/cancel", post(runs::cancel))
        .route("/runs/{run_id}/release", post(runs::release))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{key_id}", delete(keys::revoke))
        .route("/events", get(events::events))
        .route("/config", get(config::config))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(inbox::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not Found") })
        // After every route, which it covers; the answer keeps the `Allow` header axum sets.
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            let detail = format!("Method Not Allowed: {} does not take {method} (see the Allow header)", uri.path());
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, detail)
        })
        .layer(middleware::from_fn(move |request, next| time_limit(limits.request_timeout, request, next)))
        .layer(middleware::from_fn_with_state(state.clone(), loopback_only))
        .layer(middleware::map_response(uncached))
        // Outside the time limit, so that the requests it cuts are counted too.
        .layer(middleware::from_fn_with_state(state.clone(), measure))
        // Read by the extractors, which read a body only once its caller is let in.
        .layer(Extension(limits.body))
        // The multipart reader's own limit, met by a body read whole within the one above.
        .layer(DefaultBodyLimit::max(limits.body.bytes))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = id)
        }))
        .layer(SetRequestIdLayer::new(request_id, NewRequestId))
        .with_state(state);
    // As the reference does, a trailing slash is dropped before routing, without a redirect.
    Router::new().fallback_service(NormalizePathLayer::trim_trailing_slash().layer(routes))
}

/// Gives a request without an `x-request-id` a fresh one.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        kern_core::new_id().parse().ok().map(RequestId::new)
    }
}

/// Answers a request still under way after `limit` with 504, in the body every error has.
async fn time_limit(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "No answer within {} ms; a run or continue the request started goes on and is stored (GET /runs)",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Marks an answer `Cache-Control: no-store` unless its route said otherwise (the inbox's
/// assets): answers carry approvals, runs and keys, and one read with the inbox's session
/// cookie has no `Authorization` header to keep shared caches from storing it.
async fn uncached(mut response: Response) -> Response {
    response.headers_mut().entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// On a server open on loopback, answers no request but a local client's, on every route: those
/// that take no credential (`/metrics`, the inbox's assets) would otherwise answer a page whose
/// name was rebound to 127.0.0.1.
async fn loopback_only(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Auth::OpenOnLoopback { .. } = &state.auth
        && let Err(refused) = crate::auth::check_loopback(request.extensions(), request.headers())
    {
        return if inbox::is_page(request.uri().path()) {
            inbox::refusal_page(refused)
        } else {
            refused.into_response()
        };
    }
    next.run(request).await
}

/// Records each request's latency and status under its route.
async fn measure(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let started = Instant::now();
    let response = next.run(request).await.into_response();
    state.metrics.request(&route, response.status().as_u16(), started.elapsed());
    response
}
