//! Shared HTTP plumbing of the providers: sending, retrying and turning failures into
//! [`ModelError`]s, written once so both providers behave the same on the wire.

use std::error::Error as _;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::BoxFuture;

use super::sse::{SseDecoder, SseEvent};
use super::{Delta, ModelError, ModelRequest, ModelResponse, Usage};

/// The longest a provider waits before one retry, whatever the backoff or the server's
/// `retry-after` says: an agent run should fail visibly rather than hang for minutes.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// How much an error quotes of what a server sent: a malformed body, an error reported
/// mid-stream, a refusal.
const QUOTED_CHARS: usize = 200;

/// The longest a streamed answer may take as a whole, however steadily it keeps coming (each
/// wait for more is bounded by the transport's timeout): a server that only sends keep-alives
/// must not hold a run for ever.
pub const MAX_STREAM_DURATION: Duration = Duration::from_secs(30 * 60);

/// The most bytes read of an answer, whole or streamed: far more than a model writes, so that
/// a misdirected or hostile server cannot make a run hold gigabytes.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The most bytes kept of an error status's body: room for the provider's message.
pub const MAX_ERROR_BODY_BYTES: usize = 8 * 1024;

/// How often and how patiently a provider retries transient failures (408, 409, 429, 5xx, timeouts,
/// connection errors; see [`ModelError::is_transient`]).
///
/// The default retries twice, after 200ms and 400ms. A `retry-after` header (in seconds or as
/// a date, or OpenAI's `retry-after-ms`) replaces the computed backoff; every wait is capped at
/// 30 seconds. A streamed answer asked for again counts against the same retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
}

impl RetryPolicy {
    /// One attempt only: for callers that retry on their own, and for tests.
    pub const NONE: RetryPolicy = RetryPolicy { max_retries: 0, initial_backoff: Duration::ZERO };

    /// The wait before retry number `retry` (0 for the first), preferring the server's word.
    fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = || self.initial_backoff.saturating_mul(2u32.saturating_pow(retry));
        retry_after.unwrap_or_else(backoff).min(MAX_WAIT)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 2, initial_backoff: Duration::from_millis(200) }
    }
}

/// Where and how a provider is reached: the model, the API root, the key, the sampling
/// temperature and the transport. Both providers hold one, so their settings behave alike.
#[derive(Clone)]
pub(super) struct Endpoint {
    pub(super) model: String,
    pub(super) base_url: String,
    pub(super) api_key: Option<String>,
    pub(super) temperature: Option<f32>,
    pub(super) http: HttpTransport,
}

/// The environment variables a provider's `from_env` reads.
pub(super) struct EnvVars {
    pub(super) api_key: &'static str,
    pub(super) base_url: &'static str,
    pub(super) model: &'static str,
}

impl Endpoint {
    /// `model` of `provider` (which prefixes the id in errors and spans) at `base_url`.
    pub(super) fn new(provider: &str, model: String, base_url: &str) -> Self {
        Endpoint {
            http: HttpTransport::new(format!("{provider}:{model}")),
            model,
            base_url: base_url.to_owned(),
            api_key: None,
            temperature: None,
        }
    }

    /// Reads the endpoint from the variables `names`, looked up with `var`; `None` when neither
    /// a key nor a base URL is set. Blank values count as unset.
    pub(super) fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        names: &EnvVars,
        provider: &str,
        base_url: &str,
        default_model: &str,
    ) -> Option<Self> {
        let var = |name: &str| var(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let api_key = var(names.api_key);
        let custom_base_url = var(names.base_url);
        if api_key.is_none() && custom_base_url.is_none() {
            return None;
        }
        let model = var(names.model).unwrap_or_else(|| default_model.to_owned());
        let mut endpoint = Self::new(provider, model, base_url);
        endpoint.api_key = api_key;
        if let Some(base_url) = custom_base_url {
            endpoint.set_base_url(base_url);
        }
        Some(endpoint)
    }

    pub(super) fn set_base_url(&mut self, base_url: String) {
        self.base_url = base_url.trim_end_matches('/').to_owned();
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("temperature", &self.temperature)
            .field("http", &self.http)
            .finish()
    }
}

