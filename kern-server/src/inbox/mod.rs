//! The approvals inbox at `/`: server-rendered pages where an admin signs in with an API key,
//! reviews pending calls, decides them, reads the history and follows runs. Pages work as
//! plain forms (POST, then a 303 to the outcome); a small script of this server's own adds
//! live rows from `/events`, keyboard shortcuts and countdowns.

mod actions;
mod assets;
mod forms;
mod page;
mod pages;
mod runner;
mod viewer;
mod views;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::AppState;

/// Whether `path` is one of the inbox's, whose refusals are pages rather than JSON.
pub fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

/// `err` as the inbox's error page.
pub fn refusal_page(err: ApiError) -> Response {
    page::PageError::from(err).into_response()
}

/// The inbox's routes, beside the API's.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::inbox))
        .route("/ui/rows", get(pages::rows))
        .route("/ui/sign-in", get(actions::sign_in_form).post(actions::sign_in))
        .route("/ui/sign-out", post(actions::sign_out))
        .route("/ui/approvals/{id}", get(pages::detail).post(actions::decide))
        .route("/ui/history", get(pages::history))
        .route("/ui/history/export", get(pages::export))
        .route("/ui/runs/{run_id}", get(pages::run))
        .route("/ui/runs/{run_id}/continue", post(actions::continue_run))
        .route("/ui/runs/{run_id}/recover", post(actions::recover_run))
        .route("/ui/assets/{name}", get(assets::serve))
}
