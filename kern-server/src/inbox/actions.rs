//! The inbox's forms: sign in and out, decide a row, continue or recover a run. Each checks
//! the session's CSRF token, acts as the signed-in principal through the same code as the
//! HTTP API (so policies, validation and conflicts behave identically), and answers with a
//! 303 to the page that shows the outcome, or with that page and a clear message when the
//! action was refused (nothing was changed then).

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use kern_core::keys::{Scope, parse_token};

use super::assets;
use super::forms::{self, FormFields, PagePath};
use super::page::{PageError, PageResult, render, see_other};
use super::pages::{detail_page, run_page, time, visible_run};
use super::runner::Runner;
use super::viewer::{SIGN_IN, Viewer, cross_origin_refusal, no_randomness};
use super::views::SignInPage;
use crate::auth::{Auth, api_key_caller};
use crate::error::ApiError;
use crate::origin::cross_origin;
use crate::routes::approvals;
use crate::session::{self, LIFETIME, SIGN_IN_COOKIE};
use crate::state::AppState;
use crate::wire::approval::etag;

/// How long a sign-in form may wait before it is sent.
const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// `GET /ui/sign-in`.
pub async fn sign_in_form(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if matches!(state.auth, Auth::OpenOnLoopback { .. }) {
        return Ok(see_other("/"));
    }
    sign_in_page(&state, &headers, StatusCode::OK, None)
}

/// The sign-in page with `error`, answered with `status`: its form carries a CSRF token, set
/// in the form's own cookie too. The browser's token is kept when it has one, so that a sign-in
/// page loaded in another tab (or fetched by one whose session ended) leaves this one's form
/// valid.
fn sign_in_page(state: &AppState, headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> PageResult {
    let kept = session::cookie(headers, SIGN_IN_COOKIE).filter(|token| session::is_token(token));
    let csrf = match kept {
        Some(token) => token.to_owned(),
        None => session::random_hex().map_err(no_randomness)?,
    };
    let error = error.map(str::to_owned);
    let mut response = render(status, &SignInPage { css: &assets::urls().css, error, csrf: &csrf });
    let cookie = format!(
        "{SIGN_IN_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path={SIGN_IN}; Max-Age={}{}",
        SIGN_IN_FORM_LIFETIME.as_secs(),
        secure(state, headers)
    );
    set_cookie(&mut response, &cookie)?;
    Ok(response)
}

/// `POST /ui/sign-in`: an API key, verified as the API verifies it, opens a session.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, form: FormFields) -> PageResult {
    if cross_origin(&headers, state.public_origin.as_ref()) {
        return Err(cross_origin_refusal());
    }
    if matches!(state.auth, Auth::OpenOnLoopback { .. }) {
        return Ok(see_other("/"));
    }
    // A page of another site could sign the admin in under a key of its own.
    let expected = session::cookie(&headers, SIGN_IN_COOKIE);
    if !expected.is_some_and(|expected| form.get("csrf").is_some_and(|sent| session::csrf_matches(expected, sent))) {
        let refusal = "This sign-in form is out of date or did not come from this inbox: sign in again.";
        return sign_in_page(&state, &headers, StatusCode::FORBIDDEN, Some(refusal));
    }
    let Some(key) = form.text("key") else {
        return sign_in_page(&state, &headers, StatusCode::UNPROCESSABLE_ENTITY, Some("Enter an API key."));
    };
    let caller = match api_key_caller(&state, &key).await {
        Ok(caller) => caller,
        Err(err) if err.status == StatusCode::UNAUTHORIZED => {
            let refusal = "That API key signs nobody in: check it, or ask for a new one.";
            return sign_in_page(&state, &headers, StatusCode::UNAUTHORIZED, Some(refusal));
        }
        Err(err) => return Err(err.into()),
    };
    if caller.require(Scope::ApprovalsRead).is_err() {
        let refusal = "That API key may not read approvals (scope approvals:read).";
        return sign_in_page(&state, &headers, StatusCode::FORBIDDEN, Some(refusal));
    }
    // A session this browser held before ends: one sign-in, one live session.
    if let Some(held) = session::cookie_token(&headers, state.secure_cookies) {
        state.sessions.close(held);
    }
    let key_id = parse_token(&key).map(|(id, _)| id.to_owned()).unwrap_or_default();
    let (token, _) = state.sessions.open(key_id).map_err(no_randomness)?;
    let mut response = see_other("/");
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        session::cookie_name(state.secure_cookies),
        LIFETIME.as_secs(),
        secure(&state, &headers)
    );
    set_cookie(&mut response, &cookie)?;
    // The form's token has served.
    let spent =
        format!("{SIGN_IN_COOKIE}=; HttpOnly; SameSite=Strict; Path={SIGN_IN}; Max-Age=0{}", secure(&state, &headers));
    set_cookie(&mut response, &spent)?;
    Ok(response)
}

