//! DAS events as OCSF 1.1.0 **Datastore Activity** events (`class_uid` 6005), the form Amazon
//! Security Lake and its subscribers read.
//!
//! [`map_event`] turns one kept, non-heartbeat event into one OCSF event (a JSON object), mapped from
//! the event *as the filter writes it*: a field the filter drops is absent from the OCSF event too
//! (`commandText` dropped means no `query_info`), a redacted one carries the same keyed pseudonym
//! (`hmac-sha256:…`), never the clear value.
//! What OCSF has no place for goes to `unmapped` as strings, so nothing the NDJSON line holds is lost;
//! the README section "OCSF for Amazon Security Lake" lists every attribute and the `activity_id`
//! rules ([`rules`]).
//!
//! OCSF strings hold at most 65,535 bytes (`string_t`'s `max_len`): a longer value (in practice only
//! `commandText`) is cut at a character boundary below that, and the original length is kept in
//! `unmapped.commandTextLength`; the NDJSON archive always keeps the whole text.
//!
//! This module never does I/O, never reads the clock (an event without a readable `logTime` takes
//! its record's Kinesis arrival time, given in [`Provenance`]), and never panics on an event.

pub mod rules;
pub mod time;

use core::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::pipeline::activity::{ActivityEvent, ActivityRecord};
use crate::pipeline::filter::{Filter, Verdict};
use crate::pipeline::ndjson::LineContext;

pub use rules::{Activity, Dialect, Status};

/// The OCSF schema version every event declares in `metadata.version`.
pub const OCSF_VERSION: &str = "1.1.0";
/// Datastore Activity.
pub const CLASS_UID: i64 = 6005;
/// Application Activity, the category of Datastore Activity.
pub const CATEGORY_UID: i64 = 6;
/// The longest OCSF string (`string_t` `max_len`), in bytes.
pub const MAX_STRING_BYTES: usize = 65_535;
/// The longest `ip_t` value, in characters.
const MAX_IP_CHARS: usize = 40;
/// The profile that allows the `cloud` attribute (listed in `metadata.profiles`).
pub const CLOUD_PROFILE: &str = "cloud";
/// Stands in for a required value the event does not have (an endpoint or an actor).
const UNKNOWN: &str = "unknown";

/// Where an event comes from: the archive's provenance, kept in `metadata` and `cloud`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provenance<'a> {
    /// The stream's resource id (`cluster-…` or `db-…`), also `database.uid`.
    pub resource_id: &'a str,
    /// The Kinesis stream ARN (`metadata.log_name`).
    pub stream_arn: &'a str,
    /// The shard the record came from, e.g. `shardId-000000000000`.
    pub shard_id: &'a str,
    /// The record's Kinesis sequence number.
    pub sequence_number: &'a str,
    /// The event's 0-based position in `databaseActivityEventList`, heartbeats counted.
    pub event_index: usize,
    /// The AWS region (`cloud.region`), e.g. from [`region_and_account`]; empty if unknown.
    pub region: &'a str,
    /// The AWS account id (`cloud.account.uid`); empty if unknown.
    pub account: &'a str,
    /// The record's Kinesis arrival time, epoch milliseconds: the event's `time` when its
    /// `logTime` is missing or unreadable.
    pub arrival_ms: i64,
}

impl Provenance<'_> {
    /// `metadata.uid`: `<shard>:<sequence>:<event index>`, unique per event of a stream.
    pub fn event_uid(&self) -> String {
        format!("{}:{}:{}", self.shard_id, self.sequence_number, self.event_index)
    }

    /// `metadata.correlation_uid`: `<shard>:<sequence>`, shared by the events of one record.
    pub fn record_uid(&self) -> String {
        format!("{}:{}", self.shard_id, self.sequence_number)
    }
}

/// The region and account of an ARN (`arn:aws:kinesis:us-east-1:123456789012:stream/…`), or
/// `None` if it is not an ARN with both.
pub fn region_and_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    if parts.next() != Some("arn") {
        return None;
    }
    let (_partition, _service) = (parts.next()?, parts.next()?);
    let (region, account) = (parts.next()?, parts.next()?);
    (!region.is_empty() && !account.is_empty()).then_some((region, account))
}

