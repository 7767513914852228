//! `das redrive` on the local AWS server: records quarantined under a setting that was wrong are
//! archived once it is fixed — the same lines a clean run writes — their documents are deleted, a
//! second run writes nothing, and records that still fail keep their documents with the new reason.

#![cfg(feature = "cli")]
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
    let out = das(&moto, &["redrive", "--bucket", "archive", "--wrapping-key", KEY], &[]);
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
    assert!(
        after.keys().all(|k| k.contains("/dt=2026-11-22/hour=02/")),
        "partitioned by the original arrival"
    );

    // Again: nothing to do, nothing written.
    let out = das(&moto, &["redrive", "--bucket", "archive", "--wrapping-key", KEY], &[]);
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
        &["redrive", "--bucket", "archive", "--wrapping-key", KEY, "--dry-run"],
        &[],
    );
    assert_eq!(summary(&out)["redriven"], 2);
    assert_eq!(moto::read_objects(&cfg, "archive", "").await, before);

    // The wrong key: the messages do not authenticate, so the records fail again.
    let out = das(
        &moto,
        &["redrive", "--bucket", "archive", "--wrapping-key", OTHER_KEY],
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
        &["redrive", "--bucket", "archive", "--wrapping-key", OTHER_KEY],
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
