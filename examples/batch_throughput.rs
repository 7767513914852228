//! Times the Lambda's batch pipeline on one large batch, the way a warm container sees it: the data
//! key is already cached, records are decrypted in parallel, and objects go to memory or to S3.
//!
//! ```sh
//! cargo run --release --example batch_throughput -- [records] [events-per-record]
//! # against an S3-compatible endpoint (e.g. moto):
//! AWS_ENDPOINT_URL=http://127.0.0.1:5000 DAS_ARCHIVE_BUCKET=b cargo run --release --example batch_throughput
//! ```
//! It prints records/s, events/s and the process's peak resident memory (VmHWM); with `--json` (last
//! argument) one JSON object instead, for `bench/report.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

// glibc's allocator fragments badly under the per-record pattern of large short-lived (de)compressor
// state interleaved with small long-lived buffers: 10,000 records grew its heap to ~3 GB in our
// measurement, against ~20 MB with mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use das_archiver::archive::{Layout, MemorySink, S3Sink, Sink};
use das_archiver::batch::{Archiver, Batch, BatchSettings, InputRecord};
use das_archiver::compress::Compression;
use das_archiver::esdk::RawAesKeyring;
use das_archiver::filter::{Filter, FilterSpec};
use das_archiver::keys::{KeyCache, KeyCacheLimits, StaticKeySource};
use das_archiver::record::{self, DecodeOptions, EncodeOptions};
use das_archiver::simulate::{sequence_number, Engine, Simulator};

const KEY: [u8; 32] = [0x42; 32];

fn batch(records: usize, events: usize) -> Batch {
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-BENCH", "db-BENCH", 1);
    let records = (0..records)
        .map(|i| {
            let payload = sim.payload(&sim.clone().events(events));
            sim.events(events);
            InputRecord {
                data: Some(record::encode_with(&payload, &keyring, b"kms-blob", &EncodeOptions::default()).unwrap()),
                sequence_number: sequence_number(i as u64),
                shard_id: "shardId-000000000000".into(),
                partition_key: "pk".into(),
                arrival_seconds: 1_795_314_600.0 + i as f64 / 1000.0,
            }
        })
        .collect();
    Batch {
        event_source_arn: Some("arn:aws:kinesis:us-east-1:1:stream/aws-rds-das-cluster-BENCH".into()),
        records,
    }
}

async fn run<S: Sink>(sink: S, batch: Batch, label: &str, json: bool) {
    let settings = BatchSettings {
        resource_id: None,
        resource_ids: Vec::new(),
        give_up: None,
        layout: Layout {
            prefix: "activity/".into(),
            compression: Compression::Gzip,
        },
        decode: DecodeOptions::default(),
        outputs: Default::default(),
        keep_originals: false,
    };
    let filter = Filter::new(&FilterSpec {
        skip_heartbeats: true,
        ..FilterSpec::default()
    })
    .unwrap();
    let archiver = Archiver::new(
        settings,
        KeyCache::new(StaticKeySource::new(&KEY), KeyCacheLimits::default()),
        filter,
        sink,
    );
    archiver.process(batch.clone()).await; // warm: the key is cached, as in a warm container
    let records = batch.records.len();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let outcome = archiver.process(batch).await;
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    assert_eq!(outcome.retry_from, None);
    let events = outcome.metrics.events_archived;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "sink": label,
                "records": records,
                "events": events,
                "wall_ms": wall * 1e3,
                "cpu_ms": cpu * 1e3,
                "events_per_s": events as f64 / wall,
                "records_per_s": records as f64 / wall,
                "objects": outcome.metrics.objects_written,
                "bytes_written": outcome.metrics.bytes_written,
                "peak_rss_mib": peak_rss_mib(),
            })
        );
        return;
    }
    println!(
        "{label}: {records} records, {events} events in {:.1} ms wall, {:.1} ms CPU: {:.0} records/s, {:.0} events/s; {} objects, {} bytes",
        wall * 1e3,
        cpu * 1e3,
        records as f64 / wall,
        events as f64 / wall,
        outcome.metrics.objects_written,
        outcome.metrics.bytes_written
    );
}

/// User + system CPU time of this process so far, from /proc (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| a != "--json")
        .map(|a| a.parse::<usize>().expect("numbers"));
    let records = args.next().unwrap_or(10_000);
    let events = args.next().unwrap_or(1);
    let batch = batch(records, events);
    if !json {
        eprintln!("after building the batch: peak RSS {:.1} MiB", peak_rss_mib());
    }
    match std::env::var("DAS_ARCHIVE_BUCKET") {
        Ok(bucket) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            run(S3Sink::new(&sdk, &bucket, true), batch, "s3", json).await;
        }
        Err(_) => run(MemorySink::default(), batch, "memory", json).await,
    }
    if !json {
        println!("peak RSS {:.1} MiB", peak_rss_mib());
    }
}
