//! The production fault model: every KMS and S3 failure AWS can send, injected on the wire by a proxy
//! in front of moto (tests/common/fault.rs), through the real SDK clients and the real `Archiver`.
//!
//! Each test asserts where every record of its batch ended (archive lines in S3, quarantine
//! documents, the sequence number Kinesis retries from, nothing written after it) and what was
//! logged: the error code, the fix for configuration errors, and never any SQL text or key material.
//! The rows, and what happens to the records:
//!
//! | fault (injected on the wire)                                   | record                  |
//! |----------------------------------------------------------------|-------------------------|
//! | KMS `InvalidCiphertextException`, `IncorrectKeyException`, `ValidationException`, `InvalidKeyUsageException` | quarantined, batch goes on |
//! | KMS throttling, `KMSInternalException`, `DependencyTimeoutException`, `KMSInvalidStateException`, `DisabledException`, `KeyUnavailableException`, bare 500/503 | retried from it |
//! | KMS `AccessDeniedException`, `NotFoundException`, `UnrecognizedClientException`, `ExpiredTokenException`, no credentials | retried from it, message says what to fix |
//! | key blob empty or over 6,144 bytes                             | quarantined, no KMS call |
//! | foreign-key blob with `DAS_KMS_KEY_ARN` pinned (`IncorrectKeyException`) | quarantined |
//! | KMS slow past the attempt timeout once; throttled once          | absorbed by the SDK's retry, archived |
//! | KMS never answers                                              | retried from it          |
//! | S3 `SlowDown`, `InternalError`, `AccessDenied`, `NoSuchBucket` on PutObject, or no answer | retried from the first record the failed object holds |
//! | KMS throttling of a 13-hour-old record (a catch-up), default give-up settings | retried from it; given up (quarantined) once it has failed for 30 minutes |
//! | KMS throttling of a record 23.5 hours old (within an hour of the 24-hour retention) | given up at once |
//! | every record of a 10,000-record batch under a key other than the pinned one | all quarantined in one invocation, at most `WRITE_CONCURRENCY` requests in flight |

#![cfg(feature = "lambda")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use base64::Engine as _;
use common::fault::{Answer, FaultProxy, Match, Rule};
use common::moto::{self, Moto};
use das_archiver::archive::{Layout, S3Sink, Sink};
use das_archiver::batch::{Archiver, WRITE_CONCURRENCY};
use das_archiver::compress::Compression;
use das_archiver::envelope::{Envelope, ResourceId};
use das_archiver::error::{Classify, FailureKind};
use das_archiver::esdk::RawAesKeyring;
use das_archiver::filter::Filter;
use das_archiver::keys::{DataKeySource, KeyCache, KeyError, KmsKeySource};
use das_archiver::record::{self, EncodeOptions};
use das_archiver::simulate::{lambda_kinesis_event, Engine, Simulator};
use serde_json::{json, Value};
use zeroize::Zeroizing;

const BUCKET: &str = "das-archive";
const ARRIVAL: f64 = 1_795_314_600.0; // 2026-11-22 02:30 UTC
const SHARD: &str = "shardId-000000000000";
/// Short bounds, so a silent endpoint costs seconds; a healthy moto answers in milliseconds.
const ATTEMPT: Duration = Duration::from_millis(1500);
const OPERATION: Duration = Duration::from_secs(6);
/// The level the batch logs a configuration error at today (src/aws/batch.rs logs every transient
/// failure at WARN). When the batch logs `KeyError::is_configuration()` and
/// `SinkError::is_configuration()` at ERROR, set "ERROR".
const CONFIGURATION_LEVEL: &str = "ERROR";

struct Env {
    _moto: Moto,
    /// Straight to moto: setting up keys and reading S3 back.
    cfg: SdkConfig,
    proxy: FaultProxy,
    /// Through the proxy: what the archiver under test uses.
    faulty: SdkConfig,
    key_id: String,
}

impl Env {
    async fn start() -> Self {
        let moto = Moto::start();
        let cfg = moto.sdk_config().await;
        let key_id = moto::create_kms_key(&cfg).await;
        moto::create_bucket(&cfg, BUCKET).await;
        let proxy = FaultProxy::start(&moto.endpoint).await;
        let faulty = proxy.sdk_config(&cfg);
        Self {
            _moto: moto,
            cfg,
            proxy,
            faulty,
            key_id,
        }
    }

