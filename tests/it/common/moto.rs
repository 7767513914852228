//! A real local AWS-compatible server for the integration tests: moto in server mode.
//!
//! [`Moto::start`] runs the project virtualenv's `moto_server` (installed by `make venv`) on a free
//! port of 127.0.0.1, and the SDK reaches it through the standard endpoint setting only
//! ([`Moto::sdk_config`]); no test-only code path exists in the product. Every test starts its own
//! server: servers share nothing (state, port, request recording), so tests may run in parallel.
//!
//! moto quirks worth knowing:
//! - S3 must use path-style addressing (`http://127.0.0.1:port/bucket/key`): use [`s3_client`].
//! - moto derives the region from each request's signature, so everything here is `us-east-1`.
//! - KMS ciphertext blobs embed the key id, so `Decrypt` needs no `KeyId`; moto authenticates the
//!   encryption context as AAD and answers a wrong or missing one with `InvalidCiphertextException`.
//! - The request recorder appends one JSON object per request (`{"headers", "method", "url",
//!   "body", "body_encoded"}`) to `$MOTO_RECORDER_FILEPATH`, which each server here gets in its own
//!   temp dir; requests to `/moto-api/recorder/…` are never recorded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeySpec, KeyUsageType};
use das_archiver::envelope::ResourceId;
use zeroize::Zeroizing;

/// How long [`Moto::start`] waits for the server to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often it polls meanwhile.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Connect/read/write timeout of the small requests to moto's own `/moto-api/…`.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports to try when another process takes the free port before moto binds it.
const PORT_ATTEMPTS: usize = 3;
/// How much of the server log a startup failure quotes.
const LOG_TAIL_BYTES: usize = 4000;

/// A running `moto_server`, killed and reaped on drop.
pub(crate) struct Moto {
    /// `http://127.0.0.1:<port>`, for [`aws_config::ConfigLoader::endpoint_url`].
    pub(crate) endpoint: String,
    /// The server's address.
    addr: SocketAddr,
    /// `None` once [`Moto::stop`]ped.
    child: Option<Child>,
    /// Holds `moto.log` (the server's stdout and stderr) and `recording.jsonl`. Kept on disk,
    /// and its path printed, when the test panics.
    dir: Option<tempfile::TempDir>,
}

