//! `das simulate`: act as a DAS producer for tests, demos and load. Data keys come from KMS
//! `GenerateDataKey` with the DAS encryption context (or from a key given on the command line), are
//! reused across records as DAS does, and records go to a Kinesis stream, a Lambda test event file,
//! or stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob as KinesisBlob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use super::{parse_key, EngineArg};
use crate::pipeline::envelope::ResourceId;
use crate::pipeline::esdk::{RawAesKeyring, SuiteId};
use crate::pipeline::record::{self, EncodeOptions};
use crate::pipeline::simulate::{lambda_kinesis_event, Engine, Mix, Simulator};

/// Kinesis PutRecords accepts at most 500 entries per call.
const PUT_RECORDS_MAX: usize = 500;

#[derive(Debug, clap::Args)]
pub(super) struct SimulateArgs {
    /// The database resource id: `cluster-…` (Aurora) or `db-…` (RDS for Oracle / SQL Server).
    #[arg(long)]
    resource_id: ResourceId,
    /// KMS key to generate data keys under (id, ARN or alias).
    #[arg(long, required_unless_present = "wrapping_key")]
    kms_key_id: Option<String>,
    /// Use this 32-byte wrapping key (hex or base64) instead of KMS; records then carry a
    /// placeholder key blob and only decode with `das decode --wrapping-key`.
    #[arg(
        long,
        env = "DAS_WRAPPING_KEY",
        hide_env_values = true,
        conflicts_with = "kms_key_id"
    )]
    wrapping_key: Option<String>,
    /// Source engine (default: aurora-postgresql for cluster ids, oracle for db ids).
    #[arg(long, value_enum)]
    engine: Option<EngineArg>,
    /// ESDK algorithm suite (default: the engine's).
    #[arg(long, value_parser = ["0178", "0378"])]
    suite: Option<String>,
    /// Records to produce.
    #[arg(long, default_value_t = 100)]
    records: usize,
    /// Events per record.
    #[arg(long, default_value_t = 10)]
    events_per_record: usize,
    /// Every Nth record is a heartbeat-only record (0: none).
    #[arg(long, default_value_t = 10)]
    heartbeat_interval: usize,
    /// Workload mix: `pgbench`, or weights like `read=60,write=30,ddl=1,login=5`.
    #[arg(long, default_value = "pgbench", value_parser = Mix::parse)]
    mix: Mix,
    /// Records per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Records per data key before a new one is generated (0: one key for the whole run).
    #[arg(long, default_value_t = 0)]
    records_per_key: usize,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Flip one ciphertext byte of this record (0-based), to exercise quarantine.
    #[arg(long)]
    corrupt_record: Option<usize>,
    /// Put the records into this Kinesis stream (PutRecords, 500 per call, throttled entries retried).
    #[arg(long, group = "target")]
    to_stream: Option<String>,
    /// Write a Lambda Kinesis test event holding the records to this file.
    #[arg(long, group = "target")]
    to_event_file: Option<PathBuf>,
}

struct Producer {
    kms: Option<aws_sdk_kms::Client>,
    kms_key_id: Option<String>,
    fixed_key: Option<Zeroizing<Vec<u8>>>,
    resource: ResourceId,
}

impl Producer {
    /// A data key as DAS gets one: GenerateDataKey with the encryption context. Returns the keyring
    /// and the blob that goes in each record.
    async fn data_key(&self) -> Result<(RawAesKeyring, Vec<u8>), String> {
        if let Some(key) = &self.fixed_key {
            let keyring = RawAesKeyring::das(key).map_err(|e| e.to_string())?;
            return Ok((keyring, b"das-simulate: no KMS ciphertext".to_vec()));
        }
        let (Some(kms), Some(key_id)) = (&self.kms, &self.kms_key_id) else {
            return Err("give --kms-key-id or --wrapping-key".to_owned());
        };
        let (context_key, context_value) = self.resource.encryption_context();
        let out = kms
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(context_key, context_value)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "KMS GenerateDataKey failed: {}",
                    aws_sdk_kms::error::DisplayErrorContext(&e)
                )
            })?;
        let plaintext = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        let keyring = RawAesKeyring::das(&plaintext).map_err(|e| e.to_string())?;
        Ok((keyring, out.ciphertext_blob.map(Blob::into_inner).unwrap_or_default()))
    }
}

