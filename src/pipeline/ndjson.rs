//! One output line per event: the event's original JSON plus the `clusterId` and `instanceId` of its
//! record and where it came from (`kinesisShardId`, `kinesisSequenceNumber`, `eventIndex`), so each
//! line stands on its own in an archive or a pipe, and a retried batch's duplicate lines can always
//! be told apart and removed.
//!
//! Lines are built by splicing the fields into the event's original text rather than by
//! re-serialising it, so field order, number formatting and unknown fields survive byte for byte —
//! except raw line breaks between JSON tokens (a pretty-printing producer), which become spaces: valid
//! JSON can hold a raw CR or LF nowhere else, so no value changes, and every event is exactly one
//! physical line (Athena and `das tail` read one event per line).

use crate::pipeline::activity::{ActivityEvent, ActivityRecord};
use crate::pipeline::mask::fields::{field_mask, write_masked, EventMasking};
use crate::pipeline::mask::{fingerprint, Dialect, MaskMode};

/// Where an event came from: its Kinesis record and its place in that record's event list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineContext<'a> {
    /// The Kinesis shard, e.g. `shardId-000000000000` (`None` for a record read from a file).
    pub shard_id: Option<&'a str>,
    /// The record's Kinesis sequence number (`None` for a record read from a file).
    pub sequence_number: Option<&'a str>,
    /// The event's 0-based position in `databaseActivityEventList`, heartbeats counted, so it does
    /// not depend on the filters.
    pub event_index: usize,
}

impl<'a> LineContext<'a> {
    /// The event at `event_index` of the record at `sequence_number` in `shard_id`.
    pub fn kinesis(shard_id: &'a str, sequence_number: &'a str, event_index: usize) -> Self {
        Self {
            shard_id: Some(shard_id),
            sequence_number: Some(sequence_number),
            event_index,
        }
    }

    /// An event of a record that came without Kinesis metadata.
    pub fn unknown_record(event_index: usize) -> Self {
        Self {
            shard_id: None,
            sequence_number: None,
            event_index,
        }
    }
}

/// Appends `event` as one NDJSON line (with `\n`) to `out`, adding the record's resource ids
/// (unless the event already carries fields of those names) and the provenance fields.
pub fn write_event_line(
    event: &ActivityEvent<'_>,
    record: &ActivityRecord<'_>,
    at: &LineContext<'_>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let raw = event.raw_json().trim_end();
    // An event is always a JSON object (the parser checked), so it ends with '}'.
    let body = raw.strip_suffix('}').unwrap_or(raw);
    out.extend_from_slice(body.as_bytes());
    finish_line(event, record, at, body.trim_end() == "{", start, out);
}

/// Appends `event` as one NDJSON line like [`write_event_line`], with the fields that carry
/// statement text or values masked per `mode` (`mask::fields`) and `commandFingerprint` added
/// after the event's own fields when it has a statement.
///
/// The masked values are spliced into the event's original text, so every other field stays byte
/// for byte. An event that repeats a masked field cannot be spliced (`Filter::write_line` rewrites
/// those); here, as when a field's place in the text cannot be found (which the parser rules out),
/// the line then holds no field of the event at all rather than an unmasked one.
pub fn write_masked_event_line(
    event: &ActivityEvent<'_>,
    record: &ActivityRecord<'_>,
    at: &LineContext<'_>,
    mode: MaskMode,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let raw = event.raw_json().trim_end();
    let body = raw.strip_suffix('}').unwrap_or(raw);
    let masking = event_masking(event, mode);
    if event.repeats_sensitive_field() {
        out.push(b'{');
        finish_line(event, record, at, true, start, out);
        return;
    }
    let mut spans: Vec<(usize, &serde_json::value::RawValue, &str)> = Vec::with_capacity(4);
    for (name, value) in event.sensitive_fields() {
        let Some(value) = value else { continue };
        let Some(offset) = event.offset_of(value).filter(|o| o + value.get().len() <= body.len()) else {
            out.push(b'{');
            finish_line(event, record, at, true, start, out);
            return;
        };
        spans.push((offset, value, name));
    }
    spans.sort_unstable_by_key(|(offset, _, _)| *offset);
    let mut copied = 0;
    for (offset, value, name) in spans {
        out.extend_from_slice(body.as_bytes().get(copied..offset).unwrap_or_default());
        if let Some(mask) = field_mask(name) {
            write_masked(mask, value, &masking, out);
        }
        copied = offset + value.get().len();
    }
    out.extend_from_slice(body.as_bytes().get(copied..).unwrap_or_default());
    let empty = body.trim_end() == "{";
    let empty = !write_fingerprint(event, masking.dialect, empty, out) && empty;
    finish_line(event, record, at, empty, start, out);
}

/// How `event`'s fields are masked: its dialect from `serverType`, and whether its statement sets
/// a credential.
pub(crate) fn event_masking(event: &ActivityEvent<'_>, mode: MaskMode) -> EventMasking {
    let dialect = event
        .server_type()
        .map_or(Dialect::Unknown, |t| Dialect::of_server_type(&t));
    EventMasking::new(dialect, mode, event.command_text().as_deref())
}