/// The OCSF event for `event`, or `None` for a heartbeat or an event the filter leaves out.
///
/// Dropped and redacted fields are applied exactly as in the NDJSON line (the mapping reads that line).
pub fn map_event(
    event: &ActivityEvent<'_>,
    record: &ActivityRecord<'_>,
    provenance: &Provenance<'_>,
    filter: &Filter,
) -> Option<Value> {
    if event.is_heartbeat() || filter.verdict(event) != Verdict::Keep {
        return None;
    }
    let mut line = Vec::with_capacity(event.raw_json().len() + 96);
    let at = LineContext::kinesis(provenance.shard_id, provenance.sequence_number, provenance.event_index);
    filter.write_line(event, record, &at, &mut line);
    map_written_line(&line, provenance)
}

/// The OCSF event for a line that [`Filter::write_line`] just wrote for a kept event: how the
/// pipeline maps what it archives without filtering and writing each event a second time.
pub fn map_written_line(line: &[u8], provenance: &Provenance<'_>) -> Option<Value> {
    // A line from `write_line` is always a JSON object; if it ever were not, the event still maps
    // (from provenance alone) rather than being lost.
    let fields = serde_json::from_slice::<Map<String, Value>>(line).unwrap_or_default();
    map_line(fields, provenance)
}

/// The OCSF event for one archived NDJSON line (an event with its `clusterId` and `instanceId`),
/// already filtered; `None` for a heartbeat. For `das tail --format ocsf` and `das replay`.
pub fn map_line(mut fields: Map<String, Value>, provenance: &Provenance<'_>) -> Option<Value> {
    if fields.get("type").and_then(Value::as_str) == Some(crate::pipeline::activity::HEARTBEAT) {
        return None;
    }
    // The archive line's provenance fields are `metadata.uid` / `correlation_uid` already.
    for key in ["kinesisShardId", "kinesisSequenceNumber", "eventIndex"] {
        fields.remove(key);
    }
    let mut fields = Fields::new(fields);
    let mut out = Map::new();
    classify(&mut fields, &mut out);
    times(&mut fields, provenance, &mut out);
    actor(&mut fields, &mut out);
    endpoints(&mut fields, &mut out);
    datastore(&mut fields, provenance, &mut out);
    metadata(&mut fields, provenance, &mut out);
    out.insert("cloud".into(), cloud(provenance));
    let unmapped = fields.finish();
    if !unmapped.is_empty() {
        out.insert("unmapped".into(), Value::Object(unmapped));
    }
    Some(Value::Object(out))
}

/// `activity_id`, `type_uid`, `status_id` and the constant class attributes.
fn classify(fields: &mut Fields, out: &mut Map<String, Value>) {
    let dialect = Dialect::detect(
        fields.peek("serverType").as_deref(),
        fields.peek("dbProtocol").as_deref(),
    );
    let class = fields.peek("class");
    let command = fields.peek("command");
    let activity = rules::activity(dialect, class.as_deref(), command.as_deref());
    let exit_code = fields.take("exitCode");
    let error = fields.take("errorMessage");
    let status = rules::status(dialect, exit_code.as_deref(), error.as_deref(), command.as_deref());
    // OCSF: for Other, `activity_name` holds the source's own value.
    let activity_name = match (activity, command) {
        (Activity::Other, Some(command)) => clip(command),
        _ => activity.caption().to_owned(),
    };
    out.extend([
        ("activity_id".into(), json!(activity.id())),
        ("activity_name".into(), json!(activity_name)),
        ("category_uid".into(), json!(CATEGORY_UID)),
        ("category_name".into(), json!("Application Activity")),
        ("class_uid".into(), json!(CLASS_UID)),
        ("class_name".into(), json!("Datastore Activity")),
        ("type_uid".into(), json!(CLASS_UID * 100 + activity.id())),
        (
            "type_name".into(),
            json!(format!("Datastore Activity: {}", activity.caption())),
        ),
        ("type_id".into(), json!(1)),
        ("type".into(), json!("Database")),
        ("severity_id".into(), json!(1)),
        ("severity".into(), json!("Informational")),
        ("status_id".into(), json!(status.id())),
        ("status".into(), json!(status.caption())),
    ]);
    if let Some(code) = exit_code {
        out.insert("status_code".into(), json!(clip(code)));
    }
    if let Some(detail) = error {
        out.insert("status_detail".into(), json!(clip(detail)));
    }
}

