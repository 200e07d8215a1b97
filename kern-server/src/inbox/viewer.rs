//! Who looks at the inbox: the [`Viewer`] extractor signs a page request in by its session
//! cookie (re-checking the API key behind it every time) and sends a visitor without one to
//! the sign-in page. Forms are checked here too: a POST from another origin, or without the
//! session's CSRF token, is refused with 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::forms::FormFields;
use super::page::{PageError, PageResult, see_other};
use super::views::Chrome;
use crate::auth::{Auth, Caller};
use crate::origin::cross_origin;
use crate::session::{self, csrf_matches};
use crate::state::AppState;

/// Where a visitor without a session is sent.
pub const SIGN_IN: &str = "/ui/sign-in";

/// The signed-in admin of a page request.
pub struct Viewer {
    pub caller: Caller,
    /// The token the session's forms carry.
    pub csrf: String,
    /// False on a server without authentication, where nobody signs in.
    pub signed_in: bool,
}

impl Viewer {
    /// What the page shows around its content.
    pub fn chrome(&self, section: &'static str) -> Chrome {
        let urls = assets::urls();
        Chrome {
            principal: self.caller.principal.id.clone(),
            csrf: self.csrf.clone(),
            signed_in: self.signed_in,
            section,
            css: &urls.css,
            js: &urls.js,
        }
    }

    /// Refuses a form without this session's CSRF token.
    pub fn check_csrf(&self, form: &FormFields) -> PageResult<()> {
        if form.get("csrf").is_some_and(|token| csrf_matches(&self.csrf, token)) {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "This form is out of date or did not come from this inbox (its security token does not match): \
                 reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET
            && parts.method != Method::HEAD
            && cross_origin(&parts.headers, state.public_origin.as_ref())
        {
            return Err(cross_origin_refusal().into_response());
        }
        if let Auth::OpenOnLoopback { .. } = state.auth {
            let caller =
                Caller::from_request_parts(parts, state).await.map_err(|err| PageError::from(err).into_response())?;
            let csrf = state.sessions.open_csrf().map_err(|err| no_randomness(err).into_response())?;
            return Ok(Viewer { caller, csrf, signed_in: false });
        }
        let Some(token) = session::cookie_token(&parts.headers, state.secure_cookies) else {
            return Err(see_other(SIGN_IN));
        };
        match Caller::of_session(state, token).await {
            Ok((caller, session)) => Ok(Viewer { caller, csrf: session.csrf, signed_in: true }),
            Err(err) if err.status == StatusCode::UNAUTHORIZED => Err(see_other(SIGN_IN)),
            Err(err) => Err(PageError::from(err).into_response()),
        }
    }
}

/// The answer to a form posted from another origin.
pub fn cross_origin_refusal() -> PageError {
    PageError::new(StatusCode::FORBIDDEN, "This form was sent from another site; the inbox accepts its own forms only.")
}

/// The answer when the system has no randomness for a token.
pub fn no_randomness(err: getrandom::Error) -> PageError {
    tracing::error!(error = %err, "no randomness for an inbox token");
    PageError::new(StatusCode::SERVICE_UNAVAILABLE, "The server cannot make a secure token right now; try again.")
}
