//! One output line per event: the event's original JSON, untouched, plus the `clusterId` and
//! `instanceId` of its record, so each line stands on its own in an archive or a pipe.
//!
//! Lines are built by splicing the two fields into the event's original text rather than by
//! re-serialising it, so field order, number formatting and unknown fields survive byte for byte.

use crate::pipeline::activity::{ActivityEvent, ActivityRecord};

/// Appends `event` as one NDJSON line (with `\n`) to `out`, adding the record's resource ids
/// unless the event already carries fields of those names.
pub fn write_event_line(event: &ActivityEvent<'_>, record: &ActivityRecord<'_>, out: &mut Vec<u8>) {
    let raw = event.raw_json().trim_end();
    // An event is always a JSON object (the parser checked), so it ends with '}'.
    let body = raw.strip_suffix('}').unwrap_or(raw);
    out.extend_from_slice(body.as_bytes());
    finish_line(event, record, body.trim_end() == "{", out);
}

/// Finishes an event line whose opening `{` and members are already in `out`: appends the record's
/// resource ids (those the event does not carry itself), the closing `}` and the `\n`.
///
/// `empty` tells whether no member has been written yet, so no comma is needed before the first id.
pub(crate) fn finish_line(event: &ActivityEvent<'_>, record: &ActivityRecord<'_>, empty: bool, out: &mut Vec<u8>) {
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
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::activity::ParseLimits;

    fn lines(json: &str) -> String {
        let record = ActivityRecord::parse(json.as_bytes(), ParseLimits::default()).unwrap();
        let mut out = Vec::new();
        for event in &record.events {
            write_event_line(event, &record, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn splices_the_resource_ids_into_the_original_text() {
        let json = r#"{"clusterId":"cluster-A\"1","instanceId":"db-B","databaseActivityEventList":[{"n":1.50,"z":null} , { }]}"#;
        assert_eq!(
            lines(json),
            "{\"n\":1.50,\"z\":null,\"clusterId\":\"cluster-A\\\"1\",\"instanceId\":\"db-B\"}\n{ \"clusterId\":\"cluster-A\\\"1\",\"instanceId\":\"db-B\"}\n"
        );
    }

    #[test]
    fn keeps_ids_an_event_already_has_and_writes_null_for_missing_ones() {
        let json = r#"{"databaseActivityEventList":[{"clusterId":null,"x":1}]}"#;
        assert_eq!(lines(json), "{\"clusterId\":null,\"x\":1,\"instanceId\":null}\n");
    }

    #[test]
    fn every_line_is_valid_json() {
        let json = r#"{"clusterId":"c","instanceId":"i","databaseActivityEventList":[{"a":[1,{"b":"}"}]}]}"#;
        for line in lines(json).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["clusterId"], "c");
        }
    }
}
