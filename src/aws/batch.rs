//! One batch of Kinesis records end to end: the rule is that every input record is archived,
//! quarantined with its reason, or reported for retry — never lost, never reported done unwritten.
//!
//! The flow: parse every envelope → fetch the distinct data keys (cached, concurrently) → decode,
//! filter and format every record in parallel on the CPU (each inside `catch_unwind`) → write one
//! object per arrival date-hour plus one quarantine object per bad record → report the first record
//! that must be retried. This is the one place that decides permanent versus transient; it talks to
//! AWS only through the [`DataKeySource`] and [`Sink`] traits.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use base64::Engine as _;
use rayon::prelude::*;
use serde::Serialize;

use crate::aws::archive::{Layout, Object, Sink};
use crate::aws::keys::{DataKeySource, KeyCache, KeyError};
use crate::pipeline::activity::ActivityRecord;
use crate::pipeline::envelope::{Envelope, ResourceId};
use crate::pipeline::error::{Classify, FailureKind};
use crate::pipeline::esdk::RawAesKeyring;
use crate::pipeline::filter::{Filter, Verdict};
use crate::pipeline::record::{self, DecodeOptions};
use crate::pipeline::utc::UtcDateTime;

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
    /// Records written to quarantine.
    pub records_quarantined: u64,
    /// Records left for Kinesis to retry.
    pub records_retried: u64,
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
    /// Use this resource id instead of the one in the stream name.
    pub resource_id: Option<ResourceId>,
    /// Object naming and compression.
    pub layout: Layout,
    /// Decoding limits.
    pub decode: DecodeOptions,
}

/// The archiver: settings, key cache, filter and sink, built once per container.
pub struct Archiver<K, S> {
    settings: BatchSettings,
    keys: KeyCache<K>,
    filter: Arc<Filter>,
    sink: S,
}

/// How one record ended.
enum Fate {
    /// Decoded: its NDJSON lines (maybe none) and counts.
    Decoded {
        lines: Vec<u8>,
        kept: u64,
        filtered: u64,
        heartbeats: u64,
    },
    /// The record is bad; quarantine it with this reason.
    Permanent(String),
    /// Could not be finished now; retry from here.
    Transient(String),
}

impl<K: DataKeySource, S: Sink> Archiver<K, S> {
    /// An archiver over a key cache, a filter and a sink.
    pub fn new(settings: BatchSettings, keys: KeyCache<K>, filter: Filter, sink: S) -> Self {
        Self {
            settings,
            keys,
            filter: Arc::new(filter),
            sink,
        }
    }

    /// The sink (for tests and the CLI).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The key cache (for metrics).
    pub fn keys(&self) -> &KeyCache<K> {
        &self.keys
    }