/// The setters of an [`Endpoint`], for a provider with an `endpoint` field; the docs of the
/// provider-specific two are passed in.
macro_rules! endpoint_setters {
    (base_url: $base_url_doc:literal, api_key: $api_key_doc:literal $(,)?) => {
        #[doc = $base_url_doc]
        pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
            self.endpoint.set_base_url(base_url.into());
            self
        }

        #[doc = $api_key_doc]
        pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
            self.endpoint.api_key = Some(api_key.into());
            self
        }

        /// The longest one attempt may wait: for a whole answer, body included, or, streamed,
        /// for the answer's first bytes and then for each further piece of it (a long answer
        /// that keeps coming is not cut off).
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.endpoint.http.timeout = timeout;
            self
        }

        /// How transient failures are retried.
        pub fn retry(mut self, retry: $crate::models::RetryPolicy) -> Self {
            self.endpoint.http.retry = retry;
            self
        }

        /// The sampling temperature; the server's default when unset.
        pub fn temperature(mut self, temperature: f32) -> Self {
            self.endpoint.temperature = Some(temperature);
            self
        }
    };
}
pub(super) use endpoint_setters;

/// One provider's connection settings: the client, the per-call timeout and the retry policy.
#[derive(Debug, Clone)]
pub(super) struct HttpTransport {
    /// Names the provider in errors and spans: the model's id.
    label: String,
    client: reqwest::Client,
    pub(super) timeout: Duration,
    pub(super) retry: RetryPolicy,
}

/// A failed attempt, with the wait the server asked for before the next one.
struct Failure {
    error: ModelError,
    retry_after: Option<Duration>,
}

impl From<ModelError> for Failure {
    fn from(error: ModelError) -> Self {
        Failure { error, retry_after: None }
    }
}

/// The retries made so far for one answer. Each layer that may ask for the answer again (the
/// transport until the first byte, a stream until its first delta) counts in the same one, so
/// that together they stay within the policy rather than multiply it.
#[derive(Debug, Default)]
pub(super) struct Retries(u32);

