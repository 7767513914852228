//! The events the OCSF tests run through the mapping: every row of the README's `activity_id` table,
//! simulated events of the four engines, heartbeats and the odd events of the test corpus.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use das_archiver::pipeline::activity::{ActivityRecord, ParseLimits};
use das_archiver::pipeline::filter::{Filter, FilterSpec};
use das_archiver::pipeline::ocsf::{self, Provenance};
use das_archiver::pipeline::simulate::{Activity, Engine, Simulator};
use serde_json::{json, Value};

/// One row of the README table "OCSF for Amazon Security Lake": the engine's `serverType`, the
/// event's `class` and `command`, and the `activity_id` it must get.
pub(crate) struct Row {
    pub(crate) server_type: &'static str,
    pub(crate) class: &'static str,
    pub(crate) command: &'static str,
    pub(crate) activity_id: i64,
}

const fn row(server_type: &'static str, class: &'static str, command: &'static str, activity_id: i64) -> Row {
    Row {
        server_type,
        class,
        command,
        activity_id,
    }
}

/// Every README row, each command it names spelled out.
pub(crate) const ROWS: &[Row] = &[
    // Aurora PostgreSQL: `class` and `command`.
    row("PostgreSQL", "MISC", "CONNECT", 3),
    row("PostgreSQL", "MISC", "DISCONNECT", 3),
    row("PostgreSQL", "CONNECT", "AUTHENTICATE", 3),
    row("PostgreSQL", "READ", "SELECT", 1),
    row("PostgreSQL", "WRITE", "INSERT", 5),
    row("PostgreSQL", "WRITE", "UPDATE", 2),
    row("PostgreSQL", "WRITE", "DELETE", 7),
    row("PostgreSQL", "WRITE", "TRUNCATE TABLE", 7),
    row("PostgreSQL", "DDL", "DROP TABLE", 7),
    row("PostgreSQL", "DDL", "CREATE TABLE", 6),
    row("PostgreSQL", "DDL", "ALTER TABLE", 2),
    row("PostgreSQL", "ROLE", "GRANT", 2),
    row("PostgreSQL", "ROLE", "REVOKE", 2),
    row("PostgreSQL", "ROLE", "CREATE ROLE", 6),
    row("PostgreSQL", "WRITE", "COPY", 5),
    row("PostgreSQL", "READ", "COPY", 1),
    row("PostgreSQL", "READ", "FETCH", 1),
    row("PostgreSQL", "WRITE", "MERGE", 5),
    row("PostgreSQL", "FUNCTION", "DO", 99),
    row("PostgreSQL", "MISC", "VACUUM", 99),
    row("PostgreSQL", "MISC", "SET", 99),
    // Aurora MySQL: MAIN and AUX events.
    row("MySQL", "MAIN", "CONNECT", 3),
    row("MySQL", "MAIN", "DISCONNECT", 3),
    row("MySQL", "MAIN", "FAILED_CONNECT", 3),
    row("MySQL", "MAIN", "CHANGEUSER", 3),
    row("MySQL", "MAIN", "QUERY", 4),
    row("MySQL", "AUX", "READ", 1),
    row("MySQL", "AUX", "WRITE", 5),
    row("MySQL", "AUX", "CREATE", 6),
    row("MySQL", "AUX", "DROP", 7),
    row("MySQL", "AUX", "ALTER", 2),
    row("MySQL", "AUX", "RENAME", 2),
    row("MySQL", "AUX", "FLUSH", 99),
    // RDS for Oracle: `command` is ACTION_NAME.
    row("oracle", "Standard", "LOGON", 3),
    row("oracle", "Standard", "LOGOFF", 3),
    row("oracle", "Standard", "LOGOFF BY CLEANUP", 3),
    row("oracle", "Standard", "SELECT", 1),
    row("oracle", "Standard", "INSERT", 5),
    row("oracle", "Standard", "MERGE", 5),
    row("oracle", "Standard", "UPDATE", 2),
    row("oracle", "Standard", "DELETE", 7),
    row("oracle", "Standard", "TRUNCATE TABLE", 7),
    row("oracle", "Standard", "DROP TABLE", 7),
    row("oracle", "Standard", "CREATE TABLE", 6),
    row("oracle", "Standard", "ALTER DATABASE", 2),
    row("oracle", "Standard", "GRANT", 2),
    row("oracle", "Standard", "EXECUTE", 99),
    row("oracle", "Standard", "COMMIT", 99),
    // RDS for SQL Server: `command` is the audit action name.
    row("SQLSERVER", "LOGIN", "LOGIN SUCCEEDED", 3),
    row("SQLSERVER", "LOGIN", "LOGIN FAILED", 3),
    row("SQLSERVER", "LOGIN", "LOGOUT", 3),
    row("SQLSERVER", "TABLE", "SELECT", 1),
    row("SQLSERVER", "TABLE", "INSERT", 5),
    row("SQLSERVER", "TABLE", "UPDATE", 2),
    row("SQLSERVER", "TABLE", "DELETE", 7),
    row("SQLSERVER", "TABLE", "DROP", 7),
    row("SQLSERVER", "SCHEMA", "CREATE", 6),
    row("SQLSERVER", "TABLE", "ALTER", 2),
    row("SQLSERVER", "OBJECT", "EXECUTE", 99),
];