    /// Processes one batch. Never panics; never reports a record done that was not written.
    pub async fn process(&self, batch: Batch) -> BatchOutcome {
        let before = self.keys.stats();
        let mut metrics = BatchMetrics {
            records_in: batch.records.len() as u64,
            ..BatchMetrics::default()
        };
        let resource = match self.resource_id(&batch) {
            Ok(r) => r,
            Err(message) => {
                // Without a resource id there is no encryption context: a deployment error that a
                // retry after fixing it will clear, so nothing is quarantined.
                tracing::error!(error = %message, "cannot tell which database this stream belongs to; set DAS_RESOURCE_ID");
                metrics.records_retried = metrics.records_in;
                return BatchOutcome {
                    resource_id: None,
                    retry_from: batch.records.first().map(|r| r.sequence_number.clone()),
                    metrics,
                };
            }
        };

        let envelopes: Vec<Result<Envelope, String>> = batch
            .records
            .iter()
            .map(|r| match &r.data {
                Some(data) => Envelope::parse(data).map_err(|e| e.to_string()),
                None => Err("the Kinesis record data is not valid base64".to_owned()),
            })
            .collect();
        let keyrings = self.fetch_keyrings(&envelopes, &resource).await;
        let fates = self.decode_all(envelopes, &keyrings).await;
        if fates.len() != batch.records.len() {
            metrics.records_retried = metrics.records_in;
            return BatchOutcome {
                resource_id: Some(resource),
                retry_from: batch.records.first().map(|r| r.sequence_number.clone()),
                metrics,
            };
        }

        // Nothing at or after the first transient failure may be written: Kinesis retries from it.
        let retry_index = fates.iter().position(|f| matches!(f, Fate::Transient(_)));
        let done = retry_index.unwrap_or(fates.len());
        let (objects, covers) = self.plan_writes(&batch, &resource, fates.iter().take(done), &mut metrics);
        let results = futures::future::join_all(
            objects
                .into_iter()
                .map(|o| async move { (o.body.len(), self.sink.put(o).await) }),
        )
        .await;
        let mut first_failed_write = None::<usize>;
        for ((bytes, result), first_index) in results.into_iter().zip(covers) {
            match result {
                Ok(()) => {
                    metrics.objects_written += 1;
                    metrics.bytes_written += bytes as u64;
                }
                Err(err) => {
                    tracing::warn!(error = %err, kind = ?err.failure_kind(), "archive write failed; the batch will be retried from its first record");
                    first_failed_write = Some(first_failed_write.map_or(first_index, |i: usize| i.min(first_index)));
                }
            }
        }
        if let Some(Fate::Transient(reason)) = retry_index.and_then(|i| fates.get(i)) {
            tracing::warn!(error = %reason, "a record could not be finished now; Kinesis will retry from it");
        }
        let retry = match (retry_index, first_failed_write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let after = self.keys.stats();
        metrics.kms_calls = after.source_calls - before.source_calls;
        metrics.key_cache_hits = after.hits - before.hits;
        metrics.records_retried = retry.map_or(0, |i| (batch.records.len() - i) as u64);
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

    fn resource_id(&self, batch: &Batch) -> Result<ResourceId, String> {
        if let Some(id) = &self.settings.resource_id {
            return Ok(id.clone());
        }
        let arn = batch
            .event_source_arn
            .as_deref()
            .ok_or("the event has no eventSourceARN")?;
        ResourceId::from_stream(arn).map_err(|e| e.to_string())
    }

    /// One lookup per distinct key blob, all at once; DAS reuses a data key for many records.
    async fn fetch_keyrings(
        &self,
        envelopes: &[Result<Envelope, String>],
        resource: &ResourceId,
    ) -> HashMap<Vec<u8>, Result<Arc<RawAesKeyring>, Arc<KeyError>>> {
        let mut blobs: Vec<&[u8]> = envelopes.iter().flatten().map(|e| e.key_blob.as_slice()).collect();
        blobs.sort_unstable();
        blobs.dedup();
        let lookups = blobs
            .into_iter()
            .map(|blob| async move { (blob.to_vec(), self.keys.keyring(blob, resource).await.map_err(Arc::new)) });
        futures::future::join_all(lookups).await.into_iter().collect()
    }

    /// Decrypts, filters and formats every record on the CPU pool, in order. A panic in one record
    /// is caught and turns that record into a permanent failure.
    async fn decode_all(
        &self,
        envelopes: Vec<Result<Envelope, String>>,
        keyrings: &HashMap<Vec<u8>, Result<Arc<RawAesKeyring>, Arc<KeyError>>>,
    ) -> Vec<Fate> {
        let jobs: Vec<Result<(Envelope, Arc<RawAesKeyring>), Fate>> = envelopes
            .into_iter()
            .map(|envelope| {
                let envelope = envelope.map_err(Fate::Permanent)?;
                match keyrings.get(&envelope.key_blob) {
                    Some(Ok(keyring)) => Ok((envelope, Arc::clone(keyring))),
                    Some(Err(err)) if err.failure_kind() == FailureKind::Transient => {
                        Err(Fate::Transient(err.to_string()))
                    }
                    Some(Err(err)) => Err(Fate::Permanent(err.to_string())),
                    None => Err(Fate::Transient("the data key lookup did not run".to_owned())),
                }
            })
            .collect();
        let filter = Arc::clone(&self.filter);
        let options = self.settings.decode.clone();
        let work = move || {
            jobs.into_par_iter()
                .map(|job| match job {
                    Ok((envelope, keyring)) => decode_one(&envelope, &keyring, &filter, &options),
                    Err(fate) => fate,
                })
                .collect::<Vec<Fate>>()
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(fates) => fates,
            // Each record is already inside catch_unwind; reaching here means the pool itself failed.
            Err(err) => {
                tracing::error!(error = %err, "the decode pool failed; retrying the whole batch");
                Vec::new()
            }
        }
    }

    /// Groups decoded records by arrival date-hour into archive objects, and bad records into
    /// quarantine objects. Returns the objects and, for each, the index of the first record it covers.
    fn plan_writes<'a>(
        &self,
        batch: &Batch,
        resource: &ResourceId,
        fates: impl Iterator<Item = &'a Fate>,
        metrics: &mut BatchMetrics,
    ) -> (Vec<Object>, Vec<usize>) {
        struct Group {
            first: usize,
            last: usize,
            lines: Vec<u8>,
        }
        let layout = &self.settings.layout;
        let mut groups: BTreeMap<(i64, u32, u32, u32), (UtcDateTime, Group)> = BTreeMap::new();
        let mut objects = Vec::new();
        let mut covers = Vec::new();
        for (index, (fate, input)) in fates.zip(&batch.records).enumerate() {
            let arrival = UtcDateTime::from_unix_seconds(input.arrival_seconds);
            match fate {
                Fate::Decoded {
                    lines,
                    kept,
                    filtered,
                    heartbeats,
                } => {
                    metrics.events_archived += kept;
                    metrics.events_filtered += filtered;
                    metrics.heartbeats_skipped += heartbeats;
                    let hour = (arrival.year, arrival.month, arrival.day, arrival.hour);
                    let (_, group) = groups.entry(hour).or_insert_with(|| {
                        (
                            arrival,
                            Group {
                                first: index,
                                last: index,
                                lines: Vec::new(),
                            },
                        )
                    });
                    group.last = index;
                    group.lines.extend_from_slice(lines);
                }
                Fate::Permanent(reason) => {
                    metrics.records_quarantined += 1;
                    tracing::warn!(seq = %input.sequence_number, shard = %input.shard_id, error = %reason, "record quarantined");
                    let key =
                        layout.quarantine_key(resource.as_str(), &arrival, &input.shard_id, &input.sequence_number);
                    objects.push(quarantine_object(key, reason, resource, batch, input));
                    covers.push(index);
                }
                Fate::Transient(_) => {}
            }
        }
        for (arrival, group) in groups.into_values() {
            if group.lines.is_empty() {
                continue;
            }
            let (Some(first), Some(last)) = (batch.records.get(group.first), batch.records.get(group.last)) else {
                continue;
            };
            let key = layout.archive_key(
                resource,
                &arrival,
                &first.shard_id,
                &first.sequence_number,
                &last.sequence_number,
            );
            objects.push(layout.archive_object(key, &group.lines));
            covers.push(group.first);
        }
        (objects, covers)
    }
}

/// One record's NDJSON lines (after filtering) and what the filter did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The kept events, one line each.
    pub lines: Vec<u8>,
    /// Events kept.
    pub kept: u64,
    /// Events dropped by the include/exclude lists.
    pub filtered: u64,
    /// Heartbeats skipped.
    pub heartbeats: u64,
}