    fn key_arn(&self, key_id: &str) -> String {
        format!("arn:aws:kms:us-east-1:123456789012:key/{key_id}")
    }

    fn kms(&self) -> KmsKeySource {
        KmsKeySource::with_timeouts(&self.faulty, ATTEMPT, OPERATION)
    }

    fn s3(&self) -> S3Sink {
        S3Sink::with_timeouts(&self.faulty, BUCKET, true, ATTEMPT, OPERATION)
    }

    /// The archiver as the Lambda builds it, with the settings `vars` and both clients through the proxy.
    fn archiver(&self, vars: &[(&str, &str)]) -> Archiver<KmsKeySource, S3Sink> {
        let settings = moto::archive_settings(BUCKET, vars);
        Archiver::new(
            settings.batch_settings(),
            KeyCache::new(self.kms().with_key_arns(&settings.kms_key_arns), settings.key_cache),
            Filter::new(&settings.filter).unwrap(),
            self.s3(),
        )
    }
}

/// A batch of records, each under its own data key, and what it must become.
struct Batch {
    resource: ResourceId,
    data: Vec<Vec<u8>>,
    payloads: Vec<Vec<u8>>,
    blobs: Vec<Vec<u8>>,
    keys: Vec<Zeroizing<Vec<u8>>>,
    event: Value,
}

impl Batch {
    async fn new(env: &Env, id: &str, count: usize, first_arrival: f64) -> Self {
        let resource = ResourceId::parse(id).unwrap();
        let instance = format!("db-{}", &id[8..]);
        let mut sim = Simulator::new(Engine::AuroraPostgresql, id, &instance, count as u64);
        let options = EncodeOptions {
            version: Engine::AuroraPostgresql.record_version().into(),
            esdk: Engine::AuroraPostgresql.encrypt_options(),
        };
        let mut batch = Self {
            resource,
            data: Vec::new(),
            payloads: Vec::new(),
            blobs: Vec::new(),
            keys: Vec::new(),
            event: Value::Null,
        };
        for _ in 0..count {
            let (key, blob) = moto::generate_das_data_key(&env.cfg, &env.key_id, &batch.resource).await;
            let events = sim.events(4);
            let payload = sim.payload(&events);
            let keyring = RawAesKeyring::das(&key).unwrap();
            batch
                .data
                .push(record::encode_with(&payload, &keyring, &blob, &options).unwrap());
            batch.payloads.push(payload);
            batch.blobs.push(blob);
            batch.keys.push(key);
        }
        batch.rebuild_event(first_arrival);
        batch
    }

    fn rebuild_event(&mut self, first_arrival: f64) {
        let arn = format!(
            "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
            self.resource.stream_name()
        );
        self.event = lambda_kinesis_event(&arn, SHARD, &self.data, 0, first_arrival);
    }

    fn sequence(&self, index: usize) -> Value {
        self.event["Records"][index]["kinesis"]["sequenceNumber"].clone()
    }

