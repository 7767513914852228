//! Every OCSF event the mapping produces validates against the OCSF 1.1.0 `datastore_activity`
//! JSON Schema with the profiles it lists (`tests/oracle/ocsf_validate.py`: the compiled schemas of
//! the `ocsf-json-schema` package, validated by `jsonschema`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;
use crate::ocsf_corpus;

use std::path::Path;
use std::process::Command;

#[test]
fn every_mapped_event_validates_against_the_ocsf_1_1_0_datastore_activity_schema() {
    let events = ocsf_corpus::all_events();
    assert!(events
        .iter()
        .all(|e| e["metadata"]["version"] == "1.1.0" && e["class_uid"] == 6005));
    assert!(events
        .iter()
        .all(|e| e["metadata"]["profiles"] == serde_json::json!(["cloud"])));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.json");
    std::fs::write(&path, serde_json::to_vec(&events).unwrap()).unwrap();
    let python = common::venv_tool("python", "DAS_PYTHON", "the Python with ocsf-json-schema");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ocsf_validate.py");
    let out = Command::new(python).arg(script).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "ocsf_validate.py failed (is ocsf-json-schema installed? `make venv`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["validated"], events.len());
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary:#}");
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    // The check has teeth: a host name as `ip`, a string port, `cloud` without its profile.
    let mut events = ocsf_corpus::all_events();
    events.truncate(1);
    let mut bad = events[0].clone();
    bad["src_endpoint"]["ip"] = "local machine".into();
    bad["src_endpoint"]["port"] = "5432".into();
    bad["metadata"]["profiles"] = serde_json::json!([]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, serde_json::to_vec(&[bad]).unwrap()).unwrap();
    let python = common::venv_tool("python", "DAS_PYTHON", "the Python with ocsf-json-schema");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ocsf_validate.py");
    let out = Command::new(python).arg(script).arg(&path).output().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = summary["errors"].to_string();
    assert!(errors.contains("src_endpoint/ip"), "{errors}");
    assert!(errors.contains("src_endpoint/port"), "{errors}");
    assert!(errors.contains("cloud"), "{errors}");
}
