//! The Lambda front door (feature `lambda`): a Kinesis event-source mapping's batch in, the
//! `ReportBatchItemFailures` reply out.
//!
//! The event is read leniently (a record whose `data` is not base64 is quarantined, not a crash of the
//! whole invocation), handed to [`Archiver::process`], and the outcome becomes at most one batch item
//! failure: the sequence number Kinesis must retry from. It never reports an empty identifier, which
//! would fail the whole batch.

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::LambdaEvent;
use serde::Deserialize;

use crate::aws::archive::Sink;
use crate::aws::batch::{Archiver, Batch, BatchMetrics, BatchOutcome, InputRecord};
use crate::aws::keys::DataKeySource;

/// A Kinesis event as Lambda delivers it, with only the fields the archiver uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KinesisBatchEvent {
    /// The records, in order.
    #[serde(rename = "Records", default)]
    pub records: Vec<KinesisEventRecord>,
}

/// One record of a [`KinesisBatchEvent`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KinesisEventRecord {
    /// `shardId-…:<sequence number>`.
    #[serde(rename = "eventID", default)]
    pub event_id: Option<String>,
    /// The stream (or consumer) ARN.
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: Option<String>,
    /// The Kinesis part.
    #[serde(default)]
    pub kinesis: KinesisData,
}

/// The `kinesis` object of an event record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisData {
    /// The record data, base64-decoded while the event is parsed.
    #[serde(default)]
    pub data: KinesisPayload,
    /// Sequence number.
    #[serde(default)]
    pub sequence_number: String,
    /// Partition key.
    #[serde(default)]
    pub partition_key: String,
    /// Arrival time, Unix seconds with a fraction.
    #[serde(default)]
    pub approximate_arrival_timestamp: f64,
}

/// A record's `data`: the bytes its base64 text stands for, or `None` when that text is not base64
/// (the record is then quarantined, not the invocation failed).
///
/// The text is decoded straight from the event's bytes as the parser reaches it, never held as a
/// `String`: a 10,000-record event carries about 15 MB of it, which would otherwise be allocated,
/// copied and freed once more per invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KinesisPayload(pub Option<Vec<u8>>);

impl<'de> Deserialize<'de> for KinesisPayload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // As bytes: serde_json then skips the UTF-8 check of 15 MB that the base64 decoder repeats
        // anyway (anything that is not base64 is refused by it).
        deserializer.deserialize_bytes(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl serde::de::Visitor<'_> for PayloadVisitor {
    type Value = KinesisPayload;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the record data as a base64 string")
    }

    // serde_json hands over a string without escapes as a slice of the input, and an escaped one
    // unescaped in its scratch buffer: either way no String is built.
    fn visit_bytes<E: serde::de::Error>(self, text: &[u8]) -> Result<KinesisPayload, E> {
        Ok(KinesisPayload(base64_simd::STANDARD.decode_to_vec(text).ok()))
    }

    // Other deserializers (a `serde_json::Value`, say) hand over a string as such.
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<KinesisPayload, E> {
        self.visit_bytes(text.as_bytes())
    }
}

impl From<KinesisBatchEvent> for Batch {
    fn from(event: KinesisBatchEvent) -> Self {
        let event_source_arn = event.records.iter().find_map(|r| r.event_source_arn.clone());
        let records = event
            .records
            .into_iter()
            .map(|r| InputRecord {
                data: r.kinesis.data.0,
                shard_id: r
                    .event_id
                    .as_deref()
                    .and_then(|id| id.split_once(':'))
                    .map(|(shard, _)| shard.to_owned())
                    .unwrap_or_else(|| "shardId-unknown".to_owned()),
                sequence_number: r.kinesis.sequence_number,
                partition_key: r.kinesis.partition_key,
                arrival_seconds: r.kinesis.approximate_arrival_timestamp,
            })
            .collect();
        Batch {
            event_source_arn,
            records,
        }
    }
}

/// Handles one invocation.
pub async fn handle<K: DataKeySource, S: Sink>(
    archiver: &Archiver<K, S>,
    event: LambdaEvent<KinesisBatchEvent>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    let outcome = archiver.process(Batch::from(event.payload)).await;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let resource_id = outcome.resource_id.as_ref().map(|r| r.as_str()).unwrap_or("unknown");
    // Embedded Metric Format: one JSON line on stdout, which CloudWatch Logs turns into metrics.
    let namespace = metrics_namespace(archiver.settings().outputs.ndjson);
    println!("{}", emf_line(&outcome.metrics, namespace, resource_id, millis));
    Ok(response(&outcome))
}

/// The `ReportBatchItemFailures` reply for an outcome: at most one item, never an empty identifier.
pub fn response(outcome: &BatchOutcome) -> KinesisEventResponse {
    let mut response = KinesisEventResponse::default();
    if let Some(sequence) = outcome.retry_from.as_ref().filter(|s| !s.is_empty()) {
        response.add_failure(sequence.clone());
    }
    response
}

