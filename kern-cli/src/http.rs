//! The client of a kern server (`--server`): its JSON routes, its `/events` stream, and its
//! answers mapped to the documented exit codes (409 conflict, 404 not found, 403 refused, 401
//! unauthorized, an unreachable or unavailable server unavailable).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::exit::{Code, Failure, Outcome};

/// How long a connection to the server may take to open: one that does not answer is
/// reported, not waited on for ever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request may wait for its whole answer: longer than a server's own time limit
/// (120 s by default), which answers first.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(180);

/// How long an event stream may say nothing before it is taken for broken: three of a kern
/// server's keep-alives.
const SILENCE: Duration = Duration::from_secs(45);

/// A server and the key that signs its requests in.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `base`, signing in with `api_key`. A key is not sent in the
    /// clear over `http://` to another machine, where anyone on the way could read it, unless
    /// `allow_http`.
    pub fn new(base: &str, api_key: Option<String>, allow_http: bool) -> Outcome<Self> {
        let refused = |why: &str, shown: &str| {
            Failure::usage(format!("--server must be an http:// or https:// URL {why}, not `{shown}`"))
        };
        let url = reqwest::Url::parse(base).map_err(|_| refused("such as http://127.0.0.1:7000", base))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(refused("with a host", &format!("{}:..", url.scheme())));
        }
        // Shown without what may be a secret: the URL's user, password and query.
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refused("without a query or a fragment", &shown));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refused("without a user or password (the key goes in --api-key)", &shown));
        }
        if url.scheme() == "http" && api_key.is_some() && !allow_http && !is_this_machine(&url) {
            return Err(Failure::usage(format!(
                "--server {shown} would carry the API key unencrypted to another machine: use https://, \
                 or pass --allow-http where nobody else can listen"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|err| Failure::error(format!("cannot set up an HTTP client: {err}")))?;
        Ok(Client { base: base.trim_end_matches('/').to_owned(), api_key, http })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => request.header(AUTHORIZATION, format!("Bearer {key}")),
            None => request,
        }
    }

    /// Sends a request whose answer comes whole: a server that takes longer than
    /// [`ANSWER_TIMEOUT`] to give it is reported, not waited on for ever.
    async fn send(&self, request: RequestBuilder) -> Outcome<Response> {
        self.send_unbounded(request.timeout(ANSWER_TIMEOUT)).await
    }

    /// Sends `request`. A connection that failed or timed out may work on another try (exit 6);
    /// a server whose certificate or TLS was refused, or a request that could not be made, will
    /// not (exit 1).
    async fn send_unbounded(&self, request: RequestBuilder) -> Outcome<Response> {
        request.send().await.map_err(|err| {
            let message = format!("cannot reach the server at {}: {}", self.base, describe(&err));
            if (err.is_connect() || err.is_timeout()) && !refused_tls(&err) {
                Failure::passing(message)
            } else {
                Failure::error(message)
            }
        })
    }

    /// `GET path` with `query`: the JSON of the answer.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Outcome<Value> {
        let response = self.send(self.request(Method::GET, path).query(query)).await?;
        answer(response).await
    }

    /// `GET path`, taking `also` as an answer too, not only a success.
    pub async fn get_allowing(&self, path: &str, also: StatusCode) -> Outcome<Value> {
        let response = self.send(self.request(Method::GET, path)).await?;
        if response.status() == also {
            return response.json().await.map_err(|err| Failure::error(format!("the server answered no JSON: {err}")));
        }
        answer(response).await
    }

    /// `POST path` with a JSON body: the JSON of the answer (a decision's answer is 200, or
    /// 202 while a quorum is short: the row tells which).
    pub async fn post(&self, path: &str, body: &Value) -> Outcome<Value> {
        let response = self.send(self.request(Method::POST, path).json(body)).await?;
        answer(response).await
    }

    /// `DELETE path`: the JSON of the answer.
    pub async fn delete(&self, path: &str) -> Outcome<Value> {
        let response = self.send(self.request(Method::DELETE, path)).await?;
        answer(response).await
    }

    /// `GET /events` from after event `after` (with what happens next when `None`).
    pub async fn events(&self, after: Option<i64>) -> Outcome<EventStream> {
        let query: Vec<(&str, String)> = after.map(|after| ("after", after.to_string())).into_iter().collect();
        let request = self.request(Method::GET, "/events").header(ACCEPT, "text/event-stream").query(&query);
        // A stream lasts until it is interrupted.
        let response = self.send_unbounded(request).await?;
        if !response.status().is_success() {
            return Err(refusal(response).await);
        }
        let kind = response.headers().get(CONTENT_TYPE).and_then(|kind| kind.to_str().ok()).unwrap_or_default();
        if !kind.to_ascii_lowercase().starts_with("text/event-stream") {
            return Err(Failure::error(format!(
                "the server answered `/events` with `{kind}`, not an event stream: is --server the address of a kern \
                 server?"
            )));
        }
        Ok(EventStream { response, reader: EventReader::default() })
    }
}

