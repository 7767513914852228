//! The Lambda handler with `DAS_OUTPUT=ndjson,ocsf-parquet` against moto's server: one batch writes
//! the NDJSON archive to the archive bucket and OCSF Parquet objects to the Security Lake bucket under
//! the custom source's layout; a retry rewrites the same keys; the Parquet objects read back with
//! pyarrow (`tests/oracle/ocsf_parquet_read.py`) to exactly the OCSF mapping of the archived lines.
//! With `DAS_SECURITY_LAKE_ROLE_ARN`, the Parquet objects are written with the credentials of the
//! assumed provider role (STS `AssumeRole` with the external id, once per container), the archive
//! with the function's own; a refused `AssumeRole` (injected by the fault proxy) is a configuration
//! error: retried, and logged at ERROR with the fix.

#![cfg(all(feature = "lambda", feature = "ocsf-parquet"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use aws_config::SdkConfig;
use common::moto::{self, Moto};
use das_archiver::archive::S3Sink;
use das_archiver::batch::Archiver;
use das_archiver::config::Settings;
use das_archiver::envelope::ResourceId;
use das_archiver::esdk::RawAesKeyring;
use das_archiver::filter::Filter;
use das_archiver::keys::{KeyCache, KmsKeySource};
use das_archiver::lambda::{handle, KinesisBatchEvent};
use das_archiver::pipeline::ocsf::{self, Provenance};
use das_archiver::record::{self, EncodeOptions};
use das_archiver::simulate::{lambda_kinesis_event, Engine, Simulator};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Map, Value};

const ARCHIVE: &str = "das-archive";
const LAKE: &str = "aws-security-data-lake-us-east-1-test";
const SOURCE: &str = "das-activity";
const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-LAKE00000001";
const PARTITION: &str = "lake/ext/das-activity/region=us-east-1/accountId=123456789012/eventDay=";

const ROLE: &str = "arn:aws:iam::123456789012:role/AmazonSecurityLake-Provider-das-activity-us-east-1";
const EXTERNAL_ID: &str = "das-archiver-external-id-7f3a";

fn archiver(cfg: &SdkConfig) -> Archiver<KmsKeySource, S3Sink> {
    let settings = lake_settings(&[]);
    let sink = S3Sink::new(cfg, &settings.bucket, settings.s3_force_path_style);
    archiver_with(cfg, &settings, sink)
}

/// The archiver as the Lambda binary builds it (`S3Sink::for_outputs`), with the provider role set.
async fn archiver_through_role(cfg: &SdkConfig) -> Archiver<KmsKeySource, S3Sink> {
    let settings = lake_settings(&[
        ("DAS_SECURITY_LAKE_ROLE_ARN", ROLE),
        ("DAS_SECURITY_LAKE_EXTERNAL_ID", EXTERNAL_ID),
    ]);
    let sink = S3Sink::for_outputs(
        cfg,
        &settings.bucket,
        settings.s3_force_path_style,
        settings.outputs.security_lake.as_ref(),
    )
    .await;
    archiver_with(cfg, &settings, sink)
}

fn archiver_with(cfg: &SdkConfig, settings: &Settings, sink: S3Sink) -> Archiver<KmsKeySource, S3Sink> {
    Archiver::new(
        settings.batch_settings(),
        KeyCache::new(KmsKeySource::new(cfg), settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        sink,
    )
}

fn lake_settings(extra: &[(&'static str, &'static str)]) -> Settings {
    let mut vars: BTreeMap<&str, &str> = [
        ("DAS_ARCHIVE_BUCKET", ARCHIVE),
        ("DAS_S3_FORCE_PATH_STYLE", "true"),
        ("DAS_GIVE_UP_AFTER_SECONDS", "0"),
        ("DAS_COMPRESSION", "none"),
        ("DAS_OUTPUT", "ndjson,ocsf-parquet"),
        ("DAS_SECURITY_LAKE_BUCKET", LAKE),
        ("DAS_SECURITY_LAKE_PREFIX", "lake"),
        ("DAS_SECURITY_LAKE_SOURCE", SOURCE),
    ]
    .into();
    vars.extend(extra.iter().copied());
    Settings::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned())).unwrap()
}

