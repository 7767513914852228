//! One batch of Kinesis records end to end: the rule is that every input record is archived,
//! quarantined with its reason, or reported for retry — never lost, never reported done unwritten.
//!
//! [`Archiver::process`] runs these steps, each its own function:
//! 1. parse envelopes — every record's DAS record JSON ([`parse_envelope`]), in parallel;
//! 2. fetch keys — the distinct data keys, cached, at most [`KEY_LOOKUP_CONCURRENCY`] at a time;
//! 3. decode all — decrypt, filter and format every record in parallel on the CPU, each inside
//!    `catch_unwind` (as [`decode_records`], shared with `das tail`, does), giving each record its
//!    fate: decoded, permanent (quarantine), given up (`batch/give_up.rs`), or transient (retry).
//!    Records are decoded a step at a time, and each window's lines are compressed into their archive
//!    object and freed while the next records decode (`batch/windows.rs`), up to the first record that
//!    must be retried;
//! 4. plan writes — one object per arrival date-hour, one quarantine object per bad record, and with
//!    `DAS_OUTPUT=ocsf-parquet` one OCSF Parquet object per event day for Security Lake, for the
//!    records before the retry point only;
//! 5. write objects — at most [`WRITE_CONCURRENCY`] at a time (a batch of 10,000 bad records is
//!    10,000 quarantine objects);
//! 6. retry point — the first record that failed transiently, or that a failed write held;
//! 7. metrics — counted after the writes;
//! 8. summary — the batch's answer and its one log line.
//!
//! This is the one place that decides permanent versus transient; failures stay typed until the
//! quarantine document or a log line writes them down. It talks to AWS only through the
//! [`DataKeySource`] and [`Sink`] traits, and never writes a record at or after the first
//! transient failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use rayon::prelude::*;
use serde::Serialize;

use crate::aws::archive::{ArchiveSummary, Layout, Object, OriginalRecord, QuarantinedRecord, Sink};
use crate::aws::compress::ObjectEncoder;
use crate::aws::keys::{DataKeySource, KeyCache, KeyCacheStats, KeyError};
use crate::aws::outputs::{Outputs, SecurityLake};
use crate::pipeline::envelope::{Envelope, ResourceId};
use crate::pipeline::error::{Classify, FailureKind};
use crate::pipeline::esdk::RawAesKeyring;
use crate::pipeline::filter::Filter;
use crate::pipeline::record::{DecodeOptions, OcsfSource, RecordError};
use crate::pipeline::utc::UtcDateTime;

mod give_up;
mod windows;
pub use give_up::{FailingRecords, GiveUpPolicy, GiveUpReason, MAX_FAILING_RECORDS, RETENTION_MARGIN};
use windows::{DecodedBatch, Decoder, GiveUp};

/// The most objects a batch writes at once. A batch of records that all fail (a stream restarted
/// under a new key while `DAS_KMS_KEY_ARN` pins the old one) is one quarantine `PutObject` per record,
/// 10,000 with the largest batch size. Each request in flight holds a connection, so a file
/// descriptor, of the 1,024 a Lambda function has
/// (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>); the SDK's connection
/// pool sets no bound of its own. And S3 serves at least 3,500 `PUT`s per second per partitioned
/// prefix, answering a sudden burst with `503 SlowDown` while it scales
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html>): at 10 to
/// 50 ms per `PutObject`, 64 in flight is 1,300 to 6,400 a second, and 10,000 quarantine objects take
/// seconds, well inside the function's timeout.
pub const WRITE_CONCURRENCY: usize = 64;

pub use crate::aws::keys::KEY_LOOKUP_CONCURRENCY;

// The core's record renderer, under the path benches and callers already name.
pub use crate::pipeline::record::{render_record, RecordOrigin, Rendered};

/// One Kinesis record as the batch sees it (from a Lambda event, or read by the CLI).
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    /// The record data (the DAS envelope JSON), or `None` if it could not even be base64-decoded.
    pub data: Option<Vec<u8>>,
    /// Kinesis sequence number.
    pub sequence_number: String,
    /// Shard id, e.g. `shardId-000000000000`.
    pub shard_id: String,
    /// Partition key.
    pub partition_key: String,
    /// Approximate arrival time, Unix seconds.
    pub arrival_seconds: f64,
}

/// A batch of records from one shard, in Kinesis order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The stream's ARN (`eventSourceARN`), from which the resource id is derived.
    pub event_source_arn: Option<String>,
    /// The records.
    pub records: Vec<InputRecord>,
}

/// What the batch did, for metrics and the summary log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchMetrics {
    /// Records received.
    pub records_in: u64,
    /// Events written to the archive.
    pub events_archived: u64,
    /// Events dropped by the include/exclude filters.
    pub events_filtered: u64,
    /// Heartbeats skipped.
    pub heartbeats_skipped: u64,
    /// Records written to quarantine (given-up records included).
    pub records_quarantined: u64,
    /// Records quarantined because they were still failing transiently after the give-up age.
    pub records_given_up: u64,
    /// Records left for Kinesis to retry.
    pub records_retried: u64,
    /// Age of the batch's oldest record when the batch was processed, in seconds: this stream's
    /// iterator age (Lambda's own `IteratorAge` is per function or mapping, not per database).
    pub oldest_record_age_seconds: u64,
    /// KMS calls made during this batch.
    pub kms_calls: u64,
    /// Key lookups answered by the cache during this batch.
    pub key_cache_hits: u64,
    /// Object bytes written (after compression).
    pub bytes_written: u64,
    /// Objects written (archive and quarantine).
    pub objects_written: u64,
}

/// The batch's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The database the batch belongs to, when it could be told.
    pub resource_id: Option<ResourceId>,
    /// The sequence number to retry from, if any record could not be finished now.
    pub retry_from: Option<String>,
    /// What happened.
    pub metrics: BatchMetrics,
}

/// Settings of the batch pipeline.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// The one database of a single-stream deployment (`DAS_RESOURCE_ID`): a batch from the DAS
    /// stream of another id is a configuration error; a stream not named like a DAS stream gets it.
    pub resource_id: Option<ResourceId>,
    /// The databases this deployment may archive (`DAS_RESOURCE_IDS`; empty: any).
    pub resource_ids: Vec<ResourceId>,
    /// When a record that keeps failing is quarantined instead of retried (`DAS_GIVE_UP_*`,
    /// `DAS_STREAM_RETENTION_HOURS`; `None`: never, as `das replay` and `das redrive` run).
    pub give_up: Option<GiveUpPolicy>,
    /// Object naming and compression.
    pub layout: Layout,
    /// Decoding limits.
    pub decode: DecodeOptions,
    /// What to write: the NDJSON archive, OCSF Parquet for Security Lake, or both.
    pub outputs: Outputs,
    /// `DAS_KEEP_ORIGINALS`: beside each archive object, the records that produced it as received
    /// (still encrypted), under [`Layout::originals_key`]; part of the same write set. Only with the
    /// NDJSON archive: an OCSF-only function writes none.
    pub keep_originals: bool,
}

/// Each distinct key blob's keyring, or why there is none; shared by every record naming the blob.
pub type Keyrings = HashMap<Vec<u8>, Result<Arc<RawAesKeyring>, Arc<KeyError>>>;

/// Why one record could not be decoded. It stays typed until it is written down (the quarantine
/// document, a log line, `das tail`'s stderr); its [`Classify`] answer decides quarantine or retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeFailure {
    /// The Kinesis record data could not even be base64-decoded.
    #[error("the Kinesis record data is not valid base64")]
    NotBase64,
    /// The data key could not be obtained; permanent or transient as KMS answered.
    #[error(transparent)]
    Key(Arc<KeyError>),
    /// No lookup ran for the record's key blob: a bug upstream, and retrying is safe.
    #[error("the data key lookup did not run")]
    KeyNotLookedUp,
    /// The record itself is bad (envelope, ESDK, gzip, payload), or decoding it panicked.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl DecodeFailure {
    /// Whether the failure is a deployment error (a key policy, credentials) that only a person can
    /// fix: retried like a transient one, but logged as an error that says what to fix.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Key(err) if err.is_configuration())
    }
}

impl Classify for DecodeFailure {
    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Key(err) => err.failure_kind(),
            Self::KeyNotLookedUp => FailureKind::Transient,
            Self::NotBase64 | Self::Record(_) => FailureKind::Permanent,
        }
    }
}

/// One record's result from [`decode_records`].
pub type Decoded = Result<Rendered, DecodeFailure>;

/// Parses one record's envelope (the DAS record JSON); `None` is data that was not base64.
pub fn parse_envelope(data: Option<&[u8]>) -> Result<Envelope, DecodeFailure> {
    let data = data.ok_or(DecodeFailure::NotBase64)?;
    Envelope::parse(data).map_err(|err| DecodeFailure::Record(err.into()))
}

/// Decrypts, filters and formats every record on the CPU pool (rayon), keeping their order; the
/// Lambda and `das tail` both decode here. Each record runs inside `catch_unwind` ([`render_record`]),
/// so an error here means the pool itself failed and no record has a result.
pub async fn decode_records(
    envelopes: Vec<(Result<Envelope, DecodeFailure>, RecordOrigin)>,
    keyrings: &Keyrings,
    filter: &Arc<Filter>,
    options: &DecodeOptions,
) -> Result<Vec<Decoded>, tokio::task::JoinError> {
    let jobs = attach_keyrings(envelopes, keyrings);
    let filter = Arc::clone(filter);
    let options = options.clone();
    tokio::task::spawn_blocking(move || render_jobs(jobs, &filter, &options)).await
}

/// A record ready to decode: its envelope, its keyring and where it came from, or why not.
type Job = Result<(Envelope, Arc<RawAesKeyring>, RecordOrigin), DecodeFailure>;

