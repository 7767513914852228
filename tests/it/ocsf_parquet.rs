//! OCSF Parquet objects read back with `pyarrow` (`tests/oracle/ocsf_parquet_read.py`) to exactly
//! the events mapped, sorted by time, one class per object, under the Security Lake partition path.
#![cfg(feature = "ocsf-parquet")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;
use crate::ocsf_corpus;

use std::path::Path;
use std::process::Command;

use das_archiver::pipeline::filter::FilterSpec;
use das_archiver::pipeline::ocsf_parquet::{self, Destination, OcsfParquetError, Span};
use das_archiver::pipeline::simulate::{Engine, Simulator};
use serde_json::{json, Value};

fn read_back(dir: &Path) -> Value {
    let python = common::venv_tool("python", "DAS_PYTHON", "the Python with pyarrow");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ocsf_parquet_read.py");
    let out = Command::new(python).arg(script).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "ocsf_parquet_read.py failed (is pyarrow installed? `make venv`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sorted_by_time(events: &[Value]) -> Vec<Value> {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e["time"].as_i64().unwrap());
    sorted
}

#[test]
fn the_whole_corpus_reads_back_with_pyarrow_as_exactly_the_mapped_events_sorted_by_time() {
    let mut events = ocsf_corpus::all_events();
    // Shuffle deterministically so the sort has work to do.
    events.reverse();
    let bytes = ocsf_parquet::encode(&events).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.parquet"), bytes).unwrap();
    let back = read_back(dir.path());
    let object = &back["all.parquet"];
    assert_eq!(object["class_uids"], json!([6005]));
    assert_eq!(object["compression"], json!(["ZSTD"]));
    let rows = object["rows"].as_array().unwrap();
    assert_eq!(rows.len(), events.len());
    for (row, event) in rows.iter().zip(sorted_by_time(&events)) {
        assert_eq!(row, &event, "metadata.uid {}", event["metadata"]["uid"]);
    }
}

#[test]
fn events_split_by_utc_day_land_under_the_partition_of_their_time() {
    let mut sim = Simulator::new(Engine::AuroraMysql, "cluster-DAYS", "db-DAYS", 3);
    // 2026-11-22T23:59:59.9Z: the 300 events straddle midnight UTC.
    sim.set_clock(1_795_391_999_900_000);
    let raw = sim.events(300);
    let events: Vec<Value> = ocsf_corpus::map_payload(&raw, &FilterSpec::default(), "77")
        .into_iter()
        .flatten()
        .collect();
    let days = ocsf_parquet::split_by_event_day(events.clone());
    assert_eq!(days.keys().collect::<Vec<_>>(), ["20261122", "20261123"]);
    let destination = Destination {
        prefix: "",
        source: "das-archiver",
        region: "us-east-1",
        account: "123456789012",
    };
    let span = Span {
        resource_id: "cluster-DAYS",
        shard_id: "shardId-000000000000",
        first_sequence: "100",
        last_sequence: "199",
    };
    let dir = tempfile::tempdir().unwrap();
    for (day, group) in &days {
        let key = ocsf_parquet::object_key(&destination, &span, day);
        let path = dir.path().join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, ocsf_parquet::encode(group).unwrap()).unwrap();
    }
    let back = read_back(dir.path());
    assert_eq!(back.as_object().unwrap().len(), 2);
    let mut total = 0;
    for (key, object) in back.as_object().unwrap() {
        let day = object["partition"]["eventDay"].as_str().unwrap();
        assert_eq!(object["event_days"], json!([day]), "{key}");
        assert_eq!(object["partition"]["region"], "us-east-1");
        assert_eq!(object["partition"]["accountId"], "123456789012");
        assert!(key.starts_with("ext/das-archiver/region=us-east-1/accountId=123456789012/eventDay="));
        assert!(
            key.ends_with("/cluster-DAYS_shardId-000000000000_100_199.parquet"),
            "{key}"
        );
        let rows = object["rows"].as_array().unwrap();
        assert_eq!(rows, &sorted_by_time(&days[day]), "{key}");
        total += rows.len();
    }
    assert_eq!(total, events.len());
}

#[test]
fn object_keys_are_deterministic_and_the_prefix_gets_its_slash() {
    let span = Span {
        resource_id: "db-ABC",
        shard_id: "shardId-000000000002",
        first_sequence: "1",
        last_sequence: "9",
    };
    let key = |prefix| {
        let destination = Destination {
            prefix,
            source: "rds-das",
            region: "eu-west-1",
            account: "111122223333",
        };
        ocsf_parquet::object_key(&destination, &span, "20261122")
    };
    let expected = "lake/ext/rds-das/region=eu-west-1/accountId=111122223333/eventDay=20261122/db-ABC_shardId-000000000002_1_9.parquet";
    assert_eq!(key("lake"), expected);
    assert_eq!(key("lake/"), expected);
    assert_eq!(key(""), expected.trim_start_matches("lake/"));
    assert_eq!(ocsf_parquet::event_day(1_795_391_999_999), "20261122");
    assert_eq!(ocsf_parquet::event_day(1_795_392_000_000), "20261123");
}

#[test]
fn an_object_refuses_a_second_class_and_an_attribute_without_a_column() {
    let events = ocsf_corpus::all_events();
    let mut mixed = events[..3].to_vec();
    mixed[2]["class_uid"] = json!(4001);
    match ocsf_parquet::encode(&mixed) {
        Err(OcsfParquetError::MixedClasses {
            index: 2,
            expected: 6005,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut unknown = events[..1].to_vec();
    unknown[0]["not_in_the_schema"] = json!("x");
    assert!(matches!(
        ocsf_parquet::encode(&unknown),
        Err(OcsfParquetError::Schema(_))
    ));
    assert!(ocsf_parquet::encode(&[]).is_ok());
}
