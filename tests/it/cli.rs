//! The `das` command line end to end: `simulate` into a Kinesis stream on moto and `tail` it back
//! (across shards, across a shard split, from `latest` while a split happens, through an expired
//! iterator injected by the fault proxy, into a pipe closed early, and as OCSF), `replay` of the
//! sample events, and the official Python SDK decrypting what `simulate` produces the way the AWS
//! documentation sample does.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::fault::{Answer, FaultProxy, Match, Rule};
use common::moto::{self, Moto};
use das_archiver::envelope::{Envelope, ResourceId};
use das_archiver::esdk::RawAesKeyring;
use das_archiver::record::{self, DecodeOptions};
use serde_json::Value;

const TEST_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// `das args`, talking to AWS at `endpoint` (moto, or the fault proxy in front of it).
fn das_command(endpoint: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_das"));
    command.args(args).env_remove("DAS_WRAPPING_KEY");
    if let Some(endpoint) = endpoint {
        command
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    }
    command
}

fn das(moto: Option<&Moto>, args: &[&str]) -> Output {
    let out = das_command(moto.map(|m| m.endpoint.as_str()), args).output().unwrap();
    assert!(
        out.status.success(),
        "das {args:?} failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every record in every shard of `stream`, decoded with our library through moto's KMS: what
/// `das tail` must print (minus heartbeats, masked by default), as a set of lines.
async fn expected_lines(cfg: &aws_config::SdkConfig, stream: &str, resource: &ResourceId) -> BTreeSet<String> {
    let kinesis = aws_sdk_kinesis::Client::new(cfg);
    let kms = aws_sdk_kms::Client::new(cfg);
    let shards = kinesis.list_shards().stream_name(stream).send().await.unwrap();
    let mut lines = BTreeSet::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(current) = iterator {
            let out = kinesis.get_records().shard_iterator(current).send().await.unwrap();
            if out.records().is_empty() {
                break;
            }
            for r in out.records() {
                let envelope = Envelope::parse(r.data().as_ref()).unwrap();
                let (k, v) = resource.encryption_context();
                let key = kms
                    .decrypt()
                    .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(envelope.key_blob.clone()))
                    .encryption_context(k, v)
                    .send()
                    .await
                    .unwrap();
                let keyring = RawAesKeyring::das(key.plaintext().unwrap().as_ref()).unwrap();
                let payload = record::decode(&envelope, &keyring, &DecodeOptions::default()).unwrap();
                let activity = payload.activity(&DecodeOptions::default()).unwrap();
                for (i, event) in activity.events.iter().enumerate().filter(|(_, e)| !e.is_heartbeat()) {
                    let mut line = Vec::new();
                    let at = das_archiver::ndjson::LineContext::kinesis(shard.shard_id(), r.sequence_number(), i);
                    // Masked by default, as `das tail` prints (the masking itself is checked against an
                    // independent expectation in `lambda_moto`).
                    let mask = das_archiver::mask::MaskMode::Literals;
                    das_archiver::ndjson::write_masked_event_line(event, &activity, &at, mask, &mut line);
                    lines.insert(String::from_utf8(line).unwrap().trim_end().to_owned());
                }
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
        }
    }
    lines
}

async fn stream_env(resource: &ResourceId, shards: i32) -> (Moto, aws_config::SdkConfig, String) {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    aws_sdk_kinesis::Client::new(&cfg)
        .create_stream()
        .stream_name(resource.stream_name())
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    (moto, cfg, key_id)
}

fn tail_lines(moto: &Moto, stream: &str, limit: usize) -> BTreeSet<String> {
    let out = das(
        Some(moto),
        &[
            "tail",
            "--stream",
            stream,
            "--from",
            "trim-horizon",
            "--limit",
            &limit.to_string(),
        ],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), limit, "tail printed {} lines", lines.len());
    lines.into_iter().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_into_a_three_shard_stream_then_tail_prints_exactly_the_simulated_events() {
    let resource = ResourceId::parse("cluster-TAILTEST000001").unwrap();
    let (moto, cfg, key_id) = stream_env(&resource, 3).await;
    let stream = resource.stream_name();
    das(
        Some(&moto),
        &[
            "simulate",
            "--resource-id",
            resource.as_str(),
            "--kms-key-id",
            &key_id,
            "--records",
            "60",
            "--events-per-record",
            "5",
            "--heartbeat-interval",
            "4",
            "--to-stream",
            &stream,
        ],
    );
    let expected = expected_lines(&cfg, &stream, &resource).await;
    assert_eq!(expected.len(), 45 * 5, "60 records, every fourth heartbeat-only");
    assert_eq!(tail_lines(&moto, &stream, expected.len()), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_follows_the_children_of_a_split_shard() {
    let resource = ResourceId::parse("cluster-SPLITTEST00001").unwrap();
    let (moto, cfg, key_id) = stream_env(&resource, 1).await;
    let stream = resource.stream_name();
    let simulate = |seed: &str| {
        das(
            Some(&moto),
            &[
                "simulate",
                "--resource-id",
                resource.as_str(),
                "--kms-key-id",
                &key_id,
                "--records",
                "20",
                "--events-per-record",
                "3",
                "--heartbeat-interval",
                "0",
                "--seed",
                seed,
                "--to-stream",
                &stream,
            ],
        );
    };
    simulate("1");
    let kinesis = aws_sdk_kinesis::Client::new(&cfg);
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    simulate("2");
    let shards = kinesis.list_shards().stream_name(&stream).send().await.unwrap();
    assert_eq!(shards.shards().len(), 3, "the parent and its two children");
    let expected = expected_lines(&cfg, &stream, &resource).await;
    assert_eq!(expected.len(), 120);
    assert_eq!(tail_lines(&moto, &stream, expected.len()), expected);
}

/// `das simulate` of `records` records of three events (no heartbeats) into `stream` on moto.
fn simulate(moto: &Moto, resource: &ResourceId, key_id: &str, stream: &str, records: u32, seed: &str) {
    das(
        Some(moto),
        &[
            "simulate",
            "--resource-id",
            resource.as_str(),
            "--kms-key-id",
            key_id,
            "--records",
            &records.to_string(),
            "--events-per-record",
            "3",
            "--heartbeat-interval",
            "0",
            "--seed",
            seed,
            "--to-stream",
            stream,
        ],
    );
}

/// `das tail args` running in the background against `endpoint`, stdout and stderr piped.
fn spawn_tail(endpoint: &str, args: &[&str]) -> Child {
    das_command(Some(endpoint), &[&["tail"], args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `ready` holds; a tail that ends before is a failure (with its stderr).
async fn wait_until(tail: &mut Child, what: &str, ready: impl Fn() -> bool) {
    while !ready() {
        if let Some(status) = tail.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(tail.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("tail ended ({status}) before {what}:\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines a tail printed before it reached its limit, each exactly once (a set would hide a
/// line printed twice).
async fn finished_tail_lines(tail: Child) -> Vec<String> {
    let out = tokio::task::spawn_blocking(move || tail.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "tail: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn split_the_first_shard(cfg: &aws_config::SdkConfig, stream: &str) -> impl std::future::Future<Output = ()> {
    let request = aws_sdk_kinesis::Client::new(cfg)
        .split_shard()
        .stream_name(stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string());
    async move {
        request.send().await.unwrap();
    }
}

/// moto 5.2.5 keeps routing every record (even the ones a split moves) to the closed parent, and
/// never ends a closed shard's iterator chain, so on moto a split leaves the children empty and
/// never starts them: this checks that nothing written after a `latest` start is lost across
/// moto's split. Where a child starts is proved by the unit tests of `cli::tail::shards`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tail_from_latest_prints_every_record_written_after_it_started_across_a_split() {
    let resource = ResourceId::parse("cluster-SPLITLATEST001").unwrap();
    let (moto, cfg, key_id) = stream_env(&resource, 1).await;
    let stream = resource.stream_name();
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let mut tail = spawn_tail(
        &proxy.endpoint,
        &["--stream", &stream, "--from", "latest", "--limit", "120"],
    );
    // The parent's LATEST iterator exists once tail polls with it: everything written after is new.
    wait_until(&mut tail, "its first GetRecords", || {
        proxy.count(&Match::Kinesis("GetRecords")) > 0
    })
    .await;
    simulate(&moto, &resource, &key_id, &stream, 20, "1");
    split_the_first_shard(&cfg, &stream).await;
    simulate(&moto, &resource, &key_id, &stream, 20, "2");
    let expected = expected_lines(&cfg, &stream, &resource).await;
    assert_eq!(expected.len(), 120);
    let printed = finished_tail_lines(tail).await;
    assert_eq!(printed.len(), 120);
    assert_eq!(printed.into_iter().collect::<BTreeSet<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_iterator_that_expires_before_anything_was_read_resumes_at_the_start_not_the_trim_horizon() {
    let resource = ResourceId::parse("cluster-EXPIRETEST0002").unwrap();
    let (moto, cfg, key_id) = stream_env(&resource, 1).await;
    let stream = resource.stream_name();
    simulate(&moto, &resource, &key_id, &stream, 20, "1");
    let before = expected_lines(&cfg, &stream, &resource).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.add(
        Rule::new(
            Match::Kinesis("GetRecords"),
            Answer::kinesis("ExpiredIteratorException"),
        )
        .only_call(1),
    );
    let mut tail = spawn_tail(
        &proxy.endpoint,
        &["--stream", &stream, "--from", "latest", "--limit", "60"],
    );
    wait_until(&mut tail, "renewing its iterator", || {
        proxy.count(&Match::Kinesis("GetShardIterator")) >= 2
    })
    .await;
    simulate(&moto, &resource, &key_id, &stream, 20, "2");
    let after: BTreeSet<String> = expected_lines(&cfg, &stream, &resource)
        .await
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(after.len(), 60);
    let printed = finished_tail_lines(tail).await;
    assert_eq!(
        printed.into_iter().collect::<BTreeSet<_>>(),
        after,
        "the trim horizon would print the first 60"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_iterator_renewal_is_an_error_that_names_the_shard() {
    let resource = ResourceId::parse("cluster-EXPIRETEST0003").unwrap();
    let (moto, _cfg, _key_id) = stream_env(&resource, 1).await;
    let stream = resource.stream_name();
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.add(
        Rule::new(
            Match::Kinesis("GetRecords"),
            Answer::kinesis("ExpiredIteratorException"),
        )
        .only_call(1),
    );
    proxy.add(
        Rule::new(
            Match::Kinesis("GetShardIterator"),
            Answer::kinesis("ResourceNotFoundException"),
        )
        .only_call(2),
    );
    let tail = spawn_tail(&proxy.endpoint, &["--stream", &stream, "--from", "latest"]);
    let out = tokio::task::spawn_blocking(move || tail.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shardId-000000000000"), "{stderr}");
    assert!(stderr.contains("renew"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_iterator_resumes_after_the_last_record_read_so_nothing_is_printed_twice_or_missed() {
    let resource = ResourceId::parse("cluster-EXPIRETEST0001").unwrap();
    let (moto, cfg, key_id) = stream_env(&resource, 1).await;
    let stream = resource.stream_name();
    simulate(&moto, &resource, &key_id, &stream, 20, "1");
    let proxy = FaultProxy::start(&moto.endpoint).await;
    // The first GetRecords reads the 20 records; the second finds its iterator expired.
    proxy.add(
        Rule::new(
            Match::Kinesis("GetRecords"),
            Answer::kinesis("ExpiredIteratorException"),
        )
        .only_call(2),
    );
    let mut tail = spawn_tail(
        &proxy.endpoint,
        &["--stream", &stream, "--from", "trim-horizon", "--limit", "120"],
    );
    wait_until(&mut tail, "renewing its iterator", || {
        proxy.count(&Match::Kinesis("GetShardIterator")) >= 2
    })
    .await;
    simulate(&moto, &resource, &key_id, &stream, 20, "2");
    let expected = expected_lines(&cfg, &stream, &resource).await;
    assert_eq!(expected.len(), 120);
    let printed = finished_tail_lines(tail).await;
    assert_eq!(
        printed.len(),
        120,
        "a replay from the trim horizon would print the first 60 twice"
    );
    assert_eq!(printed.into_iter().collect::<BTreeSet<_>>(), expected);
    let seen = proxy.seen();
    assert!(seen.iter().any(|s| s.injected), "the expiry was injected");
    let renewal = seen
        .iter()
        .filter(|s| s.target.as_deref() == Some("Kinesis_20131202.GetShardIterator"))
        .nth(1)
        .unwrap();
    assert!(String::from_utf8_lossy(&renewal.body).contains("AFTER_SEQUENCE_NUMBER"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tail_into_a_pipe_its_reader_closes_early_exits_0_with_nothing_on_stderr() {
    let resource = ResourceId::parse("cluster-PIPETEST000001").unwrap();
    let (moto, _cfg, key_id) = stream_env(&resource, 1).await;
    let stream = resource.stream_name();
    simulate(&moto, &resource, &key_id, &stream, 20, "1");
    let mut tail = spawn_tail(&moto.endpoint, &["--stream", &stream, "--from", "trim-horizon"]);
    // `| head -n 3`: read three lines, then close the pipe.
    let mut head = BufReader::new(tail.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        head.read_line(&mut line).unwrap();
        assert!(line.starts_with('{'), "{line}");
    }
    drop(head);
    // More records make tail write again, into the closed pipe, whatever the pipe buffered.
    simulate(&moto, &resource, &key_id, &stream, 20, "2");
    let out = tokio::task::spawn_blocking(move || tail.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tail_format_ocsf_prints_one_valid_datastore_activity_event_per_archived_line() {
    let resource = ResourceId::parse("cluster-OCSFTAIL000001").unwrap();
    let (moto, cfg, key_id) = stream_env(&resource, 2).await;
    let stream = resource.stream_name();
    simulate(&moto, &resource, &key_id, &stream, 10, "1");
    let expected = expected_lines(&cfg, &stream, &resource).await;
    let tail = spawn_tail(
        &moto.endpoint,
        &[
            "--stream",
            &stream,
            "--from",
            "trim-horizon",
            "--format",
            "ocsf",
            "--limit",
            "30",
        ],
    );
    let printed = finished_tail_lines(tail).await;
    let events: Vec<Value> = printed.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let uid = |line: &Value| {
        format!(
            "{}:{}:{}",
            line["kinesisShardId"].as_str().unwrap(),
            line["kinesisSequenceNumber"].as_str().unwrap(),
            line["eventIndex"]
        )
    };
    let expected_uids: BTreeSet<String> = expected
        .iter()
        .map(|l| uid(&serde_json::from_str(l).unwrap()))
        .collect();
    let printed_uids: BTreeSet<String> = events
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 30);
    assert_eq!(printed_uids, expected_uids);
    assert!(events
        .iter()
        .all(|e| e["class_uid"] == 6005 && e["cloud"]["region"] == "us-east-1"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.json");
    std::fs::write(&path, serde_json::to_vec(&events).unwrap()).unwrap();
    let python = common::venv_tool("python", "DAS_PYTHON", "the Python with ocsf-json-schema");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ocsf_validate.py");
    let out = Command::new(python).arg(script).arg(&path).output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["validated"], 30, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary:#}");
}

#[test]
fn replay_of_each_sample_event_writes_what_the_lambda_handler_writes() {
    for event in [
        "aurora-postgresql.json",
        "aurora-mysql.json",
        "one-corrupted-record.json",
        "heartbeats-only.json",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = format!("{}/events/{event}", env!("CARGO_MANIFEST_DIR"));
        let out = das(
            None,
            &[
                "replay",
                &path,
                "--out-dir",
                dir.path().to_str().unwrap(),
                "--wrapping-key",
                TEST_KEY,
            ],
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            r#"{"batchItemFailures":[]}"#
        );
        let files: Vec<String> = common::files_below(dir.path());
        let lambda = lambda_objects(&path);
        assert_eq!(files, lambda.keys().cloned().collect::<Vec<_>>(), "{event}");
        for key in &files {
            assert_eq!(
                std::fs::read(dir.path().join(key)).unwrap(),
                lambda[key],
                "{event}: {key}"
            );
        }
    }
}

/// The objects the Lambda handler writes for an event file, with the function's default settings.
fn lambda_objects(path: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    use das_archiver::archive::MemorySink;
    use das_archiver::batch::Archiver;
    use das_archiver::config::Settings;
    use das_archiver::filter::Filter;
    use das_archiver::keys::{KeyCache, StaticKeySource};
    let settings = Settings::from_lookup(|n| (n == "DAS_ARCHIVE_BUCKET").then(|| "b".to_owned())).unwrap();
    let key = hex::decode(TEST_KEY).unwrap();
    let archiver = Archiver::new(
        settings.batch_settings(),
        KeyCache::new(StaticKeySource::new(&key), settings.key_cache),
        Filter::new(&settings.filter).unwrap(),
        MemorySink::default(),
    );
    let event: das_archiver::lambda::KinesisBatchEvent = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(das_archiver::lambda::handle(
            &archiver,
            lambda_runtime::LambdaEvent::new(event, Default::default()),
        ))
        .unwrap();
    archiver
        .sink()
        .objects()
        .into_iter()
        .map(|(k, o)| (k, o.body))
        .collect()
}

#[test]
fn records_from_simulate_decrypt_in_the_python_sdk_like_the_aws_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for (engine, id) in [
        ("aurora-postgresql", "cluster-PYORACLE0001"),
        ("aurora-mysql", "cluster-PYORACLE0002"),
        ("oracle", "db-PYORACLE0003"),
        ("sqlserver", "db-PYORACLE0004"),
    ] {
        let file = dir.path().join(format!("{engine}.json"));
        das(
            None,
            &[
                "simulate",
                "--wrapping-key",
                TEST_KEY,
                "--resource-id",
                id,
                "--engine",
                engine,
                "--records",
                "4",
                "--to-event-file",
                file.to_str().unwrap(),
            ],
        );
        let event: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for (i, r) in event["Records"].as_array().unwrap().iter().enumerate() {
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["kinesis"]["data"].as_str().unwrap())
                .unwrap();
            let name = format!("{engine}-{i}");
            std::fs::write(dir.path().join(&name), &data).unwrap();
            cases.push(
                serde_json::json!({"name": name, "wrapping_key_hex": TEST_KEY, "record": dir.path().join(&name),
                "payload_out": dir.path().join(format!("{name}.out"))}),
            );
        }
    }
    let summary = common::run_oracle("decrypt-das", &serde_json::json!({"cases": cases}), dir.path());
    assert_eq!(summary["failed"], serde_json::json!({}), "{summary}");
    assert_eq!(summary["ok"].as_array().unwrap().len(), 16);
    assert_eq!(summary["headers"]["aurora-mysql-0"]["suite"], "0378");
    assert_eq!(summary["headers"]["aurora-postgresql-0"]["suite"], "0178");
    let oracle: Value = serde_json::from_slice(&std::fs::read(dir.path().join("oracle-1.out")).unwrap()).unwrap();
    assert_eq!(oracle["clusterId"], "");
    assert_eq!(oracle["instanceId"], "db-PYORACLE0003");
}

#[test]
fn replay_of_an_old_saved_batch_without_kms_credentials_quarantines_nothing_and_exits_non_zero() {
    // The sample event's records arrived on 2026-11-22: far older than the 12-hour give-up age.
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("missing");
    let path = format!("{}/events/aurora-postgresql.json", env!("CARGO_MANIFEST_DIR"));
    let mut command = das_command(None, &["replay", &path, "--out-dir", dir.path().to_str().unwrap()]);
    for variable in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "DAS_GIVE_UP_AFTER_SECONDS",
    ] {
        command.env_remove(variable);
    }
    let out = command
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        // Were credentials found after all, KMS would not answer here either.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let event: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let response: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"],
        event["Records"][0]["kinesis"]["sequenceNumber"]
    );
    assert!(
        common::files_below(dir.path()).is_empty(),
        "nothing archived, nothing quarantined"
    );
    assert!(
        stderr.contains("20 records from sequence number") && stderr.contains("run das replay again"),
        "{stderr}"
    );
}

/// The function's memory: `MemorySize`'s default in template.yaml, in MB.
fn function_memory_mb() -> u64 {
    let template = std::fs::read_to_string(format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut lines = template.lines().skip_while(|l| *l != "  MemorySize:");
    lines
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .and_then(|v| v.parse().ok())
        .expect("template.yaml's MemorySize parameter has a Default")
}

#[test]
fn replay_of_maximally_compressible_records_peaks_well_below_the_functions_memory() {
    // Each record's payload inflates to about 60 MiB (the default cap is 64 MiB) from under a
    // megabyte: 6 of them are 360 MiB of payload, over 400 MiB of lines, in one megabyte of data.
    const RECORDS: usize = 6;
    let key = hex::decode(TEST_KEY).unwrap();
    let keyring = RawAesKeyring::das(&key).unwrap();
    let mut sim = das_archiver::simulate::Simulator::new(
        das_archiver::simulate::Engine::AuroraPostgresql,
        "cluster-COMPRESSIBLE1",
        "db-COMPRESSIBLE1",
        11,
    );
    let event = sim.events(1).remove(0);
    let each = serde_json::to_vec(&event).unwrap().len() + 1;
    let payload = sim.payload(&vec![event; (60 << 20) / each]);
    let data = record::encode_with(&payload, &keyring, b"key-blob", &Default::default()).unwrap();
    drop(payload);
    let records = vec![data; RECORDS];
    let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-COMPRESSIBLE1";
    let event = das_archiver::simulate::lambda_kinesis_event(arn, "shardId-000000000000", &records, 0, 1_795_316_400.0);
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(&event).unwrap()).unwrap();
    let out_dir = dir.path().join("out");
    // The child's peak RSS, as the kernel counts it (getrusage of the children; KiB on Linux).
    let python = common::venv_tool("python", "DAS_PYTHON", "the project's Python");
    let measure = "import resource, subprocess, sys\n\
                   code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n\
                   print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let out = Command::new(python)
        .args(["-c", measure, env!("CARGO_BIN_EXE_das"), "replay"])
        .arg(&event_path)
        .args(["--out-dir", out_dir.to_str().unwrap(), "--wrapping-key", TEST_KEY])
        .env_remove("DAS_WRAPPING_KEY")
        .output()
        .unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    let (code, peak_kib) = report.trim().split_once(' ').unwrap();
    assert_eq!(code, "0", "{}", String::from_utf8_lossy(&out.stderr));
    let peak_mib = peak_kib.parse::<u64>().unwrap() / 1024;
    let memory_mb = function_memory_mb();
    eprintln!(
        "das replay of {RECORDS} records of 60 MiB payloads: peak RSS {peak_mib} MiB (function memory {memory_mb} MB)"
    );
    // The function's memory holds the runtime and the Lambda event besides: keep a quarter free.
    assert!(
        peak_mib * 4 < memory_mb * 3,
        "peak RSS {peak_mib} MiB is not well below the function's {memory_mb} MB"
    );
    assert_eq!(common::files_below(&out_dir).len(), 1, "one archive object");
}

/// Every record of every shard of `stream`, in order: (shard, sequence number, data, arrival seconds).
async fn stream_records(cfg: &aws_config::SdkConfig, stream: &str) -> Vec<(String, String, Vec<u8>, f64)> {
    let kinesis = aws_sdk_kinesis::Client::new(cfg);
    let mut all = Vec::new();
    for shard in kinesis.list_shards().stream_name(stream).send().await.unwrap().shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(current) = iterator {
            let out = kinesis.get_records().shard_iterator(current).send().await.unwrap();
            if out.records().is_empty() {
                break;
            }
            for r in out.records() {
                let arrival = r.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64());
                all.push((
                    shard.shard_id().to_owned(),
                    r.sequence_number().to_owned(),
                    r.data().as_ref().to_vec(),
                    arrival,
                ));
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
        }
    }
    all
}

/// `das replay` of `records` as the Lambda would receive them from `stream`, into bucket `archive`
/// (through moto's KMS), with `env` on top.
fn archive_records(
    moto: &Moto,
    dir: &std::path::Path,
    stream: &str,
    records: &[(String, String, Vec<u8>, f64)],
    env: &[(&str, &str)],
) {
    use base64::Engine as _;
    let arn = format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}");
    let event = serde_json::json!({
        "Records": records.iter().map(|(shard, seq, data, arrival)| serde_json::json!({
            "eventID": format!("{shard}:{seq}"),
            "eventSourceARN": arn,
            "kinesis": {
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "sequenceNumber": seq,
                "partitionKey": "pk",
                "approximateArrivalTimestamp": arrival,
            },
        })).collect::<Vec<_>>(),
    });
    let path = dir.join(format!("event-{}.json", records[0].1));
    std::fs::write(&path, event.to_string()).unwrap();
    let mut command = das_command(
        Some(&moto.endpoint),
        &["replay", path.to_str().unwrap(), "--bucket", "archive"],
    );
    command.env("DAS_S3_FORCE_PATH_STYLE", "true");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `das stream stop` of the cluster on the RDS double, with the archive in moto's bucket `archive`.
fn stop(moto: &Moto, rds: &common::rds_double::RdsDouble, extra: &[&str]) -> Output {
    let cluster = "arn:aws:rds:us-east-1:123456789012:cluster:orders";
    let args = [&["stream", "stop", "--cluster", cluster], extra].concat();
    das_command(Some(&moto.endpoint), &args)
        .env("AWS_ENDPOINT_URL_RDS", &rds.endpoint)
        .env("DAS_S3_FORCE_PATH_STYLE", "true")
        .env_remove("DAS_ARCHIVE_BUCKET")
        .env_remove("DAS_ARCHIVE_PREFIX")
        .env("DAS_INCLUDE_USERS", "nobody")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_stop_refuses_until_the_archive_holds_every_record_with_events_whatever_their_age() {
    use common::rds_double::{FakeDb, RdsDouble};
    let resource = ResourceId::parse("cluster-STOP00000001").unwrap();
    let (moto, cfg, key_id) = stream_env(&resource, 2).await;
    moto::create_bucket(&cfg, "archive").await;
    let rds = RdsDouble::start(vec![FakeDb::cluster("orders", resource.as_str(), Some("started"))]);
    let stream = resource.stream_name();
    simulate(&moto, &resource, &key_id, &stream, 12, "1");
    let dir = tempfile::tempdir().unwrap();

    let no_archive = stop(&moto, &rds, &[]);
    assert_eq!(no_archive.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_archive.stderr).contains("--bucket"));

    // Nothing archived: every record is missing, shard by shard.
    let out = stop(&moto, &rds, &["--bucket", "archive"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to stop") && stderr.contains("nothing archived"),
        "{stderr}"
    );
    let records = stream_records(&cfg, &stream).await;
    assert_eq!(records.len(), 12);
    let shards: BTreeSet<&str> = records.iter().map(|r| r.0.as_str()).collect();
    for shard in &shards {
        let count = records.iter().filter(|r| r.0 == *shard).count();
        let row = stderr
            .lines()
            .find(|l| l.starts_with(shard))
            .unwrap_or_else(|| panic!("{stderr}"));
        assert_eq!(row.split_whitespace().nth(1), Some(count.to_string().as_str()), "{row}");
    }

    // All archived but the newest record: exactly that one is missing, named.
    let (newest, rest) = records.split_last().unwrap();
    for shard in &shards {
        let of_shard: Vec<_> = rest.iter().filter(|r| r.0 == *shard).cloned().collect();
        archive_records(&moto, dir.path(), &stream, &of_shard, &[]);
    }
    let out = stop(&moto, &rds, &["--bucket", "archive"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} has 1 record(s) with events", newest.0)),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("from {}", newest.1)), "{stderr}");
    assert!(rds.stops().is_empty(), "nothing stopped");

    // Quarantined counts as handled; heartbeats after it (never archived) are not missing, however
    // long the stream has been idle; a filter in the shell changes nothing.
    archive_records(
        &moto,
        dir.path(),
        &stream,
        std::slice::from_ref(newest),
        &[("DAS_MAX_DECOMPRESSED_BYTES", "1024")],
    );
    das(
        Some(&moto),
        &[
            "simulate",
            "--resource-id",
            resource.as_str(),
            "--kms-key-id",
            &key_id,
            "--records",
            "6",
            "--heartbeat-interval",
            "1",
            "--seed",
            "2",
            "--to-stream",
            &stream,
        ],
    );
    let out = stop(&moto, &rds, &["--bucket", "archive"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("holds every record"), "{stderr}");
    assert_eq!(rds.stops(), ["arn:aws:rds:us-east-1:123456789012:cluster:orders"]);

    // A record that cannot be decrypted counts as missing; --force still stops.
    aws_sdk_kinesis::Client::new(&cfg)
        .put_record()
        .stream_name(&stream)
        .partition_key("pk")
        .data(aws_sdk_kinesis::primitives::Blob::new(b"not a DAS record".to_vec()))
        .send()
        .await
        .unwrap();
    let out = stop(&moto, &rds, &["--bucket", "archive"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1 could not be decrypted, so they count as missing"),
        "{stderr}"
    );
    let forced = stop(&moto, &rds, &["--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert_eq!(rds.stops().len(), 2);
}
