//! `das tail`: follow a live activity stream and print its decrypted events, after the same filters
//! as the Lambda. Every shard is read concurrently; a shard's children (after a split or merge) are
//! followed from their first record once it closes; throttling (Kinesis and KMS) is backed off;
//! Ctrl-C and a closed stdout (`das tail | head`) end cleanly. It must never lose a record quietly:
//! what it cannot print is reported on stderr and counted in the exit code.
//!
//! This file is the command and its loop; [`shards`] reads the stream, [`format`] renders OCSF and
//! [`progress`] reports. The records are decoded by the Lambda's own [`decode_records`], so tail
//! shows what the archive holds.

mod format;
mod progress;
mod shards;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::filters::{open_filter, FilterArgs};
use super::parse_key;
use crate::aws::batch::{decode_records, parse_envelope, DecodeFailure, Keyrings, RecordOrigin};
use crate::aws::config::Settings;
use crate::aws::keys::{DataKeySource, KeyCache, KeyError, KmsKeySource, StaticKeySource};
use crate::pipeline::envelope::{Envelope, ResourceId};
use crate::pipeline::error::{Classify, FailureKind};
use crate::pipeline::esdk::RawAesKeyring;
use crate::pipeline::filter::Filter;
use crate::pipeline::record::DecodeOptions;
use format::{Format, OcsfContext};
use progress::Progress;
use shards::{parse_start, Readers, Record, ShardEvent, Start};

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
    /// What to print per event: the archive's NDJSON line, or OCSF 1.1.0 Datastore Activity JSON.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: Format,
    /// Use this 32-byte wrapping key (hex or base64) instead of KMS.
    #[arg(long, env = "DAS_WRAPPING_KEY", hide_env_values = true)]
    wrapping_key: Option<String>,
    #[command(flatten)]
    filters: FilterArgs,
}

pub(super) async fn tail(args: &TailArgs) -> Result<ExitCode, String> {
    let (stream, resource) = stream_and_resource(args)?;
    let settings = args
        .filters
        .settings(&[("DAS_ARCHIVE_BUCKET", "stdout".to_owned())])
        .map_err(|e| e.to_string())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let filter = Arc::new(open_filter(&settings, std::future::ready(&sdk)).await?);
    let decoder = Decoder {
        keys: key_cache(args, &sdk, &settings)?,
        resource,
        filter,
        options: settings.decode.clone(),
    };
    let (tx, mut rx) = mpsc::channel::<ShardEvent>(64);
    let given = args.stream.clone().unwrap_or_default();
    let mut readers = Readers::new(aws_sdk_kinesis::Client::new(&sdk), stream, args.from.clone(), tx);
    let printer = Printer {
        ocsf: match args.format {
            Format::Ocsf => Some(OcsfContext::new(
                decoder.resource.as_str(),
                readers.stream_arn(&given).await?,
            )),
            Format::Ndjson => None,
        },
        pretty: args.pretty,
        limit: args.limit,
    };
    readers.start_ready().await?;
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let shutdown = ctrl_c_once();
    match follow(&printer, &mut rx, &mut readers, &decoder, &mut progress, shutdown).await? {
        // Whoever read our output has stopped (`das tail | head`): that is how such a pipe ends.
        End::StdoutClosed => Ok(ExitCode::SUCCESS),
        End::Done => Ok(progress.finish()),
    }
}

/// How the loop ended without an error.
#[derive(Debug, PartialEq)]
enum End {
    /// The limit, Ctrl-C, or every reader gone.
    Done,
    /// Stdout was closed by its reader (a broken pipe).
    StdoutClosed,
}

/// The stream's name and the database it belongs to, from `--stream` and/or `--resource-id`.
fn stream_and_resource(args: &TailArgs) -> Result<(String, ResourceId), String> {
    match (&args.stream, &args.resource_id) {
        (Some(s), id) => {
            let name = s
                .rsplit_once("stream/")
                .map_or(s.as_str(), |(_, n)| n.split('/').next().unwrap_or(n))
                .to_owned();
            let resource = match id {
                Some(id) => id.clone(),
                None => ResourceId::from_stream(&name).map_err(|e| format!("{e}; give --resource-id"))?,
            };
            Ok((name, resource))
        }
        (None, Some(id)) => Ok((id.stream_name(), id.clone())),
        (None, None) => Err("give --stream or --resource-id".to_owned()),
    }
}