/// Appends `"commandFingerprint":"<16 hex>"` (after a comma unless `empty`) when the event has a
/// non-empty statement; returns whether it did.
pub(crate) fn write_fingerprint(event: &ActivityEvent<'_>, dialect: Dialect, empty: bool, out: &mut Vec<u8>) -> bool {
    let Some(text) = event.command_text().filter(|text| !text.trim().is_empty()) else {
        return false;
    };
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"commandFingerprint\":\"");
    out.extend_from_slice(fingerprint(&text, dialect).to_string().as_bytes());
    out.push(b'"');
    true
}

/// Finishes an event line that starts at `out[start]` and whose opening `{` and members are already
/// in `out`: appends the record's resource ids (those the event does not carry itself), the
/// provenance fields, the closing `}` and the `\n`, and turns raw line breaks into spaces.
///
/// `empty` tells whether no member has been written yet, so no comma is needed before the first id.
pub(crate) fn finish_line(
    event: &ActivityEvent<'_>,
    record: &ActivityRecord<'_>,
    at: &LineContext<'_>,
    empty: bool,
    start: usize,
    out: &mut Vec<u8>,
) {
    let mut empty = empty;
    let (has_cluster, has_instance) = event.has_resource_ids();
    let mut add = |name: &str, value: Option<&str>, out: &mut Vec<u8>| {
        if !empty {
            out.push(b',');
        }
        empty = false;
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        // Serialising a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &value);
    };
    if !has_cluster {
        add("clusterId", record.cluster_id.as_deref(), out);
    }
    if !has_instance {
        add("instanceId", record.instance_id.as_deref(), out);
    }
    add("kinesisShardId", at.shard_id, out);
    add("kinesisSequenceNumber", at.sequence_number, out);
    out.extend_from_slice(b",\"eventIndex\":");
    // Writing a number into a Vec cannot fail; no String is allocated per event.
    let _ = serde_json::to_writer(&mut *out, &at.event_index);
    one_physical_line(out.get_mut(start..).unwrap_or_default());
    out.extend_from_slice(b"}\n");
}

/// Raw CR and LF bytes become spaces. Inside a JSON string they cannot occur (the parser rejects
/// unescaped control characters), so only whitespace between tokens changes.
fn one_physical_line(line: &mut [u8]) {
    let Some(first) = memchr::memchr2(b'\n', b'\r', line) else {
        return;
    };
    for byte in line.iter_mut().skip(first) {
        if *byte == b'\n' || *byte == b'\r' {
            *byte = b' ';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::activity::ParseLimits;

    fn lines(json: &str) -> String {
        let record = ActivityRecord::parse(json.as_bytes(), ParseLimits::default()).unwrap();
        let mut out = Vec::new();
        for (i, event) in record.events.iter().enumerate() {
            write_event_line(event, &record, &LineContext::kinesis("shardId-1", "49", i), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn splices_the_resource_ids_into_the_original_text() {
        let json = r#"{"clusterId":"cluster-A\"1","instanceId":"db-B","databaseActivityEventList":[{"n":1.50,"z":null} , { }]}"#;
        assert_eq!(
            lines(json),
            concat!(
                "{\"n\":1.50,\"z\":null,\"clusterId\":\"cluster-A\\\"1\",\"instanceId\":\"db-B\",",
                "\"kinesisShardId\":\"shardId-1\",\"kinesisSequenceNumber\":\"49\",\"eventIndex\":0}\n",
                "{ \"clusterId\":\"cluster-A\\\"1\",\"instanceId\":\"db-B\",",
                "\"kinesisShardId\":\"shardId-1\",\"kinesisSequenceNumber\":\"49\",\"eventIndex\":1}\n"
            )
        );
    }

    #[test]
    fn keeps_ids_an_event_already_has_and_writes_null_for_missing_ones() {
        let json = r#"{"databaseActivityEventList":[{"clusterId":null,"x":1}]}"#;
        assert_eq!(
            lines(json),
            "{\"clusterId\":null,\"x\":1,\"instanceId\":null,\"kinesisShardId\":\"shardId-1\",\"kinesisSequenceNumber\":\"49\",\"eventIndex\":0}\n"
        );
    }

    #[test]
    fn every_line_is_valid_json() {
        let json = r#"{"clusterId":"c","instanceId":"i","databaseActivityEventList":[{"a":[1,{"b":"}"}]}]}"#;
        for line in lines(json).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["clusterId"], "c");
        }
    }

    #[test]
    fn a_pretty_printed_event_becomes_one_physical_line_with_its_values_unchanged() {
        let json =
            "{\"databaseActivityEventList\":[\r\n  {\r\n    \"commandText\": \"a\\nb\",\n    \"n\": [1,\n 2]\n  }\n]}";
        let out = lines(json);
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(!out.contains('\r'));
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["commandText"], "a\nb", "an escaped line break in a value stays");
        assert_eq!(v["n"], serde_json::json!([1, 2]));
    }

    #[test]
    fn a_record_without_kinesis_metadata_gets_null_provenance_and_its_index() {
        let json = r#"{"databaseActivityEventList":[{"type":"heartbeat"},{"a":1}]}"#;
        let record = ActivityRecord::parse(json.as_bytes(), ParseLimits::default()).unwrap();
        let mut out = Vec::new();
        write_event_line(&record.events[1], &record, &LineContext::unknown_record(1), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["kinesisShardId"].is_null(), v["eventIndex"].as_u64()),
            (true, Some(1))
        );
    }
}