    /// Record `index`'s key blob as it appears in a KMS request body (base64 in JSON).
    fn blob_b64(&self, index: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.blobs[index])
    }

    /// Every event line the archive must hold for the records at `indices`.
    fn expected_lines(&self, indices: impl IntoIterator<Item = usize>) -> Vec<Value> {
        indices
            .into_iter()
            .flat_map(|i| common::expected_event_lines(&self.payloads[i]))
            .collect()
    }

    /// Every SQL text in the batch: none may ever reach a log.
    fn sql_texts(&self) -> Vec<String> {
        self.payloads
            .iter()
            .flat_map(|p| {
                let payload: Value = serde_json::from_slice(p).unwrap();
                payload["databaseActivityEventList"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["commandText"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .filter(|sql| sql.len() >= 8)
            .collect()
    }
}

/// Where the records of a batch must end.
#[derive(Debug, Clone, Copy)]
enum Ended {
    /// All archived, nothing quarantined, nothing retried.
    AllArchived,
    /// This record quarantined (its reason naming the code), every other record archived.
    Quarantined(usize),
    /// Kinesis retries from this record: every record before it archived, nothing at or after it written.
    RetryFrom(usize),
}

async fn quarantined(cfg: &SdkConfig, resource: &ResourceId) -> Vec<Value> {
    moto::read_objects(cfg, BUCKET, &format!("activity/quarantine/{resource}/"))
        .await
        .values()
        .map(|body| serde_json::from_slice(body).unwrap())
        .collect()
}

/// Runs the batch and asserts the response, the archive and the quarantine for `ended`;
/// `reason` must appear in a quarantine document's error.
async fn run_and_check(
    env: &Env,
    archiver: &Archiver<KmsKeySource, S3Sink>,
    batch: &Batch,
    ended: Ended,
    reason: &str,
) {
    let response = moto::invoke(archiver, batch.event.clone()).await;
    let count = batch.data.len();
    let (failures, archived, quarantine): (Value, Vec<usize>, Option<usize>) = match ended {
        Ended::AllArchived => (json!([]), (0..count).collect(), None),
        Ended::Quarantined(q) => (json!([]), (0..count).filter(|i| *i != q).collect(), Some(q)),
        Ended::RetryFrom(r) => (json!([{"itemIdentifier": batch.sequence(r)}]), (0..r).collect(), None),
    };
    let context = format!("{} ({reason}, {ended:?})", batch.resource);
    assert_eq!(response, json!({"batchItemFailures": failures}), "{context}");
    assert_eq!(
        moto::archived_lines(&env.cfg, BUCKET, &format!("activity/{}/", batch.resource)).await,
        batch.expected_lines(archived),
        "{context}: archive"
    );
    let documents = quarantined(&env.cfg, &batch.resource).await;
    match quarantine {
        None => assert!(documents.is_empty(), "{context}: quarantine {documents:?}"),
        Some(q) => {
            assert_eq!(documents.len(), 1, "{context}: quarantine {documents:?}");
            assert_eq!(
                documents[0]["kinesis"]["sequenceNumber"],
                batch.sequence(q),
                "{context}"
            );
            let error = documents[0]["error"].as_str().unwrap();
            assert!(error.contains(reason), "{context}: quarantine reason {error}");
            assert!(batch.sql_texts().iter().all(|sql| !error.contains(sql.as_str())));
        }
    }
}

/// Log output captured for one test (this thread's events, our crate at every level, the rest at INFO).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,das_archiver=trace"))
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything logged since the last call.
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// The log lines that mention `needle`, each with its level.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// Asserts that no SQL text or data key of the batch appears in `log`.
fn assert_nothing_leaked(log: &str, batch: &Batch) {
    for sql in batch.sql_texts() {
        assert!(!log.contains(sql.as_str()), "SQL text in the log: {sql}");
    }
    for key in &batch.keys {
        assert!(!log.contains(&hex::encode(key.as_slice())), "a data key in the log");
        assert!(!log.contains(&base64::engine::general_purpose::STANDARD.encode(key.as_slice())));
    }
}

/// One `Decrypt` of record `index`'s blob straight through the proxy, for the error's class.
async fn decrypt_directly(env: &Env, batch: &Batch, index: usize) -> KeyError {
    env.kms()
        .decrypt(&batch.blobs[index], &batch.resource)
        .await
        .expect_err("the fault proxy fails this Decrypt")
}

#[tokio::test]
async fn each_permanent_kms_error_quarantines_its_record_and_the_batch_goes_on() {
    let env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    let codes = [
        "InvalidCiphertextException",
        "IncorrectKeyException",
        "ValidationException",
        "InvalidKeyUsageException",
    ];
    for (n, code) in codes.into_iter().enumerate() {
        let batch = Batch::new(&env, &format!("cluster-PERMANENT0000{n}"), 3, ARRIVAL).await;
        env.proxy.reset();
        env.proxy
            .add(Rule::new(Match::Kms("Decrypt"), Answer::kms(code)).body_contains(batch.blob_b64(1)));
        let archiver = env.archiver(&[]);
        run_and_check(&env, &archiver, &batch, Ended::Quarantined(1), code).await;
        let calls = env.proxy.seen().iter().filter(|s| s.injected).count();
        assert_eq!(calls, 1, "{code}: a permanent error is not retried by the SDK either");
        let log = logs.take();
        assert!(
            lines_with(&log, code)
                .iter()
                .any(|l| l.contains(" WARN ") && l.contains("quarantined")),
            "{code}: {log}"
        );
        assert_nothing_leaked(&log, &batch);
        let err = decrypt_directly(&env, &batch, 1).await;
        assert_eq!(
            (err.failure_kind(), err.is_configuration()),
            (FailureKind::Permanent, false),
            "{code}: {err}"
        );
    }
}

#[tokio::test]
async fn each_transient_kms_error_is_retried_from_its_record_with_the_records_before_it_archived() {
    let env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    let faults = [
        ("ThrottlingException", Answer::kms("ThrottlingException")),
        ("KMSInternalException", Answer::kms("KMSInternalException")),
        ("DependencyTimeoutException", Answer::kms("DependencyTimeoutException")),
        ("KMSInvalidStateException", Answer::kms("KMSInvalidStateException")),
        ("DisabledException", Answer::kms("DisabledException")),
        ("KeyUnavailableException", Answer::kms("KeyUnavailableException")),
        ("500", Answer::Status(500)),
        ("503", Answer::Status(503)),
    ];
    for (n, (name, answer)) in faults.into_iter().enumerate() {
        let batch = Batch::new(&env, &format!("cluster-TRANSIENT0000{n}"), 3, ARRIVAL).await;
        env.proxy.reset();
        env.proxy
            .add(Rule::new(Match::Kms("Decrypt"), answer).body_contains(batch.blob_b64(1)));
        let archiver = env.archiver(&[]);
        run_and_check(&env, &archiver, &batch, Ended::RetryFrom(1), name).await;
        let log = logs.take();
        assert!(
            lines_with(&log, name)
                .iter()
                .any(|l| l.contains(" WARN ") && l.contains("retr")),
            "{name}: {log}"
        );
        assert_nothing_leaked(&log, &batch);
        let err = decrypt_directly(&env, &batch, 1).await;
        assert_eq!(
            (err.failure_kind(), err.is_configuration()),
            (FailureKind::Transient, false),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn each_kms_configuration_error_is_retried_and_the_log_says_what_to_fix() {
    let env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    let faults = [
        ("AccessDeniedException", "kms:Decrypt"),
        ("NotFoundException", "DAS_KMS_KEY_ARN"),
        ("UnrecognizedClientException", "credentials"),
        ("ExpiredTokenException", "credentials"),
    ];
    for (n, (code, fix)) in faults.into_iter().enumerate() {
        let batch = Batch::new(&env, &format!("cluster-CONFIGURE0000{n}"), 3, ARRIVAL).await;
        env.proxy.reset();
        env.proxy
            .add(Rule::new(Match::Kms("Decrypt"), Answer::kms(code)).body_contains(batch.blob_b64(1)));
        let archiver = env.archiver(&[]);
        run_and_check(&env, &archiver, &batch, Ended::RetryFrom(1), code).await;
        let log = logs.take();
        assert!(
            lines_with(&log, code)
                .iter()
                .any(|l| l.contains(&format!(" {CONFIGURATION_LEVEL} ")) && l.contains(fix)),
            "{code}: the log must say what to fix ({fix}): {log}"
        );
        assert_nothing_leaked(&log, &batch);
        let err = decrypt_directly(&env, &batch, 1).await;
        assert_eq!(
            (err.failure_kind(), err.is_configuration()),
            (FailureKind::Transient, true),
            "{code}: {err}"
        );
    }
}

/// A credentials provider that never has credentials (an execution role that cannot be assumed).
#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded("no credentials in this test"),
        ))
    }
}

#[tokio::test]
async fn missing_credentials_are_a_configuration_error_and_no_request_is_sent() {
    let mut env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    let batch = Batch::new(&env, "cluster-NOCREDENTIALS1", 3, ARRIVAL).await;
    env.faulty = env
        .faulty
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            NoCredentials,
        ))
        .build();
    let err = decrypt_directly(&env, &batch, 0).await;
    assert_eq!(
        (err.failure_kind(), err.is_configuration()),
        (FailureKind::Transient, true),
        "{err}"
    );
    assert!(err.to_string().contains("CredentialsError"), "{err}");
    // S3 goes straight to moto here, so what is retried is KMS's doing alone.
    let settings = moto::archive_settings(BUCKET, &[]);
    let archiver = Archiver::new(
        settings.batch_settings(),
        KeyCache::new(env.kms(), settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        S3Sink::with_timeouts(&env.cfg, BUCKET, true, ATTEMPT, OPERATION),
    );
    run_and_check(&env, &archiver, &batch, Ended::RetryFrom(0), "CredentialsError").await;
    assert_eq!(env.proxy.count(&Match::Kms("Decrypt")), 0, "nothing unsigned is sent");
    let log = logs.take();
    assert!(
        lines_with(&log, "CredentialsError")
            .iter()
            .any(|l| l.contains(&format!(" {CONFIGURATION_LEVEL} ")) && l.contains("execution role")),
        "{log}"
    );
    assert_nothing_leaked(&log, &batch);
}

#[tokio::test]
async fn oversized_and_empty_key_blobs_are_quarantined_without_a_kms_call() {
    let env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    for (n, (len, reason)) in [
        (6145, "6145 bytes"),
        (64 * 1024, "65536 bytes"),
        (0, "key field is empty"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut batch = Batch::new(&env, &format!("cluster-BLOBSIZE00000{n}"), 3, ARRIVAL).await;
        let mut envelope = Envelope::parse(&batch.data[1]).unwrap();
        envelope.key_blob = vec![0x5a; len];
        batch.data[1] = envelope.to_json();
        batch.blobs[1] = vec![0x5a; len];
        batch.rebuild_event(ARRIVAL);
        env.proxy.reset();
        let archiver = env.archiver(&[]);
        run_and_check(&env, &archiver, &batch, Ended::Quarantined(1), reason).await;
        let decrypts = env.proxy.seen();
        assert_eq!(
            decrypts.len(),
            2 + 2,
            "{len}: one Decrypt per good record and one PutObject each for archive and quarantine"
        );
        assert_eq!(
            env.proxy.count(&Match::Kms("Decrypt")),
            2,
            "{len}: no KMS call for the bad blob"
        );
        assert_eq!(archiver.keys().len(), 2, "{len}: no cache slot for the bad blob");
        assert_nothing_leaked(&logs.take(), &batch);
    }
}

#[tokio::test]
async fn a_foreign_key_blob_is_quarantined_not_retried_when_the_key_is_pinned() {
    let env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    let pinned = env.key_arn(&env.key_id);
    let foreign_key = moto::create_kms_key(&env.cfg).await;
    let mut batch = Batch::new(&env, "cluster-FOREIGNKEY0001", 3, ARRIVAL).await;
    // Record 1's data key comes from another KMS key, with this stream's encryption context.
    let (key, blob) = moto::generate_das_data_key(&env.cfg, &foreign_key, &batch.resource).await;
    let options = EncodeOptions {
        version: Engine::AuroraPostgresql.record_version().into(),
        esdk: Engine::AuroraPostgresql.encrypt_options(),
    };
    batch.data[1] =
        record::encode_with(&batch.payloads[1], &RawAesKeyring::das(&key).unwrap(), &blob, &options).unwrap();
    batch.blobs[1] = blob;
    batch.keys[1] = key;
    batch.rebuild_event(ARRIVAL);
    // Real KMS answers a KeyId that did not encrypt the blob with IncorrectKeyException; moto 5.2
    // answers AccessDeniedException instead, so the proxy answers as AWS does for that request only.
    env.proxy.add(
        Rule::new(Match::Kms("Decrypt"), Answer::kms("IncorrectKeyException"))
            .body_contains(batch.blob_b64(1))
            .body_contains(format!("\"KeyId\":\"{pinned}\"")),
    );
    let archiver = env.archiver(&[("DAS_KMS_KEY_ARN", &pinned)]);
    run_and_check(&env, &archiver, &batch, Ended::Quarantined(1), "IncorrectKeyException").await;
    let decrypts: Vec<_> = env.proxy.seen().into_iter().filter(|s| s.target.is_some()).collect();
    assert_eq!(decrypts.len(), 3);
    for seen in &decrypts {
        let body: Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(body["KeyId"], pinned, "every Decrypt names the pinned key");
    }
    assert_nothing_leaked(&logs.take(), &batch);

    // With several keys configured, none is named: one stack may archive streams under different keys.
    env.proxy.reset();
    let other = Batch::new(&env, "cluster-SEVERALKEYS001", 2, ARRIVAL).await;
    let several = format!("{pinned},{}", env.key_arn(&foreign_key));
    let archiver = env.archiver(&[("DAS_KMS_KEY_ARN", &several)]);
    run_and_check(&env, &archiver, &other, Ended::AllArchived, "").await;
    for seen in env.proxy.seen().iter().filter(|s| s.target.is_some()) {
        let body: Value = serde_json::from_slice(&seen.body).unwrap();
        assert!(body.get("KeyId").is_none(), "{body}");
    }
}

#[tokio::test]
async fn one_throttled_or_slow_kms_answer_is_absorbed_by_the_sdk_retry_and_everything_is_archived() {
    let env = Env::start().await;
    let faults = [
        ("throttled once", Answer::kms("ThrottlingException")),
        (
            "slower than the attempt timeout once",
            Answer::Slow(ATTEMPT + Duration::from_secs(1)),
        ),
    ];
    for (n, (name, answer)) in faults.into_iter().enumerate() {
        let batch = Batch::new(&env, &format!("cluster-ABSORBED00000{n}"), 3, ARRIVAL).await;
        env.proxy.reset();
        env.proxy.add(
            Rule::new(Match::Kms("Decrypt"), answer)
                .body_contains(batch.blob_b64(1))
                .only_call(1),
        );
        let archiver = env.archiver(&[]);
        run_and_check(&env, &archiver, &batch, Ended::AllArchived, name).await;
        let tries = env
            .proxy
            .seen()
            .iter()
            .filter(|s| {
                s.body
                    .windows(batch.blob_b64(1).len())
                    .any(|w| w == batch.blob_b64(1).as_bytes())
            })
            .count();
        assert_eq!(tries, 2, "{name}: the SDK tried record 1's key twice");
    }
}

#[tokio::test]
async fn when_kms_never_answers_one_key_the_batch_is_retried_from_that_record() {
    let env = Env::start().await;
    let batch = Batch::new(&env, "cluster-SILENTKEY00001", 3, ARRIVAL).await;
    env.proxy
        .add(Rule::new(Match::Kms("Decrypt"), Answer::Silence).body_contains(batch.blob_b64(1)));
    let archiver = env.archiver(&[]);
    run_and_check(&env, &archiver, &batch, Ended::RetryFrom(1), "").await;
}

#[tokio::test]
async fn each_s3_error_on_put_object_is_retried_from_the_first_record_of_the_failed_object() {
    let env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    // Records 0 and 1 arrive in hour 02, record 2 in hour 03: two objects, and only the second fails.
    let first_arrival = 1_795_316_399.998_5;
    for (n, code) in ["SlowDown", "InternalError", "AccessDenied", "NoSuchBucket"]
        .into_iter()
        .enumerate()
    {
        let batch = Batch::new(&env, &format!("cluster-S3FAULT000000{n}"), 3, first_arrival).await;
        env.proxy.reset();
        env.proxy
            .add(Rule::new(Match::S3PutObject, Answer::s3(code)).path_contains("/hour=03/"));
        let archiver = env.archiver(&[]);
        run_and_check(&env, &archiver, &batch, Ended::RetryFrom(2), code).await;
        let configuration = matches!(code, "AccessDenied" | "NoSuchBucket");
        let level = if configuration { CONFIGURATION_LEVEL } else { "WARN" };
        let log = logs.take();
        assert!(
            lines_with(&log, code).iter().any(|l| l.contains(&format!(" {level} "))),
            "{code}: {log}"
        );
        assert_nothing_leaked(&log, &batch);

        let err = env
            .s3()
            .put(
                Layout {
                    prefix: "activity/".into(),
                    compression: Compression::None,
                }
                .archive_object(
                    format!("activity/{}/dt=2026-11-22/hour=03/direct.ndjson", batch.resource),
                    &[b"{}\n"],
                ),
            )
            .await
            .expect_err("the fault proxy fails this PutObject");
        assert_eq!(
            (err.failure_kind(), err.is_configuration()),
            (FailureKind::Transient, configuration),
            "{code}: {err}"
        );
    }
}

#[tokio::test]
async fn when_s3_never_answers_the_batch_is_retried_within_the_timeouts() {
    let env = Env::start().await;
    let batch = Batch::new(&env, "cluster-SILENTS3000001", 3, ARRIVAL).await;
    env.proxy.add(Rule::new(Match::S3PutObject, Answer::Silence));
    let archiver = env.archiver(&[]);
    run_and_check(&env, &archiver, &batch, Ended::RetryFrom(0), "").await;
    assert_eq!(
        env.proxy.count(&Match::S3PutObject),
        3,
        "three attempts, each abandoned at the attempt timeout"
    );
}

/// The function's give-up settings as deployed (moto's test settings turn giving up off).
const DEPLOYED_GIVE_UP: [(&str, &str); 3] = [
    ("DAS_GIVE_UP_AFTER_SECONDS", "43200"),
    ("DAS_GIVE_UP_FAILING_SECONDS", "1800"),
    ("DAS_STREAM_RETENTION_HOURS", "24"),
];

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The records of `batch` from `from` on, as Lambda sends them again after a partial failure.
fn retried_from(batch: &Batch, from: usize) -> das_archiver::batch::Batch {
    let mut event = batch.event.clone();
    let records = event["Records"].as_array_mut().unwrap();
    records.drain(..from);
    let event: das_archiver::lambda::KinesisBatchEvent = serde_json::from_value(event).unwrap();
    das_archiver::batch::Batch::from(event)
}

#[tokio::test]
async fn during_a_catch_up_a_throttled_record_is_retried_and_given_up_only_after_failing_for_half_an_hour() {
    let env = Env::start().await;
    let (logs, _guard) = Logs::capture();
    // A mapping reading 13 hours behind: every record is older than the 12-hour give-up age.
    let start = SystemTime::now();
    let batch = Batch::new(&env, "cluster-CATCHUP0000001", 3, unix_now() - 13.0 * 3600.0).await;
    env.proxy
        .add(Rule::new(Match::Kms("Decrypt"), Answer::kms("ThrottlingException")).body_contains(batch.blob_b64(1)));
    let archiver = env.archiver(&DEPLOYED_GIVE_UP);
    run_and_check(&env, &archiver, &batch, Ended::RetryFrom(1), "ThrottlingException").await;
    // Lambda sends record 1 again and again; 29 minutes on, it is still retried.
    let retry = archiver
        .process_at(retried_from(&batch, 1), start + Duration::from_secs(29 * 60))
        .await;
    assert_eq!(retry.retry_from.as_ref().map(|s| json!(s)), Some(batch.sequence(1)));
    assert!(quarantined(&env.cfg, &batch.resource).await.is_empty());
    // 30 minutes on, it is given up: quarantined, still encrypted, and record 2 is archived.
    let outcome = archiver
        .process_at(retried_from(&batch, 1), start + Duration::from_secs(30 * 60 + 5))
        .await;
    assert_eq!((outcome.retry_from, outcome.metrics.records_given_up), (None, 1));
    let documents = quarantined(&env.cfg, &batch.resource).await;
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0]["errorKind"], "given-up");
    assert_eq!(documents[0]["kinesis"]["sequenceNumber"], batch.sequence(1));
    let error = documents[0]["error"].as_str().unwrap();
    assert!(
        error.contains("still failing after") && error.contains("ThrottlingException"),
        "{error}"
    );
    assert_eq!(
        moto::archived_lines(&env.cfg, BUCKET, &format!("activity/{}/", batch.resource)).await,
        batch.expected_lines([0, 2])
    );
    assert_nothing_leaked(&logs.take(), &batch);
}

