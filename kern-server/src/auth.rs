//! Who calls: the [`Auth`] mode a server runs in and the [`Caller`] extractor every protected
//! handler takes, which signs the request in (or refuses it with 401) and answers what the
//! caller may do (or refuses with 403).
//!
//! A request without an `Authorization` header may also be signed in by the inbox's session
//! cookie, for the two reads the inbox's pages make, `GET /events` and `GET /runs/{run_id}`.
//! Every other route, and every write, needs a bearer credential.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method};
use kern_core::approval::{Approval, Principal};
use kern_core::keys::{ApiKey, Scope, parse_token};
use kern_core::limits;

use crate::error::{ApiError, ApiResult};
use crate::origin::cross_origin;
use crate::session::{self, Session};
use crate::state::AppState;

/// Headers a reverse proxy adds to the requests it passes on: an open server refuses them, for
/// the proxy's own clients may be anyone.
const PROXY_HEADERS: [&str; 5] = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip", "via"];

/// How a server knows who calls it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Bearer <API key>`: keys issued through the store, checked on every
    /// request (a revoked key stops working at once).
    ApiKeys,
    /// JWT bearer tokens, and API keys beside them (a token starting `kern_` is a key).
    #[cfg(feature = "jwt")]
    Jwt(Box<crate::jwt::Jwt>),
    /// No authentication: every request acts as `principal` with every scope. Answers only
    /// clients on a loopback address, for local development, and no request a proxy passed on
    /// (one carrying `Forwarded`, `X-Forwarded-For`, `X-Forwarded-Host`, `X-Real-IP` or `Via`).
    OpenOnLoopback {
        /// Who the requests act as, on the trail.
        principal: String,
    },
}

impl Auth {
    /// Bearer API keys issued through the store.
    #[must_use]
    pub fn api_keys() -> Self {
        Auth::ApiKeys
    }

    /// JWTs verified by `jwt`, and API keys.
    #[cfg(feature = "jwt")]
    #[must_use]
    pub fn jwt(jwt: crate::jwt::Jwt) -> Self {
        Auth::Jwt(Box::new(jwt))
    }

    /// No authentication, answering only loopback clients; decisions are recorded as made by
    /// `principal`.
    #[must_use]
    pub fn open_on_loopback(principal: impl Into<String>) -> Self {
        Auth::OpenOnLoopback { principal: principal.into() }
    }
}

/// The signed-in caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who decides, on the trail and as `resolved_by`.
    pub principal: Principal,
    scopes: Vec<Scope>,
    /// Set when the caller sees only the rows and runs of its own user (isolation on, and no
    /// admin scope).
    own_user: Option<String>,
    /// What signed the caller in, to ask again during a long request.
    credential: Credential,
}

/// What signed a caller in: an event stream asks it again as it goes (see
/// [`Caller::still_signed_in`]).
#[derive(Debug, Clone)]
enum Credential {
    /// An open server: nothing was proven, and nothing can lapse.
    Open,
    /// The API key of this id.
    Key(String),
    /// The inbox session of this token digest.
    Session([u8; 32]),
    /// A JWT valid until this time (epoch seconds).
    #[cfg(feature = "jwt")]
    Token { expires_at: i64 },
}

