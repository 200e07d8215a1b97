//! How both providers fail: typed errors, retries of transient failures only, a bounded number
//! of times. Every test runs against each provider.

use std::sync::Arc;
use std::time::Duration;

use kern::models::{MAX_ANSWER_BYTES, MAX_ERROR_BODY_BYTES, Message, Model, ModelError, ModelRequest, RetryPolicy};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::server::{Answer, Piece, TestServer, closed_port_url};
use crate::{FAST_RETRY, anthropic, openai, stream_greeting};

/// A provider under test.
#[derive(Debug, Clone, Copy)]
enum Provider {
    OpenAi,
    Anthropic,
}

const PROVIDERS: [Provider; 2] = [Provider::OpenAi, Provider::Anthropic];

impl Provider {
    fn model(self, server_url: &str, retry: RetryPolicy, timeout: Duration) -> Box<dyn Model> {
        match self {
            Provider::OpenAi => Box::new(openai::model(server_url).retry(retry).timeout(timeout)),
            Provider::Anthropic => Box::new(anthropic::model(server_url).retry(retry).timeout(timeout)),
        }
    }

    /// The provider with [`FAST_RETRY`] and a timeout no test reaches.
    fn patient_model(self, server_url: &str) -> Box<dyn Model> {
        self.model(server_url, FAST_RETRY, Duration::from_secs(60))
    }

    fn text_answer(self, text: &str) -> Value {
        match self {
            Provider::OpenAi => openai::text_answer(text),
            Provider::Anthropic => anthropic::text_answer(text),
        }
    }

    /// An error body in the provider's format.
    fn error_body(self, message: &str) -> String {
        match self {
            Provider::OpenAi => {
                json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
            }
            Provider::Anthropic => {
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}})
            }
        }
        .to_string()
    }
}

