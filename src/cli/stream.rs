//! `das stream start|stop|status`: the RDS API calls the console makes to manage an activity stream
//! (StartActivityStream, StopActivityStream, DescribeDBClusters / DescribeDBInstances), with `--wait`
//! polling until the stream has started or stopped.
//!
//! Stopping an activity stream deletes its Kinesis stream, and with it every record the archiver has
//! not archived yet. So `stop` first compares, per shard, what the stream holds with what the archive
//! holds ([`caught_up`]) and refuses unless the archive has caught up, or `--force` says the loss is
//! accepted.

mod caught_up;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_rds::types::ActivityStreamMode;

use crate::pipeline::envelope::ResourceId;
use caught_up::{Archive, Classifier, ShardGap};

#[derive(Debug, clap::Args)]
pub(super) struct StreamArgs {
    /// What to do.
    #[arg(value_enum)]
    action: Action,
    /// The Aurora cluster ARN (arn:aws:rds:…:cluster:…) or, for RDS for Oracle / SQL Server, the DB instance ARN (…:db:…).
    #[arg(long, alias = "instance", value_name = "ARN")]
    cluster: String,
    /// The customer-managed KMS key for `start` (id, ARN or alias).
    #[arg(long)]
    kms_key_id: Option<String>,
    /// `async` (default; the database never waits for the stream) or `sync`.
    #[arg(long, value_enum, default_value = "async")]
    mode: Mode,
    /// Include engine-native audit fields (RDS for Oracle / SQL Server).
    #[arg(long)]
    engine_native_audit_fields: bool,
    /// Poll until the stream is started (or stopped), showing the status.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 1800)]
    wait_timeout: u64,
    /// `stop` even when the archive has not caught up with the stream (what it lacks is lost).
    #[arg(long)]
    force: bool,
    /// For `stop`: the archive bucket whose objects must cover the stream (default: DAS_ARCHIVE_BUCKET).
    #[arg(long)]
    bucket: Option<String>,
    /// For `stop`: the archive prefix (default: DAS_ARCHIVE_PREFIX, else `activity/`).
    #[arg(long)]
    prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Action {
    Start,
    Stop,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Async,
    Sync,
}

/// Whether an ARN names a cluster or an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Cluster,
    Instance,
}

fn target(arn: &str) -> Result<Target, String> {
    match arn.split(':').nth(5) {
        Some("cluster") if arn.starts_with("arn:") => Ok(Target::Cluster),
        Some("db") if arn.starts_with("arn:") => Ok(Target::Instance),
        _ => Err(format!(
            "{arn:?} is not an RDS cluster or instance ARN (arn:aws:rds:<region>:<account>:cluster:<name> or …:db:<name>)"
        )),
    }
}

/// The parameters of StartActivityStream, checked before any call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StartRequest {
    resource_arn: String,
    kms_key_id: String,
    mode: ActivityStreamMode,
    apply_immediately: bool,
    engine_native_audit_fields_included: Option<bool>,
}

fn start_request(args: &StreamArgs) -> Result<StartRequest, String> {
    let kind = target(&args.cluster)?;
    let kms_key_id = args
        .kms_key_id
        .clone()
        .ok_or("`das stream start` needs --kms-key-id: activity streams require a customer-managed KMS key")?;
    if args.engine_native_audit_fields && kind == Target::Cluster {
        return Err("--engine-native-audit-fields applies to RDS for Oracle / SQL Server instances only".to_owned());
    }
    Ok(StartRequest {
        resource_arn: args.cluster.clone(),
        kms_key_id,
        mode: match args.mode {
            Mode::Async => ActivityStreamMode::Async,
            Mode::Sync => ActivityStreamMode::Sync,
        },
        apply_immediately: true,
        engine_native_audit_fields_included: args.engine_native_audit_fields.then_some(true),
    })
}

/// What DescribeDBClusters / DescribeDBInstances says of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Status {
    status: String,
    stream_name: Option<String>,
    kms_key_id: Option<String>,
    mode: Option<String>,
}