/// The engine whose simulated events look like `server_type`'s.
fn engine_of(server_type: &str) -> Engine {
    match server_type {
        "PostgreSQL" => Engine::AuroraPostgresql,
        "MySQL" => Engine::AuroraMysql,
        "oracle" => Engine::Oracle,
        _ => Engine::SqlServer,
    }
}

/// An event of `row`'s engine, shaped like that engine's (a simulated read), with the row's
/// `class` and `command`.
pub(crate) fn row_event(row: &Row) -> Value {
    let mut event = Simulator::new(engine_of(row.server_type), "cluster-ROWS", "db-ROWS", 11).event(Activity::Read);
    event["class"] = json!(row.class);
    event["command"] = json!(row.command);
    event
}

/// Odd events: what the parser and filter tests feed in, and shapes the engines may write.
pub(crate) fn odd_events() -> Vec<Value> {
    let long_sql = format!("SELECT '{}'", "ü".repeat(40_000));
    vec![
        json!({}),
        json!({"type": "record"}),
        json!({"type": "record", "logTime": null, "dbUserName": null, "remoteHost": null}),
        json!({"type": "record", "dbUserName": 42, "command": "SEL\u{45}CT", "class": null, "objectName": {"a": 1}}),
        json!({"type": "record", "remoteHost": "[local]", "remotePort": "", "serverHost": "master", "serverPort": 3306}),
        json!({"type": "record", "remoteHost": "fe80::1%eth0", "remotePort": "70000"}),
        json!({"type": "record", "remoteHost": "2001:db8::ff00:42:8329", "remotePort": 5432}),
        json!({"type": "record", "remoteHost": "::ffff:10.0.0.1", "sessionId": 123456789012_i64}),
        json!({"type": "record", "logTime": "not a time", "startTime": "2020-01-01 10:00:00+00", "endTime": "x"}),
        json!({"type": "record", "logTime": "2022-10-06 21:24:59.9422268+00", "exitCode": 1, "serverType": "SQLSERVER"}),
        json!({"type": "record", "commandText": long_sql, "command": "SELECT", "statementId": "0x03"}),
        json!({"type": "record", "commandText": "", "errorMessage": "", "exitCode": ""}),
        json!({"type": "record", "engineNativeAuditFields": {"OS_USER": "rdsdb", "n": [1, 2]}, "paramList": ["a", 1, null]}),
        json!({"type": "record", "future": {"x": [1, 2]}, "rowCount": 1.5, "flag": true}),
        json!({"type": "record", "clusterId": "own", "instanceId": "own-db", "databaseName": ""}),
        json!({"type": "record", "dbUserName": "ü".repeat(70_000)}),
    ]
}

/// Provenance of the `index`-th event of record `sequence`.
pub(crate) fn provenance(sequence: &str, index: usize) -> Provenance<'_> {
    Provenance {
        resource_id: "cluster-OCSFTEST",
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-OCSFTEST",
        shard_id: "shardId-000000000000",
        sequence_number: sequence,
        event_index: index,
        region: "us-east-1",
        account: "123456789012",
        arrival_ms: 1_795_000_000_000,
    }
}

/// Maps every event of a payload holding `events` (heartbeats give `None`).
pub(crate) fn map_payload(events: &[Value], spec: &FilterSpec, sequence: &str) -> Vec<Option<Value>> {
    let json = das_archiver::pipeline::activity::payload_json("cluster-OCSFTEST", "db-OCSFTEST", events);
    let record = ActivityRecord::parse(&json, ParseLimits::default()).unwrap();
    let key = das_archiver::pipeline::filter::PseudonymKey::from_slice(&[9; 32]).unwrap();
    let filter = Filter::with_key(spec, Some(&key)).unwrap();
    record
        .events
        .iter()
        .enumerate()
        .map(|(i, event)| ocsf::map_event(event, &record, &provenance(sequence, i), &filter))
        .collect()
}

/// The filter settings the corpus runs under: none, and dropping plus redacting.
pub(crate) fn specs() -> Vec<FilterSpec> {
    vec![
        FilterSpec::default(),
        FilterSpec {
            drop_fields: vec!["paramList".into(), "commandText".into()],
            redact_fields: vec![
                "dbUserName".into(),
                "remoteHost".into(),
                "remotePort".into(),
                "logTime".into(),
            ],
            ..FilterSpec::default()
        },
        FilterSpec {
            redact_fields: vec!["commandText".into(), "sessionId".into()],
            ..FilterSpec::default()
        },
    ]
}

/// Every OCSF event of the corpus: all rows, 200 simulated events (plus a heartbeat) per engine,
/// the odd events, under each filter setting.
pub(crate) fn all_events() -> Vec<Value> {
    let mut out = Vec::new();
    for (s, spec) in specs().iter().enumerate() {
        let rows: Vec<Value> = ROWS.iter().map(row_event).collect();
        out.extend(map_payload(&rows, spec, &format!("{s}01")).into_iter().flatten());
        for (e, engine) in Engine::ALL.into_iter().enumerate() {
            let mut sim = Simulator::new(engine, "cluster-SIM", "db-SIM", 5 + e as u64);
            let mut events = sim.events(200);
            events.push(sim.heartbeat());
            let mapped = map_payload(&events, spec, &format!("{s}1{e}"));
            assert!(mapped.last().unwrap().is_none(), "a heartbeat was mapped");
            out.extend(mapped.into_iter().flatten());
        }
        out.extend(
            map_payload(&odd_events(), spec, &format!("{s}02"))
                .into_iter()
                .flatten(),
        );
    }
    out
}
