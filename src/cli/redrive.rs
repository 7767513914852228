//! `das redrive`: give quarantined records (and, with `--on-failure-prefix`, the batches the
//! event-source mapping gave up on) another run through exactly the Lambda's pipeline, once whatever
//! quarantined them is fixed (a key policy, a resource id, a limit, an outage that outlasted the
//! give-up age).
//!
//! Each record is written to exactly the outputs it still owes — the document's `outputs` (the NDJSON
//! archive, the Security Lake Parquet, or both), or for an on-failure record the outputs of the
//! function that failed it — with that deployed function's settings ([`deployed`]), never the
//! operator's shell's unless `--use-env` says so. A document written before documents said what they
//! owe owes the NDJSON archive.
//!
//! The rule is the Lambda's: a quarantine document (or failure record) is deleted only after every
//! output it owes is durably written (or its filters leave nothing to write). A record that still fails
//! keeps its document, with the outputs it still owes and the new reason appended once (so running the
//! command twice writes nothing new). Nothing is fetched from Kinesis: the documents hold the records.

mod deployed;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::filters::{open_filter, FilterArgs};
use super::parse_key;
use crate::aws::archive::{Object, S3Sink, Sink, SinkError};
use crate::aws::batch::{Archiver, Batch, InputRecord};
use crate::aws::config::Settings;
use crate::aws::keys::{DataKeySource, KeyCache, KmsKeySource, StaticKeySource};
use crate::aws::outputs::{owed_outputs, OUTPUT_NDJSON, OUTPUT_OCSF_PARQUET};
use crate::lambda::KinesisBatchEvent;
use deployed::{Deployed, Source};

#[derive(Debug, clap::Args)]
pub(super) struct RedriveArgs {
    /// The archive bucket to read documents from and write to (overrides the functions' DAS_ARCHIVE_BUCKET).
    #[arg(long)]
    bucket: Option<String>,
    /// The archive prefix (overrides the functions' DAS_ARCHIVE_PREFIX); documents are read under
    /// `<prefix>quarantine/`.
    #[arg(long)]
    prefix: Option<String>,
    /// The deployed function whose archive is redriven, and whose settings apply to documents that
    /// name no function (written before documents named theirs). Documents naming a function are
    /// redriven with that function's settings.
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// Use this shell's DAS_* variables instead of the deployed functions' settings.
    #[arg(long)]
    use_env: bool,
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
    /// What the record still owes; `None` in documents written before they said (the NDJSON archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outputs: Option<Vec<String>>,
    /// The function that quarantined it; `None` in documents written before they said, or outside Lambda.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<String>,
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
    /// Quarantine documents whose record now succeeded (every owed output written, or nothing left
    /// after the filters) and were deleted.
    redriven: u64,
    /// Quarantine documents left in place (the record still fails, or owes an output still).
    still_failing: u64,
    /// Events written (archive lines; for a record owing only the Security Lake output, OCSF events).
    events_archived: u64,
    /// On-failure records whose whole batch is now archived or quarantined, and were deleted.
    failed_batches_redriven: u64,
    /// On-failure records left in place.
    failed_batches_still_failing: u64,
    /// Whether nothing was written or deleted.
    dry_run: bool,
}