#[tokio::test]
async fn a_throttled_record_within_an_hour_of_the_streams_retention_is_given_up_at_once() {
    let env = Env::start().await;
    let batch = Batch::new(&env, "cluster-NEARRETENTION1", 3, unix_now() - 23.5 * 3600.0).await;
    env.proxy
        .add(Rule::new(Match::Kms("Decrypt"), Answer::kms("ThrottlingException")).body_contains(batch.blob_b64(1)));
    let archiver = env.archiver(&DEPLOYED_GIVE_UP);
    run_and_check(&env, &archiver, &batch, Ended::Quarantined(1), "24 h retention").await;
    assert_eq!(quarantined(&env.cfg, &batch.resource).await[0]["errorKind"], "given-up");
}

/// Every key under `prefix`, listed (no object read).
async fn list_keys(cfg: &SdkConfig, prefix: &str) -> Vec<String> {
    let s3 = moto::s3_client(cfg);
    let mut pages = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys
}

#[tokio::test]
async fn a_batch_of_ten_thousand_poison_records_is_quarantined_in_one_invocation_with_bounded_concurrency() {
    const RECORDS: usize = 10_000;
    let env = Env::start().await;
    // The stream was restarted under a new key while DAS_KMS_KEY_ARN still pins the old one: every
    // record's data key is under the new key, and KMS answers each Decrypt naming the old one with
    // IncorrectKeyException (moto answers AccessDeniedException; the proxy answers as AWS does).
    let pinned = env.key_arn(&env.key_id);
    let new_key = moto::create_kms_key(&env.cfg).await;
    let resource = ResourceId::parse("cluster-RESTARTEDKEY01").unwrap();
    let mut sim = Simulator::new(Engine::AuroraPostgresql, resource.as_str(), "db-RESTARTEDKEY01", 7);
    let mut data = Vec::with_capacity(RECORDS);
    // DAS reuses a data key for many records: ten keys for the batch.
    for _ in 0..10 {
        let (key, blob) = moto::generate_das_data_key(&env.cfg, &new_key, &resource).await;
        let keyring = RawAesKeyring::das(&key).unwrap();
        for _ in 0..RECORDS / 10 {
            let events = sim.events(1);
            let payload = sim.payload(&events);
            data.push(record::encode_with(&payload, &keyring, &blob, &EncodeOptions::default()).unwrap());
        }
    }
    let arn = format!(
        "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
        resource.stream_name()
    );
    let event = lambda_kinesis_event(&arn, SHARD, &data, 0, ARRIVAL);
    env.proxy.add(
        Rule::new(Match::Kms("Decrypt"), Answer::kms("IncorrectKeyException"))
            .body_contains(format!("\"KeyId\":\"{pinned}\"")),
    );
    // Attempts as long as the function's whole timeout: an attempt abandoned by the SDK would still
    // hold its connection to the proxy (counted in flight) while moto, slow on a busy machine, answers.
    let settings = moto::archive_settings(BUCKET, &[("DAS_KMS_KEY_ARN", &pinned)]);
    let patient = Duration::from_secs(120);
    let archiver = Archiver::new(
        settings.batch_settings(),
        KeyCache::new(env.kms().with_key_arns(&settings.kms_key_arns), settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        S3Sink::with_timeouts(&env.faulty, BUCKET, true, patient, patient),
    );
    let started = std::time::Instant::now();
    let response = moto::invoke(&archiver, event).await;
    eprintln!(
        "{RECORDS} poison records quarantined in {:?}, peak {} requests in flight",
        started.elapsed(),
        env.proxy.peak_in_flight()
    );
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "one invocation finishes the batch"
    );
    assert_eq!(env.proxy.count(&Match::Kms("Decrypt")), 10, "one Decrypt per data key");
    assert_eq!(
        env.proxy.count(&Match::S3PutObject),
        RECORDS,
        "one quarantine object per record"
    );
    let peak = env.proxy.peak_in_flight();
    assert!(
        (2..=WRITE_CONCURRENCY).contains(&peak),
        "concurrent, and never more than {WRITE_CONCURRENCY} requests at once: {peak}"
    );
    let keys = list_keys(&env.cfg, &format!("activity/quarantine/{resource}/")).await;
    assert_eq!(keys.len(), RECORDS);
    assert!(list_keys(&env.cfg, &format!("activity/{resource}/")).await.is_empty());
    let sample = moto::read_objects(&env.cfg, BUCKET, &keys[RECORDS / 2]).await;
    let document: Value = serde_json::from_slice(sample.values().next().unwrap()).unwrap();
    assert_eq!(document["errorKind"], "permanent");
    assert!(document["error"].as_str().unwrap().contains("IncorrectKeyException"));
}
