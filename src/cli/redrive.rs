//! `das redrive`: give quarantined records (and, with `--on-failure-prefix`, the batches the
//! event-source mapping gave up on) another run through exactly the Lambda's pipeline, with the
//! current settings, once whatever quarantined them is fixed (a key policy, a resource id, a limit,
//! an outage that outlasted the give-up age).
//!
//! The rule is the Lambda's: a quarantine document (or failure record) is deleted only after its
//! record's events — or the nothing its filters leave — are durably written to the archive. A record
//! that still fails keeps its document, with the new reason appended once (so running the command
//! twice writes nothing new). Nothing is fetched from Kinesis: the documents hold the records.

use std::process::ExitCode;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::filters::FilterArgs;
use super::parse_key;
use crate::aws::archive::{Object, S3Sink, Sink, SinkError};
use crate::aws::batch::{Archiver, Batch, InputRecord};
use crate::aws::config::Settings;
use crate::aws::keys::{DataKeySource, KeyCache, KmsKeySource, StaticKeySource};
use crate::lambda::KinesisBatchEvent;
use crate::pipeline::filter::Filter;

#[derive(Debug, clap::Args)]
pub(super) struct RedriveArgs {
    /// The archive bucket (default: DAS_ARCHIVE_BUCKET).
    #[arg(long)]
    bucket: Option<String>,
    /// The archive prefix (default: DAS_ARCHIVE_PREFIX, else `activity/`); documents are read under
    /// `<prefix>quarantine/`.
    #[arg(long)]
    prefix: Option<String>,
    /// Also redrive the event-source mapping's on-failure records stored under this prefix of the
    /// bucket (the S3 on-failure destination writes the whole invocation record).
    #[arg(long)]
    on_failure_prefix: Option<String>,
    /// Decode and report, but write and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Use this 32-byte wrapping key (hex or base64) instead of KMS.
    #[arg(long, env = "DAS_WRAPPING_KEY", hide_env_values = true)]
    wrapping_key: Option<String>,
    #[command(flatten)]
    filters: FilterArgs,
}

/// A quarantine document as `archive` writes it; unknown fields are kept when it is rewritten.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuarantineDocument {
    error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    redrive_errors: Vec<String>,
    #[serde(default)]
    resource_id: Option<String>,
    kinesis: KinesisMetadata,
    data: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KinesisMetadata {
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<String>,
    #[serde(rename = "shardId")]
    shard_id: String,
    #[serde(rename = "sequenceNumber")]
    sequence_number: String,
    #[serde(rename = "partitionKey", default)]
    partition_key: String,
    #[serde(rename = "approximateArrivalTimestamp", default)]
    approximate_arrival_timestamp: f64,
}

/// What the command did, printed as JSON on stdout.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Quarantine documents whose record now succeeded (archived or filtered out) and were deleted.
    redriven: u64,
    /// Quarantine documents left in place (the record still fails).
    still_failing: u64,
    /// Archive lines written.
    events_archived: u64,
    /// On-failure records whose whole batch is now archived or quarantined, and were deleted.
    failed_batches_redriven: u64,
    /// On-failure records left in place.
    failed_batches_still_failing: u64,
    /// Whether nothing was written or deleted.
    dry_run: bool,
}

/// The archive sink, except that quarantine writes are held back for the command to decide on:
/// a redriven record that fails again must not get a second, different document.
struct HoldQuarantine<S> {
    inner: S,
    quarantine_prefix: String,
    dry_run: bool,
    held: Mutex<Vec<Object>>,
}

#[async_trait]
impl<S: Sink> Sink for HoldQuarantine<S> {
    async fn put(&self, object: Object) -> Result<(), SinkError> {
        if object.key.starts_with(&self.quarantine_prefix) {
            if let Ok(mut held) = self.held.lock() {
                held.push(object);
            }
            return Ok(());
        }
        if self.dry_run {
            return Ok(());
        }
        self.inner.put(object).await
    }
}

impl<S> HoldQuarantine<S> {
    fn take(&self) -> Vec<Object> {
        self.held
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }
}

/// The bucket's objects, for listing, reading and deleting documents.
struct Documents {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl Documents {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail("list", prefix, &e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.fail("read", key, &e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| format!("cannot read {key}: {e}"))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn put_json(&self, key: &str, body: Vec<u8>) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            // Verified end to end like every object the archiver writes.
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .body(body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fail("write", key, &e))
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fail("delete", key, &e))
    }

    fn fail<E: std::error::Error>(&self, what: &str, key: &str, err: &E) -> String {
        format!(
            "cannot {what} s3://{}/{key}: {}",
            self.bucket,
            aws_sdk_s3::error::DisplayErrorContext(err)
        )
    }
}