impl Moto {
    /// Starts `moto_server` on 127.0.0.1 on a free port and waits (up to 30 s) until it answers.
    ///
    /// The executable is `$DAS_MOTO_SERVER` if set, else `<crate>/.venv/bin/moto_server`. Its stdout
    /// and stderr go to `moto.log` in a temp dir, never to the test's output; a failure to start
    /// panics quoting the end of that log and keeps it.
    pub(crate) fn start() -> Self {
        let exe = moto_server_path();
        let dir = tempfile::Builder::new()
            .prefix("das-moto-")
            .tempdir()
            .expect("creating a temp dir for moto");
        let log_path = dir.path().join("moto.log");
        let recording = dir.path().join("recording.jsonl");
        // moto answers 500 to a download before the first reset or recorded request: start empty.
        File::create(&recording).expect("creating moto's recording file");

        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let addr = free_port();
            let log = File::create(&log_path).expect("creating moto's log file");
            let err_log = log.try_clone().expect("duplicating moto's log file handle");
            let child = Command::new(&exe)
                .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
                .current_dir(dir.path())
                .env("MOTO_RECORDER_FILEPATH", &recording)
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
            let mut moto = Self {
                endpoint: format!("http://{addr}"),
                addr,
                child: Some(child),
                dir: None,
            };
            match moto.wait_until_ready(&log_path) {
                Ok(()) => {
                    moto.dir = Some(dir);
                    return moto;
                }
                Err(Startup::PortTaken) => {
                    moto.stop();
                    last_log = read_log_tail(&log_path);
                }
                Err(Startup::Failed(why)) => {
                    moto.stop();
                    fail_startup(dir, &log_path, &why);
                }
            }
        }
        fail_startup(
            dir,
            &log_path,
            &format!("the port was taken {PORT_ATTEMPTS} times in a row:\n{last_log}"),
        );
    }

    /// Polls until this server answers `GET /moto-api/config` and its log says it is listening on
    /// this port (so a different server that grabbed the port first is never mistaken for it).
    fn wait_until_ready(&mut self, log_path: &Path) -> Result<(), Startup> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let listening = format!("Running on http://{}", self.addr);
        loop {
            let child = self.child.as_mut().expect("a server being started has a child");
            if let Some(status) = child.try_wait().expect("polling moto_server") {
                let log = read_log_tail(log_path);
                return Err(if log.contains("Address already in use") {
                    Startup::PortTaken
                } else {
                    Startup::Failed(format!("moto_server exited with {status} before answering"))
                });
            }
            if std::fs::read_to_string(log_path).is_ok_and(|log| log.contains(&listening))
                && http_request(self.addr, "GET", "/moto-api/config").is_ok_and(|(status, _)| status == 201)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Startup::Failed(format!(
                    "moto_server did not answer on {} within {STARTUP_TIMEOUT:?}",
                    self.endpoint
                )));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// An `SdkConfig` pointed at this server through the standard endpoint setting: region
    /// us-east-1, static test credentials, and otherwise the SDK's defaults (timeouts, retries).
    pub(crate) async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "moto-test",
            ))
            .load()
            .await
    }

    /// Kills and reaps the server, to simulate an outage; the port then refuses connections.
    /// Idempotent. The recorder methods panic afterwards.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited (e.g. it failed to bind) is fine: only reaping matters then.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts recording the requests this server receives (appending to what is recorded).
    pub(crate) fn start_recording(&self) {
        self.control("POST", "/moto-api/recorder/start-recording");
    }

    /// Stops recording; what was recorded stays.
    pub(crate) fn stop_recording(&self) {
        self.control("POST", "/moto-api/recorder/stop-recording");
    }

    /// Erases what was recorded so far; recording stays on or off as it was.
    pub(crate) fn reset_recording(&self) {
        self.control("POST", "/moto-api/recorder/reset-recording");
    }

    /// Every request recorded since the last reset, one JSON object each, oldest first.
    pub(crate) fn recorded_requests(&self) -> Vec<serde_json::Value> {
        let body = self.control("GET", "/moto-api/recorder/download-recording");
        let text = String::from_utf8(body).expect("moto's recording is UTF-8 JSON lines");
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("moto recording line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// How many recorded requests are the KMS operation `op` (`"Decrypt"`, `"GenerateDataKey"`…),
    /// i.e. carry `X-Amz-Target: TrentService.<op>`. Counts SDK retries too: each is a request.
    pub(crate) fn count_kms_calls(&self, op: &str) -> usize {
        let target = format!("TrentService.{op}");
        self.recorded_requests()
            .iter()
            .filter(|request| {
                request["headers"].as_object().is_some_and(|headers| {
                    headers.iter().any(|(name, value)| {
                        name.eq_ignore_ascii_case("x-amz-target") && value.as_str() == Some(&target)
                    })
                })
            })
            .count()
    }

    /// The server log so far (stdout and stderr of `moto_server`).
    pub(crate) fn log(&self) -> String {
        self.dir
            .as_ref()
            .map(|dir| std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default())
            .unwrap_or_default()
    }

    /// A request to moto's own API, which must answer 200; returns the body.
    fn control(&self, method: &str, path: &str) -> Vec<u8> {
        assert!(self.child.is_some(), "moto {method} {path}: the server was stopped");
        match http_request(self.addr, method, path) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!(
                "moto {method} {path} answered {status}: {}",
                String::from_utf8_lossy(&body).chars().take(500).collect::<String>()
            ),
            Err(e) => panic!("moto {method} {path} on {}: {e}", self.endpoint),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("moto server log kept at {}", kept.join("moto.log").display());
            }
        }
    }
}

/// Why a start attempt failed.
enum Startup {
    /// Another process bound the port between our probe and moto's bind: try another port.
    PortTaken,
    /// Anything else: give up.
    Failed(String),
}

/// `$DAS_MOTO_SERVER`, else the project virtualenv's `moto_server`; panics if missing.
fn moto_server_path() -> PathBuf {
    super::venv_tool("moto_server", "DAS_MOTO_SERVER", "moto's server")
}

/// A port of 127.0.0.1 that was free a moment ago (the OS picks it for a bind to port 0).
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("the local address of a bound listener")
}

/// Keeps the temp dir and panics with the end of the server log.
fn fail_startup(dir: tempfile::TempDir, log_path: &Path, why: &str) -> ! {
    let tail = read_log_tail(log_path);
    let _kept = dir.keep();
    panic!(
        "moto_server failed to start: {why}\nlog (kept) at {}, ending with:\n{tail}",
        log_path.display()
    );
}

/// The last few KB of a log file, lossily decoded; empty if unreadable.
fn read_log_tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// A bodiless HTTP/1.0 request (so the answer is neither chunked nor kept alive); returns the
/// status code and the body.
fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, CONTROL_TIMEOUT)?;
    stream.set_read_timeout(Some(CONTROL_TIMEOUT))?;
    stream.set_write_timeout(Some(CONTROL_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    stream.flush()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what} from {addr}"));
    let header_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("an HTTP response without a header end"))?;
    let head = std::str::from_utf8(&response[..header_end]).map_err(|_| invalid("non-UTF-8 HTTP headers"))?;
    // "HTTP/1.1 200 OK"
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("an HTTP response without a status code"))?;
    Ok((status, response.split_off(header_end + 4)))
}

/// Creates a symmetric encrypt/decrypt KMS key and returns its id.
pub(crate) async fn create_kms_key(cfg: &SdkConfig) -> String {
    let out = aws_sdk_kms::Client::new(cfg)
        .create_key()
        .key_spec(KeySpec::SymmetricDefault)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .description("das-archiver test key")
        .send()
        .await
        .unwrap_or_else(|e| panic!("KMS CreateKey: {}", aws_sdk_kms::error::DisplayErrorContext(&e)));
    out.key_metadata.expect("CreateKey returns the key's metadata").key_id
}

