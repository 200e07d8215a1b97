//! A scripted HTTP/1.1 server on loopback: it records every request and answers the n-th
//! connection with the n-th [`Answer`], so a test sees exactly what a provider sent and how it
//! reacts to what a real API can answer, streamed answers included.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Answers with this status, extra headers and body, then closes the connection.
    Respond { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// Answers 200 with a chunked `text/event-stream` body written in these pieces, then
    /// closes the connection: after the terminating chunk when `complete`, without it (a cut
    /// connection) otherwise.
    Stream { pieces: Vec<Piece>, complete: bool },
    /// Answers with this status and the start of a body longer than it, then closes the
    /// connection: the body cannot be read whole.
    CutBody { status: u16, body: String },
    /// Reads the request and never answers: the client's timeout must fire.
    Hang,
}

/// A step of a streamed answer.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes written as one HTTP chunk, followed by a short pause so the client reads them on
    /// their own.
    Bytes(Vec<u8>),
    /// Waits until the test notifies: what follows is written only once the client showed it
    /// read what came before.
    WaitFor(Arc<Notify>),
    /// Waits this long before what follows: a model that takes its time.
    Pause(Duration),
}

impl Piece {
    pub fn text(text: &str) -> Self {
        Piece::Bytes(text.as_bytes().to_vec())
    }

    /// `text` in pieces that end inside each of its multi-byte characters: a client must join
    /// the bytes before it decodes them.
    pub fn split_inside_characters(text: &str) -> Vec<Piece> {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut start = 0;
        for (at, _) in text.char_indices().filter(|(_, c)| c.len_utf8() > 1) {
            pieces.push(Piece::Bytes(bytes[start..at + 1].to_vec()));
            start = at + 1;
        }
        pieces.push(Piece::Bytes(bytes[start..].to_vec()));
        pieces
    }
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self::raw(status, &body.to_string())
    }

    /// An answer with this exact body, JSON or not.
    pub fn raw(status: u16, body: &str) -> Self {
        Answer::Respond { status, headers: Vec::new(), body: body.to_owned() }
    }

    /// A complete event stream of these pieces.
    pub fn stream(pieces: Vec<Piece>) -> Self {
        Answer::Stream { pieces, complete: true }
    }

    /// An event stream whose connection is cut after these pieces.
    pub fn cut_stream(pieces: Vec<Piece>) -> Self {
        Answer::Stream { pieces, complete: false }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Answer::Respond { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    /// The value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The server; it stops with the test's runtime.
pub struct TestServer {
    addr: SocketAddr,
    /// Requests by connection number, in the order they were read.
    requests: Arc<Mutex<Vec<(usize, Recorded)>>>,
}

impl TestServer {
    /// Starts a server answering connection n with `answers[n]`, the last answer repeating.
    /// Numbering connections (not requests) keeps the script in attempt order: a provider opens
    /// its next connection only after the previous attempt ended.
    pub async fn start(answers: Vec<Answer>) -> Self {
        assert!(!answers.is_empty(), "a server needs at least one answer");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        tokio::spawn(async move {
            for n in 0.. {
                let (stream, _) = listener.accept().await.unwrap();
                let answer = answers[n.min(answers.len() - 1)].clone();
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move { serve(n, stream, answer, &recorded).await });
            }
        });
        TestServer { addr, requests }
    }

    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in attempt order.
    pub fn requests(&self) -> Vec<Recorded> {
        let mut requests = self.requests.lock().unwrap().clone();
        requests.sort_by_key(|(n, _)| *n);
        requests.into_iter().map(|(_, request)| request).collect()
    }

    /// The only request received; fails the test if there were more or none.
    pub fn single_request(&self) -> Recorded {
        let mut requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request: {requests:#?}");
        requests.remove(0)
    }
}

/// A local port nothing listens on: bound, then released.
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn serve(n: usize, mut stream: TcpStream, answer: Answer, recorded: &Mutex<Vec<(usize, Recorded)>>) {
    let request = read_request(&mut stream).await;
    recorded.lock().unwrap().push((n, request));
    match answer {
        Answer::Hang => std::future::pending().await,
        // The client hangs up once it has read what it needs (an error event, or as much of a
        // body as it reads): writing after that fails, which is no failure of the test.
        Answer::Respond { status, headers, body } => drop(write_response(&mut stream, status, headers, body).await),
        Answer::CutBody { status, body } => {
            let promised = (body.len() + 100).to_string();
            drop(write_response(&mut stream, status, vec![("content-length", promised)], body).await);
        }
        Answer::Stream { pieces, complete } => drop(write_stream(&mut stream, pieces, complete).await),
    }
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\nconnection: close\r\n");
    if !headers.iter().any(|(name, _)| *name == "content-length") {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn write_stream(stream: &mut TcpStream, pieces: Vec<Piece>, complete: bool) -> std::io::Result<()> {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    for piece in pieces {
        match piece {
            Piece::Bytes(bytes) => {
                stream.write_all(format!("{:x}\r\n", bytes.len()).as_bytes()).await?;
                stream.write_all(&bytes).await?;
                stream.write_all(b"\r\n").await?;
                stream.flush().await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Piece::WaitFor(notify) => notify.notified().await,
            Piece::Pause(pause) => tokio::time::sleep(pause).await,
        }
    }
    if complete {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    stream.shutdown().await
}

/// Reads one request with a `content-length` body (what reqwest sends for a JSON body).
async fn read_request(stream: &mut TcpStream) -> Recorded {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed inside the request head");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let (method, path) = (request_line.next().unwrap().to_owned(), request_line.next().unwrap().to_owned());
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").expect("a content-length").1.parse().unwrap();
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed inside the request body");
        body.extend_from_slice(&chunk[..read]);
    }
    let body = serde_json::from_slice(&body).expect("a JSON request body");
    Recorded { method, path, headers, body }
}