impl HttpTransport {
    /// Two minutes: long answers from large models take a while, but a hung server must not
    /// hold a run forever.
    pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    /// A transport that follows no redirect: the providers' APIs send none, and a redirect to
    /// another host would carry the request's key header with it (reqwest strips only
    /// `Authorization`, not Anthropic's `x-api-key`). A 3xx is answered as the failure it is.
    pub(super) fn new(label: String) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // What `reqwest::Client::new` does too: the TLS backend is compiled in, and only a
            // broken build fails to set it up.
            .expect("the HTTP client's TLS backend initialises");
        HttpTransport { label, client, timeout: Self::DEFAULT_TIMEOUT, retry: RetryPolicy::default() }
    }

    pub(super) fn label(&self) -> &str {
        &self.label
    }

    /// A [`ModelError::MalformedResponse`] of this provider.
    pub(super) fn malformed(&self, reason: impl Into<String>) -> ModelError {
        ModelError::MalformedResponse { provider: self.label.clone(), reason: reason.into() }
    }

    /// A [`ModelError::CutShort`] of this provider, for the reason it gave (`reason`, as
    /// ``stop_reason `max_tokens` ``), with what the answer cost (`usage`).
    pub(super) fn cut_short(&self, reason: String, usage: Usage) -> ModelError {
        ModelError::CutShort { provider: self.label.clone(), reason, usage }
    }

    /// POSTs `body` as JSON to `url` and parses a 2xx answer as `R`, retrying transient
    /// failures as the policy allows.
    pub(super) async fn post_json<R: DeserializeOwned>(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &impl Serialize,
    ) -> Result<R, ModelError> {
        let span = tracing::debug_span!("model_http", provider = %self.label, url);
        async {
            let body = self.encode(body)?;
            let answer = self
                .retrying(&mut Retries::default(), || async {
                    let mut response = self.send(url, headers, body.clone(), Some(self.timeout)).await?;
                    let (answer, whole) = self.read_at_most(&mut response, MAX_ANSWER_BYTES).await?;
                    Ok(whole.then_some(answer))
                })
                .await?
                .ok_or_else(|| self.malformed(format!("the answer is longer than {MAX_ANSWER_BYTES} bytes")))?;
            self.parse(&answer)
        }
        .instrument(span)
        .await
    }

    /// POSTs `body` as JSON to `url` and hands each server-sent event of the 2xx answer to
    /// `on_event`, until it breaks: the answer's last event.
    ///
    /// Failures until the first byte of the answer arrives are retried as in
    /// [`post_json`](Self::post_json), counted in `retries`; none after, as `on_event` has seen
    /// part of the answer. A stream that ends before `on_event` breaks is
    /// [`ModelError::StreamInterrupted`]. The timeout bounds the wait for the answer's first
    /// bytes and then each wait for more: a stream that stalls fails, one that keeps coming may
    /// take up to [`MAX_STREAM_DURATION`] (its size is bounded by [`MAX_ANSWER_BYTES`]).
    pub(super) async fn post_events(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &impl Serialize,
        retries: &mut Retries,
        mut on_event: impl FnMut(SseEvent) -> Result<ControlFlow<()>, ModelError> + Send,
    ) -> Result<(), ModelError> {
        let span = tracing::debug_span!("model_http", provider = %self.label, url, stream = true);
        async {
            let body = self.encode(body)?;
            let (mut response, mut chunk) = self
                .retrying(retries, || async {
                    let begun = async {
                        let mut response = self.send(url, headers, body.clone(), None).await?;
                        self.expect_events(&mut response).await?;
                        let first = response.chunk().await.map_err(|err| self.classify(err))?;
                        Ok((response, first))
                    };
                    tokio::time::timeout(self.timeout, begun).await.unwrap_or_else(|_| Err(self.timed_out().into()))
                })
                .await?;
            let deadline = tokio::time::Instant::now() + MAX_STREAM_DURATION;
            let mut decoder = SseDecoder::default();
            let mut read = 0;
            while let Some(bytes) = chunk {
                read += bytes.len();
                if read > MAX_ANSWER_BYTES {
                    return Err(self.malformed(format!("the answer's events run past {MAX_ANSWER_BYTES} bytes")));
                }
                for event in decoder.decode(&bytes) {
                    if on_event(event)?.is_break() {
                        return Ok(());
                    }
                }
                let wait = self.timeout.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                let next = tokio::time::timeout(wait, response.chunk()).await.map_err(|_| {
                    if wait < self.timeout {
                        ModelError::StreamInterrupted {
                            provider: self.label.clone(),
                            reason: format!(
                                "the answer was still coming after {MAX_STREAM_DURATION:?}, the most one may take"
                            ),
                        }
                    } else {
                        self.timed_out()
                    }
                })?;
                chunk = next.map_err(|err| self.interrupted(err))?;
            }
            if let Some(event) = decoder.finish()
                && on_event(event)?.is_break()
            {
                return Ok(());
            }
            Err(ModelError::StreamInterrupted {
                provider: self.label.clone(),
                reason: "the connection closed before the answer's last event".to_owned(),
            })
        }
        .instrument(span)
        .await
    }

    fn encode(&self, body: &impl Serialize) -> Result<Vec<u8>, ModelError> {
        serde_json::to_vec(body).map_err(|err| ModelError::InvalidConfig {
            provider: self.label.clone(),
            reason: format!("the request could not be encoded: {err}"),
        })
    }

    /// Whether a streamed request that failed with `error` is to be made again, and after the
    /// wait the policy gives (taken here): when the failure may pass and nothing of the answer
    /// was `handed` on yet (a server overloaded as the stream begins, a stream cut before its
    /// first delta), as the policy allows, counting in the answer's `retries`. Once part of the
    /// answer is out, a failure is final: the listener has seen it.
    pub(super) async fn streams_again(&self, error: &ModelError, handed: bool, retries: &mut Retries) -> bool {
        if handed || !error.is_transient() || retries.0 >= self.retry.max_retries {
            return false;
        }
        let wait = self.retry.wait(retries.0, None);
        tracing::debug!(%error, retry = retries.0 + 1, wait_ms = wait.as_millis() as u64, "streaming again");
        tokio::time::sleep(wait).await;
        retries.0 += 1;
        true
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy allows no more retries
    /// than the answer's `retries` made already.
    async fn retrying<T, F>(&self, retries: &mut Retries, mut attempt: impl FnMut() -> F) -> Result<T, ModelError>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        loop {
            match attempt().await {
                Ok(answer) => return Ok(answer),
                Err(Failure { error, retry_after }) if error.is_transient() && retries.0 < self.retry.max_retries => {
                    let wait = self.retry.wait(retries.0, retry_after);
                    tracing::debug!(%error, retry = retries.0 + 1, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                    retries.0 += 1;
                }
                Err(Failure { error, .. }) => {
                    tracing::debug!(%error, "model call failed");
                    return Err(error);
                }
            }
        }
    }

    /// Sends one request: the response when its status is 2xx, its body still unread. A
    /// `whole_within` bounds the request and the reading of its body together.
    async fn send(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
        whole_within: Option<Duration>,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        if let Some(timeout) = whole_within {
            request = request.timeout(timeout);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|err| self.classify(err))?;
        let status = response.status();
        tracing::debug!(status = status.as_u16(), "model answered");
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = parse_retry_after(response.headers());
        let mut response = response;
        // The status is the answer: a body that cannot be read (a timeout, a cut connection) is
        // said to be so, not taken for the failure, which would make a refusal look transient.
        let body = match self.read_at_most(&mut response, MAX_ERROR_BODY_BYTES).await {
            Ok((bytes, whole)) => {
                let mut body = String::from_utf8_lossy(&bytes).into_owned();
                if !whole {
                    body.push('…');
                }
                body
            }
            Err(unread) => format!("(its body could not be read: {})", unread.error),
        };
        let error = ModelError::Status { provider: self.label.clone(), status: status.as_u16(), body };
        Err(Failure { error, retry_after })
    }

    /// Refuses a success that is no event stream (a gateway that ignored `stream`, or one
    /// that answers errors with 200), quoting what it sent instead: read as events, it would
    /// end without one and be taken for a cut connection.
    async fn expect_events(&self, response: &mut reqwest::Response) -> Result<(), Failure> {
        let kind = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let kind = kind.unwrap_or_default().to_owned();
        if kind.is_empty() || kind.starts_with("text/event-stream") {
            return Ok(());
        }
        let (body, _) = self.read_at_most(response, MAX_ERROR_BODY_BYTES).await?;
        let quoted = quoted(&String::from_utf8_lossy(&body));
        Err(self.malformed(format!("a streamed request was answered with `{kind}`, not events: {quoted}")).into())
    }

    /// The body of `response`, read up to `max` bytes, and whether that is all of it.
    async fn read_at_most(&self, response: &mut reqwest::Response, max: usize) -> Result<(Vec<u8>, bool), Failure> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.classify(err))? {
            if body.len() + chunk.len() > max {
                body.extend_from_slice(&chunk[..max - body.len()]);
                return Ok((body, false));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, true))
    }

    fn parse<R: DeserializeOwned>(&self, body: &[u8]) -> Result<R, ModelError> {
        serde_json::from_slice(body).map_err(|err| {
            self.malformed(format!("{err}; the body starts with: {}", quoted(&String::from_utf8_lossy(body))))
        })
    }

    /// A failure to read a stream that had begun: a timeout still, anything else an interruption.
    fn interrupted(&self, err: reqwest::Error) -> ModelError {
        match self.classify(err) {
            ModelError::Transport { provider, reason } => ModelError::StreamInterrupted { provider, reason },
            other => other,
        }
    }

    /// The error of an attempt that waited longer than the timeout.
    fn timed_out(&self) -> ModelError {
        ModelError::Timeout { provider: self.label.clone(), timeout: self.timeout }
    }

    /// Sorts a reqwest failure into the error a caller can act on.
    fn classify(&self, err: reqwest::Error) -> ModelError {
        let provider = self.label.clone();
        if err.is_timeout() {
            self.timed_out()
        } else if err.is_builder() {
            ModelError::InvalidConfig { provider, reason: describe(&err) }
        } else {
            ModelError::Transport { provider, reason: describe(&err) }
        }
    }
}

