//! A fault-injecting proxy in front of moto: the production fault model for the integration tests.
//!
//! [`FaultProxy::start`] listens on a free port of 127.0.0.1 (plain tokio, one HTTP/1.1 request per
//! connection) and forwards every request to the moto server behind it, except those a [`Rule`]
//! matches, which it answers itself with the exact wire response AWS sends, or with a slow answer,
//! or with no answer at all. The SDK reaches it through the standard endpoint setting only
//! ([`FaultProxy::sdk_config`]), so the product code under test is the production code.
//!
//! Wire shapes (what the SDK's deserialisers read):
//! - KMS speaks AWS JSON 1.1: an error is a 4xx/5xx status, an `x-amzn-ErrorType` header, content type
//!   `application/x-amz-json-1.1` and a body `{"__type": "<code>", "message": "..."}`
//!   (<https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html>); the codes and their status are
//!   KMS's (<https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html>,
//!   <https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html>): 400 for client errors and
//!   throttling, 500 for `KMSInternalException`, 503 for `DependencyTimeoutException`.
//! - Kinesis speaks AWS JSON 1.1 too (target `Kinesis_20131202.<operation>`), with the same error
//!   shape; `ExpiredIteratorException` is a 400
//!   (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html>).
//! - S3 speaks REST-XML: the status, `Content-Type: application/xml` and
//!   `<Error><Code>..</Code><Message>..</Message><RequestId>..</RequestId><HostId>..</HostId></Error>`
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>): `SlowDown` 503,
//!   `InternalError` 500, `AccessDenied` 403, `NoSuchBucket` 404.
//! - STS speaks awsQuery: a form-encoded `POST /` (`Action=AssumeRole&…`) answered, on error, with the
//!   status, `Content-Type: text/xml` and
//!   `<ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..</Message></Error><RequestId>..</RequestId></ErrorResponse>`
//!   (<https://smithy.io/2.0/aws/protocols/aws-query-protocol.html>); a refused `AssumeRole` (no trust,
//!   wrong external id, no `sts:AssumeRole` permission) is `AccessDenied` with status 403
//!   (<https://repost.aws/knowledge-center/iam-assume-role-error>).
//!
//! It never touches anything but 127.0.0.1, and it never changes a request it forwards except for
//! `Connection: close` (one request per connection keeps the framing trivial). Since every request
//! has its own connection, the connections open at once are the requests in flight: the proxy counts
//! their peak ([`FaultProxy::peak_in_flight`]), from the moment it accepts a connection until it has
//! answered and closed it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Match {
    /// A KMS call: `X-Amz-Target: TrentService.<operation>`.
    Kms(&'static str),
    /// An S3 `PutObject`: `PUT /<bucket>/<key>` (path style).
    S3PutObject,
    /// A Kinesis call: `X-Amz-Target: Kinesis_20131202.<operation>`.
    Kinesis(&'static str),
    /// An STS (awsQuery) call: a `POST` whose form body holds `Action=<operation>`.
    Sts(&'static str),
}

/// How a matched request is answered.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// A KMS (AWS JSON 1.1) error.
    KmsError {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
    /// An S3 (REST-XML) error.
    S3Error {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
    /// An STS (awsQuery, XML) error.
    QueryError {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
    /// A bare status with an HTML body, as a load balancer in front of a service sends.
    Status(u16),
    /// Forwarded to moto after this delay.
    Slow(Duration),
    /// The connection is accepted and the request read, and nothing is ever sent back.
    Silence,
}

impl Answer {
    /// A KMS error with the status AWS uses for that code.
    pub(crate) fn kms(code: &'static str) -> Self {
        let status = match code {
            "KMSInternalException" | "KeyUnavailableException" => 500,
            "DependencyTimeoutException" => 503,
            "AccessDeniedException" | "UnrecognizedClientException" | "ExpiredTokenException" => 400,
            _ => 400,
        };
        Self::KmsError {
            status,
            code,
            message: "injected by the fault proxy",
        }
    }

    /// A Kinesis error (AWS JSON 1.1, the same wire shape as KMS's): 400 for every client error,
    /// `ExpiredIteratorException` and `ProvisionedThroughputExceededException` included.
    pub(crate) fn kinesis(code: &'static str) -> Self {
        let message = match code {
            "ExpiredIteratorException" => "Iterator expired",
            _ => "injected by the fault proxy",
        };
        Self::KmsError {
            status: 400,
            code,
            message,
        }
    }

    /// An S3 error with the status AWS uses for that code.
    pub(crate) fn s3(code: &'static str) -> Self {
        let (status, message) = match code {
            "SlowDown" => (503, "Please reduce your request rate."),
            "InternalError" => (500, "We encountered an internal error. Please try again."),
            "AccessDenied" => (403, "Access Denied"),
            "NoSuchBucket" => (404, "The specified bucket does not exist"),
            _ => (400, "injected by the fault proxy"),
        };
        Self::S3Error { status, code, message }
    }

    /// An STS error with the status AWS uses for that code.
    pub(crate) fn sts(code: &'static str) -> Self {
        let (status, message) = match code {
            "AccessDenied" => (
                403,
                "User: arn:aws:sts::123456789012:assumed-role/das-archiver/x is not authorized to perform: sts:AssumeRole",
            ),
            "ExpiredToken" => (400, "The security token included in the request is expired"),
            _ => (400, "injected by the fault proxy"),
        };
        Self::QueryError { status, code, message }
    }
}

/// One fault: which requests, optionally only the nth of them, and the answer.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    matcher: Match,
    body_contains: Vec<String>,
    path_contains: Option<String>,
    only_call: Option<usize>,
    answer: Answer,
    matched: usize,
}

impl Rule {
    /// Every request that `matcher` matches is answered with `answer`.
    pub(crate) fn new(matcher: Match, answer: Answer) -> Self {
        Self {
            matcher,
            body_contains: Vec::new(),
            path_contains: None,
            only_call: None,
            answer,
            matched: 0,
        }
    }

    /// Only requests whose body contains `text` (e.g. one record's key blob in base64); several
    /// calls require every text.
    pub(crate) fn body_contains(mut self, text: impl Into<String>) -> Self {
        self.body_contains.push(text.into());
        self
    }

    /// Only requests whose (percent-decoded) path contains `text` (e.g. `/hour=03/`).
    pub(crate) fn path_contains(mut self, text: impl Into<String>) -> Self {
        self.path_contains = Some(text.into());
        self
    }

    /// Only the nth (1-based) request the rule matches; the others are forwarded.
    pub(crate) fn only_call(mut self, n: usize) -> Self {
        self.only_call = Some(n);
        self
    }
}

/// A request the proxy saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    /// `X-Amz-Target`, for JSON services.
    pub(crate) target: Option<String>,
    pub(crate) body: Vec<u8>,
    /// Whether a rule answered it (not forwarded to moto).
    pub(crate) injected: bool,
}

impl Seen {
    fn is(&self, matcher: &Match) -> bool {
        match matcher {
            Match::Kms(op) => self.target.as_deref() == Some(&format!("TrentService.{op}")),
            Match::Kinesis(op) => self.target.as_deref() == Some(&format!("Kinesis_20131202.{op}")),
            Match::Sts(op) => {
                let action = format!("Action={op}");
                self.method == "POST"
                    && self.target.is_none()
                    && String::from_utf8_lossy(&self.body)
                        .split('&')
                        .any(|pair| pair == action)
            }
            Match::S3PutObject => {
                self.method == "PUT"
                    && self.target.is_none()
                    && self
                        .path
                        .trim_start_matches('/')
                        .split('?')
                        .next()
                        .is_some_and(|p| p.contains('/'))
            }
        }
    }
}

#[derive(Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    /// Connections accepted and not yet closed.
    in_flight: AtomicUsize,
    /// The most there have been at once.
    peak: AtomicUsize,
}

/// Counts one connection in flight for as long as it lives.
struct InFlight(Arc<State>);

impl InFlight {
    fn start(state: &Arc<State>) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The running proxy; stops accepting when dropped.
pub(crate) struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://127.0.0.1:<port>`, moto's endpoint).
    pub(crate) async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let counted = InFlight::start(&shared);
                let served = serve(client, upstream.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    served.await;
                    drop(counted);
                });
            }
        });
        Self { endpoint, state, task }
    }

    /// `base` pointed at this proxy, with retries that back off for milliseconds instead of
    /// seconds (the number of attempts stays the SDK's default, 3), so faults cost little time.
    pub(crate) fn sdk_config(&self, base: &SdkConfig) -> SdkConfig {
        base.to_builder()
            .endpoint_url(&self.endpoint)
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_initial_backoff(Duration::from_millis(5))
                    .with_max_backoff(Duration::from_millis(20)),
            )
            .build()
    }

    /// Adds a fault.
    pub(crate) fn add(&self, rule: Rule) {
        self.state.rules.lock().unwrap().push(rule);
    }

    /// Removes every fault and forgets every request seen (and the peak of requests in flight).
    pub(crate) fn reset(&self) {
        self.state.rules.lock().unwrap().clear();
        self.state.seen.lock().unwrap().clear();
        self.state.peak.store(0, Ordering::SeqCst);
    }

    /// The most requests that were in flight at once (connections accepted and not yet closed).
    pub(crate) fn peak_in_flight(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }

    /// Every request seen so far, in arrival order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// How many requests `matcher` matches among those seen.
    pub(crate) fn count(&self, matcher: &Match) -> usize {
        self.state.seen.lock().unwrap().iter().filter(|s| s.is(matcher)).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection: reads one request, answers or forwards it, closes.
async fn serve(mut client: TcpStream, upstream: String, state: Arc<State>) {
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    let mut seen = Seen {
        method: request.method.clone(),
        path: request.path.clone(),
        target: request.header("x-amz-target").map(str::to_owned),
        body: request.body.clone(),
        injected: false,
    };
    let answer = pick_answer(&state, &seen);
    seen.injected = matches!(
        answer,
        Some(
            Answer::KmsError { .. }
                | Answer::S3Error { .. }
                | Answer::QueryError { .. }
                | Answer::Status(_)
                | Answer::Silence
        )
    );
    state.seen.lock().unwrap().push(seen);
    let response = match answer {
        Some(Answer::Silence) => {
            // Hold the connection open, unanswered, until the client gives up.
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
            return;
        }
        Some(Answer::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            forward(&request, &upstream).await
        }
        Some(Answer::KmsError { status, code, message }) => kms_error(status, code, message),
        Some(Answer::S3Error { status, code, message }) => s3_error(status, code, message),
        Some(Answer::QueryError { status, code, message }) => query_error(status, code, message),
        Some(Answer::Status(status)) => bare_status(status),
        None => forward(&request, &upstream).await,
    };
    let _ = client.write_all(&response).await;
    let _ = client.shutdown().await;
}

/// The first rule matching `seen`, counting the match.
fn pick_answer(state: &State, seen: &Seen) -> Option<Answer> {
    let mut rules = state.rules.lock().unwrap();
    for rule in rules.iter_mut() {
        let body_ok = rule
            .body_contains
            .iter()
            .all(|t| seen.body.windows(t.len().max(1)).any(|w| w == t.as_bytes()));
        let path_ok = rule
            .path_contains
            .as_ref()
            .is_none_or(|t| percent_decode(&seen.path).contains(t.as_str()));
        if !(seen.is(&rule.matcher) && body_ok && path_ok) {
            continue;
        }
        rule.matched += 1;
        if rule.only_call.is_none_or(|n| n == rule.matched) {
            return Some(rule.answer.clone());
        }
    }
    None
}

/// `%3D` → `=` and so on: the SDK percent-encodes object keys in the path.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Request {
    method: String,
    path: String,
    /// Header lines as received, minus the hop-by-hop ones the proxy rewrites.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body), answering `Expect: 100-continue`.
async fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let head_end = read_until_head_end(client, &mut buffer).await?;
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut request = Request {
        method,
        path,
        headers,
        body: buffer.split_off(head_end + 4),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.ok()?;
    }
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        request.body = read_chunked(client, std::mem::take(&mut request.body)).await?;
    } else {
        let length: usize = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while request.body.len() < length {
            read_more(client, &mut request.body).await?;
        }
        request.body.truncate(length);
    }
    request.headers.retain(|(n, _)| {
        ![
            "connection",
            "keep-alive",
            "expect",
            "transfer-encoding",
            "content-length",
        ]
        .iter()
        .any(|h| n.eq_ignore_ascii_case(h))
    });
    Some(request)
}

