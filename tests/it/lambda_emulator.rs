//! The Lambda binary itself, under the Lambda runtime emulator of cargo-lambda (`cargo lambda watch
//! --only-lambda-apis`, the same Runtime API a deployed function polls), answering `cargo lambda invoke`
//! with the sample events against moto; then `das replay` on the same event files. Both must answer
//! the same batch response and write the same S3 objects, byte for byte: replay is how a user debugs
//! a production batch, so it has to do exactly what the function does.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::moto::{self, Moto};

const LAMBDA_BUCKET: &str = "archive-written-by-the-lambda";
const REPLAY_BUCKET: &str = "archive-written-by-das-replay";
const EVENTS: [&str; 4] = [
    "aurora-postgresql.json",
    "aurora-mysql.json",
    "heartbeats-only.json",
    "one-corrupted-record.json",
];

/// The venv's cargo-lambda (installed by `make venv`); `DAS_CARGO_LAMBDA` overrides it.
fn cargo_lambda() -> PathBuf {
    common::venv_tool("cargo-lambda", "DAS_CARGO_LAMBDA", "cargo-lambda")
}

fn aws_env(moto: &Moto) -> [(&'static str, &str); 6] {
    [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("DAS_S3_FORCE_PATH_STYLE", "true"),
    ]
}

fn succeed(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The Runtime API emulator and the function process polling it; both are killed on drop.
struct Emulator {
    port: u16,
    runtime_api: Child,
    function: Child,
}

impl Emulator {
    /// Starts both, the function with `vars` on top of its configuration.
    fn start(moto: &Moto, vars: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let runtime_api = Command::new(cargo_lambda())
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "cargo lambda watch did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The variables cargo-lambda says a function started outside it needs, plus the function's
        // own configuration, as the SAM template sets it (defaults elsewhere).
        let function = Command::new(env!("CARGO_BIN_EXE_das-archiver-lambda"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("DAS_ARCHIVE_BUCKET", LAMBDA_BUCKET)
            .envs(aws_env(moto))
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            port,
            runtime_api,
            function,
        }
    }

    /// `cargo lambda invoke --data-file <event>`: the function's response.
    fn invoke(&self, event: &Path) -> String {
        let out = Command::new(cargo_lambda())
            .args(["lambda", "invoke", "_", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(event)
            .output()
            .unwrap();
        succeed(&format!("cargo lambda invoke {}", event.display()), out)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.runtime_api] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn das_replay_of_the_sample_events_writes_what_the_lambda_writes_under_cargo_lambda() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto::create_bucket(&cfg, LAMBDA_BUCKET).await;
    moto::create_bucket(&cfg, REPLAY_BUCKET).await;

    // The sample events, made the way `make events KMS_KEY_ID=…` makes them: real KMS data keys.
    let events = tempfile::tempdir().unwrap();
    succeed(
        "scripts/sample-events.sh",
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sample-events.sh"))
            .arg(env!("CARGO_BIN_EXE_das"))
            .arg(events.path())
            .env("KMS_KEY_ID", &key_id)
            .envs(aws_env(&moto))
            .output()
            .unwrap(),
    );

    let emulator = Emulator::start(&moto, &[]);
    for name in EVENTS {
        let event = events.path().join(name);
        let from_lambda = emulator.invoke(&event);
        let out = Command::new(env!("CARGO_BIN_EXE_das"))
            .arg("replay")
            .arg(&event)
            .args(["--bucket", REPLAY_BUCKET])
            .env_remove("DAS_WRAPPING_KEY")
            .envs(aws_env(&moto))
            .output()
            .unwrap();
        let from_replay = succeed(&format!("das replay {name}"), out);
        let lambda: serde_json::Value = serde_json::from_str(&from_lambda).unwrap();
        let replay: serde_json::Value = serde_json::from_str(&from_replay).unwrap();
        assert_eq!(lambda, replay, "{name}: the batch responses differ");
        assert_eq!(lambda, serde_json::json!({"batchItemFailures": []}), "{name}");
    }
    drop(emulator);

    let written_by_lambda = moto::read_objects(&cfg, LAMBDA_BUCKET, "").await;
    let written_by_replay = moto::read_objects(&cfg, REPLAY_BUCKET, "").await;
    let keys: Vec<&String> = written_by_lambda.keys().collect();
    assert_eq!(
        keys,
        written_by_replay.keys().collect::<Vec<_>>(),
        "the object keys differ"
    );
    for (key, body) in &written_by_lambda {
        if key.contains("/quarantine/") {
            // A quarantine document names the function that owes its outputs (so `das redrive` finds
            // it): the Lambda's own name, none for `das replay`. Everything else is the same.
            let mut lambda: serde_json::Value = serde_json::from_slice(body).unwrap();
            let mut replay: serde_json::Value = serde_json::from_slice(&written_by_replay[key]).unwrap();
            assert_eq!(lambda["function"].take(), "_", "{key}");
            assert_eq!(replay["function"].take(), serde_json::Value::Null, "{key}");
            assert_eq!(lambda, replay, "{key}: the documents differ");
        } else {
            assert!(written_by_replay[key] == *body, "{key}: the bodies differ");
        }
    }
    // An archive object for each batch with events (more if a batch straddles an hour; the heartbeats
    // write nothing), and the corrupted record in quarantine.
    let archived = keys.iter().filter(|k| k.ends_with(".ndjson.gz")).count();
    let quarantined = keys.iter().filter(|k| k.contains("/quarantine/")).count();
    assert!(archived >= 3 && quarantined == 1, "{keys:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_function_binary_archives_the_same_keyed_pseudonyms_as_das_replay_under_cargo_lambda() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    moto::create_bucket(&cfg, LAMBDA_BUCKET).await;
    moto::create_bucket(&cfg, REPLAY_BUCKET).await;
    let events = tempfile::tempdir().unwrap();
    succeed(
        "scripts/sample-events.sh",
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sample-events.sh"))
            .arg(env!("CARGO_BIN_EXE_das"))
            .arg(events.path())
            .env("KMS_KEY_ID", &key_id)
            .envs(aws_env(&moto))
            .output()
            .unwrap(),
    );
    let new_key = Command::new(env!("CARGO_BIN_EXE_das"))
        .args(["pseudonym-key", "new", "--kms-key-id", &key_id])
        .envs(aws_env(&moto))
        .output()
        .unwrap();
    let blob = succeed("das pseudonym-key new", new_key).trim().to_owned();
    let vars = [
        ("DAS_REDACT_FIELDS", "dbUserName"),
        ("DAS_PSEUDONYM_KEY", blob.as_str()),
    ];

    let emulator = Emulator::start(&moto, &vars);
    let event = events.path().join("aurora-postgresql.json");
    let from_lambda = emulator.invoke(&event);
    drop(emulator);
    let out = Command::new(env!("CARGO_BIN_EXE_das"))
        .arg("replay")
        .arg(&event)
        .args(["--bucket", REPLAY_BUCKET])
        .env_remove("DAS_WRAPPING_KEY")
        .envs(aws_env(&moto))
        .envs(vars)
        .output()
        .unwrap();
    let from_replay = succeed("das replay", out);
    let lambda: serde_json::Value = serde_json::from_str(&from_lambda).unwrap();
    let replay: serde_json::Value = serde_json::from_str(&from_replay).unwrap();
    assert_eq!(
        (&lambda, &replay),
        (&serde_json::json!({"batchItemFailures": []}), &lambda)
    );

    let written_by_lambda = moto::read_objects(&cfg, LAMBDA_BUCKET, "").await;
    assert_eq!(written_by_lambda, moto::read_objects(&cfg, REPLAY_BUCKET, "").await);
    let lines = moto::archived_lines(&cfg, LAMBDA_BUCKET, "activity/").await;
    assert!(!lines.is_empty());
    for line in lines {
        let user = line["dbUserName"].as_str().unwrap();
        assert!(user.starts_with("hmac-sha256:") && user.len() == 12 + 64, "{user}");
    }
}