/// The start of `text`, what an error quotes of something a server sent: its first
/// [`QUOTED_CHARS`] characters, then `…` when there is more.
pub(super) fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The error and its causes on one line: reqwest's own message rarely says more than
/// "error sending request", the reason (refused, reset, DNS) is in the sources.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A provider that streams its answers over HTTP, one request at a time (see
/// [`stream_retrying`]).
pub(super) trait StreamsOverHttp: Sync {
    /// How its requests are sent and retried.
    fn transport(&self) -> &HttpTransport;

    /// One streamed request: the answer, each piece of it handed to `deltas` as it comes. The
    /// transport's own retries count in `retries`.
    fn stream_once<'a>(
        &'a self,
        request: &'a ModelRequest<'a>,
        deltas: &'a (dyn Fn(Delta<'_>) + Send + Sync),
        retries: &'a mut Retries,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>>;
}

/// Streams `request` with `provider`, handing the answer to `deltas`. An answer that fails for
/// a reason that may pass before any of it was handed on is asked for again, as the retry policy
/// allows (see [`HttpTransport::streams_again`]), the transport's retries and these counting
/// against one budget.
pub(super) async fn stream_retrying(
    provider: &impl StreamsOverHttp,
    request: &ModelRequest<'_>,
    deltas: &(dyn Fn(Delta<'_>) + Send + Sync),
) -> Result<ModelResponse, ModelError> {
    let handed = AtomicBool::new(false);
    let relay = |delta: Delta<'_>| {
        handed.store(true, Ordering::Relaxed);
        deltas(delta);
    };
    let mut retries = Retries::default();
    loop {
        let answer = provider.stream_once(request, &relay, &mut retries).await;
        match answer {
            Err(error)
                if provider.transport().streams_again(&error, handed.load(Ordering::Relaxed), &mut retries).await => {}
            answer => return answer,
        }
    }
}

/// How long the server asks to wait: OpenAI's `retry-after-ms` (milliseconds), which is the
/// more precise, or else `retry-after`, in seconds or as an HTTP date (a date already past asks
/// for no wait). Without a usable header the computed backoff applies.
fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name| headers.get(name)?.to_str().ok().map(str::trim);
    let number = |name| -> Option<f64> { text(name)?.parse().ok() };
    let seconds = number(RETRY_AFTER_MS).map(|millis| millis / 1000.0).or_else(|| number(RETRY_AFTER.as_str()));
    match seconds {
        Some(seconds) => Duration::try_from_secs_f64(seconds).ok(),
        None => {
            let date = http_date(text(RETRY_AFTER.as_str())?)?;
            Some((date - chrono::Utc::now()).to_std().unwrap_or_default())
        }
    }
}

