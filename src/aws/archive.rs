//! Where archived events and quarantined records go: object naming, body encoding, and the sinks
//! (S3, a local directory, memory) behind one small trait.
//!
//! Object keys are Hive-style (`dt=…/hour=…`) for Athena, and deterministic, so a retried batch
//! overwrites its objects instead of duplicating them. This module writes what it is given; it never
//! decides whether a failure is permanent or transient (every sink failure is transient).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;

use crate::aws::compress::{self, Compression};
use crate::aws::outputs::{owed_outputs, Outputs, SecurityLake, OUTPUT_NDJSON};
use crate::pipeline::envelope::ResourceId;
use crate::pipeline::error::{Classify, FailureKind};
use crate::pipeline::utc::UtcDateTime;

/// A record on its way to quarantine, in plain fields, so that writing it needs nothing from the
/// batch that decided its fate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuarantinedRecord<'a> {
    /// Why it was quarantined, for a person to read.
    pub reason: &'a str,
    /// The kind of failure, e.g. `permanent`.
    pub error_kind: &'a str,
    /// The database the stream belongs to.
    pub resource_id: &'a str,
    /// The stream's ARN, when the event named it.
    pub event_source_arn: Option<&'a str>,
    /// Kinesis shard id.
    pub shard_id: &'a str,
    /// Kinesis sequence number.
    pub sequence_number: &'a str,
    /// Kinesis partition key.
    pub partition_key: &'a str,
    /// Approximate arrival time, Unix seconds: it names the object's `dt=` partition.
    pub arrival_seconds: f64,
    /// The raw (still encrypted) record data, or `None` if it was not even base64.
    pub data: Option<&'a [u8]>,
    /// What the writing function owed for the record ([`owed_outputs`]), and that function: the
    /// document says both, so `das redrive` writes exactly those outputs with that function's settings.
    pub outputs: &'a Outputs,
}

/// One Kinesis record exactly as it was received, as a line of an originals object
/// ([`Layout::originals_key`], `DAS_KEEP_ORIGINALS`): the record data is the DAS record JSON
/// (`{type, version, databaseActivityEvents, key}`), still encrypted under the DAS KMS key, so the
/// line holds no SQL and no key material; `das unmask` decrypts it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OriginalRecord {
    /// Kinesis shard id.
    pub shard_id: String,
    /// Kinesis sequence number.
    pub sequence_number: String,
    /// Approximate arrival time, Unix seconds (as Lambda gives it).
    pub approximate_arrival_timestamp: f64,
    /// Kinesis partition key.
    pub partition_key: String,
    /// The record data, base64 (standard alphabet, padded).
    pub data: String,
}

impl OriginalRecord {
    /// The record's line, with its `\n`.
    pub fn line(
        shard_id: &str,
        sequence_number: &str,
        arrival_seconds: f64,
        partition_key: &str,
        data: &[u8],
    ) -> Vec<u8> {
        let record = Self {
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number.to_owned(),
            approximate_arrival_timestamp: arrival_seconds,
            partition_key: partition_key.to_owned(),
            data: base64::engine::general_purpose::STANDARD.encode(data),
        };
        // Strings and a finite float: serializing cannot fail (a NaN arrival time would be `null`).
        let mut line = serde_json::to_vec(&record).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// The record data, decoded from base64; `None` if the line was not written by us.
    pub fn data_bytes(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD.decode(&self.data).ok()
    }
}

/// Names and encodes the objects of one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Key prefix, e.g. `activity/` (kept as given; add the trailing slash yourself).
    pub prefix: String,
    /// Body compression.
    pub compression: Compression,
}

