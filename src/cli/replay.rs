//! `das replay`: run the Lambda's batch handler in-process on a saved Lambda Kinesis event, writing
//! to S3 (same settings as the function) or to a local directory, and print the batch response.
//! This is how a batch that failed in production is debugged. `--output ocsf-parquet` (or
//! `ndjson,ocsf-parquet`) writes the OCSF Parquet objects of Amazon Security Lake too, under the
//! custom source's layout (`ext/<source>/region=…/accountId=…/eventDay=…/`, region and account from
//! the event's `eventSourceARN`), so the mapping can be seen and tested without AWS.
//!
//! Replay never gives a record up: a saved batch is usually older than any give-up age, and a
//! replay without KMS credentials must not quarantine every record and report success. Records that
//! fail transiently are left undone; the command says so and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use super::filters::{open_filter, FilterArgs};
use super::parse_key;
use crate::aws::archive::{DirSink, S3Sink, Sink};
use crate::aws::batch::{Archiver, Batch};
use crate::aws::keys::{DataKeySource, KeyCache, KmsKeySource, StaticKeySource};
use crate::lambda::{response, KinesisBatchEvent};

#[derive(Debug, clap::Args)]
pub(super) struct ReplayArgs {
    /// The saved Lambda Kinesis event (JSON, as `sam local invoke -e` takes it).
    event: PathBuf,
    /// Write the objects below this directory instead of S3.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// The archive bucket (default: DAS_ARCHIVE_BUCKET).
    #[arg(long, conflicts_with = "out_dir")]
    bucket: Option<String>,
    /// What to write: `ndjson`, `ocsf-parquet`, or both comma-separated (default: DAS_OUTPUT, else
    /// `ndjson`).
    #[arg(long)]
    output: Option<String>,
    /// The Security Lake custom source name, for `--output ocsf-parquet` (default:
    /// DAS_SECURITY_LAKE_SOURCE; with --out-dir, `das-activity` if that is unset too).
    #[arg(long)]
    source: Option<String>,
    /// Use this 32-byte wrapping key (hex or base64) instead of KMS.
    #[arg(long, env = "DAS_WRAPPING_KEY", hide_env_values = true)]
    wrapping_key: Option<String>,
    #[command(flatten)]
    filters: FilterArgs,
}

/// The `DAS_OUTPUT` family for `--output`, `--source` and `--out-dir`: below a directory, the buckets
/// are only names (the directory sink writes every key under it).
fn output_settings(args: &ReplayArgs) -> Vec<(&'static str, String)> {
    let mut extra = Vec::new();
    if let Some(output) = &args.output {
        extra.push(("DAS_OUTPUT", output.clone()));
    }
    if let Some(source) = &args.source {
        extra.push(("DAS_SECURITY_LAKE_SOURCE", source.clone()));
    }
    if args.out_dir.is_some() {
        extra.push(("DAS_ARCHIVE_BUCKET", "local-directory".to_owned()));
        extra.push(("DAS_SECURITY_LAKE_BUCKET", "local-directory".to_owned()));
        if args.source.is_none() && std::env::var("DAS_SECURITY_LAKE_SOURCE").is_err() {
            extra.push(("DAS_SECURITY_LAKE_SOURCE", "das-activity".to_owned()));
        }
    }
    extra
}

/// The saved event, parsed; its text is freed before the batch runs (a 10,000-record event is about
/// 21 MB, and the batch would otherwise hold both).
fn read_event(path: &std::path::Path) -> Result<KinesisBatchEvent, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is not a Lambda Kinesis event: {e}", path.display()))
}

pub(super) async fn replay(args: &ReplayArgs) -> Result<ExitCode, String> {
    let event = read_event(&args.event)?;
    let mut extra = Vec::new();
    if let Some(bucket) = &args.bucket {
        extra.push(("DAS_ARCHIVE_BUCKET", bucket.clone()));
    }
    extra.extend(output_settings(args));
    let settings = args.filters.settings(&extra).map_err(|e| e.to_string())?;
    // Loading the SDK's configuration (credential chain, region, profile files) costs a few
    // milliseconds of CPU: only when KMS or S3 is used.
    let sdk = tokio::sync::OnceCell::new();
    let load_sdk = || aws_config::load_defaults(aws_config::BehaviorVersion::latest());
    let keys: Box<dyn DataKeySource> = match &args.wrapping_key {
        Some(key) => Box::new(StaticKeySource::new(&parse_key(key)?)),
        None => Box::new(KmsKeySource::new(sdk.get_or_init(load_sdk).await).with_key_arns(&settings.kms_key_arns)),
    };
    let sink: Box<dyn Sink> = match &args.out_dir {
        Some(dir) => Box::new(DirSink::new(dir)),
        None => Box::new(
            S3Sink::for_outputs(
                sdk.get_or_init(load_sdk).await,
                &settings.bucket,
                settings.s3_force_path_style,
                settings.outputs.security_lake.as_ref(),
            )
            .await,
        ),
    };
    let filter = open_filter(&settings, sdk.get_or_init(load_sdk)).await?;
    let mut batch_settings = settings.batch_settings();
    batch_settings.give_up = None;
    let archiver = Archiver::new(batch_settings, KeyCache::new(keys, settings.key_cache), filter, sink);
    let outcome = archiver.process(Batch::from(event)).await;
    let m = &outcome.metrics;
    eprintln!(
        "das replay: {} records: {} events archived, {} filtered, {} heartbeats skipped, {} quarantined, {} to retry; \
         {} objects ({} bytes) written",
        m.records_in,
        m.events_archived,
        m.events_filtered,
        m.heartbeats_skipped,
        m.records_quarantined,
        m.records_retried,
        m.objects_written,
        m.bytes_written
    );
    println!(
        "{}",
        serde_json::to_string(&response(&outcome)).map_err(|e| e.to_string())?
    );
    if let Some(sequence) = &outcome.retry_from {
        eprintln!(
            "das replay: {} records from sequence number {sequence} could not be finished (a transient or \
             configuration error, logged above: e.g. no KMS credentials or no access to the key) and were \
             neither archived nor quarantined; fix the cause and run das replay again",
            m.records_retried
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