type RedriveArchiver = Archiver<Box<dyn DataKeySource>, HoldQuarantine<S3Sink>>;

pub(super) async fn redrive(args: &RedriveArgs) -> Result<ExitCode, String> {
    let mut extra = Vec::new();
    if let Some(bucket) = &args.bucket {
        extra.push(("DAS_ARCHIVE_BUCKET", bucket.clone()));
    }
    if let Some(prefix) = &args.prefix {
        extra.push(("DAS_ARCHIVE_PREFIX", prefix.clone()));
    }
    // A redrive is an operator's deliberate second try: a record that fails transiently now stays
    // in quarantine for the next try instead of being given up on again.
    extra.push(("DAS_GIVE_UP_AFTER_SECONDS", "0".to_owned()));
    let settings = args.filters.settings(&extra).map_err(|e| e.to_string())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let archiver = archiver(args, &settings, &sdk)?;
    let documents = Documents {
        client: super::s3_client(&sdk, settings.s3_force_path_style),
        bucket: settings.bucket.clone(),
    };
    let mut summary = Summary {
        dry_run: args.dry_run,
        ..Summary::default()
    };
    let quarantine_prefix = format!("{}quarantine/", settings.layout.prefix);
    for key in documents.list(&quarantine_prefix).await? {
        redrive_document(&archiver, &documents, &key, args.dry_run, &mut summary).await?;
    }
    if let Some(prefix) = &args.on_failure_prefix {
        for key in documents.list(prefix).await? {
            redrive_failed_batch(&archiver, &documents, &key, args.dry_run, &mut summary).await?;
        }
    }
    println!("{}", serde_json::to_string(&summary).map_err(|e| e.to_string())?);
    let failing = summary.still_failing + summary.failed_batches_still_failing;
    Ok(if failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn archiver(args: &RedriveArgs, settings: &Settings, sdk: &aws_config::SdkConfig) -> Result<RedriveArchiver, String> {
    let keys: Box<dyn DataKeySource> = match &args.wrapping_key {
        Some(key) => Box::new(StaticKeySource::new(&parse_key(key)?)),
        None => Box::new(KmsKeySource::new(sdk).with_key_arns(&settings.kms_key_arns)),
    };
    let sink = HoldQuarantine {
        inner: S3Sink::new(sdk, &settings.bucket, settings.s3_force_path_style),
        quarantine_prefix: format!("{}quarantine/", settings.layout.prefix),
        dry_run: args.dry_run,
        held: Mutex::new(Vec::new()),
    };
    let filter = Filter::new(&settings.filter).map_err(|e| e.to_string())?;
    Ok(Archiver::new(
        settings.batch_settings(),
        KeyCache::new(keys, settings.key_cache),
        filter,
        sink,
    ))
}

/// One quarantine document: run its record, then delete the document or note the new reason.
async fn redrive_document(
    archiver: &RedriveArchiver,
    documents: &Documents,
    key: &str,
    dry_run: bool,
    summary: &mut Summary,
) -> Result<(), String> {
    let body = documents.get(key).await?;
    let Ok(mut document) = serde_json::from_slice::<QuarantineDocument>(&body) else {
        eprintln!(
            "das redrive: s3://{}/{key} is not a quarantine document; left alone",
            documents.bucket
        );
        summary.still_failing += 1;
        return Ok(());
    };
    let outcome = archiver.process(document.batch()).await;
    let held = archiver.sink().take();
    summary.events_archived += outcome.metrics.events_archived;
    let new_reason = match (&outcome.retry_from, held.first()) {
        (None, None) => None,
        (Some(_), _) => Some("could not be finished now (a transient or configuration error: see the log)".to_owned()),
        (None, Some(object)) => Some(reason_of(object)),
    };
    match new_reason {
        None => {
            summary.redriven += 1;
            if !dry_run {
                documents.delete(key).await?;
            }
        }
        Some(reason) => {
            summary.still_failing += 1;
            eprintln!("das redrive: {key} still fails: {reason}");
            if document.note(reason) && !dry_run {
                let body = serde_json::to_vec_pretty(&document).map_err(|e| e.to_string())?;
                documents.put_json(key, body).await?;
            }
        }
    }
    Ok(())
}

/// One on-failure record of the event-source mapping: the whole batch again; quarantining is
/// allowed here (those records were never quarantined), retrying is not possible.
async fn redrive_failed_batch(
    archiver: &RedriveArchiver,
    documents: &Documents,
    key: &str,
    dry_run: bool,
    summary: &mut Summary,
) -> Result<(), String> {
    let body = documents.get(key).await?;
    let Some(event) = failed_batch_event(&body) else {
        eprintln!(
            "das redrive: s3://{}/{key} holds no invocation payload (only batch metadata); its records must be \
             read from the stream before they expire",
            documents.bucket
        );
        summary.failed_batches_still_failing += 1;
        return Ok(());
    };
    let outcome = archiver.process(Batch::from(event)).await;
    summary.events_archived += outcome.metrics.events_archived;
    let held = archiver.sink().take();
    if outcome.retry_from.is_some() {
        summary.failed_batches_still_failing += 1;
        eprintln!("das redrive: {key} still fails (a transient or configuration error: see the log)");
        return Ok(());
    }
    if !dry_run {
        // The records the pipeline quarantined now: written as the Lambda writes them.
        for object in held {
            archiver.sink().inner.put(object).await.map_err(|e| e.to_string())?;
        }
        documents.delete(key).await?;
    }
    summary.failed_batches_redriven += 1;
    Ok(())
}

/// The Lambda event inside an on-failure record: `payload` holds the invocation's request, as a JSON
/// object or as a string of JSON.
fn failed_batch_event(body: &[u8]) -> Option<KinesisBatchEvent> {
    let record: serde_json::Value = serde_json::from_slice(body).ok()?;
    match record.get("payload")? {
        serde_json::Value::String(text) => serde_json::from_str(text).ok(),
        object => serde_json::from_value(object.clone()).ok(),
    }
}

/// The `error` of a quarantine document the pipeline would have written.
fn reason_of(object: &Object) -> String {
    serde_json::from_slice::<serde_json::Value>(&object.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "quarantined again".to_owned())
}

impl QuarantineDocument {
    /// The record as a batch of one, as it arrived from Kinesis.
    fn batch(&self) -> Batch {
        let data = self
            .data
            .as_deref()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        Batch {
            event_source_arn: self.kinesis.event_source_arn.clone(),
            records: vec![InputRecord {
                data,
                sequence_number: self.kinesis.sequence_number.clone(),
                shard_id: self.kinesis.shard_id.clone(),
                partition_key: self.kinesis.partition_key.clone(),
                arrival_seconds: self.kinesis.approximate_arrival_timestamp,
            }],
        }
    }

    /// Appends `reason` unless it is already the latest one; tells whether the document changed.
    fn note(&mut self, reason: String) -> bool {
        let latest = self.redrive_errors.last().unwrap_or(&self.error);
        if *latest == reason {
            return false;
        }
        self.redrive_errors.push(reason);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> QuarantineDocument {
        serde_json::from_value(serde_json::json!({
            "error": "gunzip: decompression bomb",
            "errorKind": "permanent",
            "resourceId": "cluster-A",
            "kinesis": {
                "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/aws-rds-das-cluster-A",
                "shardId": "shardId-000000000000",
                "sequenceNumber": "49",
                "partitionKey": "pk",
                "approximateArrivalTimestamp": 1_795_316_397.5,
            },
            "data": "eyJ0eXBlIjoiRGF0YWJhc2VBY3Rpdml0eU1vbml0b3JpbmdSZWNvcmRzIn0=",
        }))
        .unwrap()
    }

    #[test]
    fn a_quarantine_document_becomes_the_record_it_holds() {
        let batch = document().batch();
        assert_eq!(batch.records.len(), 1);
        let record = &batch.records[0];
        assert_eq!(
            (record.shard_id.as_str(), record.sequence_number.as_str()),
            ("shardId-000000000000", "49")
        );
        assert_eq!(record.arrival_seconds, 1_795_316_397.5);
        assert!(record.data.as_deref().unwrap().starts_with(b"{\"type\""));
    }

    #[test]
    fn a_new_reason_is_appended_once_and_unknown_fields_survive() {
        let mut doc = document();
        assert!(
            !doc.note("gunzip: decompression bomb".into()),
            "the same reason is not news"
        );
        assert!(doc.note("KMS: access denied".into()));
        assert!(!doc.note("KMS: access denied".into()), "a second run writes nothing");
        let back = serde_json::to_value(&doc).unwrap();
        assert_eq!(back["errorKind"], "permanent");
        assert_eq!(back["redriveErrors"], serde_json::json!(["KMS: access denied"]));
    }

    #[test]
    fn an_on_failure_record_yields_its_payload_as_object_or_string() {
        let event =
            serde_json::json!({"Records": [{"eventSourceARN": "arn", "kinesis": {"data": "", "sequenceNumber": "1"}}]});
        let as_object = serde_json::json!({"KinesisBatchInfo": {}, "payload": event});
        let as_string = serde_json::json!({"KinesisBatchInfo": {}, "payload": event.to_string()});
        for record in [as_object, as_string] {
            let parsed = failed_batch_event(record.to_string().as_bytes()).unwrap();
            assert_eq!(parsed.records.len(), 1);
        }
        assert!(failed_batch_event(br#"{"KinesisBatchInfo": {}}"#).is_none());
    }
}