/// The archive sink, except that quarantine writes are held back for the command to decide on (a
/// redriven record that fails again must not get a second, different document), and each write is
/// noted by its output, so a document owing two outputs knows which one is done.
struct HoldQuarantine<S> {
    inner: S,
    quarantine_prefix: String,
    dry_run: bool,
    held: Mutex<Vec<Object>>,
    /// Each write's output and whether it succeeded.
    writes: Mutex<Vec<(&'static str, bool)>>,
}

#[async_trait]
impl<S: Sink> Sink for HoldQuarantine<S> {
    async fn put(&self, object: Object) -> Result<(), SinkError> {
        if object.key.starts_with(&self.quarantine_prefix) && object.bucket.is_none() {
            if let Ok(mut held) = self.held.lock() {
                held.push(object);
            }
            return Ok(());
        }
        // Only the Security Lake objects name another bucket.
        let output = if object.bucket.is_some() {
            OUTPUT_OCSF_PARQUET
        } else {
            OUTPUT_NDJSON
        };
        let result = if self.dry_run {
            Ok(())
        } else {
            self.inner.put(object).await
        };
        if let Ok(mut writes) = self.writes.lock() {
            writes.push((output, result.is_ok()));
        }
        result
    }
}

impl<S> HoldQuarantine<S> {
    /// The held quarantine objects and the noted writes, since the last call.
    fn take(&self) -> (Vec<Object>, Vec<(&'static str, bool)>) {
        let held = self
            .held
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        let writes = self
            .writes
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        (held, writes)
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

/// The command's state: settings per function, an archiver per (settings, owed outputs).
struct Redrive<'a> {
    args: &'a RedriveArgs,
    sdk: aws_config::SdkConfig,
    deployed: Deployed,
    documents: Documents,
    archivers: HashMap<(Source, Vec<String>), Arc<RedriveArchiver>>,
    summary: Summary,
}

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
    if !args.use_env {
        deployed::warn_ignored_shell_variables(std::env::vars().map(|(name, _)| name));
    }
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut deployed = Deployed::new(&sdk, extra, args.filters.clone());
    let home = deployed.settings(&home_source(args)).await.map_err(|e| {
        if args.use_env || args.function.is_some() {
            e
        } else {
            format!("name the archive to redrive: --function NAME (its bucket and prefix) or --bucket B ({e})")
        }
    })?;
    let documents = Documents {
        client: super::s3_client(&sdk, home.s3_force_path_style),
        bucket: home.bucket.clone(),
    };
    let mut run = Redrive {
        args,
        sdk,
        deployed,
        documents,
        archivers: HashMap::new(),
        summary: Summary {
            dry_run: args.dry_run,
            ..Summary::default()
        },
    };
    let quarantine_prefix = format!("{}quarantine/", home.layout.prefix);
    for key in run.documents.list(&quarantine_prefix).await? {
        run.redrive_document(&key).await?;
    }
    if let Some(prefix) = &args.on_failure_prefix {
        for key in run.documents.list(prefix).await? {
            run.redrive_failed_batch(&key).await?;
        }
    }
    let summary = run.summary;
    println!("{}", serde_json::to_string(&summary).map_err(|e| e.to_string())?);
    let failing = summary.still_failing + summary.failed_batches_still_failing;
    Ok(if failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whose settings name the archive the documents are read from.
fn home_source(args: &RedriveArgs) -> Source {
    match (&args.function, args.use_env) {
        (_, true) => Source::Shell,
        (Some(function), false) => Source::Function(function.clone()),
        (None, false) => Source::Flags,
    }
}

/// What a document or failure record is redriven with, or why it cannot be.
struct Plan {
    archiver: Arc<RedriveArchiver>,
    owed: Vec<String>,
}

impl Redrive<'_> {
    /// The source of a record written by `function` (a name or ARN; `None`: not said).
    fn source_of(&self, function: Option<&str>) -> Result<Source, String> {
        if self.args.use_env {
            return Ok(Source::Shell);
        }
        match function.or(self.args.function.as_deref()) {
            Some(f) => Ok(Source::Function(deployed::function_name(f).to_owned())),
            None => Err(
                "it names no function (it was written before documents named theirs): pass --function NAME, the \
                 function that quarantined it, or --use-env"
                    .to_owned(),
            ),
        }
    }

    /// The archiver writing exactly `owed` (all of the source's outputs when `None`) with `source`'s
    /// settings.
    async fn plan(&mut self, source: Source, owed: Option<Vec<String>>) -> Result<Plan, String> {
        let settings = self.deployed.settings(&source).await?;
        let owed = owed.unwrap_or_else(|| owed_outputs(&settings.outputs).into_iter().map(str::to_owned).collect());
        let key = (source, owed.clone());
        if let Some(archiver) = self.archivers.get(&key) {
            return Ok(Plan {
                archiver: Arc::clone(archiver),
                owed,
            });
        }
        let whose = match &key.0 {
            Source::Function(name) => format!("function {name}"),
            Source::Shell | Source::Flags => "this shell's DAS_OUTPUT".to_owned(),
        };
        let settings = deployed::owing(&settings, &owed, &whose)?;
        let archiver = Arc::new(self.archiver(&settings).await?);
        self.archivers.insert(key, Arc::clone(&archiver));
        Ok(Plan { archiver, owed })
    }

    async fn archiver(&self, settings: &Settings) -> Result<RedriveArchiver, String> {
        let keys: Box<dyn DataKeySource> = match &self.args.wrapping_key {
            Some(key) => Box::new(StaticKeySource::new(&parse_key(key)?)),
            None => Box::new(KmsKeySource::new(&self.sdk).with_key_arns(&settings.kms_key_arns)),
        };
        let inner = S3Sink::for_outputs(
            &self.sdk,
            &settings.bucket,
            settings.s3_force_path_style,
            settings.outputs.security_lake.as_ref(),
        )
        .await;
        let sink = HoldQuarantine {
            inner,
            quarantine_prefix: format!("{}quarantine/", settings.layout.prefix),
            dry_run: self.args.dry_run,
            held: Mutex::new(Vec::new()),
            writes: Mutex::new(Vec::new()),
        };
        let filter = open_filter(settings, std::future::ready(&self.sdk)).await?;
        Ok(Archiver::new(
            settings.batch_settings(),
            KeyCache::new(keys, settings.key_cache),
            filter,
            sink,
        ))
    }

    /// One quarantine document: run its record into the outputs it owes, then delete the document,
    /// or keep it with what it still owes and the new reason.
    async fn redrive_document(&mut self, key: &str) -> Result<(), String> {
        let body = self.documents.get(key).await?;
        let Ok(mut document) = serde_json::from_slice::<QuarantineDocument>(&body) else {
            eprintln!(
                "das redrive: s3://{}/{key} is not a quarantine document; left alone",
                self.documents.bucket
            );
            self.summary.still_failing += 1;
            return Ok(());
        };
        let owed = document.owed();
        let plan = match self.source_of(document.function.as_deref()) {
            Ok(source) => self.plan(source, Some(owed.clone())).await,
            Err(err) => Err(err),
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(reason) => {
                eprintln!("das redrive: {key} left alone: {reason}");
                self.summary.still_failing += 1;
                return Ok(());
            }
        };
        let outcome = plan.archiver.process(document.batch()).await;
        let (held, writes) = plan.archiver.sink().take();
        self.summary.events_archived += outcome.metrics.events_archived;
        let finished = outcome.retry_from.is_none() && held.is_empty();
        let remaining: Vec<String> = if finished {
            Vec::new()
        } else {
            plan.owed.iter().filter(|o| !written(&writes, o)).cloned().collect()
        };
        if remaining.is_empty() {
            self.summary.redriven += 1;
            if !self.args.dry_run {
                self.documents.delete(key).await?;
            }
            return Ok(());
        }
        self.summary.still_failing += 1;
        let reason = match held.first() {
            Some(object) => reason_of(object),
            None => format!(
                "{} could not be finished now (a transient or configuration error: see the log)",
                remaining.join(" and ")
            ),
        };
        eprintln!("das redrive: {key} still fails: {reason}");
        let fewer = remaining.len() < owed.len();
        if fewer {
            document.outputs = Some(remaining);
        }
        if (document.note(reason) || fewer) && !self.args.dry_run {
            let body = serde_json::to_vec_pretty(&document).map_err(|e| e.to_string())?;
            self.documents.put_json(key, body).await?;
        }
        Ok(())
    }

    /// One on-failure record of the event-source mapping: the whole batch again, into the outputs of
    /// the function that failed it; quarantining is allowed here (those records were never
    /// quarantined), retrying is not possible.
    async fn redrive_failed_batch(&mut self, key: &str) -> Result<(), String> {
        let body = self.documents.get(key).await?;
        let Some((event, function)) = failed_batch(&body) else {
            eprintln!(
                "das redrive: s3://{}/{key} holds no invocation payload (only batch metadata); its records must be \
                 read from the stream before they expire",
                self.documents.bucket
            );
            self.summary.failed_batches_still_failing += 1;
            return Ok(());
        };
        let plan = match self.source_of(function.as_deref()) {
            Ok(source) => self.plan(source, None).await,
            Err(err) => Err(err),
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(reason) => {
                eprintln!("das redrive: {key} left alone: {reason}");
                self.summary.failed_batches_still_failing += 1;
                return Ok(());
            }
        };
        let outcome = plan.archiver.process(Batch::from(event)).await;
        self.summary.events_archived += outcome.metrics.events_archived;
        let (held, _) = plan.archiver.sink().take();
        if outcome.retry_from.is_some() {
            self.summary.failed_batches_still_failing += 1;
            eprintln!("das redrive: {key} still fails (a transient or configuration error: see the log)");
            return Ok(());
        }
        if !self.args.dry_run {
            // The records the pipeline quarantined now: written as the Lambda writes them.
            for object in held {
                plan.archiver
                    .sink()
                    .inner
                    .put(object)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            self.documents.delete(key).await?;
        }
        self.summary.failed_batches_redriven += 1;
        Ok(())
    }
}

/// Whether every write to `output` succeeded, and there was one.
fn written(writes: &[(&'static str, bool)], output: &str) -> bool {
    let mine = writes.iter().filter(|(o, _)| *o == output);
    mine.clone().count() > 0 && mine.into_iter().all(|(_, ok)| *ok)
}

/// The Lambda event inside an on-failure record (`payload` holds the invocation's request, as a JSON
/// object or as a string of JSON) and the function that failed it (`requestContext.functionArn`,
/// <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>).
fn failed_batch(body: &[u8]) -> Option<(KinesisBatchEvent, Option<String>)> {
    let record: serde_json::Value = serde_json::from_slice(body).ok()?;
    let event = match record.get("payload")? {
        serde_json::Value::String(text) => serde_json::from_str(text).ok()?,
        object => serde_json::from_value(object.clone()).ok()?,
    };
    let function = record
        .pointer("/requestContext/functionArn")
        .and_then(|f| f.as_str())
        .map(str::to_owned);
    Some((event, function))
}

/// The `error` of a quarantine document the pipeline would have written.
fn reason_of(object: &Object) -> String {
    serde_json::from_slice::<serde_json::Value>(&object.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "quarantined again".to_owned())
}

impl QuarantineDocument {
    /// What the record still owes: the document's `outputs`, or the NDJSON archive for a document
    /// written before documents said.
    fn owed(&self) -> Vec<String> {
        self.outputs.clone().unwrap_or_else(|| vec![OUTPUT_NDJSON.to_owned()])
    }

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
            let (parsed, function) = failed_batch(record.to_string().as_bytes()).unwrap();
            assert_eq!((parsed.records.len(), function), (1, None));
        }
        assert!(failed_batch(br#"{"KinesisBatchInfo": {}}"#).is_none());
    }

    #[test]
    fn an_on_failure_record_names_the_function_that_failed_it() {
        let record = serde_json::json!({
            "requestContext": {
                "requestId": "c9b8fa9f-5a7f-4e2b-8bc7-a5b1e7a3b1e5",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:das-lake",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 3
            },
            "KinesisBatchInfo": {"shardId": "shardId-000000000000"},
            "payload": {"Records": []},
        });
        let (_, function) = failed_batch(record.to_string().as_bytes()).unwrap();
        assert_eq!(
            function.as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:das-lake")
        );
    }

    #[test]
    fn a_document_that_does_not_say_what_it_owes_owes_the_archive_and_one_that_does_is_kept_as_is() {
        let old = document();
        assert_eq!(old.owed(), ["ndjson"]);
        assert_eq!(old.function, None);
        let mut value = serde_json::to_value(&old).unwrap();
        assert!(
            value.get("outputs").is_none(),
            "an old document is rewritten without new fields"
        );
        value["outputs"] = serde_json::json!(["ocsf-parquet"]);
        value["function"] = serde_json::json!("das-lake");
        let new: QuarantineDocument = serde_json::from_value(value).unwrap();
        assert_eq!(
            (new.owed(), new.function.as_deref()),
            (vec!["ocsf-parquet".to_owned()], Some("das-lake"))
        );
    }

    #[test]
    fn an_output_is_written_when_it_had_a_write_and_none_failed() {
        let writes = [("ndjson", true), ("ocsf-parquet", true), ("ocsf-parquet", false)];
        assert!(written(&writes, "ndjson"));
        assert!(!written(&writes, "ocsf-parquet"), "one of its objects failed");
        assert!(!written(&[], "ndjson"), "nothing was written");
    }
}
