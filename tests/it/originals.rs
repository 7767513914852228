//! Sealed originals against moto: with `DAS_KEEP_ORIGINALS=true` the archive function keeps each
//! archive object's records as received under `originals/`, and `das unmask` turns a masked line's
//! provenance back into the event byte for byte as `DAS_MASK_SQL=off` archives it, through moto's
//! KMS (real data keys under the DAS encryption context). A retried batch rewrites the same
//! originals keys; the default keeps none.

#![cfg(all(feature = "lambda", feature = "cli"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use aws_config::SdkConfig;
use common::fault::{Answer, FaultProxy, Match, Rule};
use common::moto::{self, Moto};
use das_archiver::archive::S3Sink;
use das_archiver::batch::Archiver;
use das_archiver::envelope::ResourceId;
use das_archiver::esdk::RawAesKeyring;
use das_archiver::filter::Filter;
use das_archiver::keys::{KeyCache, KmsKeySource};
use das_archiver::record::{self, EncodeOptions};
use das_archiver::simulate::{lambda_kinesis_event, Engine, Simulator};
use serde_json::{json, Value};

const BUCKET: &str = "das-archive";
const ARRIVAL: f64 = 1_795_314_600.0; // 2026-11-22 02:30 UTC

struct Env {
    moto: Moto,
    cfg: SdkConfig,
    key_id: String,
}

async fn env() -> Env {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto::create_bucket(&cfg, BUCKET).await;
    Env { moto, cfg, key_id }
}

fn archiver(kms: &SdkConfig, s3: &SdkConfig, vars: &[(&str, &str)]) -> Archiver<KmsKeySource, S3Sink> {
    let settings = moto::archive_settings(BUCKET, vars);
    Archiver::new(
        settings.batch_settings(),
        KeyCache::new(KmsKeySource::new(kms), settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        S3Sink::new(s3, &settings.bucket, settings.s3_force_path_style),
    )
}

/// A Lambda event of `count` Aurora PostgreSQL records of 4 events (and a heartbeat every third),
/// under one data key from moto's KMS.
async fn event(env: &Env, resource: &ResourceId, count: usize) -> Value {
    let (key, blob) = moto::generate_das_data_key(&env.cfg, &env.key_id, resource).await;
    let keyring = RawAesKeyring::das(&key).unwrap();
    let mut sim = Simulator::new(Engine::AuroraPostgresql, resource.as_str(), "db-UNMASK0001", 7);
    let data: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut list = sim.events(4);
            if i % 3 == 0 {
                list.push(sim.heartbeat());
            }
            record::encode_with(&sim.payload(&list), &keyring, &blob, &EncodeOptions::default()).unwrap()
        })
        .collect();
    let arn = format!(
        "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
        resource.stream_name()
    );
    lambda_kinesis_event(&arn, "shardId-000000000000", &data, 0, ARRIVAL)
}

/// Every raw line (with its `\n`) of every archive object under `prefix`.
async fn raw_lines(cfg: &SdkConfig, prefix: &str) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for (_, body) in moto::read_objects(cfg, BUCKET, prefix).await {
        let text = das_archiver::gunzip::gunzip(&body, 1 << 30).unwrap();
        lines.extend(text.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec));
    }
    lines
}

fn provenance(line: &[u8]) -> (String, String, u64) {
    let value: Value = serde_json::from_slice(line).unwrap();
    (
        value["kinesisShardId"].as_str().unwrap().to_owned(),
        value["kinesisSequenceNumber"].as_str().unwrap().to_owned(),
        value["eventIndex"].as_u64().unwrap(),
    )
}