/// `time` (from `logTime`, else the arrival time), `timezone_offset`, `start_time`, `end_time`.
fn times(fields: &mut Fields, provenance: &Provenance<'_>, out: &mut Map<String, Value>) {
    // `logTime` itself is kept whole in `metadata.original_time`.
    let parsed = fields.peek("logTime").as_deref().and_then(time::parse);
    out.insert(
        "time".into(),
        json!(parsed.map_or(provenance.arrival_ms, |t| t.epoch_ms)),
    );
    if let Some(parsed) = parsed {
        out.insert("timezone_offset".into(), json!(parsed.offset_minutes));
    }
    for (key, attribute) in [("startTime", "start_time"), ("endTime", "end_time")] {
        let Some(text) = fields.take(key) else { continue };
        match time::parse(&text) {
            Some(parsed) => {
                out.insert(attribute.into(), json!(parsed.epoch_ms));
            }
            None => fields.unmap(key, text),
        }
    }
}

/// `actor.user.name` (`dbUserName`) and `actor.session.uid` (`sessionId`).
fn actor(fields: &mut Fields, out: &mut Map<String, Value>) {
    let mut actor = Map::new();
    if let Some(user) = fields.take("dbUserName") {
        actor.insert("user".into(), json!({ "name": clip(user) }));
    }
    if let Some(session) = fields.take("sessionId") {
        actor.insert("session".into(), json!({ "uid": clip(session) }));
    }
    if actor.is_empty() {
        // OCSF requires an actor with a user, session, process or invoker.
        actor.insert("user".into(), json!({ "name": UNKNOWN, "type_id": 0 }));
    }
    out.insert("actor".into(), Value::Object(actor));
}

/// `src_endpoint` (`remoteHost`, `remotePort`) and `dst_endpoint` (`serverHost`, `serverPort`,
/// the record's `instanceId`).
fn endpoints(fields: &mut Fields, out: &mut Map<String, Value>) {
    let mut src = endpoint(fields, "remoteHost", "remotePort");
    if src.is_empty() {
        // OCSF requires `src_endpoint` with an address, a name or an id.
        src.insert("name".into(), json!(UNKNOWN));
    }
    out.insert("src_endpoint".into(), Value::Object(src));
    let mut dst = endpoint(fields, "serverHost", "serverPort");
    if let Some(instance) = fields.take("instanceId") {
        dst.insert("instance_uid".into(), json!(clip(instance)));
    }
    if !dst.is_empty() {
        out.insert("dst_endpoint".into(), Value::Object(dst));
    }
}

/// A network endpoint: `ip` when the host is an IP address (written canonically), else `name`
/// (`[local]`, `localhost`, `master`, a redacted `hmac-sha256:` pseudonym); `port` when it is one.
fn endpoint(fields: &mut Fields, host_key: &str, port_key: &str) -> Map<String, Value> {
    let mut endpoint = Map::new();
    if let Some(host) = fields.take(host_key) {
        match host.trim().parse::<IpAddr>() {
            Ok(ip) if ip.to_string().len() <= MAX_IP_CHARS => endpoint.insert("ip".into(), json!(ip.to_string())),
            _ => endpoint.insert("name".into(), json!(clip(host))),
        };
    }
    if let Some(port) = fields.take(port_key) {
        match port.trim().parse::<u16>() {
            Ok(port) => {
                endpoint.insert("port".into(), json!(port));
            }
            Err(_) => fields.unmap(port_key, port),
        }
    }
    endpoint
}

/// `database` (name, the stream's resource id, relational), `table` (`objectName`) and `query_info`
/// (`commandText`, named by `command`, identified by `statementId`).
fn datastore(fields: &mut Fields, provenance: &Provenance<'_>, out: &mut Map<String, Value>) {
    let mut database = Map::new();
    if let Some(name) = fields.take("databaseName") {
        database.insert("name".into(), json!(clip(name)));
    }
    if !provenance.resource_id.is_empty() {
        database.insert("uid".into(), json!(clip(provenance.resource_id.to_owned())));
    } else if database.is_empty() {
        database.insert("name".into(), json!(UNKNOWN));
    }
    database.insert("type_id".into(), json!(1));
    database.insert("type".into(), json!("Relational"));
    out.insert("database".into(), Value::Object(database));
    // The cluster id is the resource id already; an RDS instance's is empty.
    if let Some(cluster) = fields.take("clusterId").filter(|c| c != provenance.resource_id) {
        fields.unmap("clusterId", cluster);
    }
    if let Some(table) = fields.take("objectName") {
        out.insert("table".into(), json!({ "name": clip(table) }));
    }
    let Some(sql) = fields.take("commandText") else { return };
    let mut query = Map::new();
    if sql.len() > MAX_STRING_BYTES {
        fields.unmap("commandTextLength", sql.len().to_string());
    }
    query.insert("query_string".into(), json!(clip(sql)));
    if let Some(command) = fields.peek("command") {
        query.insert("name".into(), json!(clip(command)));
    }
    match fields.take("statementId") {
        Some(statement) => query.insert("uid".into(), json!(clip(statement))),
        None => query.insert("uid".into(), json!(provenance.event_uid())),
    };
    out.insert("query_info".into(), Value::Object(query));
}

