//! The decrypted activity payload and its events.
//!
//! Each event is kept as its original JSON text ([`RawValue`]), so it can be written out byte for byte
//! without re-serialising; the handful of fields that filters need are located once and read lazily
//! through accessors that accept strings and numbers alike (engines disagree on the types, see
//! `das-format.md` §1.6). This module never re-serialises a field it does not touch, and never lets
//! an event count beyond [`ParseLimits::max_events`] drive an allocation.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::pipeline::json_error::JsonErrorSummary;

/// The `type` of the decrypted payload.
pub const PAYLOAD_TYPE: &str = "DatabaseActivityMonitoringRecord";
/// The `type` of a heartbeat event.
pub const HEARTBEAT: &str = "heartbeat";

/// Why a decrypted payload is not an activity record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivityError {
    /// The JSON is malformed or lacks `databaseActivityEventList`.
    #[error("activity payload: {0}")]
    Json(JsonErrorSummary),
}

/// Limits on what one payload may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Most events accepted in one record. Default 100,000 (real records hold a few hundred).
    pub max_events: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self { max_events: 100_000 }
    }
}

/// One decrypted DAS payload: `{type, clusterId, instanceId, databaseActivityEventList}`.
#[derive(Debug, Clone)]
pub struct ActivityRecord<'a> {
    /// `DatabaseActivityMonitoringRecord` normally.
    pub payload_type: Option<Cow<'a, str>>,
    /// The Aurora cluster resource id; empty or absent for RDS instances.
    pub cluster_id: Option<Cow<'a, str>>,
    /// The instance resource id.
    pub instance_id: Option<Cow<'a, str>>,
    /// The events and heartbeats, in order.
    pub events: Vec<ActivityEvent<'a>>,
}

impl<'a> ActivityRecord<'a> {
    /// Parses a decompressed payload, borrowing from it.
    pub fn parse(json: &'a [u8], limits: ParseLimits) -> Result<Self, ActivityError> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let record = PayloadSeed { limits }
            .deserialize(&mut de)
            .map_err(|e| ActivityError::Json(JsonErrorSummary::of(&e)))?;
        de.end().map_err(|e| ActivityError::Json(JsonErrorSummary::of(&e)))?;
        Ok(record)
    }
}

struct PayloadSeed {
    limits: ParseLimits,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = ActivityRecord<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed {
    type Value = ActivityRecord<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a databaseActivityEventList array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = ActivityRecord {
            payload_type: None,
            cluster_id: None,
            instance_id: None,
            events: Vec::new(),
        };
        let mut seen_list = false;
        while let Some(key) = map.next_key_seed(StrSeed)? {
            match key.as_ref() {
                "type" => record.payload_type = text(map.next_value::<Option<&'de RawValue>>()?),
                "clusterId" => record.cluster_id = text(map.next_value::<Option<&'de RawValue>>()?),
                "instanceId" => record.instance_id = text(map.next_value::<Option<&'de RawValue>>()?),
                "databaseActivityEventList" => {
                    record.events = map.next_value_seed(EventsSeed { limits: self.limits })?;
                    seen_list = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_list {
            return Err(de::Error::missing_field("databaseActivityEventList"));
        }
        Ok(record)
    }
}

struct EventsSeed {
    limits: ParseLimits,
}

impl<'de> DeserializeSeed<'de> for EventsSeed {
    type Value = Vec<ActivityEvent<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed {
    type Value = Vec<ActivityEvent<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of event objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The size hint is attacker-controlled in principle, so it is capped by the limit.
        let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.limits.max_events).min(1024));
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if events.len() == self.limits.max_events {
                return Err(de::Error::custom(format_args!(
                    "more than {} events in one record (raise the event limit if this is real)",
                    self.limits.max_events
                )));
            }
            let fields = EventFields::deserialize(raw)
                // The inner error is not quoted: it can hold the event's text (see `json_error`).
                .map_err(|_| de::Error::custom(format_args!("event {} is not a JSON object", events.len())))?;
            events.push(ActivityEvent { raw, fields });
        }
        Ok(events)
    }
}

/// Deserialises a JSON string, borrowing it unless it has escapes (serde's own `Cow<str>` always
/// allocates).
pub(crate) struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The fields filters and masking look at, located once per event. Each is the field's raw JSON
/// value (`None` when absent or `null`).
#[derive(Debug, Clone, Default)]
struct EventFields<'a> {
    event_type: Option<&'a RawValue>,
    db_user_name: Option<&'a RawValue>,
    class: Option<&'a RawValue>,
    command: Option<&'a RawValue>,
    database_name: Option<&'a RawValue>,
    object_name: Option<&'a RawValue>,
    client_application: Option<&'a RawValue>,
    remote_host: Option<&'a RawValue>,
    log_time: Option<&'a RawValue>,
    server_type: Option<&'a RawValue>,
    /// `exitCode` (detection rules read it; the last occurrence wins, a repeat is not an error).
    exit_code: Option<&'a RawValue>,
    // The fields masking rewrites (`mask::fields`), located here so a line can be written by
    // splicing their masked values into the event's text instead of re-serialising it.
    command_text: Option<&'a RawValue>,
    param_list: Option<&'a RawValue>,
    error_message: Option<&'a RawValue>,
    engine_native_audit_fields: Option<&'a RawValue>,
    has_cluster_id: bool,
    has_instance_id: bool,
    /// One of the masked fields appears more than once: a splice would mask only one occurrence.
    repeats_sensitive_field: bool,
}

impl<'de> Deserialize<'de> for EventFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventFieldsVisitor)
    }
}