/// An HTTP date in any of the three forms RFC 9110 asks a recipient to read: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), and the obsolete RFC 850 and asctime forms.
fn http_date(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(date) = chrono::DateTime::parse_from_rfc2822(text) {
        return Some(date.to_utc());
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .into_iter()
        .find_map(|form| chrono::NaiveDateTime::parse_from_str(text, form).ok())
        .map(|date| date.and_utc())
}

/// OpenAI's header for the wait it asks, in milliseconds.
const RETRY_AFTER_MS: &str = "retry-after-ms";

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy { max_retries: 10, initial_backoff: Duration::from_millis(200) };
        assert_eq!(policy.wait(0, None), Duration::from_millis(200));
        assert_eq!(policy.wait(1, None), Duration::from_millis(400));
        assert_eq!(policy.wait(2, None), Duration::from_millis(800));
        assert_eq!(policy.wait(40, None), MAX_WAIT);
    }

    #[test]
    fn retry_after_replaces_the_backoff_within_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.wait(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(policy.wait(0, Some(Duration::from_secs(3600))), MAX_WAIT);
    }

    #[test]
    fn retry_after_ms_is_read_first() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        headers.insert(RETRY_AFTER_MS, HeaderValue::from_static("1250"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_millis(1250)));
        headers.insert(RETRY_AFTER_MS, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(2)), "an unusable one is passed over");
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 2 "));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_millis(500)));
        for past in ["Wed, 21 Oct 2015 07:28:00 GMT", "Wednesday, 21-Oct-15 07:28:00 GMT", "Wed Oct 21 07:28:00 2015"] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(past));
            assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO), "a date past asks for no wait: {past}");
        }
        assert_eq!(http_date("Sun Nov  6 08:49:37 1994"), http_date("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(http_date("Sun Nov  6 08:49:37 1994").is_some());
        let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(10)).format("%a, %d %b %Y %H:%M:%S GMT");
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&soon.to_string()).unwrap());
        let wait = parse_retry_after(&headers).expect("a date to come is read");
        assert!(wait > Duration::from_secs(5) && wait <= Duration::from_secs(10), "{wait:?}");
        for unusable in ["-1", "soon", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(unusable));
            assert_eq!(parse_retry_after(&headers), None, "{unusable}");
        }
    }

    #[test]
    fn a_malformed_body_is_quoted_in_the_error() {
        let transport = HttpTransport::new("test:model".into());
        let err = transport.parse::<serde_json::Value>(b"<html>oops</html>").unwrap_err();
        let ModelError::MalformedResponse { provider, reason } = err else { panic!("{err:?}") };
        assert_eq!(provider, "test:model");
        assert!(reason.contains("<html>oops</html>"), "{reason}");
    }
}