/// `metadata`: version, product, the `cloud` profile, and the archive's provenance.
fn metadata(fields: &mut Fields, provenance: &Provenance<'_>, out: &mut Map<String, Value>) {
    let mut product = Map::new();
    product.insert(
        "name".into(),
        json!(fields.take("serviceName").map_or_else(|| "Amazon RDS".to_owned(), clip)),
    );
    product.insert("vendor_name".into(), json!("AWS"));
    if let Some(version) = fields.take("serverVersion") {
        product.insert("version".into(), json!(clip(version)));
    }
    product.insert("feature".into(), json!({ "name": "Database Activity Streams" }));
    let mut metadata = Map::new();
    metadata.insert("version".into(), json!(OCSF_VERSION));
    metadata.insert("product".into(), Value::Object(product));
    metadata.insert("profiles".into(), json!([CLOUD_PROFILE]));
    metadata.insert("uid".into(), json!(provenance.event_uid()));
    metadata.insert("correlation_uid".into(), json!(provenance.record_uid()));
    metadata.insert("sequence".into(), json!(provenance.event_index));
    metadata.insert("log_name".into(), json!(clip(provenance.stream_arn.to_owned())));
    metadata.insert("log_provider".into(), json!("Amazon Kinesis Data Streams"));
    if let Some(log_time) = fields.take("logTime") {
        metadata.insert("original_time".into(), json!(clip(log_time)));
    }
    if let Some(command) = fields.take("command") {
        metadata.insert("event_code".into(), json!(clip(command)));
    }
    out.insert("metadata".into(), Value::Object(metadata));
}

/// `cloud` (allowed by the `cloud` profile): AWS, with the region and account where known.
fn cloud(provenance: &Provenance<'_>) -> Value {
    let mut cloud = Map::new();
    cloud.insert("provider".into(), json!("AWS"));
    if !provenance.region.is_empty() {
        cloud.insert("region".into(), json!(clip(provenance.region.to_owned())));
    }
    if !provenance.account.is_empty() {
        cloud.insert("account".into(), json!({ "uid": clip(provenance.account.to_owned()) }));
    }
    Value::Object(cloud)
}