/// The `Secure` attribute of the inbox's cookies, when they are kept to https: the server
/// was told so, or the browser says the form it posts is on an https page (its `Origin`),
/// which a TLS proxy that keeps the `Host` leaves the server no other way to know. Without
/// it, the session cookie would go out in clear on the first `http://` visit after.
fn secure(state: &AppState, headers: &HeaderMap) -> &'static str {
    let https_page = headers
        .get(ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .is_some_and(|origin| origin.to_ascii_lowercase().starts_with("https://"));
    if state.secure_cookies || https_page { "; Secure" } else { "" }
}

/// Adds `cookie` to what `response` sets.
fn set_cookie(response: &mut Response, cookie: &str) -> PageResult<()> {
    let value =
        HeaderValue::from_str(cookie).map_err(|_| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad cookie"))?;
    response.headers_mut().append(SET_COOKIE, value);
    Ok(())
}

/// `POST /ui/sign-out`: ends the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    form: FormFields,
) -> PageResult {
    viewer.check_csrf(&form)?;
    if let Some(token) = session::cookie_token(&headers, state.secure_cookies) {
        state.sessions.close(token);
    }
    let mut response = see_other(SIGN_IN);
    let name = session::cookie_name(state.secure_cookies);
    let cleared = format!("{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}", secure(&state, &headers));
    set_cookie(&mut response, &cleared)?;
    Ok(response)
}