/// The `level` of the metrics line. Lambda's log-level filtering reads each JSON line's `level` and
/// takes a line without one as INFO, so at `WARN` or `ERROR` it would drop the metrics and every
/// alarm on them would go blind
/// (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>). The line
/// therefore carries the least severe level that the configured filter (what `logging` installed
/// from `AWS_LAMBDA_LOG_LEVEL`) still lets through, and never less than INFO.
fn metrics_level(filter: tracing::level_filters::LevelFilter) -> &'static str {
    use tracing::level_filters::LevelFilter;
    match filter {
        LevelFilter::OFF => "FATAL",
        LevelFilter::ERROR => "ERROR",
        LevelFilter::WARN => "WARN",
        _ => "INFO",
    }
}

/// The metrics namespace of a function: `DasArchiver` for the archive (NDJSON) function, whose
/// figures the per-stream alarms read; `DasArchiver/SecurityLake` for a function that writes only
/// OCSF (the template's Security Lake function). It reads the same streams, so under one namespace
/// its invocations would keep the silence alarm quiet while the archive's trigger is dead, and a bad
/// record, quarantined by both, would be counted twice.
pub fn metrics_namespace(writes_ndjson: bool) -> &'static str {
    if writes_ndjson {
        "DasArchiver"
    } else {
        "DasArchiver/SecurityLake"
    }
}

/// The CloudWatch Embedded Metric Format line for a batch's metrics under `namespace`.
pub fn emf_line(metrics: &BatchMetrics, namespace: &str, resource: &str, timestamp_millis: u64) -> String {
    let names = [
        ("RecordsIn", "Count"),
        ("EventsArchived", "Count"),
        ("EventsFiltered", "Count"),
        ("HeartbeatsSkipped", "Count"),
        ("RecordsQuarantined", "Count"),
        ("RecordsGivenUp", "Count"),
        ("RecordsRetried", "Count"),
        ("OldestRecordAgeSeconds", "Seconds"),
        ("KmsCalls", "Count"),
        ("KeyCacheHits", "Count"),
        ("BytesWritten", "Bytes"),
        ("ObjectsWritten", "Count"),
    ];
    let mut doc = serde_json::to_value(metrics).unwrap_or_default();
    if let Some(map) = doc.as_object_mut() {
        let level = metrics_level(tracing::level_filters::LevelFilter::current());
        map.insert("level".into(), level.into());
        map.insert("ResourceId".into(), resource.into());
        map.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": timestamp_millis,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
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

    #[test]
    fn record_data_is_decoded_as_the_event_is_parsed_and_bad_base64_is_kept_as_none() {
        let event = br#"{"Records":[
            {"eventID":"shardId-000000000002:49","kinesis":{"data":"aGVsbG8=","sequenceNumber":"49"}},
            {"kinesis":{"data":"\/\/8=","sequenceNumber":"50"}},
            {"kinesis":{"data":"not base64!","sequenceNumber":"51"}},
            {"kinesis":{"sequenceNumber":"52"}}]}"#;
        let batch = Batch::from(serde_json::from_slice::<KinesisBatchEvent>(event).unwrap());
        let data: Vec<Option<&[u8]>> = batch.records.iter().map(|r| r.data.as_deref()).collect();
        assert_eq!(
            data,
            [Some(&b"hello"[..]), Some(&[0xff, 0xff][..]), None, None],
            "an escaped '/' is unescaped before decoding; a record without data is quarantined"
        );
        assert_eq!(batch.records[0].shard_id, "shardId-000000000002");
        let from_value: KinesisBatchEvent = serde_json::from_value(serde_json::json!({
            "Records": [{"kinesis": {"data": "aGVsbG8="}}]
        }))
        .unwrap();
        assert_eq!(from_value.records[0].kinesis.data.0.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn the_emf_line_declares_every_metric() {
        let line = emf_line(
            &BatchMetrics {
                records_in: 3,
                ..Default::default()
            },
            metrics_namespace(true),
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
        for name in ["RecordsGivenUp", "OldestRecordAgeSeconds"] {
            assert!(declared.iter().any(|m| m["Name"] == name), "{name}");
        }
        assert!(doc["level"].is_string(), "Lambda filters lines by their level: {line}");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "DasArchiver");
    }

    #[test]
    fn a_function_that_writes_only_ocsf_reports_under_its_own_namespace() {
        let line = emf_line(&BatchMetrics::default(), metrics_namespace(false), "cluster-A", 1);
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "DasArchiver/SecurityLake"
        );
    }

    #[test]
    fn the_metrics_line_carries_a_level_that_the_configured_filter_lets_through() {
        use tracing::level_filters::LevelFilter;
        assert_eq!(metrics_level(LevelFilter::WARN), "WARN");
        assert_eq!(metrics_level(LevelFilter::ERROR), "ERROR");
        assert_eq!(metrics_level(LevelFilter::OFF), "FATAL");
        for verbose in [LevelFilter::INFO, LevelFilter::DEBUG, LevelFilter::TRACE] {
            assert_eq!(metrics_level(verbose), "INFO");
        }
    }
}
