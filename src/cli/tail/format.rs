//! What `das tail` prints for each event: the archive's NDJSON line as it is, or (`--format ocsf`)
//! the OCSF 1.1.0 Datastore Activity event the Security Lake output maps it to, through the same
//! [`map_line`]. It formats lines it is given and never drops one silently: a line it cannot
//! map is an error for the caller to report and count.

use serde_json::{Map, Value};

use crate::pipeline::ocsf::{map_line, region_and_account, Provenance};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// The archive's NDJSON lines, one event each.
    Ndjson,
    /// OCSF 1.1.0 Datastore Activity (class 6005) JSON, one event each.
    Ocsf,
}

/// The stream-wide part of an OCSF event's provenance.
pub(super) struct OcsfContext {
    resource_id: String,
    stream_arn: String,
}

impl OcsfContext {
    pub(super) fn new(resource_id: &str, stream_arn: String) -> Self {
        Self {
            resource_id: resource_id.to_owned(),
            stream_arn,
        }
    }

    /// The OCSF event for one NDJSON line (without its newline, or with it), or `None` for a
    /// heartbeat (kept by `--keep-heartbeats`: heartbeats are never OCSF events). The shard,
    /// sequence number and event index come from the line's provenance fields.
    pub(super) fn render(&self, line: &[u8], arrival_ms: i64) -> Result<Option<Value>, String> {
        let fields: Map<String, Value> = serde_json::from_slice(line)
            .map_err(|e| format!("an event line is not a JSON object ({}:{})", e.line(), e.column()))?;
        let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (shard, sequence) = (text("kinesisShardId"), text("kinesisSequenceNumber"));
        let event_index = fields
            .get("eventIndex")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(0);
        let (region, account) = region_and_account(&self.stream_arn).unwrap_or(("", ""));
        let provenance = Provenance {
            resource_id: &self.resource_id,
            stream_arn: &self.stream_arn,
            shard_id: &shard,
            sequence_number: &sequence,
            event_index,
            region,
            account,
            arrival_ms,
        };
        Ok(map_line(fields, &provenance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/aws-rds-das-cluster-ABC";

    #[test]
    fn an_ndjson_line_becomes_a_datastore_activity_event_with_its_provenance_as_uid() {
        let line = br#"{"type":"record","clusterId":"cluster-ABC","instanceId":"db-1","class":"READ","command":"SELECT","commandText":"select 1","logTime":"2026-11-22 08:00:00.123+00","dbUserName":"app","kinesisShardId":"shardId-000000000001","kinesisSequenceNumber":"4960","eventIndex":2}"#;
        let context = OcsfContext::new("cluster-ABC", ARN.to_owned());
        let event = context.render(line, 1_790_000_000_000).unwrap().unwrap();
        assert_eq!(event["class_uid"], 6005);
        assert_eq!(event["metadata"]["uid"], "shardId-000000000001:4960:2");
        assert_eq!(event["cloud"]["region"], "eu-west-1");
    }

    #[test]
    fn a_heartbeat_line_is_no_ocsf_event() {
        let line = br#"{"type":"heartbeat","kinesisShardId":"s","kinesisSequenceNumber":"1","eventIndex":0}"#;
        let context = OcsfContext::new("cluster-ABC", ARN.to_owned());
        assert_eq!(context.render(line, 0), Ok(None));
    }

    #[test]
    fn a_line_that_is_not_json_is_an_error_that_quotes_nothing() {
        let context = OcsfContext::new("cluster-ABC", ARN.to_owned());
        let error = context.render(b"select secret from t", 0).unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }
}
