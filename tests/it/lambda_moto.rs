//! The real Lambda handler against moto's server: data keys from moto's KMS (GenerateDataKey with the
//! DAS encryption context), records from our encoder, objects read back from moto's S3 and compared
//! line by line; every failure path ends archived, quarantined or reported for retry.

#![cfg(feature = "lambda")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use aws_config::SdkConfig;
use common::moto::{self, Moto};
use das_archiver::archive::S3Sink;
use das_archiver::batch::Archiver;
use das_archiver::envelope::{Envelope, ResourceId};
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

fn stream_arn(resource: &ResourceId) -> String {
    format!(
        "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
        resource.stream_name()
    )
}

type TestArchiver = Archiver<KmsKeySource, S3Sink>;

fn archiver(kms: &SdkConfig, s3: &SdkConfig, vars: &[(&str, &str)]) -> TestArchiver {
    let settings = moto::archive_settings(BUCKET, vars);
    Archiver::new(
        settings.batch_settings(),
        KeyCache::new(KmsKeySource::new(kms), settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        S3Sink::new(s3, &settings.bucket, settings.s3_force_path_style),
    )
}

/// Records of one engine, all under one KMS data key, and the payloads they hold.
async fn records(
    env: &Env,
    engine: Engine,
    resource: &ResourceId,
    count: usize,
    events: usize,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (key, blob) = moto::generate_das_data_key(&env.cfg, &env.key_id, resource).await;
    let keyring = RawAesKeyring::das(&key).unwrap();
    let (cluster, instance) = match resource {
        ResourceId::Cluster(id) => (id.clone(), format!("db-{}", &id[8..])),
        ResourceId::Instance(id) => (String::new(), id.clone()),
    };
    let mut sim = Simulator::new(engine, &cluster, &instance, count as u64);
    let options = EncodeOptions {
        version: engine.record_version().into(),
        esdk: engine.encrypt_options(),
    };
    let mut data = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..count {
        let mut list = sim.events(events);
        if i % 3 == 0 {
            list.push(sim.heartbeat());
        }
        let payload = sim.payload(&list);
        data.push(record::encode_with(&payload, &keyring, &blob, &options).unwrap());
        payloads.push(payload);
    }
    (data, payloads)
}

/// What the archive must hold for these payloads: every non-heartbeat event plus its record's ids.
fn expected_lines(payloads: &[Vec<u8>]) -> Vec<Value> {
    payloads.iter().flat_map(|p| common::expected_event_lines(p)).collect()
}

#[tokio::test]
async fn batches_from_all_four_engines_land_in_s3_exactly_as_produced() {
    let env = env().await;
    let archiver = archiver(&env.cfg, &env.cfg, &[]);
    let engines = [
        (Engine::AuroraPostgresql, "cluster-PGAURORA0001"),
        (Engine::AuroraMysql, "cluster-MYAURORA0001"),
        (Engine::Oracle, "db-ORACLE00000001"),
        (Engine::SqlServer, "db-SQLSERVER000001"),
    ];
    for (engine, id) in engines {
        let resource = ResourceId::parse(id).unwrap();
        let (data, payloads) = records(&env, engine, &resource, 12, 5).await;
        let event = lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000000", &data, 0, ARRIVAL);
        assert_eq!(
            moto::invoke(&archiver, event).await,
            json!({"batchItemFailures": []}),
            "{engine:?}"
        );
        let lines = moto::archived_lines(&env.cfg, BUCKET, &format!("activity/{id}/")).await;
        assert_eq!(lines, expected_lines(&payloads), "{engine:?}");
        let keys: Vec<String> = moto::read_objects(&env.cfg, BUCKET, &format!("activity/{id}/"))
            .await
            .into_keys()
            .collect();
        assert_eq!(keys.len(), 1);
        assert!(
            keys[0].starts_with(&format!("activity/{id}/dt=2026-11-22/hour=02/shardId-000000000000-")),
            "{}",
            keys[0]
        );
    }
    assert!(moto::read_objects(&env.cfg, BUCKET, "activity/quarantine/")
        .await
        .is_empty());
}

#[tokio::test]
async fn filters_and_dropped_fields_shape_what_is_archived() {
    let env = env().await;
    let archiver = archiver(
        &env.cfg,
        &env.cfg,
        &[("DAS_EXCLUDE_CLASSES", "read"), ("DAS_DROP_FIELDS", "paramList")],
    );
    let resource = ResourceId::parse("cluster-FILTERED00001").unwrap();
    let (data, payloads) = records(&env, Engine::AuroraPostgresql, &resource, 10, 10).await;
    moto::invoke(
        &archiver,
        lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000001", &data, 0, ARRIVAL),
    )
    .await;
    let lines = moto::archived_lines(&env.cfg, BUCKET, "activity/cluster-FILTERED00001/").await;
    let expected: Vec<Value> = expected_lines(&payloads)
        .into_iter()
        .filter(|e| e["class"] != "READ")
        .collect();
    assert!(!lines.is_empty() && lines.len() == expected.len() && lines.len() < 100);
    for (got, want) in lines.iter().zip(&expected) {
        assert!(got.get("paramList").is_none());
        assert_eq!(got["statementId"], want["statementId"]);
        // Redaction (keyed pseudonyms) is tested end to end in `pseudonyms.rs`.
        assert_eq!(got["commandText"], want["commandText"]);
    }
}

#[tokio::test]
async fn a_retried_batch_overwrites_the_same_objects_without_duplicate_lines() {
    let env = env().await;
    let archiver = archiver(&env.cfg, &env.cfg, &[]);
    let resource = ResourceId::parse("cluster-RETRIED000001").unwrap();
    let (data, payloads) = records(&env, Engine::AuroraMysql, &resource, 8, 4).await;
    // Two hours in one batch: records arrive 1 ms apart, starting 4 ms before the hour.
    let event = lambda_kinesis_event(
        &stream_arn(&resource),
        "shardId-000000000002",
        &data,
        100,
        1_795_316_399.996,
    );
    moto::invoke(&archiver, event.clone()).await;
    let first: Vec<String> = moto::read_objects(&env.cfg, BUCKET, "activity/")
        .await
        .into_keys()
        .collect();
    moto::invoke(&archiver, event).await;
    let second: Vec<String> = moto::read_objects(&env.cfg, BUCKET, "activity/")
        .await
        .into_keys()
        .collect();
    assert_eq!(first, second);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(
        moto::archived_lines(&env.cfg, BUCKET, "activity/cluster-RETRIED000001/").await,
        expected_lines(&payloads)
    );
}

#[tokio::test]
async fn tampered_wrong_context_bomb_and_malformed_records_are_quarantined_and_the_rest_archived() {
    let env = env().await;
    let archiver = archiver(&env.cfg, &env.cfg, &[("DAS_MAX_DECOMPRESSED_BYTES", "1048576")]);
    let resource = ResourceId::parse("cluster-BADRECORDS001").unwrap();
    let (mut data, payloads) = records(&env, Engine::AuroraPostgresql, &resource, 6, 3).await;
    // 1: a flipped ciphertext byte.
    let mut tampered = Envelope::parse(&data[1]).unwrap();
    let n = tampered.message.len();
    tampered.message[n - 20] ^= 0x40;
    data[1] = tampered.to_json();
    // 2: a data key made for another cluster: KMS refuses it under this stream's context.
    let other = ResourceId::parse("cluster-SOMEONEELSE01").unwrap();
    let (other_data, _) = records(&env, Engine::AuroraPostgresql, &other, 1, 1).await;
    data[2] = other_data[0].clone();
    // 3: a gzip bomb under the right key.
    let (key, blob) = moto::generate_das_data_key(&env.cfg, &env.key_id, &resource).await;
    let bomb = das_archiver::gunzip::gzip(&vec![b'{'; 8 << 20]);
    let message = das_archiver::esdk::encrypt(&bomb, &RawAesKeyring::das(&key).unwrap(), &Default::default()).unwrap();
    data[3] = Envelope {
        version: "1.1".into(),
        message,
        key_blob: blob,
    }
    .to_json();
    // 4: not JSON.
    data[4] = b"{\"type\":\"DatabaseActivityMonitoringRecords\",".to_vec();
    let event = lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000003", &data, 0, ARRIVAL);
    assert_eq!(moto::invoke(&archiver, event).await, json!({"batchItemFailures": []}));

    let lines = moto::archived_lines(&env.cfg, BUCKET, "activity/cluster-BADRECORDS001/").await;
    let good = [payloads[0].clone(), payloads[5].clone()];
    assert_eq!(lines, expected_lines(&good));
    let quarantine = moto::read_objects(
        &env.cfg,
        BUCKET,
        "activity/quarantine/cluster-BADRECORDS001/dt=2026-11-22/",
    )
    .await;
    assert_eq!(quarantine.len(), 4);
    let reasons: Vec<String> = quarantine
        .values()
        .map(|body| {
            serde_json::from_slice::<Value>(body).unwrap()["error"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for want in [
        "does not authenticate",
        "InvalidCiphertextException",
        "decompression bomb",
        "not a DAS record JSON object",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "no quarantine reason mentions {want}: {reasons:?}"
        );
    }
}

fn closed_port_config(cfg: &SdkConfig) -> SdkConfig {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.to_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build()
}

/// A batch of three records for `resource_id` fails as a whole: the Lambda asks for a retry from
/// its first record and nothing reaches the bucket.
async fn assert_retried_whole_and_nothing_written(env: &Env, archiver: &TestArchiver, resource_id: &str) {
    let resource = ResourceId::parse(resource_id).unwrap();
    let (data, _) = records(env, Engine::AuroraPostgresql, &resource, 3, 2).await;
    let event = lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000004", &data, 7, ARRIVAL);
    let first = event["Records"][0]["kinesis"]["sequenceNumber"].clone();
    assert_eq!(
        moto::invoke(archiver, event).await,
        json!({"batchItemFailures": [{"itemIdentifier": first}]})
    );
    assert!(moto::read_objects(&env.cfg, BUCKET, "").await.is_empty());
}

#[tokio::test]
async fn when_kms_is_unreachable_the_batch_is_retried_from_its_first_record_and_nothing_is_written() {
    let env = env().await;
    let archiver = archiver(&closed_port_config(&env.cfg), &env.cfg, &[]);
    assert_retried_whole_and_nothing_written(&env, &archiver, "cluster-NOKMS00000001").await;
}

/// An endpoint that accepts connections and never answers, like a network that drops packets.
fn silent_endpoint_config(cfg: &SdkConfig) -> (SdkConfig, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    (cfg.to_builder().endpoint_url(endpoint).build(), listener)
}

#[tokio::test]
async fn when_kms_never_answers_each_attempt_times_out_and_the_batch_is_retried_from_its_first_record() {
    let env = env().await;
    // The kernel completes the TCP handshakes into the listener's backlog; nobody ever reads them.
    let (silent, _listener) = silent_endpoint_config(&env.cfg);
    let settings = moto::archive_settings(BUCKET, &[]);
    let kms = KmsKeySource::with_timeouts(
        &silent,
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(2),
    );
    let archiver = Archiver::new(
        settings.batch_settings(),
        KeyCache::new(kms, settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        S3Sink::new(&env.cfg, &settings.bucket, settings.s3_force_path_style),
    );
    assert_retried_whole_and_nothing_written(&env, &archiver, "cluster-SILENTKMS00001").await;
}

#[tokio::test]
async fn when_s3_is_unreachable_nothing_is_reported_done() {
    let env = env().await;
    let archiver = archiver(&env.cfg, &closed_port_config(&env.cfg), &[]);
    let resource = ResourceId::parse("cluster-NOS300000001").unwrap();
    let (mut data, _) = records(&env, Engine::AuroraPostgresql, &resource, 3, 2).await;
    data.push(b"garbage".to_vec()); // even its quarantine write fails: it must be retried too
    let event = lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000005", &data, 0, ARRIVAL);
    let first = event["Records"][0]["kinesis"]["sequenceNumber"].clone();
    assert_eq!(
        moto::invoke(&archiver, event).await,
        json!({"batchItemFailures": [{"itemIdentifier": first}]})
    );
}

#[tokio::test]
async fn a_thousand_records_sharing_one_data_key_make_one_kms_call() {
    let env = env().await;
    let archiver = archiver(&env.cfg, &env.cfg, &[]);
    let resource = ResourceId::parse("cluster-KMSCOUNT00001").unwrap();
    let (data, payloads) = records(&env, Engine::AuroraPostgresql, &resource, 1000, 1).await;
    env.moto.start_recording();
    let event = lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000006", &data, 0, ARRIVAL);
    assert_eq!(
        moto::invoke(&archiver, event.clone()).await,
        json!({"batchItemFailures": []})
    );
    assert_eq!(env.moto.count_kms_calls("Decrypt"), 1);
    // A warm container's next batch under the same key makes none.
    moto::invoke(&archiver, event).await;
    assert_eq!(env.moto.count_kms_calls("Decrypt"), 1);
    assert_eq!(archiver.keys().stats().source_calls, 1);
    assert_eq!(
        moto::archived_lines(&env.cfg, BUCKET, "activity/cluster-KMSCOUNT00001/")
            .await
            .len(),
        expected_lines(&payloads).len()
    );
}

#[tokio::test]
async fn one_function_archives_two_streams_into_their_own_prefixes_and_refuses_a_third() {
    let env = env().await;
    let allowed = "cluster-FLEETONE0001,db-FLEETTWO00001";
    let archiver = archiver(&env.cfg, &env.cfg, &[("DAS_RESOURCE_IDS", allowed)]);
    for (engine, id) in [
        (Engine::AuroraPostgresql, "cluster-FLEETONE0001"),
        (Engine::Oracle, "db-FLEETTWO00001"),
    ] {
        let resource = ResourceId::parse(id).unwrap();
        let (data, payloads) = records(&env, engine, &resource, 4, 3).await;
        let event = lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000000", &data, 0, ARRIVAL);
        assert_eq!(
            moto::invoke(&archiver, event).await,
            json!({"batchItemFailures": []}),
            "{id}"
        );
        assert_eq!(
            moto::archived_lines(&env.cfg, BUCKET, &format!("activity/{id}/")).await,
            expected_lines(&payloads)
        );
    }
    // A stream whose id is not in DAS_RESOURCE_IDS: a configuration error, retried, never written.
    let stranger = ResourceId::parse("cluster-STRANGER0001").unwrap();
    let (data, _) = records(&env, Engine::AuroraPostgresql, &stranger, 2, 3).await;
    let event = lambda_kinesis_event(&stream_arn(&stranger), "shardId-000000000000", &data, 0, ARRIVAL);
    let reply = moto::invoke(&archiver, event.clone()).await;
    assert_eq!(
        reply["batchItemFailures"][0]["itemIdentifier"],
        event["Records"][0]["kinesis"]["sequenceNumber"]
    );
    let everything = moto::read_objects(&env.cfg, BUCKET, "").await;
    assert!(
        everything.keys().all(|k| !k.contains("STRANGER")),
        "{:?}",
        everything.keys()
    );
}

#[tokio::test]
async fn s3_verifies_each_object_s_sha256_and_its_metadata_counts_its_lines() {
    use aws_sdk_s3::types::ChecksumMode;
    use base64::Engine as _;
    let env = env().await;
    let archiver = archiver(&env.cfg, &env.cfg, &[]);
    let resource = ResourceId::parse("cluster-CHECKSUM0001").unwrap();
    let (data, payloads) = records(&env, Engine::AuroraPostgresql, &resource, 5, 4).await;
    let event = lambda_kinesis_event(&stream_arn(&resource), "shardId-000000000000", &data, 7, ARRIVAL);
    moto::invoke(&archiver, event.clone()).await;
    let objects = moto::read_objects(&env.cfg, BUCKET, "activity/cluster-CHECKSUM0001/").await;
    assert_eq!(objects.len(), 1);
    let (key, body) = objects.into_iter().next().unwrap();
    let head = moto::s3_client(&env.cfg)
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
    let expected = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    assert_eq!(
        head.checksum_sha256(),
        Some(expected.as_str()),
        "the stored checksum is the body's"
    );
    let metadata = head.metadata().unwrap();
    let records = event["Records"].as_array().unwrap();
    assert_eq!(metadata["das-record-count"], "5");
    assert_eq!(metadata["das-event-count"], expected_lines(&payloads).len().to_string());
    assert_eq!(
        metadata["das-first-sequence-number"],
        records[0]["kinesis"]["sequenceNumber"].as_str().unwrap()
    );
    assert_eq!(
        metadata["das-last-sequence-number"],
        records[4]["kinesis"]["sequenceNumber"].as_str().unwrap()
    );
}
