//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A local moto server for the AWS integration tests.
#[cfg(feature = "aws")]
pub(crate) mod moto;
/// A test double of RDS DescribeDBClusters / DescribeDBInstances with the activity-stream fields.
pub(crate) mod rds_double;

/// A fault-injecting proxy in front of moto (KMS and S3 errors as AWS sends them, slow or no answers).
#[cfg(feature = "aws")]
pub(crate) mod fault;

/// The project virtualenv's Python, where the official `aws-encryption-sdk` is installed by
/// `make venv` (which `make test` runs first). `DAS_PYTHON` overrides it.
pub(crate) fn oracle_python() -> PathBuf {
    venv_tool("python", "DAS_PYTHON", "the Python test oracle")
}

/// `.venv/bin/<name>` of the project virtualenv (made by `make venv`, which `make test` runs first),
/// or the path in `$<override_var>`; panics naming `what` if it is missing.
pub(crate) fn venv_tool(name: &str, override_var: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(override_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin").join(name));
    assert!(
        path.exists(),
        "{what} is not installed at {}: run `make venv` (or `make test`, which does it), or set {override_var}",
        path.display()
    );
    path
}

/// Runs `tests/oracle/esdk_oracle.py <command> <manifest>` and returns its JSON summary.
pub(crate) fn run_oracle(command: &str, manifest: &serde_json::Value, dir: &Path) -> serde_json::Value {
    let manifest_path = dir.join(format!("{command}-manifest.json"));
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/esdk_oracle.py");
    let out = Command::new(oracle_python())
        .arg(script)
        .arg(command)
        .arg(&manifest_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "esdk_oracle.py {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub(crate) fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The archive lines one record payload must yield: every non-heartbeat event with its record's
/// `clusterId` and `instanceId` (provenance fields aside, see [`without_provenance`]).
pub(crate) fn expected_event_lines(payload: &[u8]) -> Vec<serde_json::Value> {
    let payload: serde_json::Value = serde_json::from_slice(payload).unwrap();
    let (cluster, instance) = (payload["clusterId"].clone(), payload["instanceId"].clone());
    payload["databaseActivityEventList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] != "heartbeat")
        .map(|e| {
            let mut e = masked_event(e);
            e["clusterId"] = cluster.clone();
            e["instanceId"] = instance.clone();
            e
        })
        .collect()
}

/// `event` as the archive writes it by default (`DAS_MASK_SQL=literals`), built field by field on
/// the parsed JSON, independently of the line writer that splices masked values into the text:
/// `commandText` masked and fingerprinted, every `paramList` value `"?"`, `errorMessage` and the
/// engine's own audit fields masked.
pub(crate) fn masked_event(event: &serde_json::Value) -> serde_json::Value {
    use das_archiver::mask::{self, fields, Dialect, MaskMode};
    use serde_json::Value;
    let mut event = event.clone();
    let dialect = Dialect::of_server_type(event["serverType"].as_str().unwrap_or_default());
    let Some(fields_of) = event.as_object_mut() else {
        return event;
    };
    let text = fields_of.get("commandText").and_then(Value::as_str).map(str::to_owned);
    if let Some(text) = &text {
        fields_of.insert(
            "commandText".into(),
            mask::mask_sql(text, dialect, MaskMode::Literals).into(),
        );
        if !text.trim().is_empty() {
            fields_of.insert(
                "commandFingerprint".into(),
                mask::fingerprint(text, dialect).to_string().into(),
            );
        }
    }
    if let Some(Value::Array(params)) = fields_of.get_mut("paramList") {
        for param in params.iter_mut().filter(|p| !p.is_null()) {
            *param = "?".into();
        }
    }
    if let Some(Value::String(message)) = fields_of.get_mut("errorMessage") {
        *message = fields::mask_message(message);
    }
    if let Some(Value::Object(native)) = fields_of.get_mut("engineNativeAuditFields") {
        for (key, value) in native.iter_mut().filter(|(_, v)| !v.is_null()) {
            if fields::NATIVE_TEXT_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                *value = mask::mask_sql(value.as_str().unwrap_or("?"), dialect, MaskMode::Literals).into();
            } else if fields::NATIVE_VALUE_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                *value = "?".into();
            }
        }
    }
    event
}

/// An archived line without its provenance fields (`kinesisShardId`, `kinesisSequenceNumber`,
/// `eventIndex`), after checking that it has all three with the right JSON types: the event as the
/// database produced it plus its record's ids, for comparing with what a test encoded.
pub(crate) fn without_provenance(mut line: serde_json::Value) -> serde_json::Value {
    let fields = line.as_object_mut().expect("an archived line is a JSON object");
    let shard = fields.remove("kinesisShardId");
    let sequence = fields.remove("kinesisSequenceNumber");
    let index = fields.remove("eventIndex");
    assert!(
        shard.as_ref().is_some_and(serde_json::Value::is_string)
            && sequence.as_ref().is_some_and(serde_json::Value::is_string)
            && index.as_ref().is_some_and(serde_json::Value::is_u64),
        "every archived line says where it came from: {shard:?} {sequence:?} {index:?}"
    );
    line
}

/// Every file below `root`, as sorted paths relative to it.
pub(crate) fn files_below(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}