/// Each envelope with the keyring of its key blob.
fn attach_keyrings(envelopes: Vec<(Result<Envelope, DecodeFailure>, RecordOrigin)>, keyrings: &Keyrings) -> Vec<Job> {
    envelopes
        .into_iter()
        .map(|(envelope, origin)| {
            let envelope = envelope?;
            match keyrings.get(&envelope.key_blob) {
                Some(Ok(keyring)) => Ok((envelope, Arc::clone(keyring), origin)),
                Some(Err(err)) => Err(DecodeFailure::Key(Arc::clone(err))),
                None => Err(DecodeFailure::KeyNotLookedUp),
            }
        })
        .collect()
}

/// The jobs decoded in parallel, in order (blocking: call it from the CPU side).
fn render_jobs(jobs: Vec<Job>, filter: &Filter, options: &DecodeOptions) -> Vec<Decoded> {
    jobs.into_par_iter()
        .map(|job| {
            let (envelope, keyring, origin) = job?;
            Ok(render_record(&envelope, &keyring, filter, options, &origin)?)
        })
        .collect()
}

/// The archiver: settings, key cache, filter and sink, built once per container.
pub struct Archiver<K, S> {
    settings: BatchSettings,
    keys: KeyCache<K>,
    filter: Arc<Filter>,
    sink: S,
    /// The records this container left for retry, and since when their shard has been failing.
    failing: FailingRecords,
}

/// How one record ended. A new kind of ending (e.g. a configuration error) is one more variant here
/// and one more arm in [`Fate::of`].
enum Fate {
    /// Decoded: its NDJSON lines (maybe none) and counts.
    Decoded(Rendered),
    /// The record is bad; quarantine it.
    Permanent(DecodeFailure),
    /// Could not be finished now; retry from here.
    Transient(DecodeFailure),
    /// Kept failing transiently ([`GiveUpPolicy`]): quarantined (still encrypted, redrivable)
    /// instead of holding the shard until the stream's retention drops it.
    GivenUp {
        failure: DecodeFailure,
        reason: GiveUpReason,
        /// Since when (Unix seconds) the shard has been failing.
        since: f64,
    },
}

impl Fate {
    fn of(decoded: Decoded) -> Self {
        match decoded {
            Ok(rendered) => Self::Decoded(rendered),
            Err(failure) if failure.failure_kind() == FailureKind::Transient => Self::Transient(failure),
            Err(failure) => Self::Permanent(failure),
        }
    }
}

/// One object to write, the index of the first record it holds (where to retry from if it fails),
/// and what it counts for once written.
struct Planned {
    object: Object,
    first_index: usize,
    counts: Counts,
}

/// The planned writes, and the first record of an OCSF object that could not be encoded (a bug;
/// retried from there).
struct Plan {
    writes: Vec<Planned>,
    unencodable: Option<usize>,
}

/// The OCSF events of the settled records of one event day: one Parquet object.
#[cfg(feature = "ocsf-parquet")]
struct DayGroup {
    first: usize,
    last: usize,
    /// Records with at least one event in the object.
    records: u64,
    events: Vec<serde_json::Value>,
}

/// What a written object adds to the batch's metrics: nothing is counted before its write succeeded.
#[derive(Default, Clone, Copy)]
struct Counts {
    events: u64,
    quarantined: u64,
    given_up: u64,
}

/// What the writes did.
#[derive(Default)]
struct Written {
    objects: u64,
    bytes: u64,
    counts: Counts,
    /// The first record held by a failed write.
    first_failed: Option<usize>,
}

/// The decoded records of one arrival date-hour: one archive object, compressed as the records'
/// windows are decoded (see [`windows`]).
struct HourGroup {
    arrival: UtcDateTime,
    first: usize,
    last: usize,
    /// Records with at least one line in the object.
    records: u64,
    events: u64,
    body: ObjectEncoder,
    /// With `DAS_KEEP_ORIGINALS`, the originals object of the same records ([`OriginalRecord`]).
    originals: Option<ObjectEncoder>,
}

/// An arrival date-hour: year, month, day, hour.
type HourKey = (i64, u32, u32, u32);