/// A Lambda event of `count` Aurora PostgreSQL records under one moto KMS data key, plus a record
/// that is not a DAS record (quarantined once).
async fn event(cfg: &SdkConfig, key_id: &str, count: usize) -> KinesisBatchEvent {
    let resource = ResourceId::parse("cluster-LAKE00000001").unwrap();
    let (key, blob) = moto::generate_das_data_key(cfg, key_id, &resource).await;
    let keyring = RawAesKeyring::das(&key).unwrap();
    let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-LAKE00000001", "db-LAKE00000001", 7);
    let mut data: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let mut events = sim.events(5);
            events.push(sim.heartbeat());
            record::encode_with(&sim.payload(&events), &keyring, &blob, &EncodeOptions::default()).unwrap()
        })
        .collect();
    data.push(b"{not a DAS record".to_vec());
    serde_json::from_value(lambda_kinesis_event(
        STREAM,
        "shardId-000000000003",
        &data,
        500,
        1_795_314_600.0,
    ))
    .unwrap()
}

/// The OCSF event of each archived NDJSON line, mapped from the line and its provenance fields.
fn mapped_from_archive(lines: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(lines).unwrap();
    text.lines()
        .filter_map(|line| {
            let fields: Map<String, Value> = serde_json::from_str(line).unwrap();
            let shard = fields["kinesisShardId"].as_str().unwrap().to_owned();
            let sequence = fields["kinesisSequenceNumber"].as_str().unwrap().to_owned();
            let provenance = Provenance {
                resource_id: "cluster-LAKE00000001",
                stream_arn: STREAM,
                shard_id: &shard,
                sequence_number: &sequence,
                event_index: fields["eventIndex"].as_u64().unwrap() as usize,
                region: "us-east-1",
                account: "123456789012",
                arrival_ms: 0,
            };
            ocsf::map_line(fields.clone(), &provenance)
        })
        .collect()
}