async fn read_until_head_end(stream: &mut (impl AsyncRead + Unpin), buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end);
        }
        read_more(stream, buffer).await?;
    }
}

async fn read_more(stream: &mut (impl AsyncRead + Unpin), buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 {
        return None;
    }
    buffer.extend_from_slice(&chunk[..n]);
    Some(())
}

/// Decodes a chunked body (`<hex size>\r\n<data>\r\n` … `0\r\n\r\n`), trailers ignored.
async fn read_chunked(stream: &mut TcpStream, mut raw: Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = raw.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            read_more(stream, &mut raw).await?;
        };
        let size_text = String::from_utf8_lossy(&raw[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        while raw.len() < line_end + 2 + size + 2 {
            read_more(stream, &mut raw).await?;
        }
        body.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw.drain(..line_end + 2 + size + 2);
    }
}

/// Sends the request to moto on a fresh connection and returns its whole response, with
/// `Connection: close` (the proxy closes every connection after one exchange).
async fn forward(request: &Request, upstream: &str) -> Vec<u8> {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return bare_status(502);
    };
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request.body.len()
    ));
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&request.body);
    if server.write_all(&raw).await.is_err() {
        return bare_status(502);
    }
    let mut response = Vec::new();
    if server.read_to_end(&mut response).await.is_err() {
        return bare_status(502);
    }
    with_connection_close(response)
}

