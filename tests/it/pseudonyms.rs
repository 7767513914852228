//! Keyed pseudonyms end to end against moto's KMS: `das pseudonym-key new` makes the blob, `das
//! replay` (the Lambda's batch handler) opens it with KMS `Decrypt` and archives
//! `hmac-sha256:<hex>` of each redacted value under the key KMS holds; no clear value reaches the
//! archive. Without a key, or with a key KMS will not open, nothing is archived at all, and the
//! function binary stops at start-up with a message that says what to fix.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lc_rs::hmac;
use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use das_archiver::envelope::ResourceId;
use das_archiver::esdk::RawAesKeyring;
use das_archiver::record::{self, EncodeOptions};
use das_archiver::simulate::{lambda_kinesis_event, Engine, Simulator};
use serde_json::Value;

use crate::common::{self, moto, moto::Moto};

const ARRIVAL: f64 = 1_795_314_600.0; // 2026-11-22 02:30 UTC

/// `das args` against moto, with only the `DAS_*` settings in `vars`.
fn das(moto: &Moto, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_das"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DAS_")) {
        command.env_remove(name);
    }
    command
        .args(args)
        .envs(vars.iter().copied())
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `das pseudonym-key new` under `key_id`: the blob it prints, checked to be the only stdout line.
fn new_blob(moto: &Moto, key_id: &str) -> String {
    let out = das(moto, &["pseudonym-key", "new", "--kms-key-id", key_id], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stderr(&out).contains("DAS_PSEUDONYM_KEY") && stderr(&out).contains("PseudonymKey"));
    stdout.trim().to_owned()
}

/// The plaintext pseudonym key of `blob`, straight from moto's KMS (what only the function sees).
async fn plaintext_key(cfg: &SdkConfig, blob: &str) -> Vec<u8> {
    let blob = base64::engine::general_purpose::STANDARD.decode(blob).unwrap();
    let out = aws_sdk_kms::Client::new(cfg)
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .encryption_context("das-archiver:purpose", "pseudonym-key")
        .send()
        .await
        .unwrap();
    out.plaintext.unwrap().into_inner()
}

fn hmac_hex(key: &[u8], value: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), value.as_bytes());
    format!("hmac-sha256:{}", hex::encode(tag.as_ref()))
}

/// The independent oracle: Python opens `blob` with boto3's `kms.decrypt` (moto at `endpoint`) and
/// gives `hmac-sha256:` + Python's `hmac` HMAC-SHA-256 hex of each value.
const PYTHON_PSEUDONYMS: &str = r#"
import base64, boto3, hashlib, hmac, json, sys
endpoint, blob, values = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
key = kms.decrypt(CiphertextBlob=base64.b64decode(blob),
                  EncryptionContext={"das-archiver:purpose": "pseudonym-key"})["Plaintext"]
assert len(key) == 32
print(json.dumps({v: "hmac-sha256:" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in values}))
"#;

