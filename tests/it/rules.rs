//! `das rules check` and `das rules test` end to end: the embedded default pack checks clean, a bad
//! rules file lists every mistake with its line and column, and archived NDJSON lines (simulated
//! traffic plus an attack) give exactly the expected findings, as JSON lines with their events'
//! provenance.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write;
use std::process::{Command, Output};

use das_archiver::pipeline::simulate::{Engine, Simulator};
use serde_json::{json, Value};

const CLUSTER: &str = "cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ";

fn das(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_das")).args(args).output().unwrap()
}

#[test]
fn rules_check_default_prints_a_one_line_summary_and_exits_0() {
    let out = das(&["rules", "check", "default"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("default: 6 rules, valid: privilege-change, destructive-ddl"),
        "{stdout}"
    );
}

#[test]
fn rules_check_prints_every_mistake_with_its_line_and_column_and_exits_1() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        br#"{"rules": [
  {"id": "a", "title": "t", "severity": "SEVERE", "match": {}},
  {"id": "b", "title": "t", "severity": "LOW", "match": {"regex": "("}},
  {"id": "c", "title": "t", "severity": "LOW", "match": {}, "count": {"within": 60}}
]}"#,
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let out = das(&["rules", "check", path]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{path}:2:")) && lines[0].contains("unknown severity `SEVERE`"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{path}:3:")) && lines[1].contains("invalid regex"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(&format!("{path}:4:")) && lines[2].contains("missing field `atLeast`"),
        "{stderr}"
    );
}

/// An archived line: the event plus the archive's resource and provenance fields.
fn archived(mut event: Value, seq: u64, index: u64) -> String {
    let o = event.as_object_mut().unwrap();
    o.insert("clusterId".into(), json!(CLUSTER));
    o.insert("instanceId".into(), json!("db-FZJTMYKCXQBUUZ6VLU7NW3ITCM"));
    o.insert(
        "kinesisShardId".into(),
        json!(format!("shardId-00000000000{}", seq % 2)),
    );
    o.insert("kinesisSequenceNumber".into(), json!(format!("4960{seq:052}")));
    o.insert("eventIndex".into(), json!(index));
    event.to_string()
}

/// `das rules test --rules default` over `lines` written to a file named `*<suffix>`: the findings.
fn rules_test(lines: &[String], suffix: &str) -> Vec<Value> {
    let mut file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    let text = lines.join("\n");
    if suffix.ends_with(".gz") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        file.write_all(&gz.finish().unwrap()).unwrap();
    } else {
        file.write_all(text.as_bytes()).unwrap();
    }
    let out = das(&[
        "rules",
        "test",
        "--rules",
        "default",
        "--events",
        file.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn rules_test_reads_gzip_archive_objects_like_plain_lines() {
    let mut sim = Simulator::new(Engine::AuroraMysql, CLUSTER, "db-FZJTMYKCXQBUUZ6VLU7NW3ITCM", 5);
    let mut lines: Vec<String> = sim
        .events(200)
        .into_iter()
        .enumerate()
        .map(|(i, e)| archived(e, 1, i as u64))
        .collect();
    let mut drop = sim.event(das_archiver::pipeline::simulate::Activity::Read);
    drop["commandText"] = json!("DROP TABLE customers");
    lines.push(archived(drop, 2, 0));
    let plain = rules_test(&lines, ".ndjson");
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0]["ruleId"], "destructive-ddl");
    assert_eq!(rules_test(&lines, ".ndjson.gz"), plain);
}

#[test]
fn rules_test_prints_one_finding_per_attack_among_ordinary_traffic_with_provenance() {
    let mut sim = Simulator::new(Engine::AuroraPostgresql, CLUSTER, "db-FZJTMYKCXQBUUZ6VLU7NW3ITCM", 3);
    let mut lines: Vec<String> = sim
        .events(500)
        .into_iter()
        .enumerate()
        .map(|(i, e)| archived(e, 1, i as u64))
        .collect();
    let base = sim.event(das_archiver::pipeline::simulate::Activity::Read);
    let log_time = base["logTime"].clone();
    let with = |fields: Value| {
        let mut e = base.clone();
        for (k, v) in fields.as_object().unwrap() {
            e[k] = v.clone();
        }
        e["logTime"] = log_time.clone();
        e
    };
    for i in 0..6 {
        let failed = with(
            json!({"class": "MISC", "command": "AUTH FAILURE", "commandText": null, "dbUserName": "mallory", "remoteHost": format!("198.51.100.{i}")}),
        );
        lines.push(archived(failed, 10 + i, 0));
    }
    lines.push(archived(
        with(json!({"class": "DDL", "command": "DROP TABLE", "commandText": "DROP TABLE customers"})),
        20,
        0,
    ));
    // the same record archived twice (a retried batch): one finding still
    lines.push(archived(
        with(json!({"class": "DDL", "command": "DROP TABLE", "commandText": "DROP TABLE customers"})),
        20,
        0,
    ));
    let findings = rules_test(&lines, ".ndjson");
    let rules: Vec<_> = findings.iter().map(|f| f["ruleId"].as_str().unwrap()).collect();
    // The DROP TABLE is one event (same provenance) but a rule without `count` fires per matching line.
    assert_eq!(
        rules,
        ["auth-failure-burst", "destructive-ddl", "destructive-ddl"],
        "{findings:#?}"
    );
    let burst = &findings[0];
    for key in [
        "findingId",
        "ruleId",
        "title",
        "severity",
        "resourceId",
        "dbUserName",
        "remoteHost",
        "count",
        "firstSeen",
        "lastSeen",
        "events",
    ] {
        assert!(burst.get(key).is_some(), "{key} missing: {burst}");
    }
    assert_eq!(
        (burst["count"].as_u64(), burst["dbUserName"].as_str()),
        (Some(5), Some("mallory"))
    );
    assert_eq!(burst["resourceId"], CLUSTER);
    let events = burst["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    for e in events {
        assert!(
            e["kinesisShardId"].is_string() && e["kinesisSequenceNumber"].is_string() && e["eventIndex"].is_u64(),
            "{e}"
        );
    }
    assert_eq!(
        findings[1]["findingId"], findings[2]["findingId"],
        "a retried line gives the same finding id"
    );
}