/// The response with its `Connection` header replaced by `Connection: close`.
fn with_connection_close(response: Vec<u8>) -> Vec<u8> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return response;
    };
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|l| {
            let name = l.split(':').next().unwrap_or_default().trim();
            !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive")
        })
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&response[end + 4..]);
    out
}

fn response(status: u16, reason: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

const REQUEST_ID: &str = "4442587f-b7d0-a2f9-0000-fa017f00c0de";

fn kms_error(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    response(
        status,
        reason(status),
        &[
            ("x-amzn-RequestId", REQUEST_ID.to_owned()),
            ("x-amzn-ErrorType", code.to_owned()),
            ("Content-Type", "application/x-amz-json-1.1".to_owned()),
        ],
        body.as_bytes(),
    )
}

fn query_error(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    \
         <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n  <RequestId>{REQUEST_ID}</RequestId>\n\
         </ErrorResponse>\n"
    );
    response(
        status,
        reason(status),
        &[
            ("x-amzn-RequestId", REQUEST_ID.to_owned()),
            ("Content-Type", "text/xml".to_owned()),
        ],
        body.as_bytes(),
    )
}

fn s3_error(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>4442587FB7D0A2F9</RequestId><HostId>ZmF1bHQtcHJveHk=</HostId></Error>"
    );
    let reason = if code == "SlowDown" {
        "Slow Down"
    } else {
        reason(status)
    };
    response(
        status,
        reason,
        &[
            ("x-amz-request-id", "4442587FB7D0A2F9".to_owned()),
            ("x-amz-id-2", "ZmF1bHQtcHJveHk=".to_owned()),
            ("Content-Type", "application/xml".to_owned()),
        ],
        body.as_bytes(),
    )
}

fn bare_status(status: u16) -> Vec<u8> {
    let body = format!("<html><body><h1>{status} {}</h1></body></html>", reason(status));
    response(
        status,
        reason(status),
        &[("Content-Type", "text/html".to_owned())],
        body.as_bytes(),
    )
}
