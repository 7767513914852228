//! `das tail`: follow a live activity stream and print its decrypted events, after the same filters
//! as the Lambda. Every shard is read concurrently; a shard's children (after a split or merge) are
//! followed once it closes; throttling (Kinesis and KMS) is backed off; Ctrl-C ends cleanly.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{Shard, ShardIteratorType};
use rayon::prelude::*;
use tokio::sync::mpsc;

use super::filters::FilterArgs;
use super::parse_key;
use crate::aws::batch::render_record;
use crate::aws::keys::{DataKeySource, KeyCache, KmsKeySource, StaticKeySource};
use crate::pipeline::envelope::{Envelope, ResourceId};
use crate::pipeline::error::{Classify, FailureKind};
use crate::pipeline::filter::Filter;
use crate::pipeline::record::DecodeOptions;

#[derive(Debug, clap::Args)]
pub(super) struct TailArgs {
    /// The activity stream, by name (aws-rds-das-…) or ARN.
    #[arg(long, required_unless_present = "resource_id")]
    stream: Option<String>,
    /// The database resource id (cluster-… or db-…); the stream is aws-rds-das-<id>.
    #[arg(long)]
    resource_id: Option<ResourceId>,
    /// Where to start: latest, trim-horizon, or an RFC 3339 time (e.g. 2026-11-22T08:00:00Z).
    #[arg(long, default_value = "latest", value_parser = parse_start)]
    from: Start,
    /// Stop after printing this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Pretty-print each event instead of one JSON object per line.
    #[arg(long)]
    pretty: bool,
    /// Use this 32-byte wrapping key (hex or base64) instead of KMS.
    #[arg(long, env = "DAS_WRAPPING_KEY", hide_env_values = true)]
    wrapping_key: Option<String>,
    #[command(flatten)]
    filters: FilterArgs,
}

/// Where reading starts in each shard.
#[derive(Debug, Clone, PartialEq)]
enum Start {
    Latest,
    TrimHorizon,
    At(DateTime),
}

fn parse_start(text: &str) -> Result<Start, String> {
    match text.to_ascii_lowercase().as_str() {
        "latest" => Ok(Start::Latest),
        "trim-horizon" | "trim_horizon" => Ok(Start::TrimHorizon),
        _ => DateTime::from_str(text, aws_sdk_kinesis::primitives::DateTimeFormat::DateTime)
            .map(Start::At)
            .map_err(|_| format!("{text:?} is not latest, trim-horizon or an RFC 3339 time like 2026-11-22T08:00:00Z")),
    }
}

/// One GetRecords result, or the end of a shard.
enum ShardEvent {
    Records {
        records: Vec<(Vec<u8>, String)>,
        millis_behind: i64,
    },
    Closed {
        shard: String,
    },
    Failed {
        shard: String,
        error: String,
    },
}

/// The shards to start now: not started yet, and every parent that is in the listing has finished
/// (so a child's records come after all of its parents'). With `latest`, closed shards are skipped.
fn ready_shards(shards: &[Shard], started: &HashSet<String>, closed: &HashSet<String>, latest: bool) -> Vec<String> {
    let listed: HashSet<&str> = shards.iter().map(Shard::shard_id).collect();
    shards
        .iter()
        .filter(|s| !started.contains(s.shard_id()))
        .filter(|s| {
            !latest
                || s.sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none())
        })
        .filter(|s| {
            [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .all(|p| !listed.contains(p) || closed.contains(p) || latest)
        })
        .map(|s| s.shard_id().to_owned())
        .collect()
}

async fn list_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Shard>, String> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = request.send().await.map_err(|e| {
            format!(
                "cannot list the shards of {stream}: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(&e)
            )
        })?;
        shards.extend(out.shards().iter().cloned());
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// Reads one shard until it closes, sending what it reads.
async fn read_shard(
    client: aws_sdk_kinesis::Client,
    stream: String,
    shard: String,
    start: Start,
    tx: mpsc::Sender<ShardEvent>,
) {
    let fail = |error: String| ShardEvent::Failed {
        shard: shard.clone(),
        error,
    };
    let mut request = client.get_shard_iterator().stream_name(&stream).shard_id(&shard);
    request = match &start {
        Start::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        Start::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Start::At(t) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(*t),
    };
    let mut iterator = match request.send().await {
        Ok(out) => out.shard_iterator().map(str::to_owned),
        Err(e) => {
            let _ = tx
                .send(fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()))
                .await;
            return;
        }
    };
    let mut backoff = Duration::from_millis(200);
    let mut last_sequence: Option<String> = None;
    while let Some(current) = iterator.take() {
        match client.get_records().shard_iterator(&current).limit(10_000).send().await {
            Ok(out) => {
                backoff = Duration::from_millis(200);
                let records: Vec<(Vec<u8>, String)> = out
                    .records()
                    .iter()
                    .map(|r| (r.data().as_ref().to_vec(), r.sequence_number().to_owned()))
                    .collect();
                let caught_up = records.is_empty() && out.millis_behind_latest().unwrap_or(0) == 0;
                if let Some((_, seq)) = records.last() {
                    last_sequence = Some(seq.clone());
                }
                let millis_behind = out.millis_behind_latest().unwrap_or(0);
                iterator = out.next_shard_iterator().map(str::to_owned);
                if !records.is_empty() && tx.send(ShardEvent::Records { records, millis_behind }).await.is_err() {
                    return;
                }
                // Five GetRecords per second per shard is the Kinesis limit; poll slower when caught up.
                tokio::time::sleep(if caught_up {
                    Duration::from_secs(1)
                } else {
                    Duration::from_millis(210)
                })
                .await;
            }
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()) {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    iterator = Some(current);
                } else if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                    let renewed = match &last_sequence {
                        Some(seq) => client
                            .get_shard_iterator()
                            .stream_name(&stream)
                            .shard_id(&shard)
                            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                            .starting_sequence_number(seq),
                        None => client
                            .get_shard_iterator()
                            .stream_name(&stream)
                            .shard_id(&shard)
                            .shard_iterator_type(ShardIteratorType::TrimHorizon),
                    };
                    iterator = renewed
                        .send()
                        .await
                        .ok()
                        .and_then(|o| o.shard_iterator().map(str::to_owned));
                } else {
                    let _ = tx
                        .send(fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()))
                        .await;
                    return;
                }
            }
        }
    }
    let _ = tx.send(ShardEvent::Closed { shard }).await;
}