struct EventFieldsVisitor;

impl<'de> Visitor<'de> for EventFieldsVisitor {
    type Value = EventFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = EventFields::default();
        // Which keys were seen, `null` included: a repeated key is caught even after a `null`.
        let mut seen = 0u32;
        while let Some(key) = map.next_key_seed(StrSeed)? {
            let (bit, sensitive, slot) = match key.as_ref() {
                "type" => (0, false, &mut fields.event_type),
                "dbUserName" => (1, false, &mut fields.db_user_name),
                "class" => (2, false, &mut fields.class),
                "command" => (3, false, &mut fields.command),
                "databaseName" => (4, false, &mut fields.database_name),
                "objectName" => (5, false, &mut fields.object_name),
                "clientApplication" => (6, false, &mut fields.client_application),
                "remoteHost" => (7, false, &mut fields.remote_host),
                "logTime" => (8, false, &mut fields.log_time),
                "serverType" => (9, false, &mut fields.server_type),
                "commandText" => (10, true, &mut fields.command_text),
                "paramList" => (11, true, &mut fields.param_list),
                "errorMessage" => (12, true, &mut fields.error_message),
                "engineNativeAuditFields" => (13, true, &mut fields.engine_native_audit_fields),
                "exitCode" => {
                    fields.exit_code = map.next_value::<Option<&'de RawValue>>()?;
                    continue;
                }
                other => {
                    map.next_value::<IgnoredAny>()?;
                    match other {
                        "clusterId" => fields.has_cluster_id = true,
                        "instanceId" => fields.has_instance_id = true,
                        _ => {}
                    }
                    continue;
                }
            };
            let value = map.next_value::<Option<&'de RawValue>>()?;
            if seen & (1 << bit) != 0 {
                // A filter must see one value per field, as before this visitor existed (serde's
                // derive refused duplicates); a masked field is masked at every occurrence instead.
                if !sensitive {
                    return Err(de::Error::custom("an event field appears twice"));
                }
                fields.repeats_sensitive_field = true;
                continue;
            }
            seen |= 1 << bit;
            *slot = value;
        }
        Ok(fields)
    }
}

/// One element of `databaseActivityEventList`: its original JSON plus lenient accessors.
#[derive(Clone)]
pub struct ActivityEvent<'a> {
    raw: &'a RawValue,
    fields: EventFields<'a>,
}

impl fmt::Debug for ActivityEvent<'_> {
    // Events carry SQL text and bind parameters: Debug shows only what identifies the event.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityEvent")
            .field("type", &self.event_type())
            .field("class", &self.class())
            .field("command", &self.command())
            .field("len", &self.raw.get().len())
            .finish()
    }
}