/// A [`Status`] from a `DbCluster` or a `DbInstance`: the SDK gives both the same four
/// activity-stream getters, but no trait in common.
macro_rules! status_of {
    ($db:expr) => {
        Status {
            status: $db
                .activity_stream_status()
                .map_or("stopped", |s| s.as_str())
                .to_owned(),
            stream_name: $db.activity_stream_kinesis_stream_name().map(str::to_owned),
            kms_key_id: $db.activity_stream_kms_key_id().map(str::to_owned),
            mode: $db.activity_stream_mode().map(|m| m.as_str().to_owned()),
        }
    };
}

async fn status(client: &aws_sdk_rds::Client, arn: &str) -> Result<Status, String> {
    let fail = |e: String| format!("cannot describe {arn}: {e}");
    match target(arn)? {
        Target::Cluster => {
            let out = client
                .describe_db_clusters()
                .db_cluster_identifier(arn)
                .send()
                .await
                .map_err(|e| fail(aws_sdk_rds::error::DisplayErrorContext(&e).to_string()))?;
            let c = out
                .db_clusters()
                .first()
                .ok_or_else(|| fail("no such cluster".into()))?;
            Ok(status_of!(c))
        }
        Target::Instance => {
            let out = client
                .describe_db_instances()
                .db_instance_identifier(arn)
                .send()
                .await
                .map_err(|e| fail(aws_sdk_rds::error::DisplayErrorContext(&e).to_string()))?;
            let i = out
                .db_instances()
                .first()
                .ok_or_else(|| fail("no such instance".into()))?;
            Ok(status_of!(i))
        }
    }
}

fn show(s: &Status) -> String {
    let mut line = format!("activity stream: {}", s.status);
    if let Some(name) = &s.stream_name {
        line.push_str(&format!(", Kinesis stream {name}"));
    }
    if let Some(mode) = &s.mode {
        line.push_str(&format!(", mode {mode}"));
    }
    if let Some(key) = &s.kms_key_id {
        line.push_str(&format!(", KMS key {key}"));
    }
    line
}