/// `POST /ui/approvals/{id}`: approve (with values, a result or edited arguments), reject
/// with a note, or cancel, as the signed-in principal.
pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    PagePath(id): PagePath<String>,
    form: FormFields,
) -> PageResult {
    viewer.check_csrf(&form)?;
    viewer.caller.require(Scope::ApprovalsWrite)?;
    viewer.caller.require_unconfined()?;
    let row = approvals::visible_row(&state, &viewer.caller, &id).await?;
    // A vote or an edit since the page was read may have changed what is decided on.
    if form.get("etag").is_some_and(|seen| seen != etag(&row)) && !row.status.is_resolved() {
        let message = "Nothing was changed: this call changed since you opened it (a vote or an edit); read it again \
                       before you decide.";
        return refused_decision(&state, &viewer, &id, &form, StatusCode::PRECONDITION_FAILED, message.to_owned())
            .await;
    }
    let decision = match forms::decision(&row, &form) {
        Ok(decision) => decision,
        Err(message) => {
            return refused_decision(&state, &viewer, &id, &form, StatusCode::UNPROCESSABLE_ENTITY, message).await;
        }
    };
    match approvals::decide(&state, &viewer.caller.principal, &row, decision).await {
        Ok(decided) => match form.get("next").filter(|next| is_list(next)) {
            Some(list) => Ok(see_other(list)),
            None => Ok(see_other(&format!("/ui/approvals/{}", decided.row().id))),
        },
        Err(err) if err.status == StatusCode::CONFLICT => {
            let message = conflict_message(&state, &id, &viewer.caller.principal.id, err).await;
            refused_decision(&state, &viewer, &id, &form, StatusCode::CONFLICT, message).await
        }
        Err(err) if err.status.is_client_error() => {
            refused_decision(&state, &viewer, &id, &form, err.status, err.detail).await
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether `next` is the inbox's list, with its filters and page (`/` or `/?..`, in printable
/// ASCII as the list writes it): where a quick approval returns to. Anything else (another
/// site's `//host`, a line break a header cannot carry) is not followed.
fn is_list(next: &str) -> bool {
    (next == "/" || next.starts_with("/?")) && next.bytes().all(|byte| byte.is_ascii_graphic())
}

/// What a conflict says: who decided the row first (the viewer themselves, a press of the
/// button before this one), and when.
async fn conflict_message(state: &AppState, id: &str, viewer: &str, err: ApiError) -> String {
    match state.store.get_approval(id).await {
        Ok(Some(row)) if row.status.is_resolved() => {
            let by = match row.resolved_by.as_deref() {
                Some(by) if by == viewer => "you",
                Some(by) => by,
                None => "someone else",
            };
            let at = row.resolved_at.map(|at| format!(" at {}", time(at))).unwrap_or_default();
            format!("Nothing was changed: this call was already {} by {by}{at}.", row.status)
        }
        _ => format!("Nothing was changed: {}", err.detail),
    }
}

/// The row's page again with why `form` was refused, its fields filled as they were sent so
/// that nothing needs typing twice.
async fn refused_decision(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    form: &FormFields,
    status: StatusCode,
    message: String,
) -> PageResult {
    let mut page = detail_page(state, viewer, id, Some(message)).await?;
    let note = form.get("note").unwrap_or_default().to_owned();
    match form.get("action") {
        Some("approve") => page.kept.approve_note = note,
        _ => page.kept.reject_note = note,
    }
    form.get("result").unwrap_or_default().clone_into(&mut page.kept.result);
    for field in page.inputs.iter_mut().chain(page.edits.iter_mut()) {
        match form.get(&field.name) {
            Some(sent) => sent.clone_into(&mut field.value),
            None if field.kind == "checkbox" => field.value = "false".into(),
            None => {}
        }
    }
    Ok(render(status, &page))
}

/// Which run action a form asks for.
#[derive(Clone, Copy)]
enum RunAction {
    Continue,
    Recover,
}

/// `POST /ui/runs/{run_id}/continue`: continues a paused run whose rows are all decided.
pub async fn continue_run(
    State(state): State<AppState>,
    viewer: Viewer,
    PagePath(run_id): PagePath<String>,
    form: FormFields,
) -> PageResult {
    run_action(&state, &viewer, &run_id, &form, RunAction::Continue).await
}

/// `POST /ui/runs/{run_id}/recover`: finishes a run left `running` past the stale time.
pub async fn recover_run(
    State(state): State<AppState>,
    viewer: Viewer,
    PagePath(run_id): PagePath<String>,
    form: FormFields,
) -> PageResult {
    run_action(&state, &viewer, &run_id, &form, RunAction::Recover).await
}

async fn run_action(
    state: &AppState,
    viewer: &Viewer,
    run_id: &str,
    form: &FormFields,
    action: RunAction,
) -> PageResult {
    viewer.check_csrf(form)?;
    viewer.caller.require(Scope::RunsWrite)?;
    let record = visible_run(state, &viewer.caller, run_id).await?;
    let Some(runner) = Runner::of_run(state, &record) else {
        let message = "This server does not run this run's agent or team: its own process continues it.";
        return Ok(render(StatusCode::CONFLICT, &run_page(state, viewer, run_id, Some(message.to_owned())).await?));
    };
    let outcome = match action {
        RunAction::Continue => runner.continue_run(run_id).await,
        RunAction::Recover => runner.recover_run(run_id, state.stale_after).await,
    };
    match outcome {
        Ok(output) => {
            state.metrics.run(output.status);
            Ok(see_other(&format!("/ui/runs/{run_id}")))
        }
        Err(err) => {
            let err = ApiError::from(err);
            let message = format!("The run could not go on: {}", err.detail);
            Ok(render(err.status, &run_page(state, viewer, run_id, Some(message)).await?))
        }
    }
}