impl<K: DataKeySource, S: Sink> Archiver<K, S> {
    /// An archiver over a key cache, a filter and a sink.
    pub fn new(settings: BatchSettings, keys: KeyCache<K>, filter: Filter, sink: S) -> Self {
        Self {
            settings,
            keys,
            filter: Arc::new(filter),
            sink,
            failing: FailingRecords::default(),
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &BatchSettings {
        &self.settings
    }

    /// The sink (for tests and the CLI).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The key cache (for metrics).
    pub fn keys(&self) -> &KeyCache<K> {
        &self.keys
    }

    /// The records this container left for retry (for tests and metrics).
    pub fn failing_records(&self) -> &FailingRecords {
        &self.failing
    }

    /// Processes one batch. Never panics; never reports a record done that was not written.
    pub async fn process(&self, batch: Batch) -> BatchOutcome {
        self.process_at(batch, SystemTime::now()).await
    }

    /// [`Archiver::process`] with the clock reading `now`: records' ages and how long a shard has
    /// been failing are measured from it (tests move it forward instead of waiting).
    pub async fn process_at(&self, batch: Batch, now: SystemTime) -> BatchOutcome {
        let now = now.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let before = self.keys.stats();
        let Some(resource) = self.resource_id(&batch) else {
            // Counted under the stream's own id where it has one, so its alarms see the retries.
            let named = batch
                .event_source_arn
                .as_deref()
                .and_then(|a| ResourceId::from_stream(a).ok());
            return retry_everything(&batch, named);
        };
        let Ok(ocsf) = self.ocsf_source(&batch, &resource) else {
            return retry_everything(&batch, Some(resource));
        };
        let batch = Arc::new(batch);
        let Some(envelopes) = parse_envelopes(&batch).await else {
            return retry_everything(&batch, Some(resource));
        };
        let keyrings = self.fetch_keys(&envelopes, &resource).await;
        let give_up = self.give_up_at(&batch, now);
        let Some(decoded) = self
            .decode_all(&batch, envelopes, &keyrings, ocsf.as_ref(), give_up)
            .await
        else {
            return retry_everything(&batch, Some(resource));
        };
        let DecodedBatch {
            mut fates,
            first_transient,
            failing_since,
            hours,
        } = decoded;
        // Nothing at or after the first transient failure may be written: Kinesis retries from it.
        let settled_len = first_transient.unwrap_or(fates.len()).min(fates.len());
        let settled = fates.get_mut(..settled_len).unwrap_or_default();
        let mut plan = self.plan_writes(&batch, &resource, settled, hours);
        if let (Some(lake), Some(source)) = (&self.settings.outputs.security_lake, ocsf.as_deref()) {
            self.plan_ocsf(&batch, lake, source, settled, &mut plan).await;
        }
        let mut written = self.write_objects(plan.writes).await;
        written.first_failed = earliest(written.first_failed, plan.unencodable);
        let retry = retry_point(&fates, first_transient, written.first_failed);
        self.remember_failing(&batch, &fates, retry, failing_since);
        let settled = fates.get(..settled_len).unwrap_or_default();
        let metrics = self.metrics(&batch, settled, &written, retry, before, now);
        summary(&batch, resource, metrics, retry)
    }

    /// The give-up rule for this batch: the settings' policy at `now`, with the batch's records this
    /// container left for retry before.
    fn give_up_at(&self, batch: &Batch, now: f64) -> GiveUp {
        let remembered = match self.settings.give_up {
            Some(_) => self.failing.take(
                batch
                    .records
                    .iter()
                    .map(|r| (r.shard_id.as_str(), r.sequence_number.as_str())),
            ),
            None => Vec::new(),
        };
        GiveUp::new(self.settings.give_up, now, remembered)
    }

    /// Remembers the record Kinesis will retry from, and since when its shard has been failing, when
    /// it failed to decode (a transient failure, or a given-up record whose quarantine write failed).
    fn remember_failing(&self, batch: &Batch, fates: &[Fate], retry: Option<usize>, failing_since: Option<f64>) {
        if self.settings.give_up.is_none() {
            return;
        }
        let Some(index) = retry else { return };
        let since = match fates.get(index) {
            Some(Fate::Transient(_)) => failing_since,
            Some(Fate::GivenUp { since, .. }) => Some(*since),
            _ => None,
        };
        if let (Some(since), Some(input)) = (since, batch.records.get(index)) {
            self.failing.remember(&input.shard_id, &input.sequence_number, since);
        }
    }

    /// The database the batch belongs to: named by the stream, checked against `DAS_RESOURCE_ID` and
    /// `DAS_RESOURCE_IDS`. Without it there is no encryption context, and a wrong one would make KMS
    /// refuse every record; both are deployment errors that a retry after the fix clears, so the
    /// batch is retried, nothing is quarantined, and the log says what to fix.
    fn resource_id(&self, batch: &Batch) -> Option<ResourceId> {
        resolve_resource_id(&self.settings, batch.event_source_arn.as_deref())
            .map_err(|fix| {
                tracing::error!(error = %fix, event_source_arn = batch.event_source_arn.as_deref().unwrap_or(""), "configuration error: the batch is retried until this is fixed");
            })
            .ok()
    }

    /// With Security Lake output, what the batch's OCSF events share; the region and account come
    /// from the stream ARN (Security Lake partitions by them). A batch without a usable ARN cannot be
    /// placed: a configuration error, retried.
    fn ocsf_source(&self, batch: &Batch, resource: &ResourceId) -> Result<Option<Arc<OcsfSource>>, ()> {
        if self.settings.outputs.security_lake.is_none() {
            return Ok(None);
        }
        let arn = batch.event_source_arn.as_deref().unwrap_or_default();
        let Some((region, account)) = crate::pipeline::ocsf::region_and_account(arn) else {
            tracing::error!(
                event_source_arn = arn,
                "configuration error: OCSF output needs the stream ARN's region and account; the batch is retried"
            );
            return Err(());
        };
        Ok(Some(Arc::new(OcsfSource {
            resource_id: resource.as_str().to_owned(),
            stream_arn: arn.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        })))
    }

    /// One lookup per distinct key blob, [`KEY_LOOKUP_CONCURRENCY`] at a time; DAS reuses a data key
    /// for many records.
    async fn fetch_keys(&self, envelopes: &[Result<Envelope, DecodeFailure>], resource: &ResourceId) -> Keyrings {
        let mut blobs: Vec<&[u8]> = envelopes.iter().flatten().map(|e| e.key_blob.as_slice()).collect();
        blobs.sort_unstable();
        blobs.dedup();
        self.keys
            .keyrings(blobs, resource)
            .await
            .into_iter()
            .map(|(blob, result)| (blob.to_vec(), result.map_err(Arc::new)))
            .collect()
    }

    /// Every record's fate, in order, up to the first that must be retried, and the archive
    /// objects of those before it, decoded and compressed a window at a time on the CPU pool
    /// ([`windows`]); `None` (retry the whole batch) if the pool failed.
    async fn decode_all(
        &self,
        batch: &Arc<Batch>,
        envelopes: Vec<Result<Envelope, DecodeFailure>>,
        keyrings: &Keyrings,
        ocsf: Option<&Arc<OcsfSource>>,
        give_up: GiveUp,
    ) -> Option<DecodedBatch> {
        let origins = batch.records.iter().map(|r| {
            let origin = RecordOrigin::new(&r.shard_id, &r.sequence_number);
            match ocsf {
                Some(source) => origin.with_ocsf(Arc::clone(source), (r.arrival_seconds * 1000.0) as i64),
                None => origin,
            }
        });
        let jobs = attach_keyrings(envelopes.into_iter().zip(origins).collect(), keyrings);
        let decoder = Decoder {
            filter: Arc::clone(&self.filter),
            options: self.settings.decode.clone(),
            compression: self.settings.layout.compression,
            ndjson: self.settings.outputs.ndjson,
            keep_originals: self.settings.keep_originals,
            give_up,
        };
        let batch = Arc::clone(batch);
        match tokio::task::spawn_blocking(move || decoder.run(&batch, jobs)).await {
            Ok(decoded) => Some(decoded),
            // Each record is already inside catch_unwind; reaching here means the pool itself failed.
            Err(err) => {
                tracing::error!(error = %err, "the decode pool failed; retrying the whole batch");
                None
            }
        }
    }

    /// The objects for the settled records (those before the retry point): one quarantine object per
    /// bad record, then (NDJSON output) one archive object per arrival date-hour that kept any event
    /// (the OCSF objects are planned after, by [`Archiver::plan_ocsf`]). A bad record is quarantined
    /// once, whatever the outputs.
    fn plan_writes(
        &self,
        batch: &Batch,
        resource: &ResourceId,
        settled: &[Fate],
        hours: BTreeMap<HourKey, HourGroup>,
    ) -> Plan {
        let mut plan = Plan {
            writes: self.quarantine_writes(batch, resource, settled),
            unencodable: None,
        };
        for group in hours.into_values() {
            let first = group.first;
            match self.archive_objects(batch, resource, group) {
                Ok(archive) => plan.writes.extend(archive),
                Err(()) => plan.unencodable = earliest(plan.unencodable, Some(first)),
            }
        }
        plan
    }

    /// One quarantine object per bad or given-up record.
    fn quarantine_writes(&self, batch: &Batch, resource: &ResourceId, settled: &[Fate]) -> Vec<Planned> {
        settled
            .iter()
            .zip(&batch.records)
            .enumerate()
            .filter_map(|(index, (fate, input))| {
                let (failure, given_up) = match fate {
                    Fate::Permanent(failure) => (failure, None),
                    Fate::GivenUp { failure, reason, .. } => (failure, Some(reason)),
                    Fate::Decoded(_) | Fate::Transient(_) => return None,
                };
                Some(Planned {
                    object: self.quarantine(batch, resource, input, failure, given_up),
                    first_index: index,
                    counts: Counts {
                        quarantined: 1,
                        given_up: u64::from(given_up.is_some()),
                        ..Counts::default()
                    },
                })
            })
            .collect()
    }

    /// One OCSF Parquet object per event day of the settled records, in the Security Lake bucket,
    /// named by the shard and the first and last sequence numbers of the records it covers, so a
    /// retried batch rewrites the same keys.
    ///
    /// An encode error is a bug in das-archiver (the record decoded fine, so quarantining it would be
    /// wrong, and skipping the object would lose its events from the lake): it is logged as a bug and
    /// the batch is retried from the object's first record, so nothing is lost and the stream's
    /// iterator age shows it until a fixed version is deployed. The template runs the OCSF output in
    /// its own function, so such a stall never holds the NDJSON archive back.
    #[cfg(feature = "ocsf-parquet")]
    async fn plan_ocsf(
        &self,
        batch: &Batch,
        lake: &SecurityLake,
        source: &OcsfSource,
        settled: &mut [Fate],
        plan: &mut Plan,
    ) {
        use crate::pipeline::ocsf_parquet::{self, Destination, Span};
        let days = group_by_event_day(settled);
        let Some(first_covered) = days.values().map(|g| g.first).min() else {
            return;
        };
        // Encoding is CPU work of tens of milliseconds: off the async threads, on the blocking pool.
        let encode = move || {
            days.into_iter()
                .map(|(day, group)| {
                    let body = ocsf_parquet::encode(&group.events);
                    (
                        day,
                        group.first,
                        group.last,
                        group.records,
                        group.events.len() as u64,
                        body,
                    )
                })
                .collect::<Vec<_>>()
        };
        let encoded = match tokio::task::spawn_blocking(encode).await {
            Ok(encoded) => encoded,
            Err(err) => {
                tracing::error!(error = %err, "BUG: the OCSF Parquet encoder failed; the batch is retried from the first record it covers (please report)");
                plan.unencodable = earliest(plan.unencodable, Some(first_covered));
                return;
            }
        };
        let destination = Destination {
            prefix: &lake.prefix,
            source: &lake.source,
            region: &source.region,
            account: &source.account,
        };
        for (day, first_index, last_index, records, events, body) in encoded {
            let (Some(first), Some(last)) = (batch.records.get(first_index), batch.records.get(last_index)) else {
                continue;
            };
            let body = match body {
                Ok(body) => body,
                Err(err) => {
                    tracing::error!(error = %err, event_day = %day, "BUG: the OCSF events could not be encoded as Parquet; the batch is retried from the first record they cover (please report)");
                    plan.unencodable = earliest(plan.unencodable, Some(first_index));
                    continue;
                }
            };
            let span = Span {
                resource_id: &source.resource_id,
                shard_id: &first.shard_id,
                first_sequence: &first.sequence_number,
                last_sequence: &last.sequence_number,
            };
            let summary = ArchiveSummary {
                records,
                events,
                first_sequence: &first.sequence_number,
                last_sequence: &last.sequence_number,
            };
            let object = Object {
                key: ocsf_parquet::object_key(&destination, &span, &day),
                body,
                content_type: "application/vnd.apache.parquet",
                content_encoding: None,
                metadata: Vec::new(),
                bucket: Some(lake.bucket.clone()),
            };
            plan.writes.push(Planned {
                object: object.with_summary(&summary),
                first_index,
                // With both outputs on, EventsArchived counts the NDJSON lines only.
                counts: Counts {
                    events: if self.settings.outputs.ndjson { 0 } else { events },
                    ..Counts::default()
                },
            });
        }
    }

    /// Without the Parquet writer, configuration refuses `DAS_OUTPUT=ocsf-parquet`; settings built
    /// otherwise are a bug, retried rather than lost.
    #[cfg(not(feature = "ocsf-parquet"))]
    async fn plan_ocsf(&self, _: &Batch, _: &SecurityLake, _: &OcsfSource, settled: &mut [Fate], plan: &mut Plan) {
        if !settled.is_empty() {
            tracing::error!("BUG: OCSF output asked of a build without the ocsf-parquet feature; the batch is retried");
            plan.unencodable = Some(0);
        }
    }

    /// The quarantine object of one bad record; its failure is written down here, and only here.
    fn quarantine(
        &self,
        batch: &Batch,
        resource: &ResourceId,
        input: &InputRecord,
        failure: &DecodeFailure,
        given_up: Option<&GiveUpReason>,
    ) -> Object {
        let (reason, error_kind) = if let Some(why) = given_up {
            let why = self
                .settings
                .give_up
                .map_or_else(|| "given up".to_owned(), |policy| policy.describe(why));
            tracing::error!(seq = %input.sequence_number, shard = %input.shard_id, error = %failure, "record {why}; it is quarantined: redrive it (das redrive) once the cause is fixed");
            (format!("{why}: {failure}"), "given-up")
        } else {
            tracing::warn!(seq = %input.sequence_number, shard = %input.shard_id, error = %failure, "record quarantined");
            (failure.to_string(), "permanent")
        };
        self.settings.layout.quarantine_object(&QuarantinedRecord {
            reason: &reason,
            error_kind,
            resource_id: resource.as_str(),
            event_source_arn: batch.event_source_arn.as_deref(),
            shard_id: &input.shard_id,
            sequence_number: &input.sequence_number,
            partition_key: &input.partition_key,
            arrival_seconds: input.arrival_seconds,
            data: input.data.as_deref(),
            outputs: &self.settings.outputs,
        })
    }

    /// The archive object of one date-hour, named by its shard and first and last sequence numbers,
    /// and with `DAS_KEEP_ORIGINALS` its originals object, under the same name below `originals/`.
    /// Both count from the group's first record, so a failed write of either retries from there:
    /// a record is done only when both are written. None when every event was filtered out, `Err`
    /// if zstd could not allocate (retried).
    fn archive_objects(&self, batch: &Batch, resource: &ResourceId, group: HourGroup) -> Result<Vec<Planned>, ()> {
        if group.events == 0 {
            return Ok(Vec::new());
        }
        let (Some(first), Some(last)) = (batch.records.get(group.first), batch.records.get(group.last)) else {
            return Ok(Vec::new());
        };
        let originals = group.originals.map(|o| o.finish().ok_or(())).transpose();
        let (Some(body), Ok(originals)) = (group.body.finish(), originals) else {
            tracing::error!("the archive object could not be compressed (out of memory?); the batch is retried from its first record");
            return Err(());
        };
        let layout = &self.settings.layout;
        let key = layout.archive_key(
            resource,
            &group.arrival,
            &first.shard_id,
            &first.sequence_number,
            &last.sequence_number,
        );
        let summary = ArchiveSummary {
            records: group.records,
            events: group.events,
            first_sequence: &first.sequence_number,
            last_sequence: &last.sequence_number,
        };
        let mut planned = vec![Planned {
            object: layout.encoded_archive_object(key, body).with_summary(&summary),
            first_index: group.first,
            counts: Counts {
                events: group.events,
                ..Counts::default()
            },
        }];
        if let Some(originals) = originals {
            let key = layout.originals_key(
                resource,
                &group.arrival,
                &first.shard_id,
                &first.sequence_number,
                &last.sequence_number,
            );
            planned.push(Planned {
                object: layout.encoded_archive_object(key, originals).with_summary(&summary),
                first_index: group.first,
                counts: Counts::default(),
            });
        }
        Ok(planned)
    }

    /// Writes every planned object, [`WRITE_CONCURRENCY`] at a time; a failed write is logged and
    /// remembered by the first record it held.
    async fn write_objects(&self, plan: Vec<Planned>) -> Written {
        let writes = plan.into_iter().map(|planned| async move {
            let bytes = planned.object.body.len() as u64;
            let result = self.sink.put(planned.object).await;
            (planned.first_index, planned.counts, bytes, result)
        });
        let mut results = futures::stream::iter(writes).buffer_unordered(WRITE_CONCURRENCY);
        let mut written = Written::default();
        while let Some((first_index, counts, bytes, result)) = results.next().await {
            match result {
                Ok(()) => {
                    written.objects += 1;
                    written.bytes += bytes;
                    written.counts.events += counts.events;
                    written.counts.quarantined += counts.quarantined;
                    written.counts.given_up += counts.given_up;
                }
                Err(err) if err.is_configuration() => {
                    tracing::error!(error = %err, "configuration error: archive write refused; the batch will be retried from the first record it held");
                    written.first_failed = Some(written.first_failed.map_or(first_index, |i| i.min(first_index)));
                }
                Err(err) => {
                    tracing::warn!(error = %err, kind = ?err.failure_kind(), "archive write failed; the batch will be retried from the first record it held");
                    written.first_failed = Some(written.first_failed.map_or(first_index, |i| i.min(first_index)));
                }
            }
        }
        written
    }

    /// The batch's metrics, counted after the writes: what the settled records held, what was
    /// written, what the key cache did since `before`, and how many records are left for retry.
    fn metrics(
        &self,
        batch: &Batch,
        settled: &[Fate],
        written: &Written,
        retry: Option<usize>,
        before: KeyCacheStats,
        now: f64,
    ) -> BatchMetrics {
        let after = self.keys.stats();
        let mut metrics = BatchMetrics {
            records_in: batch.records.len() as u64,
            objects_written: written.objects,
            bytes_written: written.bytes,
            events_archived: written.counts.events,
            records_quarantined: written.counts.quarantined,
            records_given_up: written.counts.given_up,
            kms_calls: after.source_calls - before.source_calls,
            key_cache_hits: after.hits - before.hits,
            records_retried: retry.map_or(0, |i| (batch.records.len() - i) as u64),
            oldest_record_age_seconds: oldest_record_age(batch, now),
            ..BatchMetrics::default()
        };
        // Filtering is counted for the records that are done; the rest come back with the retry.
        let done = retry.unwrap_or(settled.len()).min(settled.len());
        for fate in settled.iter().take(done) {
            if let Fate::Decoded(rendered) = fate {
                metrics.events_filtered += rendered.filtered;
                metrics.heartbeats_skipped += rendered.heartbeats;
            }
        }
        metrics
    }
}

/// The OCSF events of the decoded records by event day (UTC, `YYYYMMDD`), each group in Kinesis order.
#[cfg(feature = "ocsf-parquet")]
/// The events are moved out of the fates, not copied: a 10,000-record batch's events are most of
/// the OCSF function's memory.
fn group_by_event_day(settled: &mut [Fate]) -> BTreeMap<String, DayGroup> {
    let mut days: BTreeMap<String, DayGroup> = BTreeMap::new();
    for (index, fate) in settled.iter_mut().enumerate() {
        let Fate::Decoded(rendered) = fate else { continue };
        for event in std::mem::take(&mut rendered.ocsf) {
            let time = event.get("time").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let group = days
                .entry(crate::pipeline::ocsf_parquet::event_day(time))
                .or_insert_with(|| DayGroup {
                    first: index,
                    last: index,
                    records: 0,
                    events: Vec::new(),
                });
            // A record whose events span two days counts once in each day's object.
            if group.events.is_empty() || group.last != index {
                group.records += 1;
            }
            group.last = index;
            group.events.push(event);
        }
    }
    days
}

/// The earlier of two record indexes, either maybe absent.
fn earliest(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The batch's database from its stream ARN and the settings, or what to fix.
fn resolve_resource_id(settings: &BatchSettings, event_source_arn: Option<&str>) -> Result<ResourceId, String> {
    let named = event_source_arn.map(ResourceId::from_stream);
    let id = match (&settings.resource_id, named) {
        (Some(configured), Some(Ok(named))) if *configured != named => {
            return Err(format!(
                "the batch comes from the activity stream of {named}, but DAS_RESOURCE_ID is {configured}: \
                 KMS would refuse every record under the wrong encryption context; correct DAS_RESOURCE_ID \
                 (or remove it: the id is read from the stream name)"
            ))
        }
        (Some(configured), _) => configured.clone(),
        (None, Some(Ok(named))) => named,
        (None, Some(Err(err))) => return Err(format!("{err}; set DAS_RESOURCE_ID to the stream's database")),
        (None, None) => return Err("the event has no eventSourceARN; set DAS_RESOURCE_ID".to_owned()),
    };
    if !settings.resource_ids.is_empty() && !settings.resource_ids.contains(&id) {
        let allowed: Vec<&str> = settings.resource_ids.iter().map(ResourceId::as_str).collect();
        return Err(format!(
            "the batch comes from the activity stream of {id}, which is not in DAS_RESOURCE_IDS ({}): add it \
             (the stack's ResourceIds parameter), or remove the event-source mapping that reads this stream",
            allowed.join(",")
        ));
    }
    Ok(id)
}

/// Seconds between the arrival in Kinesis of the batch's oldest record and `now` (0 for an empty batch).
fn oldest_record_age(batch: &Batch, now: f64) -> u64 {
    let Some(oldest) = batch.records.iter().map(|r| r.arrival_seconds).reduce(f64::min) else {
        return 0;
    };
    (now - oldest).max(0.0) as u64
}

/// Every record's envelope, in order, parsed on the CPU pool: base64-decoding a batch's messages is
/// megabytes of work that would otherwise run on one core. `None` if the pool failed (a bug).
async fn parse_envelopes(batch: &Arc<Batch>) -> Option<Vec<Result<Envelope, DecodeFailure>>> {
    let batch = Arc::clone(batch);
    let parse = move || {
        batch
            .records
            .par_iter()
            .map(|r| parse_envelope(r.data.as_deref()))
            .collect()
    };
    match tokio::task::spawn_blocking(parse).await {
        Ok(envelopes) => Some(envelopes),
        Err(err) => {
            tracing::error!(error = %err, "the envelope parser failed; retrying the whole batch");
            None
        }
    }
}

/// The record Kinesis must retry from: the first transient failure or the first record held by
/// a failed write, whichever comes first.
fn retry_point(fates: &[Fate], first_transient: Option<usize>, first_failed: Option<usize>) -> Option<usize> {
    match first_transient.and_then(|i| fates.get(i)) {
        Some(Fate::Transient(failure)) if failure.is_configuration() => {
            tracing::error!(error = %failure, "configuration error: a record cannot be decoded until this is fixed; Kinesis will retry from it");
        }
        Some(Fate::Transient(failure)) => {
            tracing::warn!(error = %failure, "a record could not be finished now; Kinesis will retry from it");
        }
        _ => {}
    }
    earliest(first_transient, first_failed)
}

/// The outcome when nothing of the batch could be finished: every record is left for retry.
fn retry_everything(batch: &Batch, resource_id: Option<ResourceId>) -> BatchOutcome {
    let records = batch.records.len() as u64;
    BatchOutcome {
        resource_id,
        retry_from: batch.records.first().map(|r| r.sequence_number.clone()),
        metrics: BatchMetrics {
            records_in: records,
            records_retried: records,
            ..BatchMetrics::default()
        },
    }
}

/// The batch's answer, and its one log line.
fn summary(batch: &Batch, resource: ResourceId, metrics: BatchMetrics, retry: Option<usize>) -> BatchOutcome {
    let retry_from = retry
        .and_then(|i| batch.records.get(i))
        .map(|r| r.sequence_number.clone());
    tracing::info!(
        resource_id = %resource,
        records_in = metrics.records_in,
        events_archived = metrics.events_archived,
        events_filtered = metrics.events_filtered,
        heartbeats_skipped = metrics.heartbeats_skipped,
        records_quarantined = metrics.records_quarantined,
        records_retried = metrics.records_retried,
        kms_calls = metrics.kms_calls,
        objects_written = metrics.objects_written,
        retry_from = retry_from.as_deref().unwrap_or(""),
        "batch done"
    );
    BatchOutcome {
        resource_id: Some(resource),
        retry_from,
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::archive::{MemorySink, SinkError};
    use crate::aws::compress::Compression;
    use crate::aws::keys::{KeyCacheLimits, StaticKeySource};
    use crate::pipeline::filter::FilterSpec;
    use crate::pipeline::record::{self, EncodeOptions};
    use crate::pipeline::simulate::{Engine, Simulator};
    use async_trait::async_trait;
    use std::time::Duration;
    use zeroize::Zeroizing;

    const KEY: [u8; 32] = [0x5c; 32];
    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-TEST1";

    fn settings() -> BatchSettings {
        BatchSettings {
            resource_id: None,
            resource_ids: Vec::new(),
            give_up: None,
            layout: Layout {
                prefix: "activity/".into(),
                compression: Compression::None,
            },
            decode: DecodeOptions::default(),
            outputs: Outputs::default(),
            keep_originals: false,
        }
    }

    fn archiver<K: DataKeySource, S: Sink>(keys: K, sink: S, spec: FilterSpec) -> Archiver<K, S> {
        Archiver::new(
            settings(),
            KeyCache::new(keys, KeyCacheLimits::default()),
            Filter::new(&spec).unwrap(),
            sink,
        )
    }

    fn skip_heartbeats() -> FilterSpec {
        FilterSpec {
            skip_heartbeats: true,
            ..FilterSpec::default()
        }
    }

    /// `n` Aurora PostgreSQL records of 3 events each plus a heartbeat, blob `key-blob`.
    fn records(n: usize, arrival: f64) -> Vec<InputRecord> {
        let keyring = RawAesKeyring::das(&KEY).unwrap();
        let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-TEST1", "db-TEST1", 9);
        (0..n)
            .map(|i| {
                let mut events = sim.events(3);
                events.push(sim.heartbeat());
                let data = record::encode_with(&sim.payload(&events), &keyring, b"key-blob", &EncodeOptions::default())
                    .unwrap();
                input(data, i, arrival + i as f64)
            })
            .collect()
    }

    fn input(data: Vec<u8>, i: usize, arrival: f64) -> InputRecord {
        InputRecord {
            data: Some(data),
            sequence_number: crate::pipeline::simulate::sequence_number(i as u64),
            shard_id: "shardId-000000000000".into(),
            partition_key: "pk".into(),
            arrival_seconds: arrival,
        }
    }

    fn batch(records: Vec<InputRecord>) -> Batch {
        Batch {
            event_source_arn: Some(ARN.into()),
            records,
        }
    }

    fn lines(sink: &MemorySink, prefix: &str) -> Vec<serde_json::Value> {
        sink.objects()
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .flat_map(|(_, o)| {
                String::from_utf8(o.body)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_good_batch_is_archived_in_order_in_one_object_per_hour() {
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), skip_heartbeats());
        // Three records in one hour, two in the next.
        let mut input = records(5, 1_795_316_397.0);
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(outcome.retry_from, None);
        assert_eq!(outcome.metrics.records_in, 5);
        assert_eq!(outcome.metrics.events_archived, 15);
        assert_eq!(outcome.metrics.heartbeats_skipped, 5);
        assert_eq!((outcome.metrics.objects_written, outcome.metrics.kms_calls), (2, 1));
        let keys: Vec<String> = archiver.sink().objects().into_keys().collect();
        assert_eq!(
            keys,
            [
                format!(
                    "activity/cluster-TEST1/dt=2026-11-22/hour=02/shardId-000000000000-{}-{}.ndjson",
                    input[0].sequence_number, input[2].sequence_number
                ),
                format!(
                    "activity/cluster-TEST1/dt=2026-11-22/hour=03/shardId-000000000000-{}-{}.ndjson",
                    input[3].sequence_number, input[4].sequence_number
                ),
            ]
        );
        let all = lines(archiver.sink(), "activity/cluster-TEST1/");
        assert_eq!(all.len(), 15);
        let ids: Vec<u64> = all.iter().map(|e| e["statementId"].as_u64().unwrap()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "events keep Kinesis order: {ids:?}"
        );
        assert!(all
            .iter()
            .all(|e| e["clusterId"] == "cluster-TEST1" && e["instanceId"] == "db-TEST1"));

        // The same batch again writes the same objects: no duplicates.
        input.truncate(5);
        archiver.process(batch(input)).await;
        assert_eq!(archiver.sink().objects().len(), 2);
        assert_eq!(lines(archiver.sink(), "activity/").len(), 15);
    }

    #[tokio::test]
    async fn bad_records_are_quarantined_with_their_reason_and_the_rest_archived() {
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), skip_heartbeats());
        let mut input = records(4, 1_795_314_600.0);
        // 1: tampered ciphertext; 2: not JSON; 3: not base64 at the Kinesis level.
        let mut env = Envelope::parse(input[1].data.as_ref().unwrap()).unwrap();
        let last = env.message.len() - 1;
        env.message[last] ^= 1;
        input[1].data = Some(env.to_json());
        input[2].data = Some(b"{not json".to_vec());
        input[3].data = None;
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(outcome.retry_from, None);
        assert_eq!(outcome.metrics.records_quarantined, 3);
        assert_eq!(outcome.metrics.events_archived, 3);
        let objects = archiver.sink().objects();
        let quarantined: Vec<serde_json::Value> = objects
            .iter()
            .filter(|(k, _)| k.starts_with("activity/quarantine/cluster-TEST1/dt=2026-11-22/"))
            .map(|(_, o)| serde_json::from_slice(&o.body).unwrap())
            .collect();
        assert_eq!(quarantined.len(), 3);
        let reasons: Vec<&str> = quarantined.iter().map(|q| q["error"].as_str().unwrap()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("does not authenticate")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("not a DAS record JSON")),
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|r| r.contains("not valid base64")), "{reasons:?}");
        let tampered = quarantined
            .iter()
            .find(|q| q["kinesis"]["sequenceNumber"] == input[1].sequence_number.as_str())
            .unwrap();
        assert_eq!(
            tampered["data"].as_str().unwrap().len() % 4,
            0,
            "the raw record is kept, base64"
        );
        assert_eq!(tampered["kinesis"]["eventSourceARN"], ARN);
    }

    #[tokio::test]
    async fn a_gzip_bomb_is_quarantined_not_inflated() {
        let keyring = RawAesKeyring::das(&KEY).unwrap();
        let bomb = crate::pipeline::gunzip::gzip(&vec![b' '; 4 << 20]);
        let message = crate::pipeline::esdk::encrypt(&bomb, &keyring, &Default::default()).unwrap();
        let data = Envelope {
            version: "1.1".into(),
            message,
            key_blob: b"key-blob".to_vec(),
        }
        .to_json();
        let mut tight = settings();
        tight.decode.max_decompressed_len = 1 << 20;
        let cache = KeyCache::new(StaticKeySource::new(&KEY), KeyCacheLimits::default());
        let archiver = Archiver::new(
            tight,
            cache,
            Filter::new(&skip_heartbeats()).unwrap(),
            MemorySink::default(),
        );
        let outcome = archiver.process(batch(vec![input(data, 0, 0.0)])).await;
        assert_eq!((outcome.retry_from, outcome.metrics.records_quarantined), (None, 1));
        let (_, object) = archiver.sink().objects().into_iter().next().unwrap();
        assert!(String::from_utf8(object.body).unwrap().contains("decompression bomb"));
    }

    /// Throttles every key lookup of blob `b"throttled"`.
    struct Throttling;

    #[async_trait]
    impl DataKeySource for Throttling {
        async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
            if blob == b"throttled" {
                return Err(KeyError::Unavailable {
                    resource: resource.to_string(),
                    detail: "ThrottlingException".into(),
                });
            }
            Ok(Zeroizing::new(KEY.to_vec()))
        }
    }