pub(super) async fn simulate(args: &SimulateArgs) -> Result<ExitCode, String> {
    let (engine, options) = encode_options(args)?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let producer = Producer {
        kms: args.kms_key_id.as_ref().map(|_| aws_sdk_kms::Client::new(&sdk)),
        kms_key_id: args.kms_key_id.clone(),
        fixed_key: args.wrapping_key.as_deref().map(parse_key).transpose()?,
        resource: args.resource_id.clone(),
    };
    let started = Instant::now();
    let (records, events) = produce(args, &producer, &mut simulator(args, engine), &options).await?;
    deliver(args, &sdk, &records).await?;
    eprintln!(
        "das simulate: {} {engine:?} records ({events} events, suite {}) for {} in {:.2} s",
        records.len(),
        options.esdk.suite,
        args.resource_id,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The engine (given, or guessed from the resource id) and how its records are encoded.
fn encode_options(args: &SimulateArgs) -> Result<(Engine, EncodeOptions), String> {
    let engine: Engine = match args.engine {
        Some(e) => e.into(),
        None if args.resource_id.context_key() == "aws:rds:dbc-id" => Engine::AuroraPostgresql,
        None => Engine::Oracle,
    };
    let mut esdk = engine.encrypt_options();
    if let Some(suite) = &args.suite {
        esdk = match suite.as_str() {
            "0378" => crate::pipeline::esdk::EncryptOptions::aurora_mysql(),
            _ => crate::pipeline::esdk::EncryptOptions::aurora_postgresql(),
        };
        esdk.suite = SuiteId(u16::from_str_radix(suite, 16).map_err(|e| e.to_string())?);
    }
    let options = EncodeOptions {
        version: engine.record_version().to_owned(),
        esdk,
    };
    Ok((engine, options))
}

/// The workload generator for the resource: a cluster id also names its writer instance.
fn simulator(args: &SimulateArgs, engine: Engine) -> Simulator {
    let (cluster, instance) = match &args.resource_id {
        ResourceId::Cluster(id) => (id.clone(), format!("db-{}", id.trim_start_matches("cluster-"))),
        ResourceId::Instance(id) => (String::new(), id.clone()),
    };
    let mut sim = Simulator::new(engine, &cluster, &instance, args.seed);
    sim.set_mix(args.mix);
    sim.set_clock(now_micros());
    sim
}

/// Encodes the records (every Nth a heartbeat), with a new data key every `records_per_key`.
/// Returns the records and the number of activity events they carry.
async fn produce(
    args: &SimulateArgs,
    producer: &Producer,
    sim: &mut Simulator,
    options: &EncodeOptions,
) -> Result<(Vec<Vec<u8>>, usize), String> {
    let mut key = producer.data_key().await?;
    let mut records = Vec::with_capacity(args.records);
    let mut events = 0usize;
    for i in 0..args.records {
        if args.records_per_key > 0 && i > 0 && i % args.records_per_key == 0 {
            key = producer.data_key().await?;
        }
        let list = if args.heartbeat_interval > 0 && i % args.heartbeat_interval == args.heartbeat_interval - 1 {
            vec![sim.heartbeat()]
        } else {
            events += args.events_per_record;
            sim.events(args.events_per_record)
        };
        let data = record::encode_with(&sim.payload(&list), &key.0, &key.1, options).map_err(|e| e.to_string())?;
        records.push(if args.corrupt_record == Some(i) {
            corrupt(&data)?
        } else {
            data
        });
    }
    Ok((records, events))
}

/// The record with one ciphertext byte flipped, so that its authentication tag no longer matches.
fn corrupt(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut envelope = crate::pipeline::envelope::Envelope::parse(data).map_err(|e| e.to_string())?;
    if let Some(byte) = envelope.message.iter_mut().rev().nth(20) {
        *byte ^= 0x40;
    }
    Ok(envelope.to_json())
}

/// Sends the records where the arguments say: a Kinesis stream, a Lambda test event file, or stdout.
async fn deliver(args: &SimulateArgs, sdk: &aws_config::SdkConfig, records: &[Vec<u8>]) -> Result<(), String> {
    match (&args.to_stream, &args.to_event_file) {
        (Some(stream), _) => put_records(&aws_sdk_kinesis::Client::new(sdk), stream, records, args.rate).await,
        (None, Some(path)) => {
            let region = sdk.region().map_or("us-east-1", |r| r.as_ref()).to_owned();
            let arn = format!(
                "arn:aws:kinesis:{region}:123456789012:stream/{}",
                args.resource_id.stream_name()
            );
            let now = now_micros() as f64 / 1e6;
            let event = lambda_kinesis_event(&arn, "shardId-000000000000", records, 1, now);
            let text = serde_json::to_string_pretty(&event).map_err(|e| e.to_string())?;
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        (None, None) => write_lines(records),
    }
}

/// One record a line on stdout.
fn write_lines(records: &[Vec<u8>]) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for r in records {
        out.write_all(r)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// PutRecords in batches of 500, retrying the entries Kinesis throttled, pacing to `rate` records/s.
async fn put_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    records: &[Vec<u8>],
    rate: f64,
) -> Result<(), String> {
    let started = Instant::now();
    let mut sent = 0usize;
    for (chunk_index, chunk) in records.chunks(PUT_RECORDS_MAX).enumerate() {
        put_chunk(client, stream, entries(chunk_index, chunk)?).await?;
        sent += chunk.len();
        if rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    Ok(())
}

/// The PutRecords entries of one chunk, with partition keys spread over the hash key range.
fn entries(chunk_index: usize, chunk: &[Vec<u8>]) -> Result<Vec<PutRecordsRequestEntry>, String> {
    chunk
        .iter()
        .enumerate()
        .map(|(i, data)| {
            PutRecordsRequestEntry::builder()
                .data(KinesisBlob::new(data.clone()))
                .partition_key(format!(
                    "{:08x}",
                    (chunk_index * PUT_RECORDS_MAX + i) as u64 * 2_654_435_761 % (1 << 32)
                ))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// One PutRecords call and up to nine more for the entries Kinesis throttled, backing off between.
async fn put_chunk(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    mut pending: Vec<PutRecordsRequestEntry>,
) -> Result<(), String> {
    for attempt in 0..10u32 {
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(pending.clone()))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Kinesis PutRecords to {stream} failed: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                )
            })?;
        if out.failed_record_count.unwrap_or(0) == 0 {
            return Ok(());
        }
        // Keep only the entries that failed (throttled), in order, and back off.
        pending = pending
            .into_iter()
            .zip(out.records)
            .filter(|(_, result)| result.error_code.is_some())
            .map(|(entry, _)| entry)
            .collect();
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
    }
    Err(format!(
        "Kinesis kept throttling {} records to {stream}; lower --rate",
        pending.len()
    ))
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