fn read_back(dir: &Path) -> Value {
    let python = common::venv_tool("python", "DAS_PYTHON", "the Python with pyarrow");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ocsf_parquet_read.py");
    let out = Command::new(python).arg(script).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `read_back` of the Security Lake objects read from S3 (`key` → body), written below a temporary folder.
fn read_back_objects(lake: &BTreeMap<String, Vec<u8>>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    for (key, body) in lake {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    read_back(dir.path())
}

#[tokio::test]
async fn both_outputs_write_the_archive_and_security_lake_parquet_that_reads_back_as_the_mapped_events() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto::create_bucket(&cfg, ARCHIVE).await;
    moto::create_bucket(&cfg, LAKE).await;
    let archiver = archiver(&cfg);
    let event = event(&cfg, &key_id, 6).await;

    let response = handle(&archiver, LambdaEvent::new(event.clone(), Context::default()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let archive = moto::read_objects(&cfg, ARCHIVE, "activity/").await;
    let ndjson: Vec<u8> = archive
        .iter()
        .filter(|(k, _)| k.ends_with(".ndjson"))
        .flat_map(|(_, body)| body.clone())
        .collect();
    let quarantined = archive.keys().filter(|k| k.starts_with("activity/quarantine/")).count();
    assert_eq!(
        quarantined,
        1,
        "the bad record is quarantined once: {:?}",
        archive.keys()
    );
    let lake = moto::read_objects(&cfg, LAKE, "").await;
    assert!(!lake.is_empty());
    assert!(
        lake.keys().all(|k| k.starts_with(PARTITION) && k.ends_with(".parquet")),
        "{:?}",
        lake.keys()
    );

    // pyarrow reads back exactly the OCSF mapping of the archived lines, sorted by time.
    let back = read_back_objects(&lake);
    let mut rows: Vec<Value> = Vec::new();
    for (path, object) in back.as_object().unwrap() {
        assert_eq!(object["class_uids"], serde_json::json!([6005]), "{path}");
        assert_eq!(object["partition"]["accountId"], "123456789012");
        rows.extend(object["rows"].as_array().unwrap().iter().cloned());
    }
    let mut expected = mapped_from_archive(&ndjson);
    assert_eq!(expected.len(), 30);
    let uid = |v: &Value| v["metadata"]["uid"].as_str().unwrap().to_owned();
    rows.sort_by_key(uid);
    expected.sort_by_key(uid);
    assert_eq!(rows, expected);

    // A retry of the same batch rewrites the same keys in both buckets.
    handle(&archiver, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let again = moto::read_objects(&cfg, LAKE, "").await;
    assert_eq!(lake.keys().collect::<Vec<_>>(), again.keys().collect::<Vec<_>>());
    assert_eq!(
        archive.keys().collect::<Vec<_>>(),
        moto::read_objects(&cfg, ARCHIVE, "activity/")
            .await
            .keys()
            .collect::<Vec<_>>()
    );
}

/// A recorded request's header, by name in any case.
fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// The access key id a recorded request was signed with: `Credential=<id>/…` in its SigV4
/// `Authorization` header.
fn signed_with(request: &Value) -> String {
    let authorization = header(request, "authorization").expect("a signed request");
    let credential = authorization.split("Credential=").nth(1).unwrap();
    credential.split('/').next().unwrap().to_owned()
}

/// A recorded request's body as text (moto base64-encodes bodies it received as bytes).
fn body_text(request: &Value) -> String {
    let body = request["body"].as_str().unwrap_or_default();
    if request["body_encoded"] == Value::Bool(true) {
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_owned()
    }
}

/// An `application/x-www-form-urlencoded` body (an awsQuery request) as its fields.
fn form_fields(body: &str) -> BTreeMap<String, String> {
    let decode = |text: &str| {
        let bytes = text.replace('+', " ").into_bytes();
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
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The recorded S3 `PUT`s into `bucket` (path style: `/<bucket>/<key>`).
fn puts_into<'a>(requests: &'a [Value], bucket: &str) -> Vec<&'a Value> {
    let path = format!("/{bucket}/");
    requests
        .iter()
        .filter(|r| r["method"] == "PUT" && r["url"].as_str().is_some_and(|u| u.contains(&path)))
        .collect()
}

#[tokio::test]
async fn with_a_provider_role_the_parquet_is_written_with_the_assumed_role_and_the_archive_with_the_functions_own_credentials(
) {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto::create_bucket(&cfg, ARCHIVE).await;
    moto::create_bucket(&cfg, LAKE).await;
    let event = event(&cfg, &key_id, 3).await;
    moto.start_recording();
    let archiver = archiver_through_role(&cfg).await;
    for _ in 0..2 {
        let response = handle(&archiver, LambdaEvent::new(event.clone(), Context::default()))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let requests = moto.recorded_requests();

    // One AssumeRole for both invocations (the credentials are cached), with the role and external
    // id, signed with the function's own credentials.
    let assume: Vec<BTreeMap<String, String>> = requests
        .iter()
        .map(|r| form_fields(&body_text(r)))
        .filter(|fields| fields.get("Action").map(String::as_str) == Some("AssumeRole"))
        .collect();
    assert_eq!(assume.len(), 1, "{assume:?}");
    assert_eq!(assume[0]["RoleArn"], ROLE);
    assert_eq!(assume[0]["ExternalId"], EXTERNAL_ID);
    assert_eq!(assume[0]["RoleSessionName"], "das-archiver");
    let sts = requests
        .iter()
        .find(|r| body_text(r).contains("Action=AssumeRole"))
        .unwrap();
    assert_eq!(signed_with(sts), "testing");

    // The Security Lake objects carry the assumed role's session; the archive's do not.
    let lake_puts = puts_into(&requests, LAKE);
    let archive_puts = puts_into(&requests, ARCHIVE);
    assert!(!lake_puts.is_empty() && !archive_puts.is_empty());
    let assumed_key = signed_with(lake_puts[0]);
    assert_ne!(assumed_key, "testing");
    for put in &lake_puts {
        assert_eq!(signed_with(put), assumed_key);
        assert!(header(put, "x-amz-security-token").is_some_and(|t| !t.is_empty()));
    }
    for put in &archive_puts {
        assert_eq!(signed_with(put), "testing");
        assert!(header(put, "x-amz-security-token").is_none());
    }

    let lake = moto::read_objects(&cfg, LAKE, "").await;
    assert!(!lake.is_empty());
    assert!(lake.keys().all(|k| k.starts_with(PARTITION) && k.ends_with(".parquet")));
    let archive = moto::read_objects(&cfg, ARCHIVE, "activity/").await;
    assert!(archive.keys().any(|k| k.ends_with(".ndjson")), "{:?}", archive.keys());
}

/// Log output captured for one test (this thread's events).
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

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

#[tokio::test]
async fn a_refused_assume_role_is_a_configuration_error_retried_from_the_first_record_and_logged_with_the_fix() {
    use common::fault::{Answer, FaultProxy, Match, Rule};
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,das_archiver=trace"))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto::create_bucket(&cfg, ARCHIVE).await;
    moto::create_bucket(&cfg, LAKE).await;
    let event = event(&cfg, &key_id, 3).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.add(Rule::new(Match::Sts("AssumeRole"), Answer::sts("AccessDenied")));
    let archiver = archiver_through_role(&proxy.sdk_config(&cfg)).await;

    let response = handle(&archiver, LambdaEvent::new(event.clone(), Context::default()))
        .await
        .unwrap();
    let first = event.records[0].kinesis.sequence_number.clone();
    let retried: Vec<String> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        retried,
        vec![first],
        "Kinesis retries from the first record the Parquet object holds"
    );
    assert!(moto::read_objects(&cfg, LAKE, "").await.is_empty());
    assert!(proxy.count(&Match::Sts("AssumeRole")) >= 1);
    assert!(proxy.count(&Match::S3PutObject) > 0, "the archive is still written");

    let log = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("CredentialsError")).collect();
    assert!(
        refused.iter().any(|l| l.contains(" ERROR ")
            && l.contains("DAS_SECURITY_LAKE_EXTERNAL_ID")
            && l.contains("AccessDenied")),
        "the log must name the fix: {log}"
    );

    // The sink's own answer, straight: transient (retried) and a configuration error.
    let object = das_archiver::archive::Object {
        key: format!("{PARTITION}20261122/direct.parquet"),
        body: b"PAR1".to_vec(),
        content_type: "application/vnd.apache.parquet",
        content_encoding: None,
        metadata: Vec::new(),
        bucket: Some(LAKE.to_owned()),
    };
    let settings = lake_settings(&[
        ("DAS_SECURITY_LAKE_ROLE_ARN", ROLE),
        ("DAS_SECURITY_LAKE_EXTERNAL_ID", EXTERNAL_ID),
    ]);
    let sink = S3Sink::for_outputs(
        &proxy.sdk_config(&cfg),
        ARCHIVE,
        true,
        settings.outputs.security_lake.as_ref(),
    )
    .await;
    let err = das_archiver::archive::Sink::put(&sink, object).await.unwrap_err();
    assert_eq!(
        (
            das_archiver::error::Classify::failure_kind(&err),
            err.is_configuration()
        ),
        (das_archiver::error::FailureKind::Transient, true),
        "{err}"
    );
}

#[cfg(feature = "cli")]
#[test]
fn replay_with_output_ocsf_parquet_writes_only_the_security_lake_layout_below_the_out_dir() {
    const TEST_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let dir = tempfile::tempdir().unwrap();
    let event = format!("{}/events/aurora-postgresql.json", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_das"))
        .args(["replay", &event, "--output", "ocsf-parquet", "--out-dir"])
        .arg(dir.path())
        .args(["--wrapping-key", TEST_KEY])
        .env_remove("DAS_WRAPPING_KEY")
        .env_remove("DAS_SECURITY_LAKE_SOURCE")
        .env_remove("DAS_SECURITY_LAKE_PREFIX")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = read_back(dir.path());
    let objects = back.as_object().unwrap();
    assert!(!objects.is_empty());
    for (path, object) in objects {
        assert!(path.starts_with("ext/das-activity/region="), "{path}");
        assert!(path.contains("/accountId=") && path.contains("/eventDay="), "{path}");
        assert!(!object["rows"].as_array().unwrap().is_empty());
        assert_eq!(object["class_uids"], serde_json::json!([6005]));
    }
    let ndjson = common::files_below(dir.path())
        .into_iter()
        .filter(|p| p.contains(".ndjson"))
        .count();
    assert_eq!(ndjson, 0, "--output ocsf-parquet writes no NDJSON archive");
}

#[tokio::test]
async fn by_default_no_literal_reaches_the_archive_or_security_lake_and_every_statement_has_its_fingerprint() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto::create_bucket(&cfg, ARCHIVE).await;
    moto::create_bucket(&cfg, LAKE).await;
    let resource = ResourceId::parse("cluster-LAKE00000001").unwrap();
    let (key, blob) = moto::generate_das_data_key(&cfg, &key_id, &resource).await;
    let keyring = RawAesKeyring::das(&key).unwrap();
    let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-LAKE00000001", "db-LAKE00000001", 3);
    // Real event shapes with statements and bind values full of markers.
    let data: Vec<Vec<u8>> = (0..4)
        .map(|r| {
            let mut events = sim.events(5);
            for (i, event) in events.iter_mut().enumerate() {
                event["commandText"] = format!(
                    "SELECT * FROM cards WHERE pan = '4111-MARKER-{r}{i}' AND amount > 98765{i} -- MARKER comment"
                )
                .into();
                event["paramList"] = serde_json::json!([format!("MARKER-PARAM-{r}{i}"), "98765"]);
            }
            record::encode_with(&sim.payload(&events), &keyring, &blob, &EncodeOptions::default()).unwrap()
        })
        .collect();
    let event: KinesisBatchEvent = serde_json::from_value(lambda_kinesis_event(
        STREAM,
        "shardId-000000000003",
        &data,
        0,
        1_795_314_600.0,
    ))
    .unwrap();

    let response = handle(&archiver(&cfg), LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let archive = moto::read_objects(&cfg, ARCHIVE, "activity/").await;
    assert!(
        archive.keys().all(|k| !k.contains("/quarantine/")),
        "{:?}",
        archive.keys()
    );
    let ndjson: String = archive
        .values()
        .map(|body| String::from_utf8(body.clone()).unwrap())
        .collect();
    let lines: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 20);
    for line in &lines {
        assert_eq!(
            line["commandText"],
            "SELECT * FROM cards WHERE pan = ? AND amount > ? --?"
        );
        assert_eq!(line["paramList"], serde_json::json!(["?", "?"]));
        assert_eq!(
            line["commandFingerprint"], lines[0]["commandFingerprint"],
            "one shape, one fingerprint"
        );
    }
    let print = lines[0]["commandFingerprint"].as_str().unwrap();
    assert!(print.len() == 16 && print.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert!(
        !ndjson.contains("MARKER") && !ndjson.contains("98765"),
        "no literal in the archive"
    );

    // The OCSF rows, read back with pyarrow, carry the masked statement and no literal either.
    let lake = moto::read_objects(&cfg, LAKE, "").await;
    let back = read_back_objects(&lake);
    let text = back.to_string();
    assert!(
        !text.contains("MARKER") && !text.contains("98765"),
        "no literal in Security Lake"
    );
    let rows: Vec<&Value> = back
        .as_object()
        .unwrap()
        .values()
        .flat_map(|o| o["rows"].as_array().unwrap())
        .collect();
    assert_eq!(rows.len(), 20);
    for row in rows {
        assert_eq!(
            row["query_info"]["query_string"],
            "SELECT * FROM cards WHERE pan = ? AND amount > ? --?"
        );
    }
}