    #[tokio::test]
    async fn a_transient_key_failure_archives_the_records_before_it_and_retries_from_it() {
        let archiver = archiver(Throttling, MemorySink::default(), skip_heartbeats());
        let mut input = records(5, 1_795_314_600.0);
        let mut env = Envelope::parse(input[2].data.as_ref().unwrap()).unwrap();
        env.key_blob = b"throttled".to_vec();
        input[2].data = Some(env.to_json());
        input[4].data = Some(b"bad".to_vec()); // after the retry point: not quarantined now
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(outcome.retry_from.as_deref(), Some(input[2].sequence_number.as_str()));
        assert_eq!(
            (outcome.metrics.records_retried, outcome.metrics.records_quarantined),
            (3, 0)
        );
        let keys: Vec<String> = archiver.sink().objects().into_keys().collect();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].ends_with(&format!(
            "{}-{}.ndjson",
            input[0].sequence_number, input[1].sequence_number
        )));
        assert_eq!(lines(archiver.sink(), "activity/").len(), 6);
    }

    /// Records of 3 events are about 1,150 bytes of Kinesis data: 1,800 of them are two decode
    /// windows, the first ending near record 910.
    fn gzip_archiver<K: DataKeySource>(keys: K) -> Archiver<K, MemorySink> {
        let mut gzip = settings();
        gzip.layout.compression = Compression::Gzip;
        archiver_with(keys, MemorySink::default(), gzip)
    }

    fn gunzipped_statement_ids(sink: &MemorySink) -> Vec<u64> {
        let text: Vec<u8> = sink
            .objects()
            .values()
            .flat_map(|o| crate::pipeline::gunzip::gunzip(&o.body, 1 << 30).unwrap())
            .collect();
        String::from_utf8(text)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["statementId"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_of_several_windows_is_archived_whole_in_order_and_byte_identical_when_retried() {
        let archiver = gzip_archiver(StaticKeySource::new(&KEY));
        // Half the records arrive in one hour, half in the next, each hour across window boundaries.
        let input = records(1800, 1_795_316_400.0 - 900.0);
        let data: usize = input.iter().map(|r| r.data.as_ref().unwrap().len()).sum();
        assert!(data > windows::WINDOW_DATA_BYTES, "two windows at least: {data} bytes");
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!((outcome.retry_from, outcome.metrics.events_archived), (None, 5400));
        let first = archiver.sink().objects();
        assert_eq!(first.len(), 2, "one object per hour, however many windows");
        let ids = gunzipped_statement_ids(archiver.sink());
        assert_eq!(ids.len(), 5400);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "Kinesis order across windows and hours"
        );
        archiver.process(batch(input)).await;
        assert!(
            archiver.sink().objects() == first,
            "a retried batch writes the same bytes"
        );
    }

    #[tokio::test]
    async fn a_retry_point_in_a_later_window_archives_the_windows_before_it_and_nothing_after() {
        let archiver = gzip_archiver(Throttling);
        let mut input = records(1800, 1_795_316_400.0);
        let mut env = Envelope::parse(input[1500].data.as_ref().unwrap()).unwrap();
        env.key_blob = b"throttled".to_vec();
        input[1500].data = Some(env.to_json());
        input[1700].data = Some(b"bad".to_vec()); // after the retry point: not quarantined now
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(
            outcome.retry_from.as_deref(),
            Some(input[1500].sequence_number.as_str())
        );
        assert_eq!(
            (outcome.metrics.records_retried, outcome.metrics.records_quarantined),
            (300, 0)
        );
        let keys: Vec<String> = archiver.sink().objects().into_keys().collect();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].ends_with(&format!(
            "{}-{}.ndjson.gz",
            input[0].sequence_number, input[1499].sequence_number
        )));
        assert_eq!(gunzipped_statement_ids(archiver.sink()).len(), 4500);
    }

    /// Rejects every key lookup of blob `b"rejected"` (as KMS answers a blob under another key).
    struct Rejecting;

    #[async_trait]
    impl DataKeySource for Rejecting {
        async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
            if blob == b"rejected" {
                return Err(KeyError::Rejected {
                    resource: resource.to_string(),
                    code: "IncorrectKeyException".into(),
                    message: "injected".into(),
                });
            }
            Ok(Zeroizing::new(KEY.to_vec()))
        }
    }

    #[tokio::test]
    async fn a_record_whose_key_lookup_fails_moves_no_window_cut_so_the_archive_is_byte_identical() {
        let keyring = RawAesKeyring::das(&KEY).unwrap();
        let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-TEST1", "db-TEST1", 5);
        let heartbeat_only = |blob: &[u8], sim: &mut Simulator| {
            let heartbeat = sim.heartbeat();
            let payload = sim.payload(&[heartbeat]);
            record::encode_with(&payload, &keyring, blob, &EncodeOptions::default()).unwrap()
        };
        let mut input = records(1800, 1_795_316_400.0 - 900.0);
        // Record 5 renders nothing either way (a heartbeat): only its key lookup differs.
        input[5].data = Some(heartbeat_only(b"key-blob", &mut sim));
        let good = gzip_archiver(Rejecting);
        good.process(batch(input.clone())).await;
        input[5].data = Some(heartbeat_only(b"rejected", &mut sim));
        let rejected = gzip_archiver(Rejecting);
        let outcome = rejected.process(batch(input)).await;
        assert_eq!((outcome.retry_from, outcome.metrics.records_quarantined), (None, 1));
        let archive = |sink: &MemorySink| -> BTreeMap<String, Object> {
            sink.objects()
                .into_iter()
                .filter(|(k, _)| !k.contains("/quarantine/"))
                .collect()
        };
        assert_eq!(archive(good.sink()).len(), 2);
        assert!(archive(good.sink()) == archive(rejected.sink()), "the same bytes");
    }

    #[test]
    fn a_window_ends_at_its_data_size_or_at_its_lines_whichever_comes_first() {
        let input = records(3, 0.0);
        let mib = 1 << 20;
        // Small lines: one window (3 records are far from 1 MiB of data).
        assert_eq!(windows::window_ends(&input, &[100, 100, 100]), [3]);
        // Highly compressible records: 20 MiB of lines each, so a window ends at the second.
        assert_eq!(windows::window_ends(&input, &[20 * mib, 20 * mib, 20 * mib]), [2, 3]);
        assert_eq!(windows::window_ends(&input, &[40 * mib, 1, 40 * mib]), [1, 3]);
    }

    /// A record of `events` identical events: its payload inflates about 1,000 times its gzip.
    fn compressible(events: usize, i: usize) -> InputRecord {
        let keyring = RawAesKeyring::das(&KEY).unwrap();
        let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-TEST1", "db-TEST1", 3);
        let one = sim.events(1);
        let payload = sim.payload(&vec![one[0].clone(); events]);
        let data = record::encode_with(&payload, &keyring, b"key-blob", &EncodeOptions::default()).unwrap();
        input(data, i, 1_795_316_400.0)
    }

    #[tokio::test]
    async fn highly_compressible_records_are_cut_into_windows_by_their_lines_and_retried_byte_identical() {
        // 3 records of about 20 MiB of lines each: by data alone they would be one window.
        let record = compressible(40_000, 0);
        let input: Vec<InputRecord> = (0..3)
            .map(|i| InputRecord {
                sequence_number: crate::pipeline::simulate::sequence_number(i as u64),
                ..record.clone()
            })
            .collect();
        let data: usize = input.iter().map(|r| r.data.as_ref().unwrap().len()).sum();
        assert!(data < windows::WINDOW_DATA_BYTES, "{data} bytes of data");
        let archiver = gzip_archiver(StaticKeySource::new(&KEY));
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!((outcome.retry_from, outcome.metrics.events_archived), (None, 120_000));
        let first = archiver.sink().objects();
        archiver.process(batch(input)).await;
        assert!(
            archiver.sink().objects() == first,
            "a retried batch writes the same bytes"
        );
    }

    /// Fails every write whose key contains `hour=03`.
    #[derive(Default)]
    struct FailingHour(MemorySink);

    #[async_trait]
    impl Sink for FailingHour {
        async fn put(&self, object: Object) -> Result<(), SinkError> {
            if object.key.contains("hour=03") {
                return Err(SinkError::Write {
                    key: object.key,
                    detail: "503 Slow Down".into(),
                });
            }
            self.0.put(object).await
        }
    }

    #[tokio::test]
    async fn a_failed_write_reports_the_first_record_it_held_for_retry() {
        let archiver = archiver(StaticKeySource::new(&KEY), FailingHour::default(), skip_heartbeats());
        let input = records(5, 1_795_316_397.0);
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(outcome.retry_from.as_deref(), Some(input[3].sequence_number.as_str()));
        assert_eq!(outcome.metrics.objects_written, 1);
        assert_eq!(lines(&archiver.sink().0, "activity/").len(), 9);
    }

    #[tokio::test]
    async fn a_batch_whose_events_are_all_filtered_writes_nothing() {
        let spec = FilterSpec {
            skip_heartbeats: true,
            include_users: vec!["nobody".into()],
            ..FilterSpec::default()
        };
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), spec);
        let outcome = archiver.process(batch(records(3, 0.0))).await;
        assert_eq!(
            (
                outcome.retry_from,
                outcome.metrics.events_filtered,
                outcome.metrics.objects_written
            ),
            (None, 9, 0)
        );
        assert!(archiver.sink().objects().is_empty());
    }

    #[tokio::test]
    async fn the_shared_decoder_keeps_record_order_and_types_each_failure() {
        let good = records(2, 0.0);
        let envelope = |data: &Option<Vec<u8>>| Envelope::parse(data.as_ref().unwrap()).unwrap();
        let mut unknown = envelope(&good[1].data);
        unknown.key_blob = b"never-looked-up".to_vec();
        let mut rejected = envelope(&good[1].data);
        rejected.key_blob = b"rejected".to_vec();
        let keyrings: Keyrings = [
            (b"key-blob".to_vec(), Ok(Arc::new(RawAesKeyring::das(&KEY).unwrap()))),
            (
                b"rejected".to_vec(),
                Err(Arc::new(KeyError::Rejected {
                    resource: "cluster-TEST1".into(),
                    code: "InvalidCiphertextException".into(),
                    message: "no".into(),
                })),
            ),
        ]
        .into_iter()
        .collect();
        let envelopes = vec![
            Ok(envelope(&good[0].data)),
            parse_envelope(None),
            Ok(unknown),
            Ok(rejected),
        ]
        .into_iter()
        .map(|e| (e, RecordOrigin::new("shardId-000000000000", "1")))
        .collect();
        let filter = Arc::new(Filter::new(&skip_heartbeats()).unwrap());
        let decoded = decode_records(envelopes, &keyrings, &filter, &DecodeOptions::default())
            .await
            .unwrap();
        assert_eq!(decoded.len(), 4);
        assert_eq!(decoded[0].as_ref().unwrap().kept, 3);
        assert!(matches!(decoded[1], Err(DecodeFailure::NotBase64)));
        assert!(
            matches!(&decoded[2], Err(f @ DecodeFailure::KeyNotLookedUp) if f.failure_kind() == FailureKind::Transient)
        );
        assert!(matches!(&decoded[3], Err(f @ DecodeFailure::Key(_)) if f.failure_kind() == FailureKind::Permanent));
    }

    #[tokio::test]
    async fn a_stream_that_names_no_database_is_retried_not_quarantined() {
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), skip_heartbeats());
        let mut b = batch(records(2, 0.0));
        b.event_source_arn = Some("arn:aws:kinesis:us-east-1:1:stream/my-stream".into());
        let first = b.records[0].sequence_number.clone();
        let outcome = archiver.process(b).await;
        assert_eq!(outcome.retry_from, Some(first));
        assert!(archiver.sink().objects().is_empty());
    }

    fn archiver_with<K: DataKeySource, S: Sink>(keys: K, sink: S, settings: BatchSettings) -> Archiver<K, S> {
        let cache = KeyCache::new(keys, KeyCacheLimits::default());
        Archiver::new(settings, cache, Filter::new(&skip_heartbeats()).unwrap(), sink)
    }

    #[tokio::test]
    async fn a_resource_id_that_contradicts_the_stream_is_a_configuration_error_not_a_quarantine() {
        let mut wrong = settings();
        wrong.resource_id = Some(ResourceId::parse("cluster-OTHER").unwrap());
        let archiver = archiver_with(StaticKeySource::new(&KEY), MemorySink::default(), wrong);
        let input = records(3, 1_795_316_397.0);
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(outcome.retry_from.as_deref(), Some(input[0].sequence_number.as_str()));
        assert_eq!(outcome.metrics.records_retried, 3);
        assert!(
            archiver.sink().objects().is_empty(),
            "nothing archived, nothing quarantined"
        );
        let fix = resolve_resource_id(&archiver.settings, Some(ARN)).unwrap_err();
        assert!(
            fix.contains("cluster-TEST1") && fix.contains("cluster-OTHER"),
            "names both: {fix}"
        );
        assert_eq!(
            outcome.resource_id.as_ref().map(ResourceId::as_str),
            Some("cluster-TEST1")
        );
    }

    #[tokio::test]
    async fn a_stream_outside_the_allowed_list_is_retried_and_one_inside_is_archived() {
        let mut allowed = settings();
        allowed.resource_ids = vec![
            ResourceId::parse("cluster-A").unwrap(),
            ResourceId::parse("db-B").unwrap(),
        ];
        let archiver = archiver_with(StaticKeySource::new(&KEY), MemorySink::default(), allowed.clone());
        let outcome = archiver.process(batch(records(2, 1_795_316_397.0))).await;
        assert!(outcome.retry_from.is_some() && archiver.sink().objects().is_empty());
        let fix = resolve_resource_id(&allowed, Some(ARN)).unwrap_err();
        assert!(fix.contains("not in DAS_RESOURCE_IDS (cluster-A,db-B)"), "{fix}");
        allowed.resource_ids.push(ResourceId::parse("cluster-TEST1").unwrap());
        let archiver = archiver_with(StaticKeySource::new(&KEY), MemorySink::default(), allowed);
        let outcome = archiver.process(batch(records(2, 1_795_316_397.0))).await;
        assert_eq!((outcome.retry_from, outcome.metrics.events_archived), (None, 6));
    }

    #[test]
    fn a_configured_id_names_a_stream_that_is_not_named_like_a_das_stream() {
        let mut single = settings();
        single.resource_id = Some(ResourceId::parse("db-ORACLE1").unwrap());
        let id = resolve_resource_id(&single, Some("arn:aws:kinesis:us-east-1:1:stream/my-copy")).unwrap();
        assert_eq!(id.as_str(), "db-ORACLE1");
    }

    /// The deployed give-up rule: 12 h old, 30 min failing, 24 h retention.
    fn patient() -> BatchSettings {
        let mut patient = settings();
        patient.give_up = Some(GiveUpPolicy {
            after: Duration::from_secs(12 * 3600),
            failing_for: Duration::from_secs(1800),
            retention: Duration::from_secs(24 * 3600),
        });
        patient
    }

    /// `records(n)` arrived `hours_old` hours before `now`, with the records at `throttled` under
    /// a key blob whose lookups are throttled.
    fn stuck(n: usize, now: SystemTime, hours_old: f64, throttled: &[usize]) -> Vec<InputRecord> {
        let now = now.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let mut input = records(n, now - hours_old * 3600.0);
        for &i in throttled {
            let mut env = Envelope::parse(input[i].data.as_ref().unwrap()).unwrap();
            env.key_blob = b"throttled".to_vec();
            input[i].data = Some(env.to_json());
        }
        input
    }

    fn quarantine_documents(sink: &MemorySink) -> Vec<serde_json::Value> {
        sink.objects()
            .into_iter()
            .filter(|(k, _)| k.contains("/quarantine/"))
            .map(|(_, o)| serde_json::from_slice(&o.body).unwrap())
            .collect()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn during_a_catch_up_an_old_record_that_just_failed_is_retried_not_given_up() {
        let archiver = archiver_with(Throttling, MemorySink::default(), patient());
        let now = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let input = stuck(4, now, 13.0, &[1]);
        let outcome = archiver.process_at(batch(input.clone()), now).await;
        assert_eq!(outcome.retry_from.as_deref(), Some(input[1].sequence_number.as_str()));
        let m = outcome.metrics;
        assert_eq!(
            (m.records_given_up, m.records_quarantined, m.records_retried),
            (0, 0, 3)
        );
        assert!(quarantine_documents(archiver.sink()).is_empty());
        assert_eq!(archiver.failing_records().len(), 1, "the retry point is remembered");
    }

    #[tokio::test]
    async fn a_record_that_keeps_failing_for_the_failing_time_is_given_up_and_the_batch_goes_on() {
        let archiver = archiver_with(Throttling, MemorySink::default(), patient());
        let start = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let input = stuck(4, start, 13.0, &[1]);
        // Lambda retries from record 1, again and again, for 30 minutes.
        let first = archiver.process_at(batch(input.clone()), start).await;
        assert_eq!(first.metrics.records_given_up, 0);
        let rest = input[1..].to_vec();
        for minutes in [1, 10, 29] {
            let retry = archiver.process_at(batch(rest.clone()), start + MINUTE * minutes).await;
            assert_eq!(
                retry.retry_from.as_deref(),
                Some(input[1].sequence_number.as_str()),
                "{minutes} min"
            );
            assert_eq!(retry.metrics.records_given_up, 0, "{minutes} min");
        }
        let outcome = archiver.process_at(batch(rest), start + MINUTE * 30).await;
        assert_eq!(outcome.retry_from, None);
        let m = outcome.metrics;
        assert_eq!(
            (m.records_given_up, m.records_quarantined, m.events_archived),
            (1, 1, 6)
        );
        let quarantined = quarantine_documents(archiver.sink());
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0]["errorKind"], "given-up");
        let error = quarantined[0]["error"].as_str().unwrap();
        assert!(
            error.starts_with("given up: still failing after 1800 s of retries (DAS_GIVE_UP_FAILING_SECONDS=1800)"),
            "{error}"
        );
        assert!(error.contains("ThrottlingException"), "{error}");
        assert_eq!(
            quarantined[0]["kinesis"]["sequenceNumber"],
            input[1].sequence_number.as_str()
        );
        assert!(archiver.failing_records().is_empty());
    }

    #[tokio::test]
    async fn once_given_up_the_records_behind_that_fail_the_same_way_are_given_up_too() {
        let archiver = archiver_with(Throttling, MemorySink::default(), patient());
        let start = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        // Records 1 and 2 fail (one outage); 3 decodes; 4 fails and is then a new failure.
        let input = stuck(6, start, 13.0, &[1, 2, 4]);
        archiver.process_at(batch(input.clone()), start).await;
        let outcome = archiver
            .process_at(batch(input[1..].to_vec()), start + MINUTE * 31)
            .await;
        assert_eq!(
            outcome.retry_from.as_deref(),
            Some(input[4].sequence_number.as_str()),
            "record 3 succeeded: record 4's failure starts a new count"
        );
        assert_eq!(outcome.metrics.records_given_up, 2);
    }

    #[tokio::test]
    async fn a_record_near_the_streams_retention_is_given_up_on_its_first_failure() {
        let archiver = archiver_with(Throttling, MemorySink::default(), patient());
        let now = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let input = stuck(3, now, 23.5, &[1]);
        let outcome = archiver.process_at(batch(input), now).await;
        assert_eq!((outcome.retry_from, outcome.metrics.records_given_up), (None, 1));
        let quarantined = quarantine_documents(archiver.sink());
        let error = quarantined[0]["error"].as_str().unwrap();
        assert!(error.contains("of the stream's 24 h retention"), "{error}");
    }

    #[tokio::test]
    async fn a_young_stuck_record_is_retried_however_long_it_fails() {
        let archiver = archiver_with(Throttling, MemorySink::default(), patient());
        let start = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let input = stuck(2, start, 1.0, &[0]);
        for hours in [0, 1, 5] {
            let outcome = archiver
                .process_at(batch(input.clone()), start + MINUTE * (60 * hours))
                .await;
            assert_eq!(outcome.retry_from.as_deref(), Some(input[0].sequence_number.as_str()));
            assert_eq!(
                (outcome.metrics.records_given_up, outcome.metrics.records_retried),
                (0, 2)
            );
        }
    }

    #[tokio::test]
    async fn without_a_give_up_policy_nothing_is_ever_given_up() {
        let archiver = archiver_with(Throttling, MemorySink::default(), settings());
        let now = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let input = stuck(2, now, 240.0, &[0]);
        let outcome = archiver.process_at(batch(input.clone()), now).await;
        assert_eq!(outcome.retry_from.as_deref(), Some(input[0].sequence_number.as_str()));
        assert!(archiver.sink().objects().is_empty() && archiver.failing_records().is_empty());
    }

    fn keeping_originals<S: Sink>(sink: S) -> Archiver<StaticKeySource, S> {
        let settings = BatchSettings {
            keep_originals: true,
            layout: Layout {
                prefix: "activity/".into(),
                compression: Compression::Gzip,
            },
            ..settings()
        };
        let filter = Filter::new(&skip_heartbeats()).unwrap();
        let keys = KeyCache::new(StaticKeySource::new(&KEY), KeyCacheLimits::default());
        Archiver::new(settings, keys, filter, sink)
    }

    fn gunzipped_lines(object: &Object) -> Vec<serde_json::Value> {
        let body = crate::pipeline::gunzip::gunzip(&object.body, 1 << 26).unwrap();
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn with_keep_originals_each_archive_object_has_an_originals_object_of_the_same_name_holding_its_records_as_received(
    ) {
        let archiver = keeping_originals(MemorySink::default());
        // Three records in one hour, two in the next: two archive objects, two originals objects.
        let input = records(5, 1_795_316_397.0);
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!((outcome.retry_from, outcome.metrics.objects_written), (None, 4));
        assert_eq!(
            outcome.metrics.events_archived, 15,
            "originals hold no events of their own"
        );
        let objects = archiver.sink().objects();
        let (originals, archive): (Vec<_>, Vec<_>) =
            objects.values().partition(|o| o.key.starts_with("activity/originals/"));
        assert_eq!((archive.len(), originals.len()), (2, 2));
        let mut received = Vec::new();
        for object in &archive {
            let twin = &objects[&object.key.replacen("activity/", "activity/originals/", 1)];
            assert_eq!(twin.metadata, object.metadata, "the same records, counted alike");
            assert_eq!(
                (twin.content_type, twin.content_encoding),
                ("application/x-ndjson", Some("gzip"))
            );
            let lines = gunzipped_lines(twin);
            let count = &object
                .metadata
                .iter()
                .find(|(k, _)| *k == "das-record-count")
                .unwrap()
                .1;
            assert_eq!(lines.len().to_string(), *count);
            received.extend(lines);
        }
        let expected: Vec<serde_json::Value> = input
            .iter()
            .map(|r| {
                serde_json::json!({
                    "shardId": r.shard_id,
                    "sequenceNumber": r.sequence_number,
                    "approximateArrivalTimestamp": r.arrival_seconds,
                    "partitionKey": r.partition_key,
                    "data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, r.data.as_ref().unwrap()),
                })
            })
            .collect();
        assert_eq!(received, expected);
    }

    #[tokio::test]
    async fn without_keep_originals_nothing_is_written_under_originals() {
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), skip_heartbeats());
        archiver.process(batch(records(5, 1_795_316_397.0))).await;
        let keys: Vec<String> = archiver.sink().objects().into_keys().collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| !k.contains("originals")), "{keys:?}");
    }

    #[cfg(feature = "ocsf-parquet")]
    #[tokio::test]
    async fn the_security_lake_function_keeps_originals_only_when_ndjson_is_among_its_outputs() {
        for ndjson in [false, true] {
            let mut archiver = security_lake_archiver(ndjson);
            archiver.settings.keep_originals = true;
            let outcome = archiver.process(batch(records(3, 1_795_316_397.0))).await;
            assert_eq!(outcome.retry_from, None);
            let objects = archiver.sink().objects();
            let originals = objects.keys().filter(|k| k.starts_with("activity/originals/")).count();
            let archive = objects.keys().filter(|k| k.starts_with("activity/cluster-")).count();
            assert_eq!(
                (archive, originals),
                if ndjson { (1, 1) } else { (0, 0) },
                "ndjson: {ndjson}"
            );
        }
    }

    /// Refuses the originals writes of hour 03.
    struct NoOriginals(MemorySink);

    #[async_trait]
    impl Sink for NoOriginals {
        async fn put(&self, object: Object) -> Result<(), SinkError> {
            if object.key.contains("/originals/") && object.key.contains("hour=03") {
                return Err(SinkError::Write {
                    key: object.key,
                    detail: "503 Slow Down".into(),
                });
            }
            self.0.put(object).await
        }
    }

    #[tokio::test]
    async fn a_failed_originals_write_retries_the_batch_from_the_first_record_of_its_archive_object() {
        let archiver = keeping_originals(NoOriginals(MemorySink::default()));
        let input = records(5, 1_795_316_397.0);
        let outcome = archiver.process(batch(input.clone())).await;
        // Records 3 and 4 arrived in hour 03: their archive object was written, their originals not.
        assert_eq!(outcome.retry_from.as_deref(), Some(input[3].sequence_number.as_str()));
        assert_eq!(outcome.metrics.records_retried, 2);
        assert_eq!(outcome.metrics.events_archived, 15, "both archive objects were written");
    }

    /// Refuses every quarantine write.
    #[derive(Default)]
    struct NoQuarantine(MemorySink);

    #[async_trait]
    impl Sink for NoQuarantine {
        async fn put(&self, object: Object) -> Result<(), SinkError> {
            if object.key.contains("/quarantine/") {
                return Err(SinkError::Write {
                    key: object.key,
                    detail: "500 InternalError".into(),
                });
            }
            self.0.put(object).await
        }
    }

    #[tokio::test]
    async fn counts_are_taken_only_for_writes_that_succeeded() {
        let archiver = archiver(StaticKeySource::new(&KEY), NoQuarantine::default(), skip_heartbeats());
        let mut input = records(3, 1_795_316_397.0);
        input[2].data = Some(b"{not json".to_vec());
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(outcome.retry_from.as_deref(), Some(input[2].sequence_number.as_str()));
        let m = outcome.metrics;
        assert_eq!((m.records_quarantined, m.events_archived, m.records_retried), (0, 6, 1));
    }

    #[tokio::test]
    async fn every_line_says_which_record_and_event_it_came_from() {
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), skip_heartbeats());
        let input = records(2, 1_795_316_397.0);
        archiver.process(batch(input.clone())).await;
        let all = lines(archiver.sink(), "activity/");
        assert_eq!(all.len(), 6);
        for (i, line) in all.iter().enumerate() {
            let record = &input[i / 3];
            assert_eq!(line["kinesisShardId"], record.shard_id.as_str());
            assert_eq!(line["kinesisSequenceNumber"], record.sequence_number.as_str());
            assert_eq!(
                line["eventIndex"],
                (i % 3) as u64,
                "heartbeats count, and come last here"
            );
        }
        let (_, object) = archiver.sink().objects().into_iter().next().unwrap();
        let metadata: BTreeMap<&str, &str> = object.metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(metadata["das-record-count"], "2");
        assert_eq!(metadata["das-event-count"], "6");
        assert_eq!(metadata["das-first-sequence-number"], input[0].sequence_number);
        assert_eq!(metadata["das-last-sequence-number"], input[1].sequence_number);
    }

    /// What a subscriber wrote, shared with the test.
    #[cfg(feature = "lambda")]
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    #[cfg(feature = "lambda")]
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[cfg(feature = "lambda")]
    #[tokio::test]
    async fn sql_in_a_wrong_typed_value_reaches_neither_the_log_nor_the_quarantine_document() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let keyring = RawAesKeyring::das(&KEY).unwrap();
        let payloads: [&[u8]; 3] = [
            br#"{"type":"DatabaseActivityMonitoringRecord","databaseActivityEventList":"SELECT card FROM vault WHERE pin = 'Zq9pin'"}"#,
            br#"{"type":"DatabaseActivityMonitoringRecord","databaseActivityEventList":["SELECT card FROM vault WHERE pin = 'Zq9pin'"]}"#,
            br#"{"type":"DatabaseActivityMonitoringRecord","databaseActivityEventList":[{"a":1}] "SELECT card FROM vault WHERE pin = 'Zq9pin'"}"#,
        ];
        let input = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let data = record::encode_with(p, &keyring, b"key-blob", &EncodeOptions::default()).unwrap();
                super::tests::input(data, i, 1_795_316_397.0)
            })
            .collect();
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), skip_heartbeats());
        let outcome = archiver.process(batch(input)).await;
        assert_eq!(outcome.metrics.records_quarantined, 3);
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("record quarantined"), "{log}");
        for (key, object) in archiver.sink().objects() {
            let mut document: serde_json::Value = serde_json::from_slice(&object.body).unwrap();
            // The raw record stays, encrypted and base64: only the rest is text a person reads.
            document.as_object_mut().unwrap().remove("data");
            let document = document.to_string();
            assert!(document.contains("line 1 column"), "{key}: {document}");
            assert!(
                !document.contains("SELECT") && !document.contains("Zq9pin"),
                "{key}: {document}"
            );
        }
        assert!(!log.contains("SELECT") && !log.contains("Zq9pin"), "{log}");
    }

    fn security_lake_archiver(ndjson: bool) -> Archiver<StaticKeySource, MemorySink> {
        let mut settings = settings();
        settings.outputs = Outputs {
            ndjson,
            security_lake: Some(SecurityLake {
                bucket: "lake".into(),
                prefix: String::new(),
                source: "das".into(),
                role_arn: None,
                external_id: None,
            }),
            function: None,
        };
        Archiver::new(
            settings,
            KeyCache::new(StaticKeySource::new(&KEY), KeyCacheLimits::default()),
            Filter::new(&skip_heartbeats()).unwrap(),
            MemorySink::default(),
        )
    }

    #[cfg(feature = "ocsf-parquet")]
    #[tokio::test]
    async fn both_outputs_write_the_archive_and_one_parquet_object_per_event_day_and_quarantine_once() {
        let archiver = security_lake_archiver(true);
        let mut input = records(3, 1_795_316_397.0);
        input[1].data = Some(b"{not json".to_vec());
        let outcome = archiver.process(batch(input.clone())).await;
        assert_eq!(outcome.retry_from, None);
        assert_eq!(
            (outcome.metrics.records_quarantined, outcome.metrics.events_archived),
            (1, 6)
        );
        let objects = archiver.sink().objects();
        let parquet: Vec<_> = objects.iter().filter(|(k, _)| k.ends_with(".parquet")).collect();
        assert!(!parquet.is_empty());
        for (key, object) in &parquet {
            assert!(
                key.starts_with("ext/das/region=us-east-1/accountId=123456789012/eventDay="),
                "{key}"
            );
            assert_eq!(object.bucket.as_deref(), Some("lake"));
            assert_eq!(&object.body[..4], b"PAR1");
        }
        let quarantined = objects.keys().filter(|k| k.contains("/quarantine/")).count();
        assert_eq!(quarantined, 1, "a bad record is quarantined once, not once per output");
        assert!(objects.keys().any(|k| k.ends_with(".ndjson")));

        // A retry rewrites the same keys.
        let before: Vec<String> = objects.into_keys().collect();
        archiver.process(batch(input)).await;
        let after: Vec<String> = archiver.sink().objects().into_keys().collect();
        assert_eq!(before, after);
    }

    #[cfg(feature = "ocsf-parquet")]
    #[tokio::test]
    async fn ocsf_parquet_alone_writes_no_ndjson_and_counts_the_ocsf_events() {
        let archiver = security_lake_archiver(false);
        let outcome = archiver.process(batch(records(2, 1_795_316_397.0))).await;
        assert_eq!((outcome.retry_from, outcome.metrics.events_archived), (None, 6));
        let keys: Vec<String> = archiver.sink().objects().into_keys().collect();
        assert!(
            !keys.is_empty() && keys.iter().all(|k| k.ends_with(".parquet")),
            "{keys:?}"
        );
    }

    #[tokio::test]
    async fn ocsf_output_without_a_region_in_the_stream_arn_retries_the_batch() {
        let archiver = security_lake_archiver(false);
        let mut settings_batch = batch(records(1, 1_795_316_397.0));
        settings_batch.event_source_arn = Some("aws-rds-das-cluster-TEST1".into());
        let outcome = archiver.process(settings_batch).await;
        assert!(outcome.retry_from.is_some());
        assert!(archiver.sink().objects().is_empty());
    }
}