/// KMS, or the wrapping key given on the command line.
fn key_cache(
    args: &TailArgs,
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
) -> Result<KeyCache<Box<dyn DataKeySource>>, String> {
    let source: Box<dyn DataKeySource> = match &args.wrapping_key {
        Some(key) => Box::new(StaticKeySource::new(&parse_key(key)?)),
        None => Box::new(KmsKeySource::new(sdk).with_key_arns(&settings.kms_key_arns)),
    };
    Ok(KeyCache::new(source, settings.key_cache))
}

/// Completes on the first Ctrl-C from now on, whatever the loop is doing when it comes: a task
/// waits for it from the start, so none is missed between two waits (a `ctrl_c()` made anew per
/// wait would let one that arrives while a batch is decoded or printed go unseen). If the signal
/// handler cannot be installed, it never completes (Ctrl-C then ends the process as usual).
fn ctrl_c_once() -> impl std::future::Future<Output = ()> {
    let (pressed, mut seen) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = pressed.send(true);
        }
    });
    async move {
        if seen.wait_for(|pressed| *pressed).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The loop: print what the readers send until the limit, `shutdown` (Ctrl-C), a closed stdout, or
/// a reader fails. `shutdown` is polled first at every turn and raced against each decode (which
/// may wait out KMS throttling), so it ends the loop wherever it comes.
async fn follow(
    printer: &Printer,
    rx: &mut mpsc::Receiver<ShardEvent>,
    readers: &mut Readers,
    decoder: &Decoder,
    progress: &mut Progress,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<End, String> {
    tokio::pin!(shutdown);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while progress.remaining(printer.limit) > 0 {
        let event = tokio::select! {
            biased;
            () = &mut shutdown => break,
            event = rx.recv() => event,
        };
        let Some(event) = event else { break };
        match event {
            ShardEvent::Closed { shard } => readers.closed(shard).await?,
            ShardEvent::Failed { shard, error } => {
                return Err(format!("reading {shard} of {} failed: {error}", readers.stream()))
            }
            ShardEvent::Records {
                shard,
                records,
                millis_behind,
            } => {
                progress.lag_millis = millis_behind;
                let decoded = tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    decoded = decoder.decode(&shard, &records, progress) => decoded,
                };
                let written = printer.print(&mut out, &decoded, progress);
                if let Some(end) = written_or_end(written)? {
                    return Ok(end);
                }
            }
        }
        progress.report();
    }
    Ok(End::Done)
}

/// A write error: a broken pipe ends the loop quietly (`Some(End::StdoutClosed)`), anything else
/// (a full disk) is an error.
fn written_or_end(written: std::io::Result<()>) -> Result<Option<End>, String> {
    match written {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Some(End::StdoutClosed)),
        Err(e) => Err(format!("cannot write output: {e}")),
    }
}

/// How events are printed: `--format`, `--pretty`, `--limit`.
struct Printer {
    /// `Some` with `--format ocsf`.
    ocsf: Option<OcsfContext>,
    pretty: bool,
    limit: Option<u64>,
}

impl Printer {
    /// Prints each record's lines, one event each, up to the limit, and flushes.
    fn print(&self, out: &mut impl Write, decoded: &[(Vec<u8>, i64)], progress: &mut Progress) -> std::io::Result<()> {
        for (lines, arrival_ms) in decoded {
            for line in lines.split_inclusive(|b| *b == b'\n') {
                if progress.remaining(self.limit) == 0 {
                    return out.flush();
                }
                if self.write_event(out, line, *arrival_ms, progress)? {
                    progress.events += 1;
                }
            }
        }
        out.flush()
    }