/// Counts for the progress line and the exit code.
#[derive(Default)]
struct Progress {
    records: u64,
    events: u64,
    failed: u64,
    lag_millis: i64,
}

pub(super) async fn tail(args: &TailArgs) -> Result<ExitCode, String> {
    let (stream, resource) = match (&args.stream, &args.resource_id) {
        (Some(s), id) => {
            let name = s
                .rsplit_once("stream/")
                .map_or(s.as_str(), |(_, n)| n.split('/').next().unwrap_or(n))
                .to_owned();
            let resource = match id {
                Some(id) => id.clone(),
                None => ResourceId::from_stream(&name).map_err(|e| format!("{e}; give --resource-id"))?,
            };
            (name, resource)
        }
        (None, Some(id)) => (id.stream_name(), id.clone()),
        (None, None) => return Err("give --stream or --resource-id".to_owned()),
    };
    let settings = args
        .filters
        .settings(&[("DAS_ARCHIVE_BUCKET", "stdout".to_owned())])
        .map_err(|e| e.to_string())?;
    let filter = Arc::new(Filter::new(&settings.filter).map_err(|e| e.to_string())?);
    let options = settings.decode.clone();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let keys: KeyCache<Box<dyn DataKeySource>> = KeyCache::new(
        match &args.wrapping_key {
            Some(key) => Box::new(StaticKeySource::new(&parse_key(key)?)),
            None => Box::new(KmsKeySource::new(&sdk)),
        },
        settings.key_cache,
    );
    let client = aws_sdk_kinesis::Client::new(&sdk);
    let latest = args.from == Start::Latest;

    let (tx, mut rx) = mpsc::channel::<ShardEvent>(64);
    let mut started: HashSet<String> = HashSet::new();
    let mut closed: HashSet<String> = HashSet::new();
    let start_ready = |shards: &[Shard], started: &mut HashSet<String>, closed: &HashSet<String>| {
        for shard in ready_shards(shards, started, closed, latest) {
            started.insert(shard.clone());
            tokio::spawn(read_shard(
                client.clone(),
                stream.clone(),
                shard,
                args.from.clone(),
                tx.clone(),
            ));
        }
    };
    start_ready(&list_shards(&client, &stream).await?, &mut started, &closed);

    let interactive = std::io::stderr().is_terminal();
    let mut progress = Progress::default();
    let mut last_report = (Instant::now(), 0u64, 0u64);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let remaining = |p: &Progress| args.limit.map_or(u64::MAX, |l| l.saturating_sub(p.events));
    loop {
        if remaining(&progress) == 0 {
            break;
        }
        let event = tokio::select! {
            event = rx.recv() => event,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else { break };
        match event {
            ShardEvent::Closed { shard } => {
                closed.insert(shard);
                start_ready(&list_shards(&client, &stream).await?, &mut started, &closed);
            }
            ShardEvent::Failed { shard, error } => return Err(format!("reading {shard} of {stream} failed: {error}")),
            ShardEvent::Records { records, millis_behind } => {
                progress.lag_millis = millis_behind;
                let lines = decode(&records, &keys, &resource, &filter, &options, &mut progress).await;
                for line in lines.split_inclusive(|b| *b == b'\n') {
                    if remaining(&progress) == 0 {
                        break;
                    }
                    write_event(&mut out, line, args.pretty).map_err(|e| format!("cannot write output: {e}"))?;
                    progress.events += 1;
                }
                out.flush().map_err(|e| format!("cannot write output: {e}"))?;
            }
        }
        if interactive && last_report.0.elapsed() >= Duration::from_secs(1) {
            let seconds = last_report.0.elapsed().as_secs_f64();
            eprint!(
                "\r\x1b[2K{:.0} records/s, {:.0} events/s, {:.1} s behind the tip ",
                (progress.records - last_report.1) as f64 / seconds,
                (progress.events - last_report.2) as f64 / seconds,
                progress.lag_millis as f64 / 1000.0
            );
            last_report = (Instant::now(), progress.records, progress.events);
        }
    }
    if interactive {
        eprintln!();
    }
    eprintln!(
        "das tail: {} records, {} events printed, {} records failed",
        progress.records, progress.events, progress.failed
    );
    Ok(if progress.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Decodes one GetRecords batch: keys first (KMS throttling backed off), then the CPU work on all
/// cores. Returns the NDJSON lines in order; failures are reported on stderr.
async fn decode(
    records: &[(Vec<u8>, String)],
    keys: &KeyCache<Box<dyn DataKeySource>>,
    resource: &ResourceId,
    filter: &Arc<Filter>,
    options: &DecodeOptions,
    progress: &mut Progress,
) -> Vec<u8> {
    progress.records += records.len() as u64;
    let mut jobs = Vec::with_capacity(records.len());
    let mut keyrings = BTreeMap::new();
    for (data, sequence) in records {
        let envelope = match Envelope::parse(data) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("das tail: record {sequence}: {e}");
                progress.failed += 1;
                continue;
            }
        };
        if !keyrings.contains_key(&envelope.key_blob) {
            let mut wait = Duration::from_millis(100);
            let keyring = loop {
                match keys.keyring(&envelope.key_blob, resource).await {
                    Err(e) if e.failure_kind() == FailureKind::Transient && wait < Duration::from_secs(30) => {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    other => break other.map_err(|e| e.to_string()),
                }
            };
            keyrings.insert(envelope.key_blob.clone(), keyring);
        }
        match keyrings.get(&envelope.key_blob) {
            Some(Ok(keyring)) => jobs.push((envelope, Arc::clone(keyring), sequence.clone())),
            Some(Err(e)) => {
                eprintln!("das tail: record {sequence}: {e}");
                progress.failed += 1;
            }
            None => {}
        }
    }
    let filter = Arc::clone(filter);
    let options = options.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        jobs.par_iter()
            .map(|(envelope, keyring, sequence)| {
                (sequence.clone(), render_record(envelope, keyring, &filter, &options))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut lines = Vec::new();
    for (sequence, result) in rendered {
        match result {
            Ok(r) => lines.extend_from_slice(&r.lines),
            Err(e) => {
                eprintln!("das tail: record {sequence}: {e}");
                progress.failed += 1;
            }
        }
    }
    lines
}

fn write_event(out: &mut impl Write, line: &[u8], pretty: bool) -> std::io::Result<()> {
    if pretty {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) {
            serde_json::to_writer_pretty(&mut *out, &value)?;
            return out.write_all(b"\n");
        }
    }
    out.write_all(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::SequenceNumberRange;

    fn shard(id: &str, parents: (Option<&str>, Option<&str>), open: bool) -> Shard {
        let range = SequenceNumberRange::builder()
            .starting_sequence_number("1")
            .set_ending_sequence_number((!open).then(|| "9".to_owned()))
            .build()
            .unwrap();
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parents.0.map(str::to_owned))
            .set_adjacent_parent_shard_id(parents.1.map(str::to_owned))
            .sequence_number_range(range)
            .build()
            .unwrap()
    }

    #[test]
    fn children_start_only_after_their_parents_close() {
        let shards = [
            shard("s0", (None, None), false),
            shard("s1", (Some("s0"), None), true),
            shard("s2", (Some("s0"), None), true),
            shard("s3", (Some("s1"), Some("s2")), true),
        ];
        let mut started = HashSet::new();
        let mut closed = HashSet::new();
        assert_eq!(ready_shards(&shards, &started, &closed, false), ["s0"]);
        started.insert("s0".to_owned());
        closed.insert("s0".to_owned());
        assert_eq!(ready_shards(&shards, &started, &closed, false), ["s1", "s2"]);
        started.extend(["s1".to_owned(), "s2".to_owned()]);
        closed.insert("s1".to_owned());
        assert!(
            ready_shards(&shards, &started, &closed, false).is_empty(),
            "a merge waits for both parents"
        );
        closed.insert("s2".to_owned());
        assert_eq!(ready_shards(&shards, &started, &closed, false), ["s3"]);
    }

    #[test]
    fn latest_starts_every_open_shard_at_once() {
        let shards = [
            shard("s0", (None, None), false),
            shard("s1", (Some("s0"), None), true),
            shard("s2", (Some("s0"), None), true),
        ];
        assert_eq!(
            ready_shards(&shards, &HashSet::new(), &HashSet::new(), true),
            ["s1", "s2"]
        );
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("TRIM-HORIZON"), Ok(Start::TrimHorizon));
        assert!(matches!(parse_start("2026-11-22T08:00:00Z"), Ok(Start::At(_))));
        assert!(parse_start("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