/// `das unmask` against moto, with nothing of the archive's settings in its environment but
/// path-style S3.
fn unmask(moto: &Moto, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_das"))
        .arg("unmask")
        .args(["--bucket", BUCKET])
        .args(args)
        .env_remove("DAS_ARCHIVE_BUCKET")
        .env_remove("DAS_ARCHIVE_PREFIX")
        .env_remove("DAS_KMS_KEY_ARN")
        .env_remove("DAS_MASK_SQL")
        .env("DAS_S3_FORCE_PATH_STYLE", "true")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

#[tokio::test]
async fn unmask_gives_back_a_masked_line_s_event_byte_for_byte_as_the_archive_writes_it_unmasked() {
    let env = env().await;
    let resource = ResourceId::parse("cluster-UNMASK0001").unwrap();
    let event = event(&env, &resource, 6).await;
    let masked = archiver(&env.cfg, &env.cfg, &[("DAS_KEEP_ORIGINALS", "true")]);
    assert_eq!(
        moto::invoke(&masked, event.clone()).await,
        json!({"batchItemFailures": []})
    );
    let plain = archiver(
        &env.cfg,
        &env.cfg,
        &[("DAS_MASK_SQL", "off"), ("DAS_ARCHIVE_PREFIX", "plain/")],
    );
    assert_eq!(moto::invoke(&plain, event).await, json!({"batchItemFailures": []}));

    let plain_lines: BTreeMap<(String, String, u64), Vec<u8>> = raw_lines(&env.cfg, &format!("plain/{resource}/"))
        .await
        .into_iter()
        .map(|line| (provenance(&line), line))
        .collect();
    let masked_lines = raw_lines(&env.cfg, &format!("activity/{resource}/")).await;
    assert_eq!(masked_lines.len(), plain_lines.len());
    let differing: Vec<&Vec<u8>> = masked_lines
        .iter()
        .filter(|line| plain_lines[&provenance(line)] != **line)
        .collect();
    assert!(differing.len() > 4, "the simulated statements carry literals to mask");

    for line in differing.iter().take(3) {
        let (shard, sequence, index) = provenance(line);
        let index = index.to_string();
        let out = unmask(
            &env.moto,
            &[
                "--resource-id",
                resource.as_str(),
                "--shard",
                &shard,
                "--sequence",
                &sequence,
                "--event-index",
                &index,
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(out.stdout, plain_lines[&provenance(line)], "{shard} {sequence} {index}");
        assert!(stderr.is_empty(), "nothing on stderr, let alone SQL: {stderr}");
    }

    // Without --event-index: every event of the record, the heartbeat (not archived) included.
    let (shard, sequence, _) = provenance(differing[0]);
    let out = unmask(
        &env.moto,
        &[
            "--resource-id",
            resource.as_str(),
            "--shard",
            &shard,
            "--sequence",
            &sequence,
            "--date",
            "2026-11-22",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Vec<&[u8]> = out.stdout.split_inclusive(|b| *b == b'\n').collect();
    let archived: Vec<&Vec<u8>> = plain_lines
        .iter()
        .filter(|((s, q, _), _)| *s == shard && *q == sequence)
        .map(|(_, line)| line)
        .collect();
    let heartbeats = printed
        .iter()
        .filter(|l| l.windows(11).any(|w| w == b"\"heartbeat\""))
        .count();
    assert_eq!(printed.len(), archived.len() + heartbeats);
    assert!(archived.iter().all(|line| printed.contains(&line.as_slice())));

    // A record that is not there, an event it does not have, a day it did not arrive on: exit 1.
    for args in [
        vec!["--sequence", "1"],
        vec!["--sequence", sequence.as_str(), "--event-index", "99"],
        vec!["--sequence", sequence.as_str(), "--date", "2026-11-23"],
    ] {
        let mut all = vec!["--resource-id", resource.as_str(), "--shard", shard.as_str()];
        all.extend(args.iter().copied());
        let out = unmask(&env.moto, &all);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn a_batch_retried_after_a_failed_originals_write_overwrites_the_same_keys() {
    let env = env().await;
    let proxy = FaultProxy::start(&env.moto.endpoint).await;
    let faulty = proxy.sdk_config(&env.cfg);
    let resource = ResourceId::parse("cluster-RETRYORIG01").unwrap();
    let event = event(&env, &resource, 4).await;
    let first_sequence = event["Records"][0]["kinesis"]["sequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let archiver = archiver(&env.cfg, &faulty, &[("DAS_KEEP_ORIGINALS", "true")]);

    proxy.add(Rule::new(Match::S3PutObject, Answer::s3("SlowDown")).path_contains("/originals/"));
    assert_eq!(
        moto::invoke(&archiver, event.clone()).await,
        json!({"batchItemFailures": [{"itemIdentifier": first_sequence}]}),
        "the records are not done while their originals are unwritten"
    );
    proxy.reset();
    assert_eq!(
        moto::invoke(&archiver, event.clone()).await,
        json!({"batchItemFailures": []})
    );
    let after_retry = moto::read_objects(&env.cfg, BUCKET, "activity/").await;
    assert_eq!(moto::invoke(&archiver, event).await, json!({"batchItemFailures": []}));
    let after_another = moto::read_objects(&env.cfg, BUCKET, "activity/").await;

    let keys: Vec<&String> = after_retry.keys().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(*keys[1], keys[0].replacen("activity/", "activity/originals/", 1));
    assert_eq!(after_another, after_retry, "the same keys, byte for byte");
}

#[tokio::test]
async fn by_default_nothing_is_written_under_originals_and_unmask_finds_nothing() {
    let env = env().await;
    let resource = ResourceId::parse("cluster-NOORIGINALS1").unwrap();
    let event = event(&env, &resource, 3).await;
    let sequence = event["Records"][0]["kinesis"]["sequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let archiver = archiver(&env.cfg, &env.cfg, &[]);
    assert_eq!(moto::invoke(&archiver, event).await, json!({"batchItemFailures": []}));
    assert_eq!(moto::read_objects(&env.cfg, BUCKET, "activity/").await.len(), 1);
    assert!(moto::read_objects(&env.cfg, BUCKET, "activity/originals/")
        .await
        .is_empty());
    let out = unmask(
        &env.moto,
        &[
            "--resource-id",
            resource.as_str(),
            "--shard",
            "shardId-000000000000",
            "--sequence",
            &sequence,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DAS_KEEP_ORIGINALS"));
}

#[test]
fn unmask_without_a_sequence_number_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_das"))
        .args([
            "unmask",
            "--bucket",
            BUCKET,
            "--resource-id",
            "cluster-A",
            "--shard",
            "shardId-000000000000",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