pub(super) async fn stream(args: &StreamArgs) -> Result<ExitCode, String> {
    target(&args.cluster)?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_rds::Client::new(&sdk);
    let goal = match args.action {
        Action::Start => {
            start(&client, args).await?;
            "started"
        }
        Action::Stop => {
            if !args.force {
                check_caught_up(&sdk, args, &status(&client, &args.cluster).await?).await?;
            }
            stop(&client, &args.cluster).await?;
            "stopped"
        }
        Action::Status => {
            println!("{}", show(&status(&client, &args.cluster).await?));
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.wait {
        wait_until(&client, args, goal).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// StartActivityStream as the arguments ask, telling which Kinesis stream DAS creates.
async fn start(client: &aws_sdk_rds::Client, args: &StreamArgs) -> Result<(), String> {
    let r = start_request(args)?;
    let out = client
        .start_activity_stream()
        .resource_arn(&r.resource_arn)
        .kms_key_id(&r.kms_key_id)
        .mode(r.mode.clone())
        .apply_immediately(r.apply_immediately)
        .set_engine_native_audit_fields_included(r.engine_native_audit_fields_included)
        .send()
        .await
        .map_err(|e| {
            format!(
                "StartActivityStream failed: {}",
                aws_sdk_rds::error::DisplayErrorContext(&e)
            )
        })?;
    eprintln!(
        "starting: Kinesis stream {} ({})",
        out.kinesis_stream_name().unwrap_or("?"),
        out.status().map_or("?", |s| s.as_str())
    );
    Ok(())
}

async fn stop(client: &aws_sdk_rds::Client, resource_arn: &str) -> Result<(), String> {
    client
        .stop_activity_stream()
        .resource_arn(resource_arn)
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "StopActivityStream failed: {}",
                aws_sdk_rds::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(())
}

/// Polls every 10 s until the stream reaches `goal`, printing each change, for at most `--wait-timeout`.
async fn wait_until(client: &aws_sdk_rds::Client, args: &StreamArgs, goal: &str) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let now = status(client, &args.cluster).await?;
        if now.status != last {
            eprintln!("[{:>4} s] {}", started.elapsed().as_secs(), show(&now));
            last = now.status.clone();
        }
        if now.status == goal {
            println!("{}", show(&now));
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(args.wait_timeout) {
            return Err(format!(
                "the stream is still {} after {} s",
                now.status, args.wait_timeout
            ));
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Refuses (an error naming what is missing, after a per-shard table on stderr) unless every record
/// of every shard of the stream is archived, quarantined, or holds only heartbeats.
async fn check_caught_up(sdk: &aws_config::SdkConfig, args: &StreamArgs, status: &Status) -> Result<(), String> {
    let stream = status
        .stream_name
        .as_deref()
        .ok_or("the database has no activity stream to stop")?;
    let resource = ResourceId::from_stream(stream).map_err(|e| e.to_string())?;
    let archive = archive(sdk, args)?;
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let (shards, since) = shards_and_oldest_day(&kinesis, stream).await?;
    let handled = archive.handled(&resource, &since).await?;
    let classifier = Classifier::new(sdk, resource.clone())?;
    let mut gaps = Vec::new();
    for shard in &shards {
        let after = handled.get(shard).map(String::as_str);
        gaps.push(caught_up::gap(&kinesis, stream, shard, after, &classifier).await?);
    }
    eprint!("{}", caught_up::table(&gaps));
    let missing: Vec<&ShardGap> = gaps.iter().filter(|g| g.missing() > 0).collect();
    if missing.is_empty() {
        eprintln!(
            "das stream stop: s3://{}/{}{resource}/ holds every record of {stream}",
            archive.bucket, archive.prefix
        );
        return Ok(());
    }
    let what: Vec<String> = missing.iter().map(|g| describe(g)).collect();
    Err(format!(
        "refusing to stop the activity stream: stopping deletes Kinesis stream {stream}, and s3://{}/{} does not \
         hold all of it yet: {}. Wait until the archiver has caught up (or redrive what it gave up on), or pass \
         --force to stop anyway and lose it",
        archive.bucket,
        archive.prefix,
        what.join("; ")
    ))
}

/// One shard's shortfall, for the refusal.
fn describe(gap: &ShardGap) -> String {
    let mut text = format!(
        "{} has {} record(s) with events after {}, from {}",
        gap.shard,
        gap.missing(),
        gap.handled
            .as_deref()
            .map_or("its start (nothing archived)".to_owned(), |s| format!(
                "sequence number {s}"
            )),
        gap.first_missing.as_deref().unwrap_or("?")
    );
    if gap.undecodable > 0 {
        text.push_str(&format!(
            " ({} could not be decrypted, so they count as missing)",
            gap.undecodable
        ));
    }
    text
}

/// The archive named by `--bucket`/`--prefix`, or `DAS_ARCHIVE_BUCKET`/`DAS_ARCHIVE_PREFIX`.
fn archive(sdk: &aws_config::SdkConfig, args: &StreamArgs) -> Result<Archive, String> {
    let mut extra = Vec::new();
    if let Some(bucket) = &args.bucket {
        extra.push(("DAS_ARCHIVE_BUCKET", bucket.clone()));
    }
    if let Some(prefix) = &args.prefix {
        extra.push(("DAS_ARCHIVE_PREFIX", prefix.clone()));
    }
    let settings = super::filters::FilterArgs::default().settings(&extra).map_err(|e| {
        format!(
            "`das stream stop` checks that the archive holds the whole stream before it is deleted: name the \
             archive with --bucket (and --prefix), or pass --force ({e})"
        )
    })?;
    Ok(Archive {
        client: super::s3_client(sdk, settings.s3_force_path_style),
        bucket: settings.bucket,
        prefix: settings.layout.prefix,
    })
}

/// Every shard of the stream (open, and closed ones still within the retention period), and the
/// first day (`YYYY-MM-DD`) whose records the stream may still hold.
async fn shards_and_oldest_day(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<(Vec<String>, String), String> {
    let fail = |e: String| format!("cannot describe Kinesis stream {stream} (--force skips the check): {e}");
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()))?;
    let retention_hours = summary
        .stream_description_summary()
        .map_or(24, |s| i64::from(s.retention_period_hours()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // A day more than the retention: arrival times and partition days are both UTC, but the margin
    // costs one listing and spares any argument about the boundary.
    let oldest = now - (retention_hours + 24) * 3600;
    let since = crate::pipeline::utc::UtcDateTime::from_unix_seconds(oldest as f64).date();
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => kinesis.list_shards().next_token(t),
            None => kinesis.list_shards().stream_name(stream),
        };
        let page = request
            .send()
            .await
            .map_err(|e| fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()))?;
        shards.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok((shards, since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: StreamArgs,
    }

    fn parse(line: &[&str]) -> StreamArgs {
        Wrapper::try_parse_from(std::iter::once("das").chain(line.iter().copied()))
            .unwrap()
            .args
    }

    const CLUSTER: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:orders";

    #[test]
    fn start_builds_an_async_immediate_request_with_the_key() {
        let args = parse(&["start", "--cluster", CLUSTER, "--kms-key-id", "alias/das"]);
        assert_eq!(
            start_request(&args).unwrap(),
            StartRequest {
                resource_arn: CLUSTER.into(),
                kms_key_id: "alias/das".into(),
                mode: ActivityStreamMode::Async,
                apply_immediately: true,
                engine_native_audit_fields_included: None,
            }
        );
        let sync = parse(&["start", "--cluster", CLUSTER, "--kms-key-id", "k", "--mode", "sync"]);
        assert_eq!(start_request(&sync).unwrap().mode, ActivityStreamMode::Sync);
    }

    #[test]
    fn start_needs_a_kms_key_and_engine_native_fields_only_for_instances() {
        assert!(start_request(&parse(&["start", "--cluster", CLUSTER]))
            .unwrap_err()
            .contains("--kms-key-id"));
        let cluster_native = parse(&[
            "start",
            "--cluster",
            CLUSTER,
            "--kms-key-id",
            "k",
            "--engine-native-audit-fields",
        ]);
        assert!(start_request(&cluster_native).is_err());
        let instance = "arn:aws:rds:eu-west-1:123456789012:db:oracle1";
        let native = parse(&[
            "start",
            "--instance",
            instance,
            "--kms-key-id",
            "k",
            "--engine-native-audit-fields",
        ]);
        assert_eq!(
            start_request(&native).unwrap().engine_native_audit_fields_included,
            Some(true)
        );
    }

    #[test]
    fn arns_are_told_apart_and_anything_else_is_refused() {
        assert_eq!(target(CLUSTER), Ok(Target::Cluster));
        assert_eq!(target("arn:aws-cn:rds:cn-north-1:1:db:x"), Ok(Target::Instance));
        for bad in [
            "orders",
            "arn:aws:kinesis:us-east-1:1:stream/x",
            "arn:aws:rds:us-east-1:1:snapshot:x",
        ] {
            assert!(
                target(bad).unwrap_err().contains("not an RDS cluster or instance ARN"),
                "{bad}"
            );
        }
    }

    #[test]
    fn status_lines_show_what_is_known() {
        let s = Status {
            status: "started".into(),
            stream_name: Some("aws-rds-das-cluster-A".into()),
            kms_key_id: None,
            mode: Some("async".into()),
        };
        assert_eq!(
            show(&s),
            "activity stream: started, Kinesis stream aws-rds-das-cluster-A, mode async"
        );
    }
}
