//! What the server serves, as the reference's client reads it before anything else
//! (`GET /config`): its agents and teams.

use axum::Json;
use axum::extract::State;
use kern_core::keys::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// The server's configuration in the reference's shape: the lists its client requires, kern's
/// agents and teams in them, the others empty.
#[derive(Debug, Serialize, ToSchema)]
pub struct Config {
    pub os_id: &'static str,
    pub databases: Vec<String>,
    pub agents: Vec<Served>,
    pub teams: Vec<Served>,
    pub workflows: Vec<Served>,
    pub interfaces: Vec<Served>,
    pub company: Option<String>,
}

/// An agent or team the server runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Served {
    pub id: String,
    pub name: Option<String>,
}

/// The agents and teams served.
#[utoipa::path(get, path = "/config", tag = "operations",
    responses((status = 200, body = Config), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn config(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Config>> {
    caller.require(Scope::RunsWrite).or_else(|_| caller.require(Scope::ApprovalsRead))?;
    let mut agents: Vec<Served> = (state.agents.values())
        .map(|agent| Served { id: agent.id().to_owned(), name: agent.name().map(str::to_owned) })
        .collect();
    let mut teams: Vec<Served> = state.teams.keys().map(|id| Served { id: id.clone(), name: None }).collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    teams.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(Config {
        os_id: "kern",
        databases: Vec::new(),
        agents,
        teams,
        workflows: Vec::new(),
        interfaces: Vec::new(),
        company: None,
    }))
}
