//! `make smoke`'s rehearsal script (scripts/smoke.py) in its local mode, against moto: every step the local
//! AWS server supports runs here (stream, KMS keys with the rehearsal's key policy, `das simulate` with real
//! KMS data keys, the function binary under cargo-lambda's Runtime API emulator fed the stream's batches,
//! the archive and its line counts, quarantine of two poison records, `das fleet status`, `das redrive`,
//! cleanup), and the script must say which steps it skipped. RDS is the double of
//! tests/it/common/rds_double.rs (moto's RDS has no activity-stream fields), so `das fleet status` lists
//! the rehearsal's cluster.
//!
//! The real-account path (`sam build`/`sam deploy`, the event-source mapping, Athena) never runs here:
//! this machine has no AWS access.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::moto::Moto;
use common::rds_double::{FakeDb, RdsDouble};
use serde_json::Value;

const CLUSTER: &str = "cluster-SMOKETESTAAAAAAAAAAAAAAAAA1";

/// `scripts/smoke.py ARGS` in local mode against `moto` (RDS on the double), with the test's binaries.
fn smoke(moto: &Moto, rds: &RdsDouble, args: &[&str]) -> Output {
    Command::new(common::oracle_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/smoke.py"))
        .args(["--endpoint-url", &moto.endpoint, "--json"])
        .args(["--das", env!("CARGO_BIN_EXE_das")])
        .args(["--lambda-binary", env!("CARGO_BIN_EXE_das-archiver-lambda")])
        .args(["--timeout", "120"])
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL_RDS", &rds.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

/// The script's JSON summary (its last stdout line), after checking the exit code.
fn summary(out: &Output, code: i32) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "smoke.py exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}

/// Runs a boto3 script against moto (`c(service)` makes a client) and returns the JSON it prints.
fn boto(moto: &Moto, script: &str) -> Value {
    let preamble = format!(
        "import boto3, json\n\
         c = lambda s: boto3.client(s, endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='testing', aws_secret_access_key='testing')\n",
        moto.endpoint
    );
    let out = Command::new(common::oracle_python())
        .args(["-c", &format!("{preamble}{script}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What is left in moto of the rehearsal's resources: streams, keys not pending deletion, aliases,
/// buckets, functions, mappings, roles.
fn leftovers(moto: &Moto) -> Value {
    boto(
        moto,
        "kms = c('kms')\n\
         keys = [k['KeyId'] for k in kms.list_keys()['Keys']]\n\
         print(json.dumps({\n\
           'streams': c('kinesis').list_streams()['StreamNames'],\n\
           'keys_not_pending_deletion': [k for k in keys \
             if kms.describe_key(KeyId=k)['KeyMetadata']['KeyState'] != 'PendingDeletion'],\n\
           'keys': len(keys),\n\
           'aliases': [a['AliasName'] for a in kms.list_aliases()['Aliases'] if 'smoke' in a['AliasName']],\n\
           'buckets': [b['Name'] for b in c('s3').list_buckets()['Buckets']],\n\
           'functions': [f['FunctionName'] for f in c('lambda').list_functions()['Functions']],\n\
           'mappings': len(c('lambda').list_event_source_mappings()['EventSourceMappings']),\n\
           'roles': [r['RoleName'] for r in c('iam').list_roles()['Roles']],\n\
         }))\n",
    )
}

fn assert_nothing_left(moto: &Moto, keys_created: u64) {
    let left = leftovers(moto);
    assert_eq!(
        left,
        serde_json::json!({
            "streams": [], "keys_not_pending_deletion": [], "keys": keys_created, "aliases": [], "buckets": [],
            "functions": [], "mappings": 0, "roles": [],
        }),
        "everything the rehearsal created is deleted, its keys scheduled for deletion"
    );
}

fn rds_with_the_rehearsal_cluster() -> RdsDouble {
    RdsDouble::start(vec![FakeDb::cluster("smoke", CLUSTER, Some("started"))])
}

fn step_status(summary: &Value, name: &str) -> String {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {summary}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_rehearsal_archives_every_event_quarantines_both_poison_records_redrives_one_and_cleans_up() {
    let moto = Moto::start();
    let rds = rds_with_the_rehearsal_cluster();
    let s = summary(&smoke(&moto, &rds, &["--resource-id", CLUSTER]), 0);

    // The defaults: 200 records, every 10th heartbeat-only, 180 × 10 events, every one archived once.
    assert_eq!(s["expected_events"], 1800, "{s}");
    assert_eq!(s["archive"]["lines"], 1800, "{s}");
    assert_eq!(s["archive"]["distinct_events"], 1800, "{s}");
    let per_object: u64 = s["archive"]["per_object"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(per_object, 1800, "the objects' line counts add up: {s}");
    assert!(
        s["archive"]["objects"].as_u64().unwrap() >= 2,
        "batches of 100 records: {s}"
    );

    // The corrupt record and the record under the key the function was not given.
    assert_eq!(s["quarantined"], 2, "{s}");
    let reasons = s["quarantine_reasons"].to_string();
    assert!(
        reasons.contains("not valid base64") && reasons.contains("IncorrectKeyException"),
        "{reasons}"
    );
    // Redrive with both keys configured archives the second and keeps the first, saying so (exit 1).
    let redrive = &s["redrive"];
    assert_eq!(
        (
            &redrive["redriven"],
            &redrive["still_failing"],
            &redrive["events_archived"],
            &redrive["exit_code"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(10), &Value::from(1)),
        "{s}"
    );
    assert_eq!(s["archive_after_redrive"]["lines"], 1810, "{s}");
    assert_eq!(s["archive_after_redrive"]["quarantined"], 1, "{s}");

    assert_eq!(s["fleet"]["verdict"], "ok", "{s}");
    assert_eq!(s["fleet"]["mapping_state"], "Enabled", "{s}");

    // What the local server cannot do is skipped, and said so.
    let skipped: Vec<&str> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        ["sam build + sam deploy", "event-source mapping", "athena"],
        "{s}"
    );
    assert_eq!(step_status(&s, "deliver"), "ok");
    assert!(
        s["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true),
        "{s}"
    );
    assert!(s["failure"].is_null(), "{s}");

    // Every step is timed and priced; the total is the sum, a few cents (the stream's and the keys' hour).
    let steps = s["steps"].as_array().unwrap();
    let sum: f64 = steps.iter().map(|st| st["usd"].as_f64().unwrap()).sum();
    let total = s["estimated_usd_total"].as_f64().unwrap();
    assert!((sum - total).abs() < 1e-3 && total > 0.01 && total < 0.10, "{s}");
    assert!(steps.iter().all(|st| st["seconds"].as_f64().is_some()), "{s}");

    assert_eq!(s["cleanup"]["done"], true, "{s}");
    assert_nothing_left(&moto, 2);
    assert_rehearsal_key_policies(&moto);
}

/// Both keys: the account root administers them and delegates to IAM (Decrypt included, for the function's
/// role), and the caller may generate and decrypt data keys only with the rehearsal id's DAS context.
fn assert_rehearsal_key_policies(moto: &Moto) {
    let policies = boto(
        moto,
        "kms = c('kms')\n\
         print(json.dumps([json.loads(kms.get_key_policy(KeyId=k['KeyId'], PolicyName='default')['Policy']) \
         for k in kms.list_keys()['Keys']]))\n",
    );
    for policy in policies.as_array().unwrap() {
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2, "{policy}");
        let (root, caller) = (&statements[0], &statements[1]);
        assert_eq!(root["Principal"]["AWS"], "arn:aws:iam::123456789012:root", "{policy}");
        let root_actions = root["Action"].as_array().unwrap();
        assert!(
            root_actions.contains(&Value::from("kms:Decrypt"))
                && root_actions.contains(&Value::from("kms:ScheduleKeyDeletion"))
                && root_actions.iter().all(|a| a.as_str().unwrap() != "kms:*"),
            "{policy}"
        );
        assert_eq!(
            caller["Action"],
            serde_json::json!(["kms:GenerateDataKey", "kms:Decrypt"]),
            "{policy}"
        );
        assert_eq!(
            caller["Condition"],
            serde_json::json!({"StringEquals": {"kms:EncryptionContext:aws:rds:dbc-id": CLUSTER}}),
            "{policy}"
        );
    }
}

#[test]
fn a_failed_check_still_cleans_up_and_exits_1_naming_the_check() {
    let moto = Moto::start();
    // The activity stream is stopped in RDS: fleet status cannot say ok.
    let rds = RdsDouble::start(vec![FakeDb::cluster("smoke", CLUSTER, Some("stopped"))]);
    let s = summary(&smoke(&moto, &rds, &["--resource-id", CLUSTER, "--records", "20"]), 1);
    let failure = s["failure"].as_str().unwrap();
    assert!(
        failure.contains("fleet status says ok") && failure.contains("archived-but-stopped"),
        "{s}"
    );
    assert_eq!(step_status(&s, "das fleet status"), "failed");
    assert_eq!(s["redrive"]["redriven"], 1, "the steps before it ran: {s}");
    assert_eq!(s["cleanup"]["done"], true, "{s}");
    assert_nothing_left(&moto, 2);
}

#[test]
fn a_kept_rehearsal_is_deleted_later_by_cleanup_only_with_its_run_id() {
    let moto = Moto::start();
    let rds = rds_with_the_rehearsal_cluster();
    let kept = summary(
        &smoke(
            &moto,
            &rds,
            &[
                "--resource-id",
                CLUSTER,
                "--records",
                "20",
                "--run-id",
                "kept1",
                "--keep",
            ],
        ),
        0,
    );
    assert_eq!(kept["cleanup"]["kept"], true, "{kept}");
    let left = leftovers(&moto);
    assert_eq!(left["streams"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(
        left["buckets"],
        serde_json::json!(["das-smoke-kept1-archive"]),
        "{left}"
    );

    // Another run's tag is not touched.
    let other = summary(&smoke(&moto, &rds, &["--cleanup-only", "--run-id", "other"]), 0);
    assert_eq!(other["cleanup"]["deleted"], serde_json::json!([]), "{other}");
    assert_eq!(leftovers(&moto), left);

    let swept = summary(&smoke(&moto, &rds, &["--cleanup-only", "--run-id", "kept1"]), 0);
    assert_eq!(swept["cleanup"]["done"], true, "{swept}");
    assert_nothing_left(&moto, 2);
}

#[test]
fn without_credentials_the_real_account_rehearsal_stops_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let out = Command::new(common::oracle_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/smoke.py"))
        .arg("--check-credentials")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("no AWS credentials") && message.contains("not part of `make test`"),
        "{message}"
    );
}
