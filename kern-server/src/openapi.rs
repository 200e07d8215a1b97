//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/openapi.json`.

use axum::Json;
use utoipa::openapi::content::Content;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr, Required, ResponseBuilder};

use crate::routes::{approvals, audit, config, events, keys, ops, runs};

#[derive(utoipa::OpenApi)]
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
    modifiers(&BearerKeys, &RunBodies, &CommonAnswers),
    security(("api_key" = [])),
)]
struct ApiDoc;

/// Declares the bearer API key every protected route takes.
struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("kern API key").build();
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// Describes the run routes' bodies, which one extractor reads from the reference's form
/// (urlencoded or multipart) or from a JSON object with the same fields, and their answers:
/// the run's output as JSON, or its events with `stream`.
struct RunBodies;

impl utoipa::Modify for RunBodies {
    fn modify(&self, openapi: &mut OpenApi) {
        let text = || ObjectBuilder::new().schema_type(Type::String);
        let flag = || ObjectBuilder::new().schema_type(Type::Boolean);
        openapi.components.get_or_insert_with(Default::default).schemas.insert("RunOutput".into(), run_output());
        let output = || Content::new(Some(Ref::from_schema_name("RunOutput")));
        let run = ObjectBuilder::new()
            .property("message", text().description(Some("What the user asks.")))
            .required("message")
            .property("session_id", text().description(Some("The conversation to go on with.")))
            .property("user_id", text().description(Some("Who the run acts for, without authentication.")))
            .property("stream", flag().description(Some("Answer with the run's events (the default).")))
            .build();
        let answers = |name: &str, what: &str| {
            ObjectBuilder::new()
                .property("session_id", text().description(Some("The run's session.")))
                .required("session_id")
                .property(name, text().description(Some(what.to_owned())))
                .property("stream", flag().description(Some("Answer with the run's events (the default).")))
                .build()
        };
        let agent_answers = answers("tools", "The caller's answers to paused calls: a JSON array, as text.");
        let team_answers = answers("requirements", "The caller's answers to paused calls: a JSON array, as text.");
        for (path, item) in &mut openapi.paths.paths {
            let Some(operation) = item.post.as_mut() else { continue };
            let fields = if path.ends_with("/runs") {
                &run
            } else if path.starts_with("/agents/") && path.ends_with("/continue") {
                &agent_answers
            } else if path.starts_with("/teams/") && path.ends_with("/continue") {
                &team_answers
            } else {
                continue;
            };
            let mut body = RequestBodyBuilder::new().required(Some(Required::True));
            for media in ["application/x-www-form-urlencoded", "multipart/form-data", "application/json"] {
                body = body.content(media, Content::new(Some(fields.clone())));
            }
            operation.request_body = Some(body.build());
            if let Some(RefOr::T(answer)) = operation.responses.responses.get_mut("200") {
                answer.content.insert("application/json".into(), output());
                let events = text().description(Some("The run's events, as server-sent events."));
                answer.content.insert("text/event-stream".into(), Content::new(Some(events.build())));
            }
        }
        for item in openapi.paths.paths.values_mut() {
            let Some(operation) = item.get.as_mut() else { continue };
            if operation.tags.as_deref().is_some_and(|tags| tags.iter().any(|tag| tag == "runs"))
                && let Some(RefOr::T(answer)) = operation.responses.responses.get_mut("200")
                && answer.content.is_empty()
            {
                answer.content.insert("application/json".into(), output());
            }
        }
    }
}

/// The run output's schema, as `wire::run::run_output` builds it: null keys left out, a team's
/// members' outputs under `member_responses`.
fn run_output() -> RefOr<Schema> {
    let text = |what: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(what.to_owned()));
    let integer = |what: &str| ObjectBuilder::new().schema_type(Type::Integer).description(Some(what.to_owned()));
    let list = |of: &str| ArrayBuilder::new().items(Ref::from_schema_name(of));
    let tokens = ObjectBuilder::new().property("input_tokens", integer("")).property("output_tokens", integer(""));
    let mut approval = Ref::from_schema_name("ApprovalResponse");
    approval.description = "The row that decided its latest gated call.".into();
    let output = ObjectBuilder::new()
        .description(Some("The run's output, as the reference shapes it; null keys are left out."))
        .property("run_id", text("The run."))
        .required("run_id")
        .property("agent_id", text("The agent that ran it (a team member's run names its team too)."))
        .property("agent_name", text("That agent's name."))
        .property("team_id", text("The team that ran it."))
        .property("session_id", text("Its session."))
        .required("session_id")
        .property("user_id", text("Who it acts for."))
        .property("content", text("Its answer so far."))
        .property("content_type", text("Always `str`."))
        .property("parent_run_id", text("A member run's team run."))
        .property("created_at", integer("Epoch seconds."))
        .property("updated_at", integer("Epoch seconds."))
        .property(
            "status",
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some([
                "RUNNING",
                "PAUSED",
                "COMPLETED",
                "ERROR",
                "CANCELLED",
            ])),
        )
        .required("status")
        .property("input", ObjectBuilder::new().property("input_content", text("What the user asked.")))
        .property("tools", list("ToolExecutionWire"))
        .property("requirements", list("RequirementWire"))
        .property("metrics", tokens)
        .property("metadata", ObjectBuilder::new().property("approval", approval))
        .property("member_responses", list("RunOutput"));
    RefOr::T(Schema::Object(output.build()))
}