impl Caller {
    /// Refuses the request unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.scopes.iter().any(|held| *held == scope || *held == Scope::Admin) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("Insufficient permissions. Required scope(s): {scope}")))
        }
    }

    /// The user whose rows alone the caller sees, under isolation.
    pub fn own_user(&self) -> Option<&str> {
        self.own_user.as_deref()
    }

    /// True when the caller may see `row`.
    pub fn sees(&self, row: &Approval) -> bool {
        self.own_user.as_deref().is_none_or(|user| row.user_id.as_deref() == Some(user))
    }

    /// True when the caller may see a run of `user_id`.
    pub fn sees_user(&self, user_id: Option<&str>) -> bool {
        self.own_user.as_deref().is_none_or(|user| user_id == Some(user))
    }

    /// Refuses a caller confined to its own rows: under isolation only admins decide rows, as
    /// in the reference (answered as not found, so that existence is not revealed).
    pub fn require_unconfined(&self) -> ApiResult<()> {
        if self.own_user.is_some() { Err(ApiError::approval_not_found()) } else { Ok(()) }
    }

    /// Who a decision is recorded as: the signed-in principal, or on an open server the
    /// resolver the request names (the server's principal when it names none), as in the
    /// reference.
    pub fn decider(&self, named: Option<String>) -> Principal {
        match named {
            Some(id) if !self.authenticated() => Principal::new(id),
            _ => self.principal.clone(),
        }
    }

    /// The user a run acts for: the authenticated principal, or on an open server the user the
    /// request names.
    pub fn run_user(&self, requested: Option<String>) -> Option<String> {
        if self.authenticated() { Some(self.principal.id.clone()) } else { requested }
    }

    /// False on an open server: the principal was not proven.
    fn authenticated(&self) -> bool {
        !matches!(self.credential, Credential::Open)
    }

    /// True while what signed the caller in still does: its API key is not revoked, its
    /// session is open (and its key not revoked), its token has not expired. A request checks
    /// once as it starts; one that goes on (an event stream) asks again, so that revoking a
    /// key, signing out or a token's expiry ends it too.
    pub(crate) async fn still_signed_in(&self, state: &AppState) -> ApiResult<bool> {
        let key_id = match &self.credential {
            Credential::Open => return Ok(true),
            Credential::Key(key_id) => key_id.clone(),
            Credential::Session(digest) => match state.sessions.find_by_digest(digest) {
                Some(session) => session.key_id,
                None => return Ok(false),
            },
            #[cfg(feature = "jwt")]
            Credential::Token { expires_at } => return Ok(chrono::Utc::now().timestamp() < *expires_at),
        };
        Ok(state.store.api_key(&key_id).await?.is_some_and(|key| key.revoked_at.is_none()))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match &state.auth {
            // Only a local client's request gets here: the router refuses the others first
            // (`check_loopback`, asked of every request).
            Auth::OpenOnLoopback { principal } => {
                // A page of any site the admin visits can post to a loopback server from the
                // admin's own browser, which names that site in `Origin`.
                if parts.method != Method::GET
                    && parts.method != Method::HEAD
                    && cross_origin(&parts.headers, state.public_origin.as_ref())
                {
                    return Err(ApiError::forbidden(
                        "this server runs without authentication and takes no writes from another site's page",
                    ));
                }
                Ok(Caller {
                    principal: Principal::new(principal.clone()),
                    scopes: vec![Scope::Admin],
                    own_user: None,
                    credential: Credential::Open,
                })
            }
            _ if !parts.headers.contains_key(AUTHORIZATION)
                && (parts.method == Method::GET || parts.method == Method::HEAD)
                && read_by_pages(parts.uri.path())
                && let Some(token) = session::cookie_token(&parts.headers, state.secure_cookies) =>
            {
                Caller::of_session(state, token).await.map(|(caller, _)| caller)
            }
            Auth::ApiKeys => api_key_caller(state, bearer(parts)?).await,
            #[cfg(feature = "jwt")]
            Auth::Jwt(jwt) => {
                let token = bearer(parts)?;
                if token.starts_with(kern_core::keys::TOKEN_PREFIX) {
                    return api_key_caller(state, token).await;
                }
                let (principal, scopes, expires_at) = jwt.verify(token)?;
                let own_user = (state.user_isolation && !scopes.contains(&Scope::Admin)).then(|| principal.id.clone());
                Ok(Caller { principal, scopes, own_user, credential: Credential::Token { expires_at } })
            }
        }
    }
}