    /// Writes one event; `false` if it printed nothing (a heartbeat in OCSF, or a line that would
    /// not map, which is reported and counted as failed).
    fn write_event(
        &self,
        out: &mut impl Write,
        line: &[u8],
        arrival_ms: i64,
        progress: &mut Progress,
    ) -> std::io::Result<bool> {
        let value = match &self.ocsf {
            None if !self.pretty => {
                out.write_all(line)?;
                return Ok(true);
            }
            None => serde_json::from_slice::<serde_json::Value>(line).ok(),
            Some(context) => match context.render(line, arrival_ms) {
                Ok(None) => return Ok(false),
                Ok(event) => event,
                Err(e) => {
                    eprintln!("das tail: {e}");
                    progress.failed += 1;
                    return Ok(false);
                }
            },
        };
        match value {
            Some(value) if self.pretty => serde_json::to_writer_pretty(&mut *out, &value)?,
            Some(value) => serde_json::to_writer(&mut *out, &value)?,
            None => {
                out.write_all(line)?;
                return Ok(true);
            }
        }
        out.write_all(b"\n")?;
        Ok(true)
    }
}

/// What decoding needs: the keys, the database (the KMS encryption context), the filter and limits.
struct Decoder {
    keys: KeyCache<Box<dyn DataKeySource>>,
    resource: ResourceId,
    filter: Arc<Filter>,
    options: DecodeOptions,
}

impl Decoder {
    /// Decodes one GetRecords batch: keys first, then the CPU work on all cores. Returns each
    /// record's NDJSON lines and arrival time, in order; each failed record is reported on stderr
    /// and counted, and so is a batch whose decode task failed (a `spawn_blocking` error).
    async fn decode(&self, shard: &str, records: &[Record], progress: &mut Progress) -> Vec<(Vec<u8>, i64)> {
        progress.records += records.len() as u64;
        let envelopes: Vec<_> = records.iter().map(|r| parse_envelope(Some(&r.data))).collect();
        let keyrings = self.fetch_keys(&envelopes).await;
        let origins = records.iter().map(|r| RecordOrigin::new(shard, &r.sequence));
        let jobs = envelopes.into_iter().zip(origins).collect();
        let decoded = match decode_records(jobs, &keyrings, &self.filter, &self.options).await {
            Ok(decoded) => decoded,
            Err(err) => {
                eprintln!("das tail: decoding {} records of {shard} failed: {err}", records.len());
                progress.failed += records.len() as u64;
                return Vec::new();
            }
        };
        let mut lines = Vec::with_capacity(records.len());
        for (record, result) in records.iter().zip(decoded) {
            match result {
                Ok(rendered) => lines.push((rendered.lines, record.arrival_ms)),
                Err(err) => {
                    eprintln!("das tail: record {} of {shard}: {err}", record.sequence);
                    progress.failed += 1;
                }
            }
        }
        lines
    }

    /// Each distinct key blob once, in order of appearance.
    async fn fetch_keys(&self, envelopes: &[Result<Envelope, DecodeFailure>]) -> Keyrings {
        let mut keyrings = Keyrings::new();
        for envelope in envelopes.iter().flatten() {
            if !keyrings.contains_key(&envelope.key_blob) {
                let keyring = self.keyring(&envelope.key_blob).await.map_err(Arc::new);
                keyrings.insert(envelope.key_blob.clone(), keyring);
            }
        }
        keyrings
    }

    /// A keyring, waiting out KMS throttling (doubling from 0.1 s, about 50 s in all) rather than
    /// failing the records: unlike the Lambda, tail has no Kinesis retry to fall back on.
    async fn keyring(&self, blob: &[u8]) -> Result<Arc<RawAesKeyring>, KeyError> {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.keys.keyring(blob, &self.resource).await {
                Err(e) if e.failure_kind() == FailureKind::Transient && wait < Duration::from_secs(30) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-ABC";

    fn line(kind: &str, index: usize) -> String {
        format!(
            r#"{{"type":"{kind}","command":"SELECT","class":"READ","kinesisShardId":"shardId-000000000000","kinesisSequenceNumber":"7","eventIndex":{index}}}"#
        ) + "\n"
    }

    /// A key source that says when it is asked and never answers (KMS throttled for good).
    struct Stuck(Arc<tokio::sync::Notify>);

    #[async_trait::async_trait]
    impl DataKeySource for Stuck {
        async fn decrypt(&self, _: &[u8], _: &ResourceId) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
            self.0.notify_one();
            std::future::pending().await
        }
    }

    /// The loop's parts around `keys`, and a record queued for it (its envelope names a data key).
    fn parts(keys: Box<dyn DataKeySource>) -> (Decoder, Readers, mpsc::Receiver<ShardEvent>) {
        let decoder = Decoder {
            keys: KeyCache::new(keys, crate::aws::keys::KeyCacheLimits::default()),
            resource: ResourceId::parse("cluster-ABC").unwrap(),
            filter: Arc::new(Filter::new(&crate::pipeline::filter::FilterSpec::default()).unwrap()),
            options: DecodeOptions::default(),
        };
        let (tx, rx) = mpsc::channel(4);
        let data = crate::pipeline::record::encode(b"{}", &[7; 32], b"blob", &Default::default()).unwrap();
        let records = vec![Record {
            data,
            sequence: "1".to_owned(),
            arrival_ms: 0,
        }];
        let event = ShardEvent::Records {
            shard: "shardId-000000000000".to_owned(),
            records,
            millis_behind: 0,
        };
        tx.try_send(event).unwrap();
        let kinesis = aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
        );
        let readers = Readers::new(kinesis, "aws-rds-das-cluster-ABC".to_owned(), Start::Latest, tx);
        (decoder, readers, rx)
    }

