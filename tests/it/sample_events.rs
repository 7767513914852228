//! The sample events in `events/` (made by `make events` with the public test wrapping key) run
//! through the real Lambda handler with a static key and an in-memory sink, as `sam local invoke` and
//! `cargo lambda invoke` would run them.

#![cfg(feature = "lambda")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use das_archiver::archive::{Layout, MemorySink};
use das_archiver::batch::{Archiver, BatchSettings};
use das_archiver::compress::Compression;
use das_archiver::filter::{Filter, FilterSpec};
use das_archiver::keys::{KeyCache, KeyCacheLimits, StaticKeySource};
use das_archiver::lambda::{handle, KinesisBatchEvent};
use das_archiver::record::DecodeOptions;
use lambda_runtime::{Context, LambdaEvent};

/// The public key `make events` uses by default (bytes 0x00..0x1f).
const TEST_WRAPPING_KEY: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
    31,
];

async fn run(file: &str) -> (serde_json::Value, Archiver<StaticKeySource, MemorySink>, u64) {
    let text = std::fs::read(format!("{}/events/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let event: KinesisBatchEvent = serde_json::from_slice(&text).unwrap();
    let settings = BatchSettings {
        resource_id: None,
        resource_ids: Vec::new(),
        give_up: None,
        layout: Layout {
            prefix: "activity/".into(),
            compression: Compression::None,
        },
        decode: DecodeOptions::default(),
        outputs: Default::default(),
        keep_originals: false,
    };
    let archiver = Archiver::new(
        settings,
        KeyCache::new(StaticKeySource::new(&TEST_WRAPPING_KEY), KeyCacheLimits::default()),
        Filter::new(&FilterSpec {
            skip_heartbeats: true,
            ..FilterSpec::default()
        })
        .unwrap(),
        MemorySink::default(),
    );
    let response = handle(&archiver, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let lines = archiver
        .sink()
        .objects()
        .iter()
        .filter(|(k, _)| !k.contains("/quarantine/"))
        .map(|(_, o)| o.body.iter().filter(|b| **b == b'\n').count() as u64)
        .sum();
    (serde_json::to_value(response).unwrap(), archiver, lines)
}

#[tokio::test]
async fn the_aurora_postgresql_sample_archives_every_event() {
    let (response, archiver, lines) = run("aurora-postgresql.json").await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert_eq!(
        lines,
        18 * 5,
        "20 records, every tenth a heartbeat-only record, 5 events each"
    );
    assert!(archiver
        .sink()
        .objects()
        .keys()
        .all(|k| k.starts_with("activity/cluster-EXAMPLEAURORAPG000000001/dt=")));
}

#[tokio::test]
async fn the_aurora_mysql_sample_uses_the_signed_suite_and_archives_every_event() {
    let (response, _, lines) = run("aurora-mysql.json").await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert_eq!(lines, 9 * 6);
    let text = std::fs::read_to_string(format!("{}/events/aurora-mysql.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD
        .decode(event["Records"][0]["kinesis"]["data"].as_str().unwrap())
        .unwrap();
    let envelope = das_archiver::envelope::Envelope::parse(&data).unwrap();
    assert_eq!(envelope.version, "1.2");
    assert_eq!(envelope.message[2..4], [0x03, 0x78]);
}

#[tokio::test]
async fn the_heartbeat_only_sample_writes_nothing() {
    let (response, archiver, _) = run("heartbeats-only.json").await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert!(archiver.sink().objects().is_empty());
}

#[tokio::test]
async fn the_corrupted_record_sample_quarantines_one_record_and_archives_the_rest() {
    let (response, archiver, lines) = run("one-corrupted-record.json").await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    let quarantined: Vec<String> = archiver
        .sink()
        .objects()
        .into_keys()
        .filter(|k| k.contains("/quarantine/"))
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(lines, 5 * 3);
}