/// Cuts `text` to [`MAX_STRING_BYTES`] at a character boundary.
fn clip(mut text: String) -> String {
    if text.len() > MAX_STRING_BYTES {
        let mut end = MAX_STRING_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The event's fields not mapped yet, and those set aside for `unmapped`.
struct Fields {
    left: Map<String, Value>,
    unmapped: Map<String, Value>,
}

impl Fields {
    fn new(left: Map<String, Value>) -> Self {
        Self {
            left,
            unmapped: Map::new(),
        }
    }

    /// A scalar field as text, left in place; `None` for null, `""`, objects and arrays.
    fn peek(&self, key: &str) -> Option<String> {
        self.left.get(key).and_then(scalar_text)
    }

    /// Takes a scalar field as text. Null and `""` vanish (DAS writes them for "nothing"); an
    /// object or array stays for `unmapped`.
    fn take(&mut self, key: &str) -> Option<String> {
        let text = scalar_text(self.left.get(key)?);
        if text.is_some() || !matches!(self.left.get(key), Some(Value::Object(_) | Value::Array(_))) {
            self.left.shift_remove(key);
        }
        text
    }

    /// Sets a taken value aside for `unmapped` (it could not be mapped after all).
    fn unmap(&mut self, key: &str, text: String) {
        self.unmapped.insert(key.to_owned(), Value::String(text));
    }

    /// `unmapped`: every field not mapped, in event order, as strings (objects and arrays as
    /// their JSON text); nulls and the `type` (always `record` here) left out.
    fn finish(self) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in self.left.into_iter().chain(self.unmapped) {
            let text = match value {
                Value::Null => continue,
                _ if key == "type" => continue,
                Value::String(text) => text,
                other => other.to_string(),
            };
            out.insert(key, Value::String(clip(text)));
        }
        out
    }
}

/// A string as is, a number or boolean as its JSON text; `None` for null, `""`, objects, arrays.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if text.is_empty() => None,
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::activity::ParseLimits;
    use crate::pipeline::filter::FilterSpec;

    const PG_SELECT: &str = r#"{"logTime":"2019-10-30 00:39:49.990579+00","statementId":1,"substatementId":1,"objectType":"TABLE","command":"SELECT","objectName":"persons","databaseName":"postgres","dbUserName":"app_user","remoteHost":"172.31.3.195","remotePort":"49804","sessionId":"5ce5f7f0.474b","rowCount":1,"commandText":"select * from persons where id = $1","paramList":["42"],"pid":18251,"clientApplication":"psql","exitCode":null,"class":"READ","serverVersion":"2.3.1","serverType":"PostgreSQL","serviceName":"Amazon Aurora PostgreSQL-Compatible edition","serverHost":"172.31.3.192","netProtocol":"TCP","dbProtocol":"Postgres 3.0","type":"record","errorMessage":null}"#;
    const PG_CONNECT: &str = r#"{"logTime":"2019-10-30 00:40:01.101010+00","command":"CONNECT","databaseName":"rdsadmin","dbUserName":"rdsadmin","remoteHost":"[local]","commandText":null,"paramList":[],"clientApplication":null,"class":"MISC","serverType":"PostgreSQL","type":"record"}"#;
    const CLUSTER: &str = "cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ";
    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/aws-rds-das-cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ";

    fn provenance(index: usize) -> Provenance<'static> {
        Provenance {
            resource_id: CLUSTER,
            stream_arn: ARN,
            shard_id: "shardId-000000000001",
            sequence_number: "4959",
            event_index: index,
            region: "eu-west-1",
            account: "123456789012",
            arrival_ms: 1_700_000_000_000,
        }
    }

    fn payload(events: &[&str]) -> String {
        format!(
            r#"{{"type":"DatabaseActivityMonitoringRecord","clusterId":"{CLUSTER}","instanceId":"db-X","databaseActivityEventList":[{}]}}"#,
            events.join(",")
        )
    }

    fn map_all(spec: &FilterSpec, events: &[&str]) -> Vec<Option<Value>> {
        let json = payload(events);
        let record = ActivityRecord::parse(json.as_bytes(), ParseLimits::default()).unwrap();
        let key = crate::pipeline::filter::PseudonymKey::from_slice(&[9; 32]).unwrap();
        let filter = Filter::with_key(spec, Some(&key)).unwrap();
        let provenance: Vec<_> = (0..events.len()).map(provenance).collect();
        record
            .events
            .iter()
            .zip(&provenance)
            .map(|(event, p)| map_event(event, &record, p, &filter))
            .collect()
    }

    fn one(spec: &FilterSpec, event: &str) -> Value {
        map_all(spec, &[event]).remove(0).unwrap()
    }

    #[test]
    fn a_postgresql_select_maps_to_a_read_with_every_recommended_attribute() {
        let e = one(&FilterSpec::default(), PG_SELECT);
        assert_eq!(
            (e["activity_id"].clone(), e["type_uid"].clone()),
            (json!(1), json!(600_501))
        );
        assert_eq!(
            (e["class_uid"].clone(), e["category_uid"].clone()),
            (json!(6005), json!(6))
        );
        assert_eq!(e["time"], 1_572_395_989_990_i64);
        assert_eq!(
            e["actor"],
            json!({"user": {"name": "app_user"}, "session": {"uid": "5ce5f7f0.474b"}})
        );
        assert_eq!(e["src_endpoint"], json!({"ip": "172.31.3.195", "port": 49804}));
        assert_eq!(e["dst_endpoint"], json!({"ip": "172.31.3.192", "instance_uid": "db-X"}));
        assert_eq!(
            e["database"],
            json!({"name": "postgres", "uid": CLUSTER, "type_id": 1, "type": "Relational"})
        );
        assert_eq!(e["table"], json!({"name": "persons"}));
        assert_eq!(
            e["query_info"],
            json!({"query_string": "select * from persons where id = $1", "name": "SELECT", "uid": "1"})
        );
        assert_eq!(e["status_id"], 0);
        assert_eq!(e["metadata"]["uid"], "shardId-000000000001:4959:0");
        assert_eq!(e["metadata"]["correlation_uid"], "shardId-000000000001:4959");
        assert_eq!(e["metadata"]["profiles"], json!(["cloud"]));
        assert_eq!(e["metadata"]["original_time"], "2019-10-30 00:39:49.990579+00");
        assert_eq!(
            e["cloud"],
            json!({"provider": "AWS", "region": "eu-west-1", "account": {"uid": "123456789012"}})
        );
        let unmapped = e["unmapped"].as_object().unwrap();
        // Masked by default (`mask::fields`): the bind value is gone, the count of values stays.
        assert_eq!(unmapped["paramList"], r#"["?"]"#);
        assert_eq!(unmapped["commandFingerprint"].as_str().map(str::len), Some(16));
        assert_eq!(unmapped["pid"], "18251");
        assert_eq!(unmapped["class"], "READ");
        assert!(unmapped.values().all(Value::is_string));
        for mapped in [
            "commandText",
            "logTime",
            "dbUserName",
            "remoteHost",
            "clusterId",
            "type",
            "exitCode",
        ] {
            assert!(!unmapped.contains_key(mapped), "{mapped}");
        }
    }

    #[test]
    fn hosts_that_are_not_ip_addresses_are_names_and_ports_are_integers_or_unmapped() {
        let e = one(&FilterSpec::default(), PG_CONNECT);
        assert_eq!(e["activity_id"], 3);
        assert_eq!(e["src_endpoint"], json!({"name": "[local]"}));
        assert!(e.get("query_info").is_none() && e.get("table").is_none());
        let odd = r#"{"remoteHost":" ::FFFF:10.0.0.1 ","remotePort":"99999","serverHost":"master","command":"QUERY","type":"record"}"#;
        let e = one(&FilterSpec::default(), odd);
        assert_eq!(e["src_endpoint"], json!({"ip": "::ffff:10.0.0.1"}));
        assert_eq!(e["unmapped"]["remotePort"], "99999");
        assert_eq!(e["dst_endpoint"]["name"], "master");
    }

    #[test]
    fn heartbeats_and_filtered_events_are_never_mapped() {
        let spec = FilterSpec {
            exclude_users: vec!["rds*".into()],
            ..FilterSpec::default()
        };
        let mapped = map_all(&spec, &[PG_SELECT, r#"{"type":"heartbeat"}"#, PG_CONNECT]);
        assert!(mapped[0].is_some() && mapped[1].is_none() && mapped[2].is_none());
    }

    #[test]
    fn dropped_and_redacted_fields_are_dropped_and_redacted_in_the_ocsf_event_too() {
        let dropping = FilterSpec {
            drop_fields: vec!["commandText".into(), "paramList".into()],
            redact_fields: vec!["dbUserName".into(), "remoteHost".into()],
            ..FilterSpec::default()
        };
        let e = one(&dropping, PG_SELECT);
        assert!(e.get("query_info").is_none());
        assert!(!e.to_string().contains("select * from") && !e.to_string().contains("\"42\""));
        // Python's hmac.new(bytes([9] * 32), value, hashlib.sha256).hexdigest(), as in the NDJSON line.
        assert_eq!(
            e["actor"]["user"]["name"],
            "hmac-sha256:4ef558f67917f307b98987b0ff06b19559231344d0f4b2a6000fdf1fae79176b"
        );
        assert!(!e.to_string().contains("app_user") && !e.to_string().contains("172.31.3.195"));
        assert_eq!(
            e["src_endpoint"]["name"],
            "hmac-sha256:68f1c4cc5c056139280b7a96a0b30760a5c76b1cf1df92a86b49a3757563302b"
        );
        let redacting = FilterSpec {
            redact_fields: vec!["commandText".into()],
            ..FilterSpec::default()
        };
        let e = one(&redacting, PG_SELECT);
        assert_eq!(
            e["query_info"]["query_string"],
            "hmac-sha256:3964a7d2047a0e61718e2db7e0bbf16caff3dbc7f92afb8d4d0c8073184e1446"
        );
        assert!(!e.to_string().contains("where id ="));
    }

    #[test]
    fn sql_longer_than_an_ocsf_string_is_cut_at_a_character_boundary_and_its_length_kept() {
        let sql = format!("select '{}'", "é".repeat(40_000));
        let event = json!({"commandText": sql, "command": "SELECT", "type": "record"}).to_string();
        let unmasked = FilterSpec {
            mask_sql: crate::pipeline::mask::MaskMode::Off,
            ..FilterSpec::default()
        };
        let e = one(&unmasked, &event);
        let kept = e["query_info"]["query_string"].as_str().unwrap();
        assert!(kept.len() <= MAX_STRING_BYTES && kept.len() > MAX_STRING_BYTES - 4);
        assert!(sql.starts_with(kept));
        assert_eq!(e["unmapped"]["commandTextLength"], sql.len().to_string());
    }

    #[test]
    fn an_event_without_a_readable_log_time_takes_the_arrival_time_and_keeps_the_text() {
        let e = one(&FilterSpec::default(), r#"{"logTime":"soon","type":"record"}"#);
        assert_eq!(e["time"], 1_700_000_000_000_i64);
        assert_eq!(e["metadata"]["original_time"], "soon");
        assert!(e.get("timezone_offset").is_none());
        let bare = one(&FilterSpec::default(), "{}");
        assert_eq!(bare["time"], 1_700_000_000_000_i64);
        assert_eq!(bare["actor"]["user"]["name"], "unknown");
        assert_eq!(bare["src_endpoint"]["name"], "unknown");
        assert_eq!(bare["activity_id"], 99);
    }

    #[test]
    fn exit_codes_give_the_status_per_engine() {
        let cases = [
            (r#"{"serverType":"SQLSERVER","exitCode":1}"#, 1),
            (r#"{"serverType":"SQLSERVER","exitCode":0}"#, 2),
            (r#"{"serverType":"oracle","exitCode":0}"#, 1),
            (r#"{"serverType":"oracle","exitCode":1017}"#, 2),
            (r#"{"serverType":"MySQL","exitCode":"0"}"#, 1),
            (r#"{"serverType":"MySQL","exitCode":""}"#, 0),
            (
                r#"{"serverType":"PostgreSQL","exitCode":null,"errorMessage":"permission denied"}"#,
                2,
            ),
            (r#"{"serverType":"SQLSERVER","command":"LOGIN FAILED"}"#, 2),
        ];
        for (event, status) in cases {
            let e = one(&FilterSpec::default(), event);
            assert_eq!(e["status_id"], status, "{event}");
        }
        let e = one(&FilterSpec::default(), cases[6].0);
        assert_eq!(e["status_detail"], "permission denied");
    }

    #[test]
    fn start_and_end_times_become_epoch_milliseconds_or_stay_unmapped() {
        let event = r#"{"startTime":"2020-01-01 10:00:00.000000+00","endTime":"later","type":"record"}"#;
        let e = one(&FilterSpec::default(), event);
        assert_eq!(e["start_time"], 1_577_872_800_000_i64);
        assert!(e.get("end_time").is_none());
        assert_eq!(e["unmapped"]["endTime"], "later");
    }

    #[test]
    fn region_and_account_come_from_the_stream_arn() {
        assert_eq!(region_and_account(ARN), Some(("eu-west-1", "123456789012")));
        assert_eq!(region_and_account("arn:aws:kinesis::123:stream/x"), None);
        assert_eq!(region_and_account("not an arn"), None);
    }

    #[test]
    fn map_line_maps_an_archived_ndjson_line_like_the_event() {
        let json = payload(&[PG_SELECT]);
        let record = ActivityRecord::parse(json.as_bytes(), ParseLimits::default()).unwrap();
        let mut line = Vec::new();
        let at = LineContext::kinesis("shardId-000000000000", "1", 0);
        let mask = crate::pipeline::mask::MaskMode::Literals;
        crate::pipeline::ndjson::write_masked_event_line(&record.events[0], &record, &at, mask, &mut line);
        let fields = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            map_line(fields, &provenance(0)),
            Some(one(&FilterSpec::default(), PG_SELECT))
        );
        let heartbeat = serde_json::from_str(r#"{"type":"heartbeat"}"#).unwrap();
        assert_eq!(map_line(heartbeat, &provenance(0)), None);
    }
}
