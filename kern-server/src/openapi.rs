//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/openapi.json`.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::{approvals, audit, config, events, keys, ops, runs};

#[derive(OpenApi)]
#[openapi(
    info(title = "kern", description = "Approvals and runs of kern's agents."),
    paths(
        approvals::list, approvals::count, approvals::get, approvals::status, approvals::resolve,
        approvals::delete, approvals::votes, approvals::vote, approvals::cancel, approvals::trail,
        runs::agent_run, runs::agent_continue, runs::agent_poll, runs::team_run, runs::team_continue,
        runs::team_poll, runs::list, runs::get, runs::cancel, runs::release, config::config,
        keys::list, keys::create, keys::revoke,
        events::events, ops::healthz, ops::readyz, ops::metrics, audit::verify,
        audit::events,
    ),
    modifiers(&BearerKeys),
    security(("api_key" = [])),
)]
struct ApiDoc;

/// Declares the bearer API key every protected route takes.
struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("kern API key").build();
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