async fn ask(model: &dyn Model) -> Result<String, ModelError> {
    let response = model.respond(ModelRequest { messages: &[Message::user("Hi")], tools: &[] }).await?;
    Ok(response.message.content.unwrap_or_default())
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_request() {
    for provider in PROVIDERS {
        let server =
            TestServer::start(vec![Answer::raw(500, "internal error"), Answer::json(200, provider.text_answer("ok"))])
                .await;

        let answer = ask(&*provider.patient_model(&server.url())).await;

        assert_eq!(answer.as_deref(), Ok("ok"), "{provider:?}");
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{provider:?}");
        assert_eq!(requests[0].body, requests[1].body, "{provider:?}");
    }
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_header() {
    // A backoff far longer than the test waits: only the header's "no wait" lets it finish.
    let slow = RetryPolicy { max_retries: 1, initial_backoff: Duration::from_secs(3600) };
    for provider in PROVIDERS {
        for after in ["0", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            let busy = Answer::raw(429, &provider.error_body("rate limited")).header("retry-after", after);
            let server = TestServer::start(vec![busy, Answer::json(200, provider.text_answer("ok"))]).await;
            let model = provider.model(&server.url(), slow, Duration::from_secs(60));

            let answer = tokio::time::timeout(Duration::from_secs(10), ask(&*model)).await;

            let answer = answer.unwrap_or_else(|_| panic!("{provider:?}, {after}: waited the backoff, not the header"));
            assert_eq!(answer.as_deref(), Ok("ok"), "{provider:?}");
            assert_eq!(server.requests().len(), 2, "{provider:?}");
        }
    }
}

#[tokio::test]
async fn retries_stop_after_the_policy_allows() {
    for provider in PROVIDERS {
        let server = TestServer::start(vec![Answer::raw(503, "down for maintenance")]).await;
        let model = provider.patient_model(&server.url());

        let err = ask(&*model).await.unwrap_err();

        let expected =
            ModelError::Status { provider: model.id().into(), status: 503, body: "down for maintenance".into() };
        assert_eq!(err, expected, "{provider:?}");
        assert_eq!(server.requests().len(), 1 + FAST_RETRY.max_retries as usize, "{provider:?}");
    }
}

#[tokio::test]
async fn a_400_is_a_status_error_with_the_body_and_is_not_retried() {
    for provider in PROVIDERS {
        let body = provider.error_body("messages: field required");
        let server = TestServer::start(vec![Answer::raw(400, &body)]).await;
        let model = provider.patient_model(&server.url());

        let err = ask(&*model).await.unwrap_err();

        assert_eq!(err, ModelError::Status { provider: model.id().into(), status: 400, body }, "{provider:?}");
        assert!(!err.is_transient());
        assert_eq!(server.requests().len(), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn an_error_whose_body_is_cut_keeps_its_status_and_is_not_retried() {
    for provider in PROVIDERS {
        let server = TestServer::start(vec![Answer::CutBody { status: 400, body: provider.error_body("bad") }]).await;
        let model = provider.patient_model(&server.url());

        let err = ask(&*model).await.unwrap_err();

        let ModelError::Status { status: 400, body, .. } = &err else { panic!("{provider:?}: {err:?}") };
        assert!(body.starts_with("(its body could not be read: "), "{provider:?}: {body}");
        assert!(!err.is_transient());
        assert_eq!(server.requests().len(), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn a_spent_quota_is_not_retried() {
    let spent = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
        "param": null, "code": "insufficient_quota"}});
    let server = TestServer::start(vec![Answer::json(429, spent), Answer::json(200, openai::text_answer("Hi"))]).await;
    let model = Provider::OpenAi.patient_model(&server.url());

    let err = ask(&*model).await.unwrap_err();

    assert!(matches!(err, ModelError::Status { status: 429, .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_timeout() {
    for provider in PROVIDERS {
        let server = TestServer::start(vec![Answer::Hang]).await;
        let timeout = Duration::from_millis(200);
        let model = provider.model(&server.url(), RetryPolicy::NONE, timeout);

        let err = ask(&*model).await.unwrap_err();

        assert_eq!(err, ModelError::Timeout { provider: model.id().into(), timeout }, "{provider:?}");
    }
}

/// A stream that never begins, or whose headers come without a body, times out as a whole
/// answer does.
#[tokio::test]
async fn a_stream_that_does_not_begin_is_a_timeout() {
    for provider in PROVIDERS {
        let never = Arc::new(Notify::new());
        let server = TestServer::start(vec![Answer::Hang, Answer::stream(vec![Piece::WaitFor(never)])]).await;
        let model = provider.model(&server.url(), RetryPolicy::NONE, Duration::from_millis(300));

        for _ in 0..2 {
            let (answer, received) = stream_greeting(&*model).await;
            assert!(matches!(answer, Err(ModelError::Timeout { .. })), "{provider:?}: {answer:?}");
            assert!(received.is_empty(), "{provider:?}");
        }
    }
}

#[tokio::test]
async fn a_timeout_is_retried() {
    for provider in PROVIDERS {
        let server = TestServer::start(vec![Answer::Hang, Answer::json(200, provider.text_answer("late"))]).await;
        let model = provider.model(&server.url(), FAST_RETRY, Duration::from_millis(200));

        let answer = ask(&*model).await;

        assert_eq!(answer.as_deref(), Ok("late"), "{provider:?}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_malformed_and_not_retried() {
    for provider in PROVIDERS {
        let server = TestServer::start(vec![Answer::raw(200, r#"{"choices": [{"mess"#)]).await;
        let model = provider.patient_model(&server.url());

        let err = ask(&*model).await.unwrap_err();

        let ModelError::MalformedResponse { provider: name, reason } = &err else { panic!("{provider:?}: {err:?}") };
        assert_eq!(name, model.id());
        assert!(reason.contains(r#"{"choices": [{"mess"#), "{provider:?}: {reason}");
        assert_eq!(server.requests().len(), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn a_408_and_a_409_are_retried() {
    for provider in PROVIDERS {
        let answers =
            vec![Answer::raw(408, "timeout"), Answer::raw(409, "lock"), Answer::json(200, provider.text_answer("ok"))];
        let server = TestServer::start(answers).await;

        let answer = ask(&*provider.patient_model(&server.url())).await;

        assert_eq!(answer.as_deref(), Ok("ok"), "{provider:?}");
        assert_eq!(server.requests().len(), 3, "{provider:?}");
    }
}

/// A redirect is not followed: it would carry the key (Anthropic's `x-api-key` header, which
/// reqwest keeps across hosts) to wherever it points.
#[tokio::test]
async fn a_redirect_is_not_followed_with_the_key() {
    for provider in PROVIDERS {
        let elsewhere = TestServer::start(vec![Answer::json(200, provider.text_answer("stolen"))]).await;
        let moved = Answer::raw(307, "").header("location", &format!("{}/v1/messages", elsewhere.url()));
        let server = TestServer::start(vec![moved]).await;

        let err = ask(&*provider.patient_model(&server.url())).await.unwrap_err();

        assert!(matches!(err, ModelError::Status { status: 307, .. }), "{provider:?}: {err:?}");
        assert!(!err.is_transient(), "{provider:?}");
        assert_eq!(server.requests().len(), 1, "{provider:?}");
        assert!(elsewhere.requests().is_empty(), "{provider:?}: the other host heard nothing");
    }
}

/// An error quotes the start of what the server sent, not all of it.
#[tokio::test]
async fn a_malformed_event_is_quoted_in_part() {
    for provider in PROVIDERS {
        let garbage = format!("{{\"x\": \"{}", "y".repeat(1 << 20));
        let server = TestServer::start(vec![Answer::stream(vec![Piece::text(&format!("data: {garbage}\n\n"))])]).await;

        let (answer, _) = stream_greeting(&*provider.patient_model(&server.url())).await;

        let Err(ModelError::MalformedResponse { reason, .. }) = &answer else { panic!("{provider:?}: {answer:?}") };
        let start: String = reason.chars().take(100).collect();
        assert!(reason.contains("{\"x\": \"yyy") && reason.ends_with('…'), "{provider:?}: {start}");
        assert!(reason.len() < 1024, "{provider:?}: {} bytes", reason.len());
    }
}

#[tokio::test]
async fn answers_are_read_only_up_to_their_limits() {
    for provider in PROVIDERS {
        let huge = "x".repeat(MAX_ANSWER_BYTES + 1);
        let error_page = "e".repeat(MAX_ERROR_BODY_BYTES * 4);
        let events = vec![Piece::text(&format!("data: {huge}"))];
        let server =
            TestServer::start(vec![Answer::raw(200, &huge), Answer::raw(400, &error_page), Answer::stream(events)])
                .await;
        let model = provider.patient_model(&server.url());

        let err = ask(&*model).await.unwrap_err();
        let ModelError::MalformedResponse { reason, .. } = &err else { panic!("{provider:?}: {err:?}") };
        assert!(reason.contains("longer than"), "{provider:?}: {reason}");
        let err = ask(&*model).await.unwrap_err();
        let ModelError::Status { status: 400, body, .. } = &err else { panic!("{provider:?}: {err:?}") };
        assert_eq!(body.len(), MAX_ERROR_BODY_BYTES + '…'.len_utf8(), "{provider:?}: the first bytes only");
        let (answer, _) = stream_greeting(&*model).await;
        let Err(ModelError::MalformedResponse { reason, .. }) = &answer else { panic!("{provider:?}: {answer:?}") };
        assert!(reason.contains("run past"), "{provider:?}: {reason}");
    }
}

#[tokio::test]
async fn a_streamed_request_answered_without_events_says_what_came_instead() {
    for provider in PROVIDERS {
        let server = TestServer::start(vec![Answer::json(200, provider.text_answer("whole"))]).await;
        let model = provider.patient_model(&server.url());

        let (answer, received) = stream_greeting(&*model).await;

        let Err(ModelError::MalformedResponse { reason, .. }) = &answer else { panic!("{provider:?}: {answer:?}") };
        assert!(
            reason.contains("`application/json`, not events") && reason.contains("whole"),
            "{provider:?}: {reason}"
        );
        assert!(received.is_empty(), "{provider:?}");
        assert_eq!(server.requests().len(), 1, "{provider:?}: not asked again");
    }
}

#[tokio::test]
async fn json_of_the_wrong_shape_names_what_is_missing() {
    for (provider, missing) in [(Provider::OpenAi, "choices"), (Provider::Anthropic, "content")] {
        let server = TestServer::start(vec![Answer::json(200, json!({"object": "surprise"}))]).await;

        let err = ask(&*provider.patient_model(&server.url())).await.unwrap_err();

        let ModelError::MalformedResponse { reason, .. } = &err else { panic!("{provider:?}: {err:?}") };
        assert!(reason.contains(missing), "{provider:?}: {reason}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    for provider in PROVIDERS {
        let model = provider.patient_model(&closed_port_url().await);

        let err = ask(&*model).await.unwrap_err();

        assert!(matches!(&err, ModelError::Transport { provider, .. } if provider == model.id()), "{err:?}");
    }
}

#[tokio::test]
async fn a_base_url_without_a_scheme_is_a_configuration_error() {
    for provider in PROVIDERS {
        let model = provider.patient_model("localhost:11434");

        let err = ask(&*model).await.unwrap_err();

        assert!(matches!(&err, ModelError::InvalidConfig { provider, .. } if provider == model.id()), "{err:?}");
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn a_streamed_call_fails_and_retries_as_respond_does_before_the_stream_begins() {
    for provider in PROVIDERS {
        let body = provider.error_body("messages: field required");
        let server = TestServer::start(vec![Answer::raw(500, "busy"), Answer::raw(400, &body)]).await;
        let model = provider.patient_model(&server.url());

        let (answer, received) = stream_greeting(&*model).await;

        assert_eq!(answer, Err(ModelError::Status { provider: model.id().into(), status: 400, body }), "{provider:?}");
        assert!(received.is_empty(), "{provider:?}");
        assert_eq!(server.requests().len(), 2, "{provider:?}");
    }
}