/// `text` as one segment of a URL path: every byte but RFC 3986's unreserved characters
/// percent-encoded, so that an id holding `/`, `?` or `#` still names one resource.
///
/// An empty id, `.` and `..` cannot be one: a URL drops them or steps up a level (`%2E` too),
/// and would name another route. No kern id is one of them, so they are not found.
pub fn segment(text: &str) -> Outcome<String> {
    if matches!(text, "" | "." | "..") {
        return Err(Failure::not_found(format!("nothing is named `{text}`")));
    }
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => encoded.push(char::from(byte)),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
    }
    Ok(encoded)
}

/// The JSON of a successful answer (null when it has none), or the failure a refusal stands
/// for.
async fn answer(response: Response) -> Outcome<Value> {
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    let text = response.text().await.map_err(|err| Failure::error(format!("the server's answer broke off: {err}")))?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|err| Failure::error(format!("the server answered no JSON: {err}")))
}

/// The failure of a refused request: the server's `detail`, under the exit code of its status.
/// An answer without kern's error body (a proxy's, or no kern server's) says nothing about the
/// row or run asked for: not a not-found or a refusal, but unavailable (6) when it is a
/// gateway's while the server restarts, an error (1) otherwise.
pub async fn refusal(response: Response) -> Failure {
    let status = response.status();
    let detail = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|body| body.get("detail").and_then(Value::as_str).map(str::to_owned));
    match detail {
        Some(detail) => refusal_of(status, detail),
        // A proxy in front of a server that is restarting answers so.
        None if matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) =>
        {
            Failure::passing(format!("the server is unavailable ({status})"))
        }
        None => Failure::error(format!(
            "the server answered {status} without kern's error body: is --server the address of a kern server?"
        )),
    }
}

/// True when the TLS handshake failed: the server's certificate or protocol was refused, which
/// trying again will not mend. TLS reports it as invalid data read from the connection.
fn refused_tls(err: &reqwest::Error) -> bool {
    causes(err).any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
    })
}

/// The error and its causes on one line: reqwest's own message rarely says more than "error
/// sending request".
fn describe(err: &reqwest::Error) -> String {
    causes(err).fold(err.to_string(), |text, cause| format!("{text}: {cause}"))
}

/// The causes of `err`, nearest first.
fn causes(err: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(err), |cause| cause.source())
}

/// True when `url` names this machine: `localhost` or a loopback address.
fn is_this_machine(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let address = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || address.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn refusal_of(status: StatusCode, detail: String) -> Failure {
    match status {
        StatusCode::NOT_FOUND => Failure::not_found(detail),
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => Failure::new(Code::Conflict, detail),
        StatusCode::FORBIDDEN => Failure::new(Code::Refused, detail),
        StatusCode::UNAUTHORIZED => Failure::new(
            Code::Unauthorized,
            format!("the server did not accept the API key (give it with --api-key-file or KERN_API_KEY): {detail}"),
        ),
        // kern's own 503: its database is down a moment.
        StatusCode::SERVICE_UNAVAILABLE => Failure::passing(format!("the server is unavailable ({status}): {detail}")),
        _ => Failure::error(format!("the server refused the request ({status}): {detail}")),
    }
}

/// One Server-Sent Event: its name (`event:`) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub name: String,
    pub data: String,
}

/// The Server-Sent Events of a stream, as they arrive.
#[derive(Debug)]
pub struct EventStream {
    response: Response,
    reader: EventReader,
}

/// Splits the text of a stream into events.
#[derive(Debug, Default)]
struct EventReader {
    /// Bytes received and not yet split into lines: a character may be split across two
    /// chunks, so only whole lines are decoded.
    buffer: Vec<u8>,
    /// The name of the event being read.
    name: String,
    /// The `data` lines of the event being read.
    data: Vec<String>,
    ready: VecDeque<ServerEvent>,
    /// The `id` of the event being read, taken for the stream's once the event ends.
    id: Option<i64>,
    /// The last `id` the stream gave: where a stream opened again goes on from.
    last_id: Option<i64>,
}

impl EventStream {
    /// The last event id the stream gave (the place it started from, before any event), when
    /// it gave one: what to open a broken stream again after.
    pub fn last_id(&self) -> Option<i64> {
        self.reader.last_id
    }

    /// The next event; `None` when the server ends the stream. A stream that says nothing for
    /// [`SILENCE`] has broken off unseen (its host gone, a NAT that forgot it): a kern server
    /// sends a keep-alive every 15 s.
    pub async fn next(&mut self) -> Outcome<Option<ServerEvent>> {
        loop {
            if let Some(event) = self.reader.ready.pop_front() {
                return Ok(Some(event));
            }
            let chunk = tokio::time::timeout(SILENCE, self.response.chunk())
                .await
                .map_err(|_| Failure::passing(format!("no word from the server in {} s", SILENCE.as_secs())))?
                .map_err(|err| Failure::error(format!("the event stream broke off: {err}")))?;
            let Some(chunk) = chunk else { return Ok(None) };
            self.reader.feed(&chunk);
        }
    }
}

