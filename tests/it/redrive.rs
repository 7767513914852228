//! `das redrive` on the local AWS server: records quarantined under a setting that was wrong are
//! archived once it is fixed — the same lines a clean run writes — their documents are deleted, a
//! second run writes nothing, and records that still fail keep their documents with the new reason.

#![cfg(all(feature = "cli", feature = "ocsf-parquet"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::moto::{self, Moto};
use das_archiver::esdk::RawAesKeyring;
use das_archiver::record::{self, EncodeOptions};
use das_archiver::simulate::{lambda_kinesis_event, Engine, Simulator};
use serde_json::Value;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEY: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff";
const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-REDRIVE1";

fn das(moto: &Moto, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_das"));
    command
        .args(args)
        .env_remove("DAS_WRAPPING_KEY")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DAS_S3_FORCE_PATH_STYLE", "true")
        .env("DAS_COMPRESSION", "none")
        .env("DAS_GIVE_UP_AFTER_SECONDS", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// A Lambda event of `n` Aurora PostgreSQL records of 20 events each, under [`KEY`].
fn event_file(dir: &std::path::Path, n: usize) -> String {
    let keyring = RawAesKeyring::das(&hex::decode(KEY).unwrap()).unwrap();
    let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-REDRIVE1", "db-REDRIVE1", 3);
    let records: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let events = sim.events(20);
            record::encode_with(&sim.payload(&events), &keyring, b"blob", &EncodeOptions::default()).unwrap()
        })
        .collect();
    let event = lambda_kinesis_event(ARN, "shardId-000000000000", &records, 1, 1_795_316_397.0);
    let path = dir.join("event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no JSON summary: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Every archived line under `prefix` (not quarantine), sorted.
fn archived_lines(objects: &BTreeMap<String, Vec<u8>>, prefix: &str) -> Vec<String> {
    let mut lines: Vec<String> = objects
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && !k.contains("/quarantine/"))
        .flat_map(|(_, body)| {
            String::from_utf8(body.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantined_records_are_archived_after_the_fix_and_a_second_redrive_writes_nothing() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    moto::create_bucket(&cfg, "archive").await;
    moto::create_bucket(&cfg, "clean").await;
    let dir = tempfile::tempdir().unwrap();
    let event = event_file(dir.path(), 6);

    // The clean run, for comparison.
    let clean = das(
        &moto,
        &["replay", &event, "--bucket", "clean", "--wrapping-key", KEY],
        &[],
    );
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    // The wrong setting: a decompression cap below the payloads' size quarantines every record.
    let tight = [("DAS_MAX_DECOMPRESSED_BYTES", "1024")];
    let out = das(
        &moto,
        &["replay", &event, "--bucket", "archive", "--wrapping-key", KEY],
        &tight,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let quarantined = moto::read_objects(&cfg, "archive", "activity/quarantine/").await;
    assert_eq!(quarantined.len(), 6);

    // The fix (the default cap) and the redrive.
    let out = das(
        &moto,
        &["redrive", "--bucket", "archive", "--use-env", "--wrapping-key", KEY],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(
        (s["redriven"].as_u64(), s["still_failing"].as_u64()),
        (Some(6), Some(0)),
        "{s}"
    );
    assert_eq!(s["events_archived"], 120);
    let after = moto::read_objects(&cfg, "archive", "activity/").await;
    assert!(
        after.keys().all(|k| !k.contains("/quarantine/")),
        "documents deleted: {after:?}"
    );
    let expected = archived_lines(&moto::read_objects(&cfg, "clean", "activity/").await, "activity/");
    assert_eq!(
        archived_lines(&after, "activity/"),
        expected,
        "the same lines as a clean run"
    );
    // Masked as `das replay` and the function mask (the default): every statement has its fingerprint
    // and no quoted literal.
    for line in &expected {
        let event: Value = serde_json::from_str(line).unwrap();
        if let Some(text) = event["commandText"].as_str().filter(|t| !t.trim().is_empty()) {
            assert!(!text.contains('\''), "{text}");
            assert_eq!(event["commandFingerprint"].as_str().map(str::len), Some(16), "{line}");
        }
    }
    assert!(
        after.keys().all(|k| k.contains("/dt=2026-11-22/hour=02/")),
        "partitioned by the original arrival"
    );

    // Again: nothing to do, nothing written.
    let out = das(
        &moto,
        &["redrive", "--bucket", "archive", "--use-env", "--wrapping-key", KEY],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(summary(&out)["redriven"], 0);
    assert_eq!(moto::read_objects(&cfg, "archive", "activity/").await, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_that_still_fail_keep_their_document_with_the_new_reason_once() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    moto::create_bucket(&cfg, "archive").await;
    let dir = tempfile::tempdir().unwrap();
    let event = event_file(dir.path(), 2);
    let tight = [("DAS_MAX_DECOMPRESSED_BYTES", "1024")];
    das(
        &moto,
        &["replay", &event, "--bucket", "archive", "--wrapping-key", KEY],
        &tight,
    );

    // A dry run changes nothing.
    let before = moto::read_objects(&cfg, "archive", "").await;
    let out = das(
        &moto,
        &[
            "redrive",
            "--bucket",
            "archive",
            "--use-env",
            "--wrapping-key",
            KEY,
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(summary(&out)["redriven"], 2);
    assert_eq!(moto::read_objects(&cfg, "archive", "").await, before);

    // The wrong key: the messages do not authenticate, so the records fail again.
    let out = das(
        &moto,
        &[
            "redrive",
            "--bucket",
            "archive",
            "--use-env",
            "--wrapping-key",
            OTHER_KEY,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "exit 1 when anything still fails");
    assert_eq!(summary(&out)["still_failing"], 2);
    let noted = moto::read_objects(&cfg, "archive", "activity/quarantine/").await;
    assert_eq!(noted.len(), 2);
    for body in noted.values() {
        let doc: Value = serde_json::from_slice(body).unwrap();
        let reasons = doc["redriveErrors"].as_array().unwrap();
        assert_eq!(reasons.len(), 1, "{doc}");
        assert!(reasons[0].as_str().unwrap().contains("wrong wrapping key"), "{doc}");
        assert!(
            doc["error"].as_str().unwrap().contains("bomb"),
            "the first reason stays: {doc}"
        );
    }
    let out = das(
        &moto,
        &[
            "redrive",
            "--bucket",
            "archive",
            "--use-env",
            "--wrapping-key",
            OTHER_KEY,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(moto::read_objects(&cfg, "archive", "").await.len(), noted.len());
    assert_eq!(
        moto::read_objects(&cfg, "archive", "activity/quarantine/").await,
        noted,
        "written once"
    );
}

/// Runs a boto3 script against moto (`c(service)` is a client).
fn boto(moto: &Moto, script: &str) {
    let preamble = format!(
        "import boto3, io, zipfile\n\
         def c(service):\n    return boto3.client(service, endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='testing', aws_secret_access_key='testing')\n",
        moto.endpoint
    );
    let out = Command::new(common::oracle_python())
        .args(["-c", &format!("{preamble}{script}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
}

/// Deployed functions on moto (created, never invoked: moto needs no Docker for that), each with its
/// environment.
fn functions(moto: &Moto, functions: &[(&str, &[(&str, &str)])]) {
    let mut script = String::from(
        "role = c('iam').create_role(RoleName='archiver', AssumeRolePolicyDocument='{}')['Role']['Arn']\n\
         buf = io.BytesIO()\n\
         with zipfile.ZipFile(buf, 'w') as z:\n    z.writestr('bootstrap', 'x')\n",
    );
    for (name, vars) in functions {
        let vars: BTreeMap<&str, &str> = vars.iter().copied().collect();
        script.push_str(&format!(
            "c('lambda').create_function(FunctionName='{name}', Runtime='provided.al2023', Role=role, \
             Handler='bootstrap', Code={{'ZipFile': buf.getvalue()}}, Environment={{'Variables': {}}})\n",
            serde_json::to_string(&vars).unwrap()
        ));
    }
    boto(moto, &script);
}

const LAKE_VARS: [(&str, &str); 4] = [
    ("DAS_ARCHIVE_BUCKET", "archive"),
    ("DAS_OUTPUT", "ocsf-parquet"),
    ("DAS_SECURITY_LAKE_BUCKET", "lake"),
    ("DAS_SECURITY_LAKE_SOURCE", "das"),
];
const ARCHIVE_VARS: [(&str, &str); 2] = [("DAS_ARCHIVE_BUCKET", "archive"), ("DAS_COMPRESSION", "none")];

/// `das replay` as the function `name` with its `vars` and a decompression cap that quarantines
/// every record: the documents that function would have written.
fn quarantine_as(moto: &Moto, event: &str, name: &str, vars: &[(&str, &str)]) {
    let mut env = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("DAS_MAX_DECOMPRESSED_BYTES", "1024"),
    ];
    env.extend_from_slice(vars);
    let out = das(moto, &["replay", event, "--wrapping-key", KEY], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Rows in the Parquet objects of `objects`.
fn parquet_rows(objects: &BTreeMap<String, Vec<u8>>) -> i64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    objects
        .values()
        .map(|body| {
            let path = dir.path().join("object.parquet");
            std::fs::write(&path, body).unwrap();
            let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
            reader.metadata().file_metadata().num_rows()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_function_s_quarantine_is_redriven_into_exactly_its_outputs_with_its_deployed_settings() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    for bucket in ["archive", "lake", "clean"] {
        moto::create_bucket(&cfg, bucket).await;
    }
    functions(&moto, &[("das-archiver", &ARCHIVE_VARS), ("das-lake", &LAKE_VARS)]);
    let dir = tempfile::tempdir().unwrap();
    let event = event_file(dir.path(), 6);
    let clean = das(
        &moto,
        &["replay", &event, "--bucket", "clean", "--wrapping-key", KEY],
        &[],
    );
    assert!(clean.status.success());

    // Both functions quarantine the same six records: twelve documents, none overwritten.
    quarantine_as(&moto, &event, "das-archiver", &ARCHIVE_VARS);
    quarantine_as(&moto, &event, "das-lake", &LAKE_VARS);
    let documents = moto::read_objects(&cfg, "archive", "activity/quarantine/").await;
    assert_eq!(documents.len(), 12, "{:?}", documents.keys());
    let lake_documents: Vec<Value> = documents
        .iter()
        .filter(|(k, _)| k.ends_with(".ocsf-parquet.json"))
        .map(|(_, body)| serde_json::from_slice(body).unwrap())
        .collect();
    assert_eq!(lake_documents.len(), 6);
    assert!(lake_documents
        .iter()
        .all(|d| d["outputs"] == serde_json::json!(["ocsf-parquet"]) && d["function"] == "das-lake"));

    // A filter left in the shell from `das tail` is ignored, with a warning: nothing is dropped.
    let out = das(
        &moto,
        &["redrive", "--bucket", "archive", "--wrapping-key", KEY],
        &[("DAS_INCLUDE_USERS", "nobody"), ("DAS_OUTPUT", "ndjson")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("DAS_INCLUDE_USERS is set in this shell and ignored"),
        "{stderr}"
    );
    let s = summary(&out);
    assert_eq!(
        (s["redriven"].as_u64(), s["still_failing"].as_u64()),
        (Some(12), Some(0)),
        "{s}"
    );
    assert_eq!(s["events_archived"], 240, "120 archive lines and 120 OCSF events: {s}");

    let archive = moto::read_objects(&cfg, "archive", "activity/").await;
    let clean_lines = archived_lines(&moto::read_objects(&cfg, "clean", "activity/").await, "activity/");
    assert_eq!(
        archived_lines(&archive, "activity/"),
        clean_lines,
        "the archive function's records archived once, uncompressed as its DAS_COMPRESSION says; \
         the lake function's records not archived at all"
    );
    let lake = moto::read_objects(&cfg, "lake", "").await;
    assert!(
        lake.keys()
            .all(|k| k.starts_with("ext/das/") && k.ends_with(".parquet")),
        "{lake:?}"
    );
    assert_eq!(
        parquet_rows(&lake),
        120,
        "every event of the lake function's records, none filtered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_is_kept_owing_the_output_that_failed_and_finished_by_the_next_redrive() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    moto::create_bucket(&cfg, "archive").await;
    let both: [(&str, &str); 4] = [
        ("DAS_ARCHIVE_BUCKET", "archive"),
        ("DAS_COMPRESSION", "none"),
        ("DAS_OUTPUT", "ndjson,ocsf-parquet"),
        ("DAS_SECURITY_LAKE_SOURCE", "das"),
    ];
    let with_lake = |vars: &[(&'static str, &'static str)]| {
        let mut v = vars.to_vec();
        v.push(("DAS_SECURITY_LAKE_BUCKET", "lake"));
        v
    };
    functions(&moto, &[("das-both", &with_lake(&both))]);
    let dir = tempfile::tempdir().unwrap();
    let event = event_file(dir.path(), 2);
    quarantine_as(&moto, &event, "das-both", &with_lake(&both));
    let keys: Vec<String> = moto::read_objects(&cfg, "archive", "activity/quarantine/")
        .await
        .into_keys()
        .collect();
    assert!(
        keys.iter().all(|k| k.ends_with(".ndjson.ocsf-parquet.json")),
        "{keys:?}"
    );

    // The lake bucket does not exist yet: the archive is written, the lake is still owed.
    let out = das(
        &moto,
        &["redrive", "--function", "das-both", "--wrapping-key", KEY],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["still_failing"], 2);
    let archive = moto::read_objects(&cfg, "archive", "activity/").await;
    assert_eq!(archived_lines(&archive, "activity/").len(), 40);
    for key in &keys {
        let doc: Value = serde_json::from_slice(&archive[key]).unwrap();
        assert_eq!(doc["outputs"], serde_json::json!(["ocsf-parquet"]), "{doc}");
        assert!(
            doc["redriveErrors"][0].as_str().unwrap().contains("ocsf-parquet"),
            "{doc}"
        );
    }

    // Once it exists, the next redrive writes only the lake and deletes the documents.
    moto::create_bucket(&cfg, "lake").await;
    let out = das(
        &moto,
        &["redrive", "--function", "das-both", "--wrapping-key", KEY],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["redriven"], 2);
    let after = moto::read_objects(&cfg, "archive", "activity/").await;
    assert!(after.keys().all(|k| !k.contains("/quarantine/")), "{after:?}");
    assert_eq!(
        archived_lines(&after, "activity/").len(),
        40,
        "the archive is not written again"
    );
    assert_eq!(parquet_rows(&moto::read_objects(&cfg, "lake", "").await), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_that_names_no_function_owes_the_archive_and_needs_the_function_named() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    moto::create_bucket(&cfg, "archive").await;
    functions(&moto, &[("das-archiver", &ARCHIVE_VARS)]);
    let dir = tempfile::tempdir().unwrap();
    let event = event_file(dir.path(), 2);
    // As documents were written before they said what they owe and who wrote them.
    let out = das(
        &moto,
        &["replay", &event, "--bucket", "archive", "--wrapping-key", KEY],
        &[("DAS_MAX_DECOMPRESSED_BYTES", "1024")],
    );
    assert!(out.status.success());
    let s3 = moto::s3_client(&cfg);
    for (key, body) in moto::read_objects(&cfg, "archive", "activity/quarantine/").await {
        let mut doc: Value = serde_json::from_slice(&body).unwrap();
        assert!(doc["function"].is_null(), "replay runs outside Lambda");
        doc.as_object_mut().unwrap().remove("outputs");
        doc.as_object_mut().unwrap().remove("function");
        let body = serde_json::to_vec_pretty(&doc).unwrap();
        s3.put_object()
            .bucket("archive")
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    let documents = moto::read_objects(&cfg, "archive", "activity/").await;

    let out = das(&moto, &["redrive", "--bucket", "archive", "--wrapping-key", KEY], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("names no function") && stderr.contains("--function"),
        "{stderr}"
    );
    assert_eq!(
        moto::read_objects(&cfg, "archive", "activity/").await,
        documents,
        "left alone"
    );

    // An explicit flag overrides the function's setting.
    let out = das(
        &moto,
        &[
            "redrive",
            "--function",
            "das-archiver",
            "--wrapping-key",
            KEY,
            "--include-users",
            "nobody",
            "--dry-run",
        ],
        &[],
    );
    let s = summary(&out);
    assert_eq!(
        (s["redriven"].as_u64(), s["events_archived"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );

    let out = das(
        &moto,
        &["redrive", "--function", "das-archiver", "--wrapping-key", KEY],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["redriven"], 2);
    assert_eq!(
        archived_lines(&moto::read_objects(&cfg, "archive", "activity/").await, "activity/").len(),
        40
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_on_failure_record_is_redriven_into_the_outputs_of_the_function_that_failed_it() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    for bucket in ["archive", "lake"] {
        moto::create_bucket(&cfg, bucket).await;
    }
    functions(&moto, &[("das-archiver", &ARCHIVE_VARS), ("das-lake", &LAKE_VARS)]);
    let dir = tempfile::tempdir().unwrap();
    let event: Value = serde_json::from_str(&std::fs::read_to_string(event_file(dir.path(), 3)).unwrap()).unwrap();
    // The S3 on-failure destination's record
    // (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html).
    let record = serde_json::json!({
        "requestContext": {
            "requestId": "c9b8fa9f-5a7f-4e2b-8bc7-a5b1e7a3b1e5",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:das-lake",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 10001
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-22T02:39:57.000Z",
        "KinesisBatchInfo": {"shardId": "shardId-000000000000", "batchSize": 3},
        "payload": event.to_string(),
    });
    let key = "aws/lambda/8a1b9c2d-0000-4000-8000-000000000001/shardId-000000000000/2026/11/22/02/x.json";
    moto::s3_client(&cfg)
        .put_object()
        .bucket("archive")
        .key(key)
        .body(record.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    let out = das(
        &moto,
        &[
            "redrive",
            "--bucket",
            "archive",
            "--on-failure-prefix",
            "aws/lambda/",
            "--wrapping-key",
            KEY,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["failed_batches_redriven"], 1);
    let archive = moto::read_objects(&cfg, "archive", "").await;
    assert!(
        archive.is_empty(),
        "no NDJSON, and the record deleted: {:?}",
        archive.keys()
    );
    assert_eq!(parquet_rows(&moto::read_objects(&cfg, "lake", "").await), 60);
}