/// GenerateDataKey (AES_256) under `key_id` with the DAS encryption context of `resource`, as the
/// DAS producer does: the 32-byte plaintext key, and the ciphertext blob that goes in the record.
pub(crate) async fn generate_das_data_key(
    cfg: &SdkConfig,
    key_id: &str,
    resource: &ResourceId,
) -> (Zeroizing<Vec<u8>>, Vec<u8>) {
    let (context_key, context_value) = resource.encryption_context();
    let out = aws_sdk_kms::Client::new(cfg)
        .generate_data_key()
        .key_id(key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context(context_key, context_value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("KMS GenerateDataKey: {}", aws_sdk_kms::error::DisplayErrorContext(&e)));
    let plaintext = Zeroizing::new(
        out.plaintext
            .map(Blob::into_inner)
            .expect("GenerateDataKey returns Plaintext"),
    );
    let ciphertext = out
        .ciphertext_blob
        .map(Blob::into_inner)
        .expect("GenerateDataKey returns CiphertextBlob");
    assert_eq!(plaintext.len(), 32, "an AES_256 data key is 32 bytes");
    (plaintext, ciphertext)
}

/// An S3 client for `cfg` with path-style addressing, which moto on 127.0.0.1 needs.
pub(crate) fn s3_client(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(cfg).force_path_style(true).build())
}

/// Creates `bucket` (in us-east-1, so without a location constraint).
pub(crate) async fn create_bucket(cfg: &SdkConfig, bucket: &str) {
    s3_client(cfg)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "S3 CreateBucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
}

/// Every object under `prefix`: key → raw body bytes, sorted by key.
pub(crate) async fn read_objects(cfg: &SdkConfig, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    read_objects_paged(cfg, bucket, prefix, None).await
}

/// [`read_objects`], listing `page_size` keys per ListObjectsV2 page (S3's default, 1000, if
/// `None`); tests of the listing itself use small pages.
pub(crate) async fn read_objects_paged(
    cfg: &SdkConfig,
    bucket: &str,
    prefix: &str,
    page_size: Option<i32>,
) -> BTreeMap<String, Vec<u8>> {
    let s3 = s3_client(cfg);
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_max_keys(page_size)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| {
            panic!(
                "S3 ListObjectsV2 {bucket}/{prefix}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key().map(str::to_owned)),
        );
    }
    let mut objects = BTreeMap::new();
    for key in keys {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "S3 GetObject {bucket}/{key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })
            .body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("S3 GetObject {bucket}/{key}: reading the body: {e}"))
            .into_bytes()
            .to_vec();
        let previous = objects.insert(key, body);
        assert!(previous.is_none(), "ListObjectsV2 listed a key twice");
    }
    objects
}

/// The Lambda's settings for a moto test: archive to `bucket` with path-style S3 and no give-up
/// age (the test records are days old: with the default give-up age a retry would be a give-up),
/// then `vars` on top.
pub(crate) fn archive_settings(bucket: &str, vars: &[(&str, &str)]) -> das_archiver::config::Settings {
    let mut all: BTreeMap<&str, &str> = [
        ("DAS_ARCHIVE_BUCKET", bucket),
        ("DAS_S3_FORCE_PATH_STYLE", "true"),
        ("DAS_GIVE_UP_AFTER_SECONDS", "0"),
    ]
    .into();
    all.extend(vars.iter().copied());
    das_archiver::config::Settings::from_lookup(|name| all.get(name).map(|v| (*v).to_owned())).unwrap()
}

/// Every line of every gzip archive object under `prefix`, in key order, parsed, without its
/// provenance fields (see [`super::without_provenance`]).
pub(crate) async fn archived_lines(cfg: &SdkConfig, bucket: &str, prefix: &str) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for (key, body) in read_objects(cfg, bucket, prefix).await {
        assert!(key.ends_with(".ndjson.gz"), "{key}");
        let text = das_archiver::gunzip::gunzip(&body, 1 << 30).unwrap();
        lines.extend(
            String::from_utf8(text)
                .unwrap()
                .lines()
                .map(|l| super::without_provenance(serde_json::from_str(l).unwrap())),
        );
    }
    lines
}

/// The Lambda handler's answer to a Kinesis batch event, as JSON.
#[cfg(feature = "lambda")]
pub(crate) async fn invoke(
    archiver: &das_archiver::batch::Archiver<das_archiver::keys::KmsKeySource, das_archiver::archive::S3Sink>,
    event: serde_json::Value,
) -> serde_json::Value {
    let event: das_archiver::lambda::KinesisBatchEvent = serde_json::from_value(event).unwrap();
    let context = lambda_runtime::Context::default();
    let response = das_archiver::lambda::handle(archiver, lambda_runtime::LambdaEvent::new(event, context))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}