impl EventReader {
    /// Takes in `bytes`, readying every event they complete.
    fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            self.read_line(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
        }
    }

    /// One line of the stream: `event:` names the event, `data:` lines make its data, a blank
    /// line ends it; `id:` is where the stream stands (the server sends one before any event);
    /// comments say nothing.
    fn read_line(&mut self, line: &str) {
        let field = |name: &str| line.strip_prefix(name).map(|value| value.strip_prefix(' ').unwrap_or(value));
        if line.is_empty() {
            // As `EventSource` does: an event ended, with data or without, moves the stream's id.
            if let Some(id) = self.id.take() {
                self.last_id = Some(id);
            }
            if !self.data.is_empty() {
                let data = std::mem::take(&mut self.data).join("\n");
                self.ready.push_back(ServerEvent { name: std::mem::take(&mut self.name), data });
            }
            self.name.clear();
        } else if let Some(name) = field("event:") {
            self.name = name.to_owned();
        } else if let Some(data) = field("data:") {
            self.data.push(data.to_owned());
        } else if let Some(id) = field("id:").and_then(|id| id.parse().ok()) {
            self.id = Some(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_segment_of_a_path() {
        let encoded = |text| segment(text).unwrap();
        assert_eq!(encoded("0193c2a4-7b1e-7000-8000-00aa_~."), "0193c2a4-7b1e-7000-8000-00aa_~.");
        assert_eq!(encoded("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(encoded("é"), "%C3%A9");
        assert_eq!(encoded("..."), "...");
        for dots in ["", ".", ".."] {
            assert_eq!(segment(dots).unwrap_err().code, Code::NotFound, "{dots:?}");
        }
    }

    #[test]
    fn statuses_map_to_the_documented_codes() {
        let code = |status| refusal_of(status, "detail".into()).code;
        assert_eq!(code(StatusCode::NOT_FOUND), Code::NotFound);
        assert_eq!(code(StatusCode::CONFLICT), Code::Conflict);
        assert_eq!(code(StatusCode::FORBIDDEN), Code::Refused);
        assert_eq!(code(StatusCode::UNAUTHORIZED), Code::Unauthorized);
        assert_eq!(code(StatusCode::UNPROCESSABLE_ENTITY), Code::Error);
        assert_eq!(code(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
    }

    #[test]
    fn a_stream_splits_into_named_events_whatever_the_chunks() {
        let mut reader = EventReader::default();
        reader.feed(b"id: 0\n\n");
        assert!(reader.ready.is_empty(), "an id alone is where the stream starts, no event");
        assert_eq!(reader.last_id, Some(0));
        reader.feed(b"event: approval.created\nid: 1\ndata: {\"seq\"");
        assert!(reader.ready.is_empty());
        assert_eq!(reader.last_id, Some(0), "an event not yet ended does not move the stream's id");
        // A character split between two chunks reads whole.
        let accented = "data: ren\u{e9}\n\n".as_bytes();
        reader.feed(b":1}\n\n: keep-alive\n\nevent: run.paused\r\ndata: a\ndata: b\n\n");
        reader.feed(&accented[..10]);
        reader.feed(&accented[10..]);
        let events: Vec<ServerEvent> = reader.ready.drain(..).collect();
        assert_eq!(
            events,
            [
                ServerEvent { name: "approval.created".into(), data: r#"{"seq":1}"#.into() },
                ServerEvent { name: "run.paused".into(), data: "a\nb".into() },
                ServerEvent { name: String::new(), data: "ren\u{e9}".into() },
            ]
        );
        assert_eq!(reader.last_id, Some(1));
    }

    #[test]
    fn a_server_url_is_http() {
        assert!(Client::new("http://127.0.0.1:7000/", None, false).is_ok());
        assert!(Client::new("https://kern.example.com/prefix", None, false).is_ok());
        for wrong in ["127.0.0.1:7000", "http://", "ftp://kern.example.com", "http://host/?a=b", "http://host/#x"] {
            assert_eq!(Client::new(wrong, None, false).unwrap_err().code, Code::Usage, "{wrong}");
        }
    }

    #[test]
    fn a_key_goes_over_plain_http_only_to_this_machine_unless_allowed() {
        let key = || Some("kern_id_secret".to_owned());
        for here in ["http://127.0.0.1:7000", "http://localhost:7000", "http://[::1]:7000", "https://kern.example.com"]
        {
            assert!(Client::new(here, key(), false).is_ok(), "{here}");
        }
        let refused = Client::new("http://kern.example.com:7000", key(), false).unwrap_err();
        assert_eq!(refused.code, Code::Usage);
        assert!(refused.message.contains("https://") && refused.message.contains("--allow-http"), "{refused}");
        assert!(Client::new("http://kern.example.com:7000", key(), true).is_ok(), "allowed");
        assert!(Client::new("http://kern.example.com:7000", None, false).is_ok(), "no key, nothing to carry");
    }
}