/// One object to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object key.
    pub key: String,
    /// The body, already encoded.
    pub body: Vec<u8>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Encoding`, for gzip bodies.
    pub content_encoding: Option<&'static str>,
    /// User metadata (`x-amz-meta-…`): for archive objects, what they hold (see [`ArchiveSummary`]).
    pub metadata: Vec<(&'static str, String)>,
    /// Another bucket than the sink's (the Security Lake bucket for OCSF objects); `None`: the sink's.
    /// Sinks without buckets (a directory, memory) ignore it.
    pub bucket: Option<String>,
}

/// What one archive object holds, written as its user metadata so the archive's completeness can be
/// checked from a listing and a HEAD, without reading the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveSummary<'a> {
    /// Kinesis records whose events are in the object.
    pub records: u64,
    /// Lines (events) in the object.
    pub events: u64,
    /// The first record's sequence number.
    pub first_sequence: &'a str,
    /// The last record's sequence number.
    pub last_sequence: &'a str,
}

impl ArchiveSummary<'_> {
    fn metadata(&self) -> Vec<(&'static str, String)> {
        vec![
            ("das-record-count", self.records.to_string()),
            ("das-event-count", self.events.to_string()),
            ("das-first-sequence-number", self.first_sequence.to_owned()),
            ("das-last-sequence-number", self.last_sequence.to_owned()),
        ]
    }
}

impl Layout {
    /// `{prefix}{resource}/dt=YYYY-MM-DD/hour=HH/{shard}-{first seq}-{last seq}.ndjson[.gz]`.
    pub fn archive_key(
        &self,
        resource: &ResourceId,
        arrival: &UtcDateTime,
        shard: &str,
        first: &str,
        last: &str,
    ) -> String {
        let extension = match self.compression {
            Compression::Gzip => "ndjson.gz",
            Compression::Zstd => "ndjson.zst",
            Compression::None => "ndjson",
        };
        format!(
            "{}{}/dt={}/hour={:02}/{}-{}-{}.{extension}",
            self.prefix,
            resource,
            arrival.date(),
            arrival.hour,
            safe(shard),
            safe(first),
            safe(last)
        )
    }

    /// `{prefix}originals/{resource}/dt=YYYY-MM-DD/hour=HH/{shard}-{first seq}-{last seq}.ndjson[.gz]`:
    /// the originals object of the archive object [`Layout::archive_key`] names for the same
    /// arguments (same date, hour and file name), holding the records that produced it as they were
    /// received ([`OriginalRecord`]). Resource ids start with `cluster-` or `db-`, so `originals/`
    /// never meets an archive folder.
    pub fn originals_key(
        &self,
        resource: &ResourceId,
        arrival: &UtcDateTime,
        shard: &str,
        first: &str,
        last: &str,
    ) -> String {
        let originals = Self {
            prefix: self.originals_prefix(),
            compression: self.compression,
        };
        originals.archive_key(resource, arrival, shard, first, last)
    }

    /// `{prefix}originals/`: where every originals object lies (the bucket policy lets only the
    /// break-glass role read below it).
    pub fn originals_prefix(&self) -> String {
        format!("{}originals/", self.prefix)
    }

    /// `{prefix}quarantine/{resource}/dt=YYYY-MM-DD/{shard}-{seq}.json` for a record that owes the
    /// NDJSON archive alone (the archive function's, and every document written before documents
    /// said what they owe), else `{shard}-{seq}.{output}[.{output}].json`
    /// (`shardId-000000000000-49….ocsf-parquet.json` for the Security Lake function): the two
    /// functions read the same stream and may quarantine the same record, and neither may overwrite
    /// the other's document.
    pub fn quarantine_key(
        &self,
        resource: &str,
        arrival: &UtcDateTime,
        shard: &str,
        sequence: &str,
        owed: &[&str],
    ) -> String {
        let outputs = if owed == [OUTPUT_NDJSON] {
            String::new()
        } else {
            owed.iter().map(|o| format!(".{}", safe(o))).collect()
        };
        format!(
            "{}quarantine/{}/dt={}/{}-{}{outputs}.json",
            self.prefix,
            safe(resource),
            arrival.date(),
            safe(shard),
            safe(sequence)
        )
    }

    /// The quarantine document of one record, under its [`Layout::quarantine_key`]: the reason, the
    /// Kinesis metadata, the raw record, base64 (never decrypted, so no key material or SQL), the
    /// outputs it owes and the function that owes them. Its user metadata names its sequence number
    /// as an archive object's does ([`ArchiveSummary`]).
    pub fn quarantine_object(&self, record: &QuarantinedRecord<'_>) -> Object {
        let arrival = UtcDateTime::from_unix_seconds(record.arrival_seconds);
        let owed = owed_outputs(record.outputs);
        let key = self.quarantine_key(
            record.resource_id,
            &arrival,
            record.shard_id,
            record.sequence_number,
            &owed,
        );
        let document = serde_json::json!({
            "error": record.reason,
            "errorKind": record.error_kind,
            "resourceId": record.resource_id,
            "outputs": owed,
            "function": record.outputs.function,
            "kinesis": {
                "eventSourceARN": record.event_source_arn,
                "shardId": record.shard_id,
                "sequenceNumber": record.sequence_number,
                "partitionKey": record.partition_key,
                "approximateArrivalTimestamp": record.arrival_seconds,
            },
            "data": record.data.map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
        });
        Object {
            key,
            body: serde_json::to_vec_pretty(&document).unwrap_or_default(),
            content_type: "application/json",
            content_encoding: None,
            // No counts: they sum the archived records and events, which a document is not.
            metadata: vec![
                ("das-first-sequence-number", record.sequence_number.to_owned()),
                ("das-last-sequence-number", record.sequence_number.to_owned()),
            ],
            bucket: None,
        }
    }

    /// An archive object holding the concatenation of `pieces` (NDJSON lines, a record's at a
    /// time), compressed as configured ([`compress`]). Should zstd fail to allocate, the object is
    /// stored plain, under the plain extension, rather than lost.
    pub fn archive_object(&self, key: String, pieces: &[&[u8]]) -> Object {
        let mut encoder = compress::ObjectEncoder::new(self.compression);
        encoder.append(pieces);
        let encoded = encoder.finish().unwrap_or_else(|| compress::Encoded {
            body: pieces.concat(),
            compression: Compression::None,
        });
        self.encoded_archive_object(key, encoded)
    }

    /// The archive object of a body that [`compress::ObjectEncoder`] compressed; a plain body whose
    /// key was named for zstd (zstd could not allocate) loses the extension.
    pub fn encoded_archive_object(&self, key: String, encoded: compress::Encoded) -> Object {
        let (key, content_encoding) = match encoded.compression {
            Compression::Gzip => (key, Some("gzip")),
            // Browsers and HTTP clients do not all decode zstd; the extension says it.
            Compression::Zstd => (key, None),
            Compression::None => {
                let plain = key.strip_suffix(".zst").map(str::to_owned);
                (plain.unwrap_or(key), None)
            }
        };
        Object {
            key,
            body: encoded.body,
            content_type: "application/x-ndjson",
            content_encoding,
            metadata: Vec::new(),
            bucket: None,
        }
    }
}

impl Object {
    /// The object with `summary` as its user metadata.
    pub fn with_summary(mut self, summary: &ArchiveSummary<'_>) -> Self {
        self.metadata = summary.metadata();
        self
    }
}

/// Keeps key components to characters that are safe in S3 keys and file names. Kinesis shard ids
/// and sequence numbers already are; anything else becomes `_`.
fn safe(component: &str) -> String {
    let cleaned: String = component
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.as_str() {
        "" => "_".to_owned(),
        "." | ".." => cleaned.replace('.', "_"),
        _ => cleaned,
    }
}

/// A failed write; always transient (retrying may succeed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The write was refused or could not be made.
    #[error("writing {key} failed: {detail}")]
    Write {
        /// The object key.
        key: String,
        /// What went wrong.
        detail: String,
    },
    /// S3 refused the write because the deployment is wrong (permissions, a missing bucket):
    /// retried like an outage, but a person must act.
    #[error("writing {key} failed with {code}: {fix}. Records are retried until this is fixed ({detail})")]
    Configuration {
        /// The object key.
        key: String,
        /// The S3 error code, e.g. `AccessDenied`.
        code: String,
        /// What the operator should change.
        fix: &'static str,
        /// What the SDK reported.
        detail: String,
    },
}

impl SinkError {
    /// Whether a person must fix the deployment (S3 `AccessDenied`, `NoSuchBucket`, credentials):
    /// worth an ERROR log, not a WARN.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Configuration { .. })
    }
}

impl Classify for SinkError {
    fn failure_kind(&self) -> FailureKind {
        FailureKind::Transient
    }
}

/// What to fix for an S3 error code that means the deployment is wrong
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>); `None` for the rest
/// (`SlowDown`, `InternalError`, 5xx: outages). `through_role`: the bucket is written with the
/// Security Lake provider role, not the function's own credentials.
fn s3_configuration_fix(code: &str, through_role: bool) -> Option<&'static str> {
    match code {
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" if through_role => Some(
            "the Security Lake provider role (DAS_SECURITY_LAKE_ROLE_ARN) does not allow s3:PutObject on this key; \
             check that DAS_SECURITY_LAKE_SOURCE and DAS_SECURITY_LAKE_PREFIX name the custom source's ext/<source>/ \
             prefix",
        ),
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => Some(
            "the function's role or the bucket policy does not allow s3:PutObject on the archive prefix \
             (with SSE-KMS, also kms:GenerateDataKey on the bucket key); grant it",
        ),
        "NoSuchBucket" => {
            Some("the bucket does not exist; check DAS_ARCHIVE_BUCKET (or DAS_SECURITY_LAKE_BUCKET) and the region")
        }
        "InvalidAccessKeyId" | "ExpiredToken" | "SignatureDoesNotMatch" | "InvalidToken" => {
            Some("the function's AWS credentials are invalid or expired; check the execution role")
        }
        _ => None,
    }
}

/// What to fix when no credentials could be loaded for the write (nothing was sent to S3).
fn credentials_fix(through_role: bool) -> &'static str {
    if through_role {
        // The assume-role provider failed: STS refused AssumeRole (AccessDenied) or could not be reached.
        // Security Lake's provider role trusts the custom source's provider identity, an account id (or a
        // service principal) with the external id as condition
        // (https://docs.aws.amazon.com/security-lake/latest/APIReference/API_AwsIdentity.html); the
        // caller's own role must also be allowed sts:AssumeRole on it.
        "the Security Lake provider role could not be assumed; check DAS_SECURITY_LAKE_ROLE_ARN, that \
         DAS_SECURITY_LAKE_EXTERNAL_ID is the custom source's external id, that the source's provider identity \
         is this function's account, and that the function's role allows sts:AssumeRole on the role"
    } else {
        "no AWS credentials could be loaded; check the execution role (or the AWS_* credentials and profile \
         the command runs with)"
    }
}

/// Whether `err` (or any error it wraps) is a credentials provider's failure: the request was
/// never sent.
fn is_credentials_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// A failed `PutObject` of `key` as a [`SinkError`]: configuration when a person must act.
fn put_error<R: std::fmt::Debug + 'static>(
    err: &aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError, R>,
    key: String,
    through_role: bool,
) -> SinkError {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let detail = aws_sdk_s3::error::DisplayErrorContext(err).to_string();
    // Unmodelled for PutObject: the code string is all the SDK gives.
    let code = err.as_service_error().and_then(ProvideErrorMetadata::code);
    if let Some((code, fix)) = code.and_then(|c| s3_configuration_fix(c, through_role).map(|fix| (c, fix))) {
        return SinkError::Configuration {
            key,
            code: code.to_owned(),
            fix,
            detail,
        };
    }
    if code.is_none() && is_credentials_error(err) {
        return SinkError::Configuration {
            key,
            code: "CredentialsError".to_owned(),
            fix: credentials_fix(through_role),
            detail,
        };
    }
    SinkError::Write { key, detail }
}

/// Somewhere objects can be written.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Writes (or overwrites) one object.
    async fn put(&self, object: Object) -> Result<(), SinkError>;
}

#[async_trait]
impl Sink for Box<dyn Sink> {
    async fn put(&self, object: Object) -> Result<(), SinkError> {
        self.as_ref().put(object).await
    }
}

/// An S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Buckets written with other credentials (the Security Lake bucket through the role its custom
    /// source grants), each with its own client.
    other_buckets: Vec<(String, aws_sdk_s3::Client)>,
    force_path_style: bool,
    timeouts: aws_config::timeout::TimeoutConfig,
}

/// How long one S3 `PutObject` attempt may take: an archive object is at most a few MB (a Lambda batch
/// is at most 6 MB of records, compressed about 10:1 after decryption and gunzip).
pub const S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `PutObject` may take with the SDK's retries. With [`crate::aws::keys::KMS_OPERATION_TIMEOUT`]
/// it stays inside the template's default function timeout (120 s), so a silent network becomes a
/// retry from the right record instead of a timed-out invocation.
pub const S3_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

impl S3Sink {
    /// A sink writing to `bucket`; `force_path_style` for local S3-compatible servers. Writes are
    /// bounded by [`S3_ATTEMPT_TIMEOUT`] and [`S3_OPERATION_TIMEOUT`].
    pub fn new(config: &aws_config::SdkConfig, bucket: &str, force_path_style: bool) -> Self {
        Self::with_timeouts(
            config,
            bucket,
            force_path_style,
            S3_ATTEMPT_TIMEOUT,
            S3_OPERATION_TIMEOUT,
        )
    }

    /// [`S3Sink::new`] with other bounds on one attempt and on the whole write (with retries).
    pub fn with_timeouts(
        config: &aws_config::SdkConfig,
        bucket: &str,
        force_path_style: bool,
        attempt: Duration,
        operation: Duration,
    ) -> Self {
        let timeouts = super::timeouts(attempt, operation);
        Self {
            client: client(config, force_path_style, &timeouts),
            bucket: bucket.to_owned(),
            other_buckets: Vec::new(),
            force_path_style,
            timeouts,
        }
    }

    /// The same sink, writing objects addressed to `bucket` with `config`'s credentials.
    #[must_use]
    pub fn with_bucket_config(mut self, bucket: &str, config: &aws_config::SdkConfig) -> Self {
        let other = client(config, self.force_path_style, &self.timeouts);
        self.other_buckets.push((bucket.to_owned(), other));
        self
    }

    /// A sink for the settings' outputs: when the Security Lake custom source names a role
    /// (`DAS_SECURITY_LAKE_ROLE_ARN`), its bucket is written through that role, assumed with the
    /// source's external id. Security Lake creates that role for the custom source and trusts the
    /// provider's principal with it
    /// (<https://docs.aws.amazon.com/security-lake/latest/userguide/custom-sources.html>,
    /// <https://docs.aws.amazon.com/security-lake/latest/APIReference/API_CustomLogSourceProvider.html>).
    pub async fn for_outputs(
        config: &aws_config::SdkConfig,
        bucket: &str,
        force_path_style: bool,
        lake: Option<&SecurityLake>,
    ) -> Self {
        let sink = Self::new(config, bucket, force_path_style);
        let Some((lake, role)) = lake.and_then(|l| l.role_arn.as_deref().map(|r| (l, r))) else {
            return sink;
        };
        let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("das-archiver")
            .configure(config);
        if let Some(external_id) = &lake.external_id {
            assume = assume.external_id(external_id);
        }
        let provider = assume.build().await;
        let assumed = config
            .to_builder()
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider))
            .build();
        sink.with_bucket_config(&lake.bucket, &assumed)
    }
}

fn client(
    config: &aws_config::SdkConfig,
    force_path_style: bool,
    timeouts: &aws_config::timeout::TimeoutConfig,
) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(force_path_style)
        .timeout_config(timeouts.clone())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

#[async_trait]
impl Sink for S3Sink {
    async fn put(&self, object: Object) -> Result<(), SinkError> {
        let key = object.key;
        let bucket = object.bucket.as_deref().unwrap_or(&self.bucket);
        let other = self.other_buckets.iter().find(|(name, _)| name == bucket);
        let client = other.map_or(&self.client, |(_, client)| client);
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(object.content_type)
            .set_content_encoding(object.content_encoding.map(str::to_owned))
            .set_metadata(metadata(&object.metadata))
            // S3 checks the SHA-256 the SDK computes over the body and keeps it with the object, so
            // the bytes are verified end to end and can be verified again later
            // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html).
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .body(object.body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|err| put_error(&err, format!("s3://{bucket}/{key}"), other.is_some()))
    }
}

/// User metadata for PutObject; `None` when there is none.
fn metadata(pairs: &[(&'static str, String)]) -> Option<std::collections::HashMap<String, String>> {
    (!pairs.is_empty()).then(|| pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

/// A local directory: object keys become relative file paths (for `das replay --out-dir`).
#[derive(Debug, Clone)]
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    /// A sink writing below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        let relative = Path::new(key);
        relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| self.root.join(relative))
    }
}

#[async_trait]
impl Sink for DirSink {
    async fn put(&self, object: Object) -> Result<(), SinkError> {
        let fail = |detail: String| SinkError::Write {
            key: object.key.clone(),
            detail,
        };
        let path = self
            .path(&object.key)
            .ok_or_else(|| fail("the key is not a plain relative path".into()))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::write(&path, &object.body).map_err(|e| fail(e.to_string()))
    }
}

/// Objects kept in memory (tests, benchmarks).
#[derive(Debug, Default)]
pub struct MemorySink {
    objects: Mutex<BTreeMap<String, Object>>,
}

impl MemorySink {
    /// Everything written so far, by key.
    pub fn objects(&self) -> BTreeMap<String, Object> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn put(&self, object: Object) -> Result<(), SinkError> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(object.key.clone(), object);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::outputs::OUTPUT_OCSF_PARQUET;

    fn layout(compression: Compression) -> Layout {
        Layout {
            prefix: "activity/".into(),
            compression,
        }
    }

    #[test]
    fn archive_keys_are_hive_partitioned_by_arrival_date_and_hour() {
        let at = UtcDateTime::from_unix_seconds(1_795_314_600.5);
        let resource = ResourceId::parse("cluster-ABC").unwrap();
        assert_eq!(
            layout(Compression::Gzip).archive_key(&resource, &at, "shardId-000000000001", "4961", "4999"),
            "activity/cluster-ABC/dt=2026-11-22/hour=02/shardId-000000000001-4961-4999.ndjson.gz"
        );
        assert!(layout(Compression::None)
            .archive_key(&resource, &at, "s", "1", "2")
            .ends_with("s-1-2.ndjson"));
    }

    #[test]
    fn an_originals_key_is_its_archive_key_under_originals() {
        let at = UtcDateTime::from_unix_seconds(1_795_314_600.5);
        let resource = ResourceId::parse("cluster-ABC").unwrap();
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let l = layout(compression);
            let archive = l.archive_key(&resource, &at, "shardId-000000000001", "4961", "4999");
            let originals = l.originals_key(&resource, &at, "shardId-000000000001", "4961", "4999");
            assert_eq!(originals, archive.replacen("activity/", "activity/originals/", 1));
            assert!(originals.starts_with(&l.originals_prefix()));
        }
        assert_eq!(
            layout(Compression::Gzip).originals_key(&resource, &at, "shardId-000000000001", "4961", "4999"),
            "activity/originals/cluster-ABC/dt=2026-11-22/hour=02/shardId-000000000001-4961-4999.ndjson.gz"
        );
    }

    #[test]
    fn an_originals_line_is_the_kinesis_record_with_its_data_in_base64() {
        let line = OriginalRecord::line(
            "shardId-000000000001",
            "42",
            1_795_314_600.5,
            "pk",
            b"{\"type\":\"DatabaseActivityMonitoringRecords\"}",
        );
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "shardId": "shardId-000000000001",
                "sequenceNumber": "42",
                "approximateArrivalTimestamp": 1_795_314_600.5,
                "partitionKey": "pk",
                "data": "eyJ0eXBlIjoiRGF0YWJhc2VBY3Rpdml0eU1vbml0b3JpbmdSZWNvcmRzIn0=",
            })
        );
        let record: OriginalRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            record.data_bytes().unwrap(),
            b"{\"type\":\"DatabaseActivityMonitoringRecords\"}"
        );
    }

    #[test]
    fn quarantine_keys_sit_under_their_own_prefix_and_cannot_escape_it() {
        let at = UtcDateTime::from_unix_seconds(0.0);
        let l = layout(Compression::Gzip);
        assert_eq!(
            l.quarantine_key("cluster-A", &at, "shardId-1", "42", &[OUTPUT_NDJSON]),
            "activity/quarantine/cluster-A/dt=1970-01-01/shardId-1-42.json"
        );
        assert_eq!(
            l.quarantine_key("..", &at, "../x", "a/b", &[OUTPUT_NDJSON]),
            "activity/quarantine/__/dt=1970-01-01/.._x-a_b.json"
        );
    }

    #[test]
    fn the_lake_function_s_document_for_a_record_does_not_overwrite_the_archive_function_s() {
        let at = UtcDateTime::from_unix_seconds(0.0);
        let l = layout(Compression::Gzip);
        let keys = [
            l.quarantine_key("cluster-A", &at, "shardId-1", "42", &[OUTPUT_NDJSON]),
            l.quarantine_key("cluster-A", &at, "shardId-1", "42", &[OUTPUT_OCSF_PARQUET]),
            l.quarantine_key(
                "cluster-A",
                &at,
                "shardId-1",
                "42",
                &[OUTPUT_NDJSON, OUTPUT_OCSF_PARQUET],
            ),
        ];
        assert_eq!(
            keys.iter().map(|k| k.rsplit('/').next().unwrap()).collect::<Vec<_>>(),
            [
                "shardId-1-42.json",
                "shardId-1-42.ocsf-parquet.json",
                "shardId-1-42.ndjson.ocsf-parquet.json"
            ]
        );
    }

    #[test]
    fn a_quarantine_document_keeps_the_reason_the_kinesis_metadata_and_the_raw_record() {
        let record = QuarantinedRecord {
            reason: "not a DAS record",
            error_kind: "permanent",
            resource_id: "cluster-A",
            event_source_arn: Some("arn:aws:kinesis:us-east-1:1:stream/aws-rds-das-cluster-A"),
            shard_id: "shardId-000000000001",
            sequence_number: "42",
            partition_key: "pk",
            arrival_seconds: 1_795_314_600.5,
            data: Some(b"raw"),
            outputs: &Outputs {
                function: Some("das-archiver".into()),
                ..Outputs::default()
            },
        };
        let object = layout(Compression::Gzip).quarantine_object(&record);
        assert_eq!(
            object.key,
            "activity/quarantine/cluster-A/dt=2026-11-22/shardId-000000000001-42.json"
        );
        assert_eq!(
            (object.content_type, object.content_encoding),
            ("application/json", None)
        );
        assert_eq!(
            object.metadata,
            [
                ("das-first-sequence-number", "42".to_owned()),
                ("das-last-sequence-number", "42".to_owned())
            ]
        );
        let doc: serde_json::Value = serde_json::from_slice(&object.body).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "error": "not a DAS record",
                "errorKind": "permanent",
                "resourceId": "cluster-A",
                "outputs": ["ndjson"],
                "function": "das-archiver",
                "kinesis": {
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/aws-rds-das-cluster-A",
                    "shardId": "shardId-000000000001",
                    "sequenceNumber": "42",
                    "partitionKey": "pk",
                    "approximateArrivalTimestamp": 1_795_314_600.5,
                },
                "data": "cmF3",
            })
        );
    }

    #[test]
    fn gzip_objects_decompress_to_the_lines() {
        let object = layout(Compression::Gzip).archive_object("k".into(), &[b"{\"a\":1}\n"]);
        assert_eq!(object.content_encoding, Some("gzip"));
        assert_eq!(
            crate::pipeline::gunzip::gunzip(&object.body, 100).unwrap(),
            b"{\"a\":1}\n"
        );
    }

    #[test]
    fn gzip_objects_of_any_size_decompress_to_the_lines() {
        let lines: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("{{\"n\":{i},\"commandText\":\"select {}\"}}\n", i * 7919 % 1000).into_bytes())
            .collect();
        for body in [&b""[..], &lines[..]] {
            let object = layout(Compression::Gzip).archive_object("k".into(), &[body]);
            assert!(object.body.len() < body.len() / 4 + 32);
            assert_eq!(crate::pipeline::gunzip::gunzip(&object.body, 64 << 20).unwrap(), body);
        }
    }

    #[test]
    fn compression_settings_parse_or_say_what_is_allowed() {
        assert_eq!("GZIP".parse::<Compression>(), Ok(Compression::Gzip));
        assert_eq!("none".parse::<Compression>(), Ok(Compression::None));
        assert_eq!("zstd".parse::<Compression>(), Ok(Compression::Zstd));
        assert!("brotli"
            .parse::<Compression>()
            .unwrap_err()
            .contains("gzip, zstd or none"));
    }

    #[test]
    fn zstd_objects_decompress_to_the_lines_under_their_own_extension() {
        let layout = layout(Compression::Zstd);
        let arrival = UtcDateTime::from_unix_seconds(1_795_316_397.0);
        let key = layout.archive_key(&ResourceId::parse("cluster-A").unwrap(), &arrival, "s", "1", "2");
        assert!(key.ends_with("/s-1-2.ndjson.zst"), "{key}");
        let lines = b"{\"a\":1}\n".repeat(1000);
        let object = layout.archive_object(key, &[&lines]);
        assert!(object.body.len() < lines.len() / 10);
        assert_eq!(zstd::bulk::decompress(&object.body, lines.len()).unwrap(), lines);
    }

    #[tokio::test]
    async fn the_directory_sink_writes_files_and_refuses_escaping_keys() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::new(dir.path());
        let object = |key: &str| Object {
            key: key.into(),
            body: b"x".to_vec(),
            content_type: "t",
            content_encoding: None,
            metadata: Vec::new(),
            bucket: None,
        };
        sink.put(object("a/b/c.json")).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/b/c.json")).unwrap(), b"x");
        assert!(sink.put(object("../evil")).await.is_err());
        assert!(sink.put(object("/abs")).await.is_err());
    }
}