impl<'a> ActivityEvent<'a> {
    /// The event's JSON exactly as the producer wrote it.
    pub fn raw_json(&self) -> &'a str {
        self.raw.get()
    }

    /// Whether the event itself has a `clusterId` / `instanceId` field (DAS events do not).
    pub fn has_resource_ids(&self) -> (bool, bool) {
        (self.fields.has_cluster_id, self.fields.has_instance_id)
    }

    /// `record` or `heartbeat`.
    pub fn event_type(&self) -> Option<Cow<'a, str>> {
        text(self.fields.event_type)
    }

    /// Whether this is a heartbeat rather than database activity.
    pub fn is_heartbeat(&self) -> bool {
        self.event_type().as_deref() == Some(HEARTBEAT)
    }

    /// The database user.
    pub fn db_user_name(&self) -> Option<Cow<'a, str>> {
        text(self.fields.db_user_name)
    }

    /// The event class (`READ`, `WRITE`, `DDL`, `MAIN`, `Standard`, `TABLE`, …).
    pub fn class(&self) -> Option<Cow<'a, str>> {
        text(self.fields.class)
    }

    /// The command (`SELECT`, `CONNECT`, `QUERY`, `LOGON`, …).
    pub fn command(&self) -> Option<Cow<'a, str>> {
        text(self.fields.command)
    }

    /// The database name.
    pub fn database_name(&self) -> Option<Cow<'a, str>> {
        text(self.fields.database_name)
    }

    /// The object the statement touched.
    pub fn object_name(&self) -> Option<Cow<'a, str>> {
        text(self.fields.object_name)
    }

    /// The client application, e.g. `psql`.
    pub fn client_application(&self) -> Option<Cow<'a, str>> {
        text(self.fields.client_application)
    }

    /// The client's address.
    pub fn remote_host(&self) -> Option<Cow<'a, str>> {
        text(self.fields.remote_host)
    }

    /// The log time, as the engine formats it (the format varies by engine).
    pub fn log_time(&self) -> Option<Cow<'a, str>> {
        text(self.fields.log_time)
    }

    /// The engine (`PostgreSQL`, `MySQL`, `oracle`, `SQLSERVER`).
    pub fn server_type(&self) -> Option<Cow<'a, str>> {
        text(self.fields.server_type)
    }

    /// The exit code: a return code (0 success) except in SQL Server, where it is the audit's
    /// `succeeded` flag (1 success); Aurora MySQL writes it as a string, `""` on AUX events.
    pub fn exit_code(&self) -> Option<Cow<'a, str>> {
        text(self.fields.exit_code)
    }

    /// The statement's text. Never log it: it holds whatever values the statement carried.
    pub fn command_text(&self) -> Option<Cow<'a, str>> {
        text(self.fields.command_text)
    }

    /// The fields that can carry statement text or values, by name, each as its raw JSON value
    /// (`None` when the event lacks it).
    pub fn sensitive_fields(&self) -> [(&'static str, Option<&'a RawValue>); 4] {
        [
            ("commandText", self.fields.command_text),
            ("paramList", self.fields.param_list),
            ("errorMessage", self.fields.error_message),
            ("engineNativeAuditFields", self.fields.engine_native_audit_fields),
        ]
    }

    /// Whether one of [`ActivityEvent::sensitive_fields`] appears more than once in the event.
    pub fn repeats_sensitive_field(&self) -> bool {
        self.fields.repeats_sensitive_field
    }

    /// The byte offset in [`ActivityEvent::raw_json`] of `value`, one of this event's field values.
    pub fn offset_of(&self, value: &RawValue) -> Option<usize> {
        // Every field value is a slice of the event's own text (both borrow the payload), so the
        // difference of their addresses is the value's offset in the event.
        let offset = (value.get().as_ptr() as usize).checked_sub(self.raw.get().as_ptr() as usize)?;
        (offset + value.get().len() <= self.raw.get().len()).then_some(offset)
    }
}

/// A scalar field as text: strings unescaped, numbers and booleans as written; null, objects and
/// arrays give `None`.
fn text<'a>(value: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    let raw = value?.get();
    match raw.as_bytes().first()? {
        b'"' => StrSeed.deserialize(&mut serde_json::Deserializer::from_str(raw)).ok(),
        b'n' | b'{' | b'[' => None,
        _ => Some(Cow::Borrowed(raw)),
    }
}