    const PRINTER: Printer = Printer {
        ocsf: None,
        pretty: false,
        limit: None,
    };

    #[tokio::test]
    async fn a_ctrl_c_while_a_batch_is_being_decoded_ends_the_tail() {
        let asked = Arc::new(tokio::sync::Notify::new());
        let (decoder, mut readers, mut rx) = parts(Box::new(Stuck(Arc::clone(&asked))));
        let (press, pressed) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = pressed.await;
        };
        let mut progress = Progress::new(false);
        let follow = follow(&PRINTER, &mut rx, &mut readers, &decoder, &mut progress, shutdown);
        // Ctrl-C once the decode is waiting for its key, and not before.
        let ctrl_c = async move {
            asked.notified().await;
            press.send(()).unwrap();
        };
        let (end, ()) = tokio::join!(follow, ctrl_c);
        assert_eq!(end, Ok(End::Done));
        assert_eq!((progress.records, progress.events), (1, 0));
    }

    #[tokio::test]
    async fn a_ctrl_c_that_came_while_printing_ends_the_tail_before_the_next_batch() {
        let (decoder, mut readers, mut rx) = parts(Box::new(Stuck(Arc::default())));
        let mut progress = Progress::new(false);
        let end = follow(&PRINTER, &mut rx, &mut readers, &decoder, &mut progress, async {}).await;
        assert_eq!(end, Ok(End::Done));
        assert_eq!(progress.records, 0, "the queued batch was not read");
    }

    #[test]
    fn a_broken_pipe_ends_tail_quietly_and_any_other_write_error_is_an_error() {
        assert_eq!(written_or_end(Ok(())), Ok(None));
        assert_eq!(
            written_or_end(Err(Error::from(ErrorKind::BrokenPipe))),
            Ok(Some(End::StdoutClosed))
        );
        let full = written_or_end(Err(Error::from(ErrorKind::StorageFull))).unwrap_err();
        assert!(full.starts_with("cannot write output"), "{full}");
    }

    #[test]
    fn the_printer_stops_at_the_limit_across_records() {
        let printer = Printer {
            ocsf: None,
            pretty: false,
            limit: Some(3),
        };
        let records = [
            (line("record", 0) + &line("record", 1), 0),
            (line("record", 0) + &line("record", 1), 0),
        ];
        let (mut out, mut progress) = (Vec::new(), Progress::new(false));
        printer
            .print(&mut out, &records.map(|(l, t)| (l.into_bytes(), t)), &mut progress)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);
        assert_eq!(progress.events, 3);
    }

    #[test]
    fn in_ocsf_a_kept_heartbeat_prints_nothing_and_is_not_counted() {
        let printer = Printer {
            ocsf: Some(OcsfContext::new("cluster-ABC", ARN.to_owned())),
            pretty: false,
            limit: None,
        };
        let lines = line("heartbeat", 0) + &line("record", 1);
        let (mut out, mut progress) = (Vec::new(), Progress::new(false));
        printer
            .print(&mut out, &[(lines.into_bytes(), 1_790_000_000_000)], &mut progress)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let event: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(event["metadata"]["uid"], "shardId-000000000000:7:1");
        assert_eq!((progress.events, progress.failed), (1, 0));
    }
}
