//! The Lambda handler with `DAS_OUTPUT=ndjson,ocsf-parquet` against moto's server: one batch writes
//! the NDJSON archive to the archive bucket and OCSF Parquet objects to the Security Lake bucket under
//! the custom source's layout; a retry rewrites the same keys; the Parquet objects read back with
//! pyarrow (`tests/oracle/ocsf_parquet_read.py`) to exactly the OCSF mapping of the archived lines.

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

fn archiver(cfg: &SdkConfig) -> Archiver<KmsKeySource, S3Sink> {
    let vars: BTreeMap<&str, &str> = [
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
    let settings = Settings::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned())).unwrap();
    Archiver::new(
        settings.batch_settings(),
        KeyCache::new(KmsKeySource::new(cfg), settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        S3Sink::new(cfg, &settings.bucket, settings.s3_force_path_style),
    )
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
    let dir = tempfile::tempdir().unwrap();
    for (key, body) in &lake {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let back = read_back(dir.path());
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