/// Builds a payload JSON the way the producer lays it out (for the encoder and tests).
pub fn payload_json(cluster_id: &str, instance_id: &str, events: &[serde_json::Value]) -> Vec<u8> {
    serde_json::json!({
        "type": PAYLOAD_TYPE,
        "clusterId": cluster_id,
        "instanceId": instance_id,
        "databaseActivityEventList": events,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = r#"{"type":"DatabaseActivityMonitoringRecord","clusterId":"cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ","instanceId":"db-FZJTMYKCXQBUUZ6VLU7NW3ITCM","databaseActivityEventList":[
      {"logTime":"2019-10-30 00:39:49.990579+00","statementId":1,"substatementId":1,"objectType":"TABLE","command":"CREATE TABLE","objectName":"persons","databaseName":"postgres","dbUserName":"rdsadmin","remoteHost":"172.31.3.195","remotePort":"49804","sessionId":"5ce5f7f0.474b","rowCount":null,"commandText":"create table persons(\n id int)","paramList":[],"pid":18251,"clientApplication":"psql","exitCode":null,"class":"DDL","serverVersion":"2.3.1","serverType":"PostgreSQL","serviceName":"Amazon Aurora PostgreSQL-Compatible edition","serverHost":"172.31.3.192","netProtocol":"TCP","dbProtocol":"Postgres 3.0","type":"record","errorMessage":null,"future":{"x":[1,2]}},
      {"type":"heartbeat"}]}"#;

    #[test]
    fn parses_events_and_keeps_their_text_byte_for_byte() {
        let record = ActivityRecord::parse(PG.as_bytes(), ParseLimits::default()).unwrap();
        assert_eq!(record.cluster_id.as_deref(), Some("cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ"));
        assert_eq!(record.events.len(), 2);
        let e = &record.events[0];
        assert!(e.raw_json().starts_with(r#"{"logTime""#) && e.raw_json().ends_with(r#""future":{"x":[1,2]}}"#));
        assert_eq!(e.command().as_deref(), Some("CREATE TABLE"));
        assert_eq!(e.class().as_deref(), Some("DDL"));
        assert_eq!(e.db_user_name().as_deref(), Some("rdsadmin"));
        assert_eq!(e.database_name().as_deref(), Some("postgres"));
        assert_eq!(e.object_name().as_deref(), Some("persons"));
        assert_eq!(e.client_application().as_deref(), Some("psql"));
        assert_eq!(e.remote_host().as_deref(), Some("172.31.3.195"));
        assert_eq!(e.log_time().as_deref(), Some("2019-10-30 00:39:49.990579+00"));
        assert!(!e.is_heartbeat());
        assert!(record.events[1].is_heartbeat());
        assert_eq!(record.events[1].db_user_name(), None);
    }

    #[test]
    fn accessors_accept_numbers_and_unescape_strings() {
        let json = br#"{"databaseActivityEventList":[{"dbUserName":42,"command":"SEL\u0045CT","class":null,"objectName":{"a":1}}]}"#;
        let record = ActivityRecord::parse(json, ParseLimits::default()).unwrap();
        let e = &record.events[0];
        assert_eq!(e.db_user_name().as_deref(), Some("42"));
        assert_eq!(e.command().as_deref(), Some("SELECT"));
        assert_eq!(e.class(), None);
        assert_eq!(e.object_name(), None);
        assert_eq!(record.cluster_id, None);
    }

    #[test]
    fn rejects_payloads_without_an_event_list_or_with_non_object_events() {
        for bad in [
            &br#"{"type":"x"}"#[..],
            br#"{"databaseActivityEventList":[1]}"#,
            br#"[]"#,
            br#"{"databaseActivityEventList":[]} x"#,
        ] {
            assert!(
                ActivityRecord::parse(bad, ParseLimits::default()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn stops_at_the_event_limit() {
        let json = payload_json("c", "i", &vec![serde_json::json!({"type":"heartbeat"}); 11]);
        let err = ActivityRecord::parse(&json, ParseLimits { max_events: 10 }).unwrap_err();
        assert!(err.to_string().contains("more than 10 events"), "{err}");
        assert_eq!(
            ActivityRecord::parse(&json, ParseLimits { max_events: 11 })
                .unwrap()
                .events
                .len(),
            11
        );
    }
}