fn python_pseudonyms(moto: &Moto, blob: &str, values: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new(common::oracle_python())
        .args(["-c", PYTHON_PSEUDONYMS, &moto.endpoint, blob])
        .arg(serde_json::to_string(values).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A saved Lambda event of 6 PostgreSQL records (5 events each) under a moto KMS data key, written
/// to `dir`, and the events the archive must hold (unredacted).
async fn saved_event(cfg: &SdkConfig, key_id: &str, dir: &Path) -> (String, Vec<Value>) {
    let (event, expected, _) = saved_event_and_records(cfg, key_id, dir).await;
    (event, expected)
}

/// [`saved_event`], plus a file of its records as Kinesis stores them (for `das decode`) and the
/// data key (hex) they are encrypted under.
async fn saved_event_and_records(cfg: &SdkConfig, key_id: &str, dir: &Path) -> (String, Vec<Value>, (String, String)) {
    let resource = ResourceId::parse("cluster-PSEUDONYMS0001").unwrap();
    let (key, blob) = moto::generate_das_data_key(cfg, key_id, &resource).await;
    let keyring = RawAesKeyring::das(&key).unwrap();
    let engine = Engine::AuroraPostgresql;
    let mut sim = Simulator::new(engine, "cluster-PSEUDONYMS0001", "db-PSEUDONYMS0001", 19);
    let options = EncodeOptions {
        version: engine.record_version().into(),
        esdk: engine.encrypt_options(),
    };
    let (mut data, mut expected) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        let events = sim.events(5);
        let payload = sim.payload(&events);
        data.push(record::encode_with(&payload, &keyring, &blob, &options).unwrap());
        expected.extend(common::expected_event_lines(&payload));
    }
    let arn = format!(
        "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
        resource.stream_name()
    );
    let event = lambda_kinesis_event(&arn, "shardId-000000000000", &data, 0, ARRIVAL);
    let path = dir.join("event.json");
    std::fs::write(&path, serde_json::to_vec(&event).unwrap()).unwrap();
    let records = dir.join("records.json");
    std::fs::write(&records, data.concat()).unwrap();
    let decode = (records.to_str().unwrap().to_owned(), hex::encode(key.as_slice()));
    (path.to_str().unwrap().to_owned(), expected, decode)
}

/// Every archived line below `dir` (gunzipped, without provenance), and the raw text of them all.
fn archived(dir: &Path) -> (Vec<Value>, String) {
    let mut text = String::new();
    for file in common::files_below(dir) {
        assert!(file.ends_with(".ndjson.gz"), "{file}");
        let body = std::fs::read(dir.join(&file)).unwrap();
        text.push_str(&String::from_utf8(das_archiver::gunzip::gunzip(&body, 1 << 30).unwrap()).unwrap());
    }
    let lines = text
        .lines()
        .map(|line| common::without_provenance(serde_json::from_str(line).unwrap()))
        .collect();
    (lines, text)
}

/// `das replay` of `event` into a fresh directory with `vars`: its output and the directory.
fn replay(moto: &Moto, event: &str, vars: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = das(
        moto,
        &["replay", event, "--out-dir", out_dir.path().to_str().unwrap()],
        vars,
    );
    (out, out_dir)
}

#[tokio::test]
async fn replay_archives_the_hmac_of_each_redacted_value_under_the_kms_held_key_and_no_clear_value() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto.start_recording();
    let blob = new_blob(&moto, &key_id);
    moto.stop_recording();
    let made = generate_request(&moto);
    assert_eq!(made["KeySpec"], "AES_256");
    assert_eq!(
        made["EncryptionContext"],
        serde_json::json!({"das-archiver:purpose": "pseudonym-key"})
    );
    let key = plaintext_key(&cfg, &blob).await;
    assert_eq!(key.len(), 32);
    let work = tempfile::tempdir().unwrap();
    let (event, expected, (records, data_key)) = saved_event_and_records(&cfg, &key_id, work.path()).await;
    let vars = [
        ("DAS_REDACT_FIELDS", "dbUserName"),
        ("DAS_PSEUDONYM_KEY", blob.as_str()),
    ];
    let (out, dir) = replay(&moto, &event, &vars);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&blob), "the blob is never printed");
    let (lines, text) = archived(dir.path());
    assert_eq!(lines.len(), expected.len());
    let users: Vec<&str> = expected.iter().map(|e| e["dbUserName"].as_str().unwrap()).collect();
    let python = python_pseudonyms(&moto, &blob, &users);
    let mut pseudonyms: BTreeMap<String, Value> = BTreeMap::new();
    for (got, want) in lines.iter().zip(&expected) {
        let user = want["dbUserName"].as_str().unwrap();
        assert_eq!(got["dbUserName"], hmac_hex(&key, user), "{user}");
        assert_eq!(
            got["dbUserName"], python[user],
            "{user}: Python's hmac under boto3's kms.decrypt"
        );
        assert!(!text.contains(&format!("\"{user}\"")), "{user} is archived in clear");
        if let Some(previous) = pseudonyms.insert(user.to_owned(), got["dbUserName"].clone()) {
            assert_eq!(previous, got["dbUserName"], "one user, two pseudonyms");
        }
        let mut unredacted = got.clone();
        unredacted["dbUserName"] = want["dbUserName"].clone();
        assert_eq!(&unredacted, want, "every other field is archived as without redaction");
    }
    assert!(
        pseudonyms.len() < lines.len(),
        "some user appears twice: {pseudonyms:?}"
    );
    let decode = [
        "decode",
        "--wrapping-key",
        &data_key,
        "--redact-fields",
        "dbUserName",
        "--pseudonym-key",
        &blob,
    ];
    let out = das(&moto, &[&decode[..], &[records.as_str()]].concat(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let decoded: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            // A record read from a file has no shard or sequence number: drop the provenance fields.
            let mut line: Value = serde_json::from_str(line).unwrap();
            for field in ["kinesisShardId", "kinesisSequenceNumber", "eventIndex"] {
                line.as_object_mut().unwrap().remove(field);
            }
            line
        })
        .collect();
    assert_eq!(decoded, lines, "das decode pseudonymises like the function's handler");
}