/// Refuses, on a server open on loopback, a request that is not a local client's: one from
/// another address, one a proxy says it passed on, or one addressed to another name. Asked of
/// every request (see `server::loopback_only`), the routes that take no credential included.
pub(crate) fn check_loopback(extensions: &Extensions, headers: &HeaderMap) -> ApiResult<()> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    if !peer.is_some_and(|peer| peer.ip().is_loopback()) {
        return Err(ApiError::forbidden("this server runs without authentication and answers only loopback clients"));
    }
    // A proxy on the same machine reaches this server from loopback, under a loopback name
    // (nginx's `proxy_pass http://127.0.0.1:…` does), on behalf of anyone. One that says so is
    // refused; one that passes requests on without a word cannot be told from a local client,
    // which is why an open server is never to be put behind one (and `kern serve` refuses
    // `--open` with `--public-origin`).
    if let Some(header) = PROXY_HEADERS.iter().find(|header| headers.contains_key(**header)) {
        return Err(ApiError::forbidden(format!(
            "this server runs without authentication and takes no request passed on by a proxy (it carries \
             `{header}`): give it API keys to serve it through one"
        )));
    }
    // A page elsewhere whose name was rebound to 127.0.0.1 reaches this server from the loopback
    // peer of the admin's own browser, under its own name.
    if !headers.get(HOST).and_then(|host| host.to_str().ok()).is_some_and(is_loopback_host) {
        return Err(ApiError::forbidden(
            "this server runs without authentication and answers only requests addressed to localhost, \
             127.0.0.1 or [::1]",
        ));
    }
    Ok(())
}

/// Whether `path` is one of the API's reads the inbox's pages make with their session: the
/// event stream and a run's status. Any other route takes a bearer credential, so that a
/// session (which a page of a sibling site may make the browser send) reads no keys, no whole
/// trail, nothing the pages do not show.
fn read_by_pages(path: &str) -> bool {
    path == "/events" || path.strip_prefix("/runs/").is_some_and(|run| !run.is_empty() && !run.contains('/'))
}

impl Caller {
    /// The caller a session token signs in, with its session: the session's API key as it
    /// stands now (a revoked or deleted key signs nobody in), or a 401.
    pub(crate) async fn of_session(state: &AppState, token: &str) -> Result<(Caller, Session), ApiError> {
        let session = state.sessions.find(token).ok_or_else(signed_out)?;
        let key = state.store.api_key(&session.key_id).await?.filter(|key| key.revoked_at.is_none());
        let key = key.ok_or_else(signed_out)?;
        let caller = Caller { credential: Credential::Session(session::digest(token)), ..key_caller(state, key) };
        Ok((caller, session))
    }
}

fn signed_out() -> ApiError {
    ApiError::unauthorized("The session has ended: sign in again")
}

/// The bearer token of a request; the reference accepts it without the `Bearer` prefix too.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header =
        parts.headers.get(AUTHORIZATION).ok_or_else(|| ApiError::unauthorized("Authorization header required"))?;
    let header = header.to_str().map_err(|_| invalid_token())?.trim();
    // The scheme's name is case-insensitive (RFC 9110).
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
        _ => header,
    };
    Ok(token.trim())
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized("Invalid authentication token")
}

/// The caller an API key signs in, or a 401.
pub(crate) async fn api_key_caller(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let (id, secret) = parse_token(token).filter(|(id, _)| limits::is_key(id)).ok_or_else(invalid_token)?;
    let key = state.store.api_key(id).await?.ok_or_else(invalid_token)?;
    if !key.accepts(secret) {
        return Err(invalid_token());
    }
    Ok(key_caller(state, key))
}

/// The caller an accepted API key signs in.
fn key_caller(state: &AppState, key: ApiKey) -> Caller {
    let own_user = (state.user_isolation && !key.grants(Scope::Admin)).then(|| key.principal.clone());
    Caller { principal: key.principal(), scopes: key.scopes, own_user, credential: Credential::Key(key.id) }
}

/// True when a `Host` header names the loopback interface (`localhost`, an address of
/// 127.0.0.0/8 or `[::1]`), with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or(bracketed, |(address, _)| address),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_names_of_the_loopback_interface_are_loopback_hosts() {
        for host in
            ["localhost", "LOCALHOST:7000", "127.0.0.1", "127.0.0.1:7000", "127.1.2.3:80", "[::1]", "[::1]:7000"]
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example", "evil.example:7000", "10.0.0.1", "[::2]:80", "localhost.evil.example", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