/// The pure, CPU-bound part of one record: decrypt, gunzip, parse, filter, format. Panic-proof: a
/// panic (a bug) becomes an error naming it, logged at error level.
pub fn render_record(
    envelope: &Envelope,
    keyring: &RawAesKeyring,
    filter: &Filter,
    options: &DecodeOptions,
) -> Result<Rendered, String> {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Rendered, record::RecordError> {
        let payload = record::decode(envelope, keyring, options)?;
        let activity = ActivityRecord::parse(&payload.json, options.payload)?;
        let mut rendered = Rendered {
            lines: Vec::with_capacity(payload.json.len() + activity.events.len() * 96),
            ..Rendered::default()
        };
        for event in &activity.events {
            match filter.verdict(event) {
                Verdict::Keep => {
                    filter.write_line(event, &activity, &mut rendered.lines);
                    rendered.kept += 1;
                }
                Verdict::Filtered => rendered.filtered += 1,
                Verdict::Heartbeat => rendered.heartbeats += 1,
            }
        }
        Ok(rendered)
    }));
    match result {
        Ok(result) => result.map_err(|err| err.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(panic = %message, "BUG: decoding a record panicked; the record is quarantined");
            Err(format!("internal error while decoding (please report): {message}"))
        }
    }
}

fn decode_one(envelope: &Envelope, keyring: &RawAesKeyring, filter: &Filter, options: &DecodeOptions) -> Fate {
    match render_record(envelope, keyring, filter, options) {
        Ok(Rendered {
            lines,
            kept,
            filtered,
            heartbeats,
        }) => Fate::Decoded {
            lines,
            kept,
            filtered,
            heartbeats,
        },
        Err(reason) => Fate::Permanent(reason),
    }
}