/// The body of the one `GenerateDataKeyWithoutPlaintext` request moto recorded.
fn generate_request(moto: &Moto) -> Value {
    let requests = moto.recorded_requests();
    let made: Vec<&Value> = requests
        .iter()
        .filter(|r| r.to_string().contains("TrentService.GenerateDataKeyWithoutPlaintext"))
        .collect();
    assert_eq!(made.len(), 1, "{requests:?}");
    assert!(!requests
        .iter()
        .any(|r| r.to_string().contains("TrentService.GenerateDataKey\"")));
    // moto base64-encodes a body it received as bytes.
    let body = made[0]["body"].as_str().unwrap();
    let body = match made[0]["body_encoded"].as_bool() {
        Some(true) => base64::engine::general_purpose::STANDARD.decode(body).unwrap(),
        _ => body.as_bytes().to_vec(),
    };
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn a_new_blob_gives_new_pseudonyms_and_the_old_blob_still_gives_the_old_ones() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    let (old, new) = (new_blob(&moto, &key_id), new_blob(&moto, &key_id));
    let work = tempfile::tempdir().unwrap();
    let (event, _) = saved_event(&cfg, &key_id, work.path()).await;
    let users = |blob: &str| {
        let (out, dir) = replay(
            &moto,
            &event,
            &[("DAS_REDACT_FIELDS", "dbUserName"), ("DAS_PSEUDONYM_KEY", blob)],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        archived(dir.path())
            .0
            .into_iter()
            .map(|l| l["dbUserName"].clone())
            .collect::<Vec<_>>()
    };
    let (before, after) = (users(&old), users(&new));
    // The old blob again, given as the flag this time (over a DAS_PSEUDONYM_KEY of the new one).
    let out_dir = tempfile::tempdir().unwrap();
    let flag = [
        "replay",
        &event,
        "--out-dir",
        out_dir.path().to_str().unwrap(),
        "--pseudonym-key",
        &old,
    ];
    let out = das(
        &moto,
        &flag,
        &[("DAS_REDACT_FIELDS", "dbUserName"), ("DAS_PSEUDONYM_KEY", &new)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let again: Vec<Value> = archived(out_dir.path())
        .0
        .into_iter()
        .map(|l| l["dbUserName"].clone())
        .collect();
    assert!(
        before.iter().zip(&after).all(|(b, a)| b != a),
        "a rotated key correlates nothing"
    );
    assert_eq!(before, again, "the old blob recomputes the old pseudonyms");
}

#[tokio::test]
async fn redacting_without_a_pseudonym_key_is_refused_with_how_to_make_one_and_archives_nothing() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    let work = tempfile::tempdir().unwrap();
    let (event, _) = saved_event(&cfg, &key_id, work.path()).await;
    let (out, dir) = replay(&moto, &event, &[("DAS_REDACT_FIELDS", "dbUserName")]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("DAS_PSEUDONYM_KEY") && message.contains("das pseudonym-key new --kms-key-id <key>"),
        "{message}"
    );
    assert!(common::files_below(dir.path()).is_empty());
}

#[tokio::test]
async fn a_blob_kms_will_not_open_stops_before_anything_is_archived_and_is_never_printed() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    // A data key blob without the pseudonym encryption context: KMS refuses it as a pseudonym key.
    let other = aws_sdk_kms::Client::new(&cfg)
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let blob = base64::engine::general_purpose::STANDARD.encode(other.ciphertext_blob.unwrap().into_inner());
    let work = tempfile::tempdir().unwrap();
    let (event, _) = saved_event(&cfg, &key_id, work.path()).await;
    let vars = [
        ("DAS_REDACT_FIELDS", "dbUserName"),
        ("DAS_PSEUDONYM_KEY", blob.as_str()),
    ];
    let (out, dir) = replay(&moto, &event, &vars);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("KMS Decrypt of the pseudonym key (DAS_PSEUDONYM_KEY) failed with InvalidCiphertextException"),
        "{message}"
    );
    assert!(!message.contains(&blob));
    assert!(common::files_below(dir.path()).is_empty());
}

/// The function binary's cold start with `vars` against moto, and no Runtime API to poll (port 9):
/// whether it exited successfully, and everything it printed.
fn function_cold_start(moto: &Moto, vars: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_das-archiver-lambda"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("DAS_ARCHIVE_BUCKET", "unused")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the function did not stop at start-up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[tokio::test]
async fn the_function_refuses_to_start_redacting_without_a_key_or_with_a_key_kms_will_not_open() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    let (ok, printed) = function_cold_start(&moto, &[("DAS_REDACT_FIELDS", "dbUserName")]);
    assert!(!ok);
    assert!(
        printed.contains("DAS_PSEUDONYM_KEY") && printed.contains("das pseudonym-key new --kms-key-id <key>"),
        "{printed}"
    );
    // A blob made under another encryption context: KMS refuses to open it as a pseudonym key.
    let other = aws_sdk_kms::Client::new(&cfg)
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .encryption_context("das-archiver:purpose", "something-else")
        .send()
        .await
        .unwrap();
    let blob = base64::engine::general_purpose::STANDARD.encode(other.ciphertext_blob.unwrap().into_inner());
    let vars = [
        ("DAS_REDACT_FIELDS", "dbUserName"),
        ("DAS_PSEUDONYM_KEY", blob.as_str()),
    ];
    let (ok, printed) = function_cold_start(&moto, &vars);
    assert!(!ok);
    assert!(
        printed.contains("KMS Decrypt of the pseudonym key (DAS_PSEUDONYM_KEY) failed with InvalidCiphertextException"),
        "{printed}"
    );
    assert!(!printed.contains(&blob), "the blob is never printed: {printed}");
}
