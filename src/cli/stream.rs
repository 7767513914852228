//! `das stream start|stop|status`: the RDS API calls the console makes to manage an activity stream
//! (StartActivityStream, StopActivityStream, DescribeDBClusters / DescribeDBInstances), with `--wait`
//! polling until the stream has started or stopped.
//!
//! Stopping an activity stream deletes its Kinesis stream, and with it every record the archiver has
//! not read yet. So `stop` first asks CloudWatch how far behind the archiver is on that stream (its
//! own per-stream metrics: when it last read a batch, and how old the oldest record of that batch
//! was) and refuses unless the archiver is caught up, or `--force` says the loss is accepted.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_rds::types::ActivityStreamMode;

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
    /// `stop` even when the archiver has not caught up with the stream (its unread records are lost).
    #[arg(long)]
    force: bool,
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
                check_backlog(&sdk, &status(&client, &args.cluster).await?).await?;
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

/// How long ago the archiver may last have read a batch for the stream to count as followed: DAS
/// sends heartbeats every few seconds while a stream is active, so a followed stream is read every
/// few seconds too (metrics reach CloudWatch within a minute or two).
const READ_RECENTLY_SECONDS: i64 = 300;
/// How old the oldest record of the archiver's latest batch may be for the archiver to be caught up.
const CAUGHT_UP_SECONDS: f64 = 60.0;

/// What CloudWatch says of the archiver's progress on one stream.
#[derive(Debug, Clone, PartialEq)]
struct Backlog {
    resource_id: String,
    /// Seconds since the latest minute in which the archiver read records of this stream.
    last_read_ago: Option<i64>,
    /// The largest `OldestRecordAgeSeconds` of that minute.
    oldest_record_age: Option<f64>,
}

impl Backlog {
    /// From the `RecordsIn` and `OldestRecordAgeSeconds` datapoints (epoch seconds, value) at `now`.
    fn judge(resource_id: &str, records_in: &[(i64, f64)], oldest: &[(i64, f64)], now: i64) -> Self {
        let latest = records_in.iter().filter(|(_, v)| *v > 0.0).map(|(t, _)| *t).max();
        Self {
            resource_id: resource_id.to_owned(),
            last_read_ago: latest.map(|t| now - t),
            oldest_record_age: latest.and_then(|t| oldest.iter().find(|(at, _)| *at == t).map(|(_, v)| *v)),
        }
    }

    fn is_zero(&self) -> bool {
        matches!((self.last_read_ago, self.oldest_record_age),
            (Some(ago), Some(age)) if ago <= READ_RECENTLY_SECONDS && age <= CAUGHT_UP_SECONDS)
    }

    fn describe(&self) -> String {
        match (self.last_read_ago, self.oldest_record_age) {
            (Some(ago), Some(age)) => format!(
                "the archiver last read {} about {ago} s ago; the oldest record of that batch was {age:.0} s old",
                self.resource_id
            ),
            (Some(ago), None) => format!(
                "the archiver last read {} about {ago} s ago (no record age reported)",
                self.resource_id
            ),
            _ => format!(
                "the archiver has not read {} in the last {} minutes (no DasArchiver RecordsIn metric)",
                self.resource_id,
                METRIC_WINDOW_SECONDS / 60
            ),
        }
    }
}

/// How far back the metrics are read.
const METRIC_WINDOW_SECONDS: i64 = 900;

/// Refuses (an error naming the backlog) unless the archiver has caught up with the stream.
async fn check_backlog(sdk: &aws_config::SdkConfig, status: &Status) -> Result<(), String> {
    let stream = status
        .stream_name
        .as_deref()
        .ok_or("the database has no activity stream to stop")?;
    let resource = crate::pipeline::envelope::ResourceId::from_stream(stream).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(sdk);
    let records_in = metric(&cloudwatch, "RecordsIn", "Sum", resource.as_str(), now).await?;
    let oldest = metric(&cloudwatch, "OldestRecordAgeSeconds", "Maximum", resource.as_str(), now).await?;
    let backlog = Backlog::judge(resource.as_str(), &records_in, &oldest, now);
    eprintln!("das stream stop: {}", backlog.describe());
    if backlog.is_zero() {
        return Ok(());
    }
    Err(format!(
        "refusing to stop the activity stream: stopping deletes Kinesis stream {stream}, and the archiver has \
         not caught up with it ({}). Wait until it has, or pass --force to stop anyway and lose what it has \
         not read",
        backlog.describe()
    ))
}

/// One-minute datapoints (epoch seconds, value) of a `DasArchiver` metric for one resource id.
async fn metric(
    client: &aws_sdk_cloudwatch::Client,
    name: &str,
    stat: &str,
    resource: &str,
    now: i64,
) -> Result<Vec<(i64, f64)>, String> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
    let query = MetricDataQuery::builder()
        .id("m")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("DasArchiver")
                        .metric_name(name)
                        .dimensions(Dimension::builder().name("ResourceId").value(resource).build())
                        .build(),
                )
                .period(60)
                .stat(stat)
                .build(),
        )
        .build();
    let out = client
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from_secs(now - METRIC_WINDOW_SECONDS))
        .end_time(DateTime::from_secs(now + 60))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the archiver's {name} metric from CloudWatch (needs cloudwatch:GetMetricData; \
                 --force skips the check): {}",
                aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
            )
        })?;
    let mut points = Vec::new();
    for result in out.metric_data_results() {
        for (t, v) in result.timestamps().iter().zip(result.values()) {
            points.push((t.secs(), *v));
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_stream_read_a_minute_ago_with_fresh_records_has_no_backlog() {
        let now = 10_000;
        let b = Backlog::judge(
            "cluster-A",
            &[(now - 600, 5.0), (now - 60, 3.0)],
            &[(now - 60, 2.0)],
            now,
        );
        assert_eq!((b.last_read_ago, b.oldest_record_age), (Some(60), Some(2.0)));
        assert!(b.is_zero(), "{}", b.describe());
    }

    #[test]
    fn a_lagging_or_unread_stream_is_a_backlog() {
        let now = 10_000;
        let lagging = Backlog::judge("cluster-A", &[(now - 60, 3.0)], &[(now - 60, 3_600.0)], now);
        assert!(!lagging.is_zero() && lagging.describe().contains("3600 s old"));
        let silent = Backlog::judge("cluster-A", &[(now - 600, 3.0)], &[(now - 600, 1.0)], now);
        assert!(!silent.is_zero());
        let never = Backlog::judge("cluster-A", &[], &[], now);
        assert!(!never.is_zero() && never.describe().contains("has not read cluster-A"));
    }

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