/// The quarantine document: the reason, the Kinesis metadata and the raw (still encrypted) record.
fn quarantine_object(key: String, reason: &str, resource: &ResourceId, batch: &Batch, input: &InputRecord) -> Object {
    let document = serde_json::json!({
        "error": reason,
        "errorKind": "permanent",
        "resourceId": resource.as_str(),
        "kinesis": {
            "eventSourceARN": batch.event_source_arn,
            "shardId": input.shard_id,
            "sequenceNumber": input.sequence_number,
            "partitionKey": input.partition_key,
            "approximateArrivalTimestamp": input.arrival_seconds,
        },
        "data": input.data.as_ref().map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
    });
    Object {
        key,
        body: serde_json::to_vec_pretty(&document).unwrap_or_default(),
        content_type: "application/json",
        content_encoding: None,
    }
}

/// The CloudWatch Embedded Metric Format line for a batch's metrics (namespace `DasArchiver`).
pub fn emf_line(metrics: &BatchMetrics, resource: &str, timestamp_millis: u64) -> String {
    let names = [
        ("RecordsIn", "Count"),
        ("EventsArchived", "Count"),
        ("EventsFiltered", "Count"),
        ("HeartbeatsSkipped", "Count"),
        ("RecordsQuarantined", "Count"),
        ("RecordsRetried", "Count"),
        ("KmsCalls", "Count"),
        ("KeyCacheHits", "Count"),
        ("BytesWritten", "Bytes"),
        ("ObjectsWritten", "Count"),
    ];
    let mut doc = serde_json::to_value(metrics).unwrap_or_default();
    if let Some(map) = doc.as_object_mut() {
        map.insert("ResourceId".into(), resource.into());
        map.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": timestamp_millis,
                "CloudWatchMetrics": [{
                    "Namespace": "DasArchiver",
                    "Dimensions": [["ResourceId"]],
                    "Metrics": names.iter().map(|(n, u)| serde_json::json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
                }],
            }),
        );
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::archive::{Compression, MemorySink, SinkError};
    use crate::aws::keys::{KeyCacheLimits, StaticKeySource};
    use crate::pipeline::filter::FilterSpec;
    use crate::pipeline::record::EncodeOptions;
    use crate::pipeline::simulate::{Engine, Simulator};
    use async_trait::async_trait;
    use zeroize::Zeroizing;

    const KEY: [u8; 32] = [0x5c; 32];
    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-TEST1";

    fn settings() -> BatchSettings {
        BatchSettings {
            resource_id: None,
            layout: Layout {
                prefix: "activity/".into(),
                compression: Compression::None,
            },
            decode: DecodeOptions::default(),
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
    async fn a_stream_that_names_no_database_is_retried_not_quarantined() {
        let archiver = archiver(StaticKeySource::new(&KEY), MemorySink::default(), skip_heartbeats());
        let mut b = batch(records(2, 0.0));
        b.event_source_arn = Some("arn:aws:kinesis:us-east-1:1:stream/my-stream".into());
        let first = b.records[0].sequence_number.clone();
        let outcome = archiver.process(b).await;
        assert_eq!(outcome.retry_from, Some(first));
        assert!(archiver.sink().objects().is_empty());
    }

    #[test]
    fn the_emf_line_declares_every_metric() {
        let line = emf_line(
            &BatchMetrics {
                records_in: 3,
                ..Default::default()
            },
            "cluster-A",
            1,
        );
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["RecordsIn"], 3);
        assert_eq!(doc["ResourceId"], "cluster-A");
        let declared = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        for metric in declared {
            assert!(doc.get(metric["Name"].as_str().unwrap()).is_some(), "{metric}");
        }
    }
}
