//! `das fleet` on the local AWS server: Lambda (function, event-source mappings), Kinesis and S3
//! are moto's; RDS is the HTTP-level double of tests/common/rds_double.rs, because moto's RDS has no
//! activity-stream fields. `attach` creates the template's mapping once, `detach` removes only the
//! named function's, and `status` gives each database the verdict its stream, mapping and newest
//! archived object add up to.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::moto::Moto;
use common::rds_double::{FakeDb, RdsDouble, ACCOUNT, REGION};
use serde_json::Value;

const FUNCTION: &str = "das-archiver";
const BUCKET: &str = "archive";

/// Runs `das` against moto, with RDS on the double.
fn das(moto: &Moto, rds: &RdsDouble, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_das"))
        .args(args)
        .env_remove("DAS_ARCHIVE_BUCKET")
        .env_remove("DAS_ARCHIVE_PREFIX")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_RDS", &rds.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DAS_S3_FORCE_PATH_STYLE", "true")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "das failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Runs a boto3 script against moto (the `aws` preamble defines `c(service)`) and returns the JSON
/// it prints last.
fn boto(moto: &Moto, script: &str) -> Value {
    let preamble = format!(
        "import boto3, json, io, zipfile\n\
         def c(service):\n    return boto3.client(service, endpoint_url='{}', region_name='{REGION}', \
         aws_access_key_id='testing', aws_secret_access_key='testing')\n",
        moto.endpoint
    );
    let out = Command::new(common::oracle_python())
        .args(["-c", &format!("{preamble}{script}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap()
}

/// A role, the functions, a DAS-named Kinesis stream per resource id and the archive bucket.
fn fixture(moto: &Moto, functions: &[&str], streams: &[&str]) {
    boto(
        moto,
        &format!(
            "role = c('iam').create_role(RoleName='archiver', AssumeRolePolicyDocument='{{}}')['Role']['Arn']\n\
             buf = io.BytesIO()\n\
             with zipfile.ZipFile(buf, 'w') as z:\n    z.writestr('bootstrap', 'x')\n\
             for f in {functions:?}:\n    c('lambda').create_function(FunctionName=f, Runtime='provided.al2023', \
             Role=role, Handler='bootstrap', Code={{'ZipFile': buf.getvalue()}})\n\
             for s in {streams:?}:\n    c('kinesis').create_stream(StreamName='aws-rds-das-' + s, ShardCount=1)\n\
             c('s3').create_bucket(Bucket='{BUCKET}')\n\
             print('null')\n"
        ),
    );
}

fn put_objects(moto: &Moto, keys: &[&str]) {
    boto(
        moto,
        &format!(
            "for k in {keys:?}:\n    c('s3').put_object(Bucket='{BUCKET}', Key=k, Body=b'{{}}\\n')\nprint('null')\n"
        ),
    );
}

/// Every event-source mapping moto holds, as ListEventSourceMappings returns them.
fn moto_mappings(moto: &Moto) -> Vec<Value> {
    let all = boto(
        moto,
        "print(json.dumps(c('lambda').list_event_source_mappings()['EventSourceMappings'], default=str))\n",
    );
    all.as_array().unwrap().clone()
}

fn stream_arn(resource_id: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/aws-rds-das-{resource_id}")
}

fn json_line(out: &Output) -> Value {
    serde_json::from_str(ok(out).trim()).unwrap()
}

/// `das fleet attach` of `function` to `resource_id`'s stream: its JSON summary.
fn attach(moto: &Moto, rds: &RdsDouble, resource_id: &str, function: &str) -> Value {
    let args = [
        "fleet",
        "attach",
        "--resource-id",
        resource_id,
        "--function",
        function,
        "--bucket",
        BUCKET,
    ];
    json_line(&das(moto, rds, &args))
}

fn detach(moto: &Moto, rds: &RdsDouble, resource_id: &str, function: &str) -> Output {
    das(
        moto,
        rds,
        &["fleet", "detach", "--resource-id", resource_id, "--function", function],
    )
}

/// Five databases, one of each verdict, and an Aurora member instance: started and read with a
/// fresh archive (OK), started and read with nothing archived (SILENT), stopped with a mapping left
/// (STOPPED), stopped and unread (IDLE), started and unread (NOTARCHIVED).
fn fleet_of_five() -> (Moto, RdsDouble) {
    let moto = Moto::start();
    let mut member = FakeDb::instance("orders-1", "db-MEMBER", None);
    member.member_of = Some("orders".into());
    let rds = RdsDouble::start(vec![
        FakeDb::cluster("orders", "cluster-OK", Some("started")),
        FakeDb::cluster("billing", "cluster-SILENT", Some("started")),
        FakeDb::cluster("legacy", "cluster-STOPPED", Some("stopped")),
        FakeDb::cluster("idle", "cluster-IDLE", None),
        FakeDb::instance("ledger", "db-NOTARCHIVED", Some("started")),
        member,
    ]);
    let streams = ["cluster-OK", "cluster-SILENT", "cluster-STOPPED", "db-NOTARCHIVED"];
    fixture(&moto, &[FUNCTION], &streams);
    for id in ["cluster-OK", "cluster-SILENT", "cluster-STOPPED"] {
        assert_eq!(attach(&moto, &rds, id, FUNCTION)["action"], "attached", "{id}");
    }
    // The newest partition holds the newest object; older days and hours are never listed.
    put_objects(
        &moto,
        &[
            "activity/cluster-OK/dt=2026-11-30/hour=23/shardId-000000000000-1-9.ndjson",
            "activity/cluster-OK/dt=2026-12-01/hour=04/shardId-000000000000-10-19.ndjson",
            "activity/cluster-OK/dt=2026-12-01/hour=05/shardId-000000000000-20-29.ndjson",
            "activity/cluster-OK/dt=2026-12-01/hour=05/shardId-000000000000-30-39.ndjson",
            "activity/quarantine/cluster-SILENT/dt=2026-12-01/shardId-000000000000-5.json",
        ],
    );
    (moto, rds)
}

/// `das fleet status --json`, by resource id.
fn status_rows(moto: &Moto, rds: &RdsDouble) -> BTreeMap<String, Value> {
    let args = ["fleet", "status", "--json", "--function", FUNCTION, "--bucket", BUCKET];
    ok(&das(moto, rds, &args))
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|row| (row["resource_id"].as_str().unwrap().to_owned(), row))
        .collect()
}

#[test]
fn fleet_status_gives_each_database_the_verdict_of_its_stream_mapping_and_newest_archive() {
    let (moto, rds) = fleet_of_five();
    let rows = status_rows(&moto, &rds);
    let verdicts: BTreeMap<&str, &str> = rows
        .iter()
        .map(|(id, r)| (id.as_str(), r["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        BTreeMap::from([
            ("cluster-IDLE", "not-streaming"),
            ("cluster-OK", "ok"),
            ("cluster-SILENT", "silent"),
            ("cluster-STOPPED", "archived-but-stopped"),
            ("db-NOTARCHIVED", "started-not-archived"),
        ]),
        "an Aurora cluster member instance is not listed: its stream is the cluster's"
    );
    let fine = &rows["cluster-OK"];
    assert_eq!(fine["stream"], "aws-rds-das-cluster-OK");
    assert_eq!(fine["activity_stream_status"], "started");
    assert_eq!(fine["mapping_state"], "Enabled");
    assert_eq!(
        fine["last_archived_key"],
        "activity/cluster-OK/dt=2026-12-01/hour=05/shardId-000000000000-30-39.ndjson"
    );
    assert!(fine["last_archived_at"].as_str().unwrap().ends_with('Z'), "{fine}");
    let silent = &rows["cluster-SILENT"];
    assert!(
        silent["last_archived_at"].is_null(),
        "a quarantine document is not archived events: {silent}"
    );
    let stopped = &rows["cluster-STOPPED"];
    assert_eq!(
        (&stopped["activity_stream_status"], &stopped["mapping_state"]),
        (&Value::from("stopped"), &Value::from("Enabled"))
    );
    assert_eq!(
        stopped["stream"], "aws-rds-das-cluster-STOPPED",
        "a stopped stream keeps its DAS name"
    );
    assert!(rows["db-NOTARCHIVED"]["mapping_state"].is_null());
    assert_eq!(rows["cluster-IDLE"]["activity_stream_status"], "stopped");
}

#[test]
fn fleet_status_without_json_prints_one_table_line_per_database_and_no_color_off_a_terminal() {
    let (moto, rds) = fleet_of_five();
    let table = ok(&das(
        &moto,
        &rds,
        &["fleet", "status", "--function", FUNCTION, "--bucket", BUCKET],
    ));
    assert!(table.starts_with("RESOURCE ID"), "{table}");
    assert_eq!(table.lines().count(), 6, "{table}");
    assert!(
        table.contains("archived-but-stopped") && !table.contains('\u{1b}'),
        "{table}"
    );
}

/// The mapping has the template's settings (template.yaml, `ActivityStream&{Id}`).
fn assert_template_mapping(m: &Value, stream: &str) {
    assert_eq!(m["EventSourceArn"], stream);
    assert_eq!(m["BatchSize"], 1000);
    assert_eq!(m["MaximumBatchingWindowInSeconds"], 60);
    assert_eq!(m["BisectBatchOnFunctionError"], true);
    assert_eq!(m["MaximumRetryAttempts"], 10_000);
    assert_eq!(m["MaximumRecordAgeInSeconds"], 64_800);
    assert_eq!(m["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(
        m["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    assert_eq!(
        m["DestinationConfig"]["OnFailure"]["Destination"],
        "arn:aws:s3:::archive"
    );
}

#[test]
fn attach_creates_the_template_s_mapping_once_and_detach_removes_only_the_function_s_own() {
    let moto = Moto::start();
    let rds = RdsDouble::start(vec![FakeDb::cluster("orders", "cluster-A", Some("started"))]);
    fixture(&moto, &[FUNCTION, "someone-else"], &["cluster-A"]);

    let first = attach(&moto, &rds, "cluster-A", FUNCTION);
    assert_eq!(first["action"], "attached");
    assert_eq!(first["stream_arn"], stream_arn("cluster-A"));
    let again = attach(&moto, &rds, "cluster-A", FUNCTION);
    assert_eq!(
        (&again["action"], &again["mappings"]),
        (&Value::from("already-attached"), &first["mappings"])
    );
    let mappings = moto_mappings(&moto);
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert_template_mapping(&mappings[0], &stream_arn("cluster-A"));

    assert_eq!(attach(&moto, &rds, "cluster-A", "someone-else")["action"], "attached");
    let detached = json_line(&detach(&moto, &rds, "cluster-A", FUNCTION));
    assert_eq!(
        (&detached["action"], &detached["mappings"]),
        (&Value::from("detached"), &first["mappings"])
    );
    let left = moto_mappings(&moto);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0]["FunctionArn"]
            .as_str()
            .unwrap()
            .ends_with(":function:someone-else"),
        "{left:?}"
    );
    assert_eq!(
        json_line(&detach(&moto, &rds, "cluster-A", FUNCTION))["action"],
        "not-attached"
    );
}

#[test]
fn attach_or_detach_of_an_unknown_resource_id_fails_saying_where_ids_are_listed() {
    let moto = Moto::start();
    let rds = RdsDouble::start(vec![FakeDb::cluster("orders", "cluster-A", Some("started"))]);
    let unknown = detach(&moto, &rds, "cluster-NOPE", FUNCTION);
    assert_eq!(unknown.status.code(), Some(1));
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains("no DB cluster or instance of this region has resource id cluster-NOPE")
            && message.contains("das fleet status"),
        "{message}"
    );
}

/// `%XX`-decoding of a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn fleet_status_lists_only_the_newest_day_and_hour_of_an_archive() {
    let (moto, rds) = fleet_of_five();
    moto.start_recording();
    status_rows(&moto, &rds);
    moto.stop_recording();
    let listings: Vec<String> = moto
        .recorded_requests()
        .iter()
        .filter_map(|r| r["url"].as_str())
        .filter(|url| url.contains("list-type=2") && url.contains("cluster-OK"))
        .map(|url| {
            let query = url.split_once('?').map_or("", |(_, q)| q);
            let field = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .map(percent_decode)
            };
            format!(
                "{} {}",
                field("prefix").unwrap_or_default(),
                field("delimiter").unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        listings,
        [
            "activity/cluster-OK/ /",
            "activity/cluster-OK/dt=2026-12-01/ /",
            "activity/cluster-OK/dt=2026-12-01/hour=05/ ",
        ]
    );
}