/// Adds the answers the server as a whole gives, which no handler's annotation names: 401 and
/// 403 on every route that takes a credential; 408, 413 and 422 on every route that reads a
/// body; 422 for a query string that cannot be read; 400 for a path parameter that is not
/// UTF-8; 503 when the database is down and 504 past the request's time limit.
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        let error = |description: &str| {
            let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
            RefOr::T(ResponseBuilder::new().description(description).content("application/json", body).build())
        };
        for (path, item) in &mut openapi.paths.paths {
            let operations = [&mut item.get, &mut item.post, &mut item.delete, &mut item.put];
            for operation in operations.into_iter().flatten() {
                let open = operation
                    .security
                    .as_ref()
                    .is_some_and(|requirements| requirements.contains(&SecurityRequirement::default()));
                let mut answers = vec![("504", "No answer within the request's time limit")];
                if path != "/healthz" {
                    answers.push(("503", "The database is unavailable"));
                }
                if !open {
                    answers.push(("401", "No credential, or one that is not valid"));
                    answers.push(("403", "The credential lacks the scope, or the caller the right"));
                }
                if operation.request_body.is_some() {
                    answers.push(("408", "The body did not arrive within the body's time limit"));
                    answers.push(("413", "The body is larger than the limit"));
                    answers.push(("422", "The body cannot be read"));
                }
                let queried =
                    operation.parameters.iter().flatten().any(|param| param.parameter_in == ParameterIn::Query);
                if queried {
                    answers.push(("422", "A query parameter cannot be read, or is given twice"));
                }
                if path.contains('{') {
                    answers.push(("400", "A path parameter is not UTF-8 once decoded"));
                }
                for (status, description) in answers {
                    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description));
                }
            }
        }
    }
}

/// The document.
pub fn document() -> OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn document() -> Value {
        serde_json::to_value(super::document()).unwrap()
    }

    #[test]
    fn optional_fields_are_optional_and_may_be_null() {
        let doc = document();
        let vote = &doc["components"]["schemas"]["VoteBody"];
        assert_eq!(vote["required"], json!(["decision"]), "a vote needs its decision alone");
        assert_eq!(vote["properties"]["decision"]["pattern"], "^(approve|reject)$");
        let row = &doc["components"]["schemas"]["ApprovalResponse"];
        let required = row["required"].as_array().unwrap();
        assert!(!required.contains(&json!("resolution_data")), "{required:?}");
        assert!(
            row["properties"]["resolution_data"].to_string().contains("null"),
            "{}",
            row["properties"]["resolution_data"]
        );
    }

    #[test]
    fn every_route_lists_the_answers_the_server_gives() {
        let doc = document();
        let responses = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
        let resolve = responses("/approvals/{approval_id}/resolve", "post");
        for status in ["400", "401", "403", "408", "413", "422", "503", "504"] {
            assert!(resolve.get(status).is_some(), "resolve lacks {status}");
        }
        assert!(resolve["200"]["headers"]["ETag"].is_object(), "a decision answers the row's ETag");
        let count = responses("/approvals/count", "get");
        assert!(count.get("422").is_some(), "a query string that cannot be read: {count}");
        let health = responses("/healthz", "get");
        assert!(health.get("401").is_none() && health.get("503").is_none(), "{health}");
        assert_eq!(doc["paths"]["/metrics"]["get"]["security"], json!([{}]), "scraped without a credential");
        let run = &doc["paths"]["/agents/{agent_id}/runs"]["post"];
        let forms = run["requestBody"]["content"].as_object().unwrap();
        assert_eq!(forms.len(), 3, "{forms:?}");
        assert_eq!(forms["application/x-www-form-urlencoded"]["schema"]["required"], json!(["message"]));
        let answered = run["responses"]["200"]["content"].as_object().unwrap();
        assert!(answered.contains_key("application/json") && answered.contains_key("text/event-stream"));
        assert_eq!(answered["application/json"]["schema"]["$ref"], "#/components/schemas/RunOutput");
        let output = &doc["components"]["schemas"]["RunOutput"];
        assert_eq!(output["properties"]["tools"]["items"]["$ref"], "#/components/schemas/ToolExecutionWire");
        assert_eq!(output["required"], json!(["run_id", "session_id", "status"]));
        let team = &doc["paths"]["/teams/{team_id}/runs/{run_id}/continue"]["post"]["requestBody"]["content"];
        assert!(team["application/json"]["schema"]["properties"]["requirements"].is_object(), "{team}");
    }

    #[test]
    fn every_operation_has_an_id_of_its_own() {
        let doc = document();
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|methods| methods.as_object().unwrap().values())
            .map(|operation| operation["operationId"].as_str().expect("an operationId"))
            .collect();
        let operations = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), operations, "client generators refuse a document whose ids repeat: {ids:?}");
    }
}
