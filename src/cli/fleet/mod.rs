//! `das fleet status|attach|detach`: every database of a region with its activity stream, the
//! event-source mapping that reads it and its newest archived object; and the mapping itself, created
//! or removed with the template's settings, for streams managed outside CloudFormation.
//!
//! It reads RDS, Lambda and S3 and, for `attach`/`detach`, creates or deletes only event-source
//! mappings of the named function on the named database's stream: it must never touch a stream,
//! a database or another function's mapping (`das stream start|stop` manages streams).

mod model;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use aws_sdk_lambda::types::{DestinationConfig, EventSourcePosition, FunctionResponseType, OnFailure};
use futures::StreamExt as _;
use model::{Archived, Database, Mapping};

/// How many databases' archives are looked up at once.
const S3_CONCURRENCY: usize = 8;

#[derive(Debug, clap::Args)]
pub(super) struct FleetArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Every DB cluster and instance of the region: activity stream, the mapping that reads it, the
    /// newest archived object, and a verdict (started-not-archived, archived-but-stopped, silent,
    /// changing, not-streaming, ok).
    ///
    /// "silent" means no archived events for --silent-minutes: heartbeat-only batches write no
    /// object, so an idle database looks silent here; the template's per-stream silence alarm (on
    /// RecordsIn, which counts heartbeats) is the precise one. Instances of an Aurora cluster are
    /// not listed: their activity stream is the cluster's.
    Status(StatusArgs),
    /// Create the event-source mapping from a database's activity stream to the function, with the
    /// template's settings (idempotent: an existing mapping is reported, not duplicated). The
    /// stream must be started (CloudFormation cannot start one; `das stream start` does).
    Attach(AttachArgs),
    /// Delete the function's event-source mapping(s) on a database's activity stream.
    Detach(DetachArgs),
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The region (default: the SDK's, e.g. AWS_REGION).
    #[arg(long)]
    region: Option<String>,
    /// One JSON object per database per line (NDJSON) instead of the table.
    #[arg(long)]
    json: bool,
    /// The archiver function (name or ARN); without it, any function's mapping counts.
    #[arg(long)]
    function: Option<String>,
    /// The archive bucket.
    #[arg(long, env = "DAS_ARCHIVE_BUCKET")]
    bucket: String,
    /// The archive prefix.
    #[arg(long, env = "DAS_ARCHIVE_PREFIX", default_value = "activity/")]
    prefix: String,
    /// A followed, started stream whose newest archived object is older than this is "silent".
    #[arg(long, default_value_t = 10)]
    silent_minutes: u32,
}

#[derive(Debug, clap::Args)]
struct AttachArgs {
    /// The region (default: the SDK's, e.g. AWS_REGION).
    #[arg(long)]
    region: Option<String>,
    /// The database's resource id (`cluster-…` or `db-…`, as `das fleet status` lists it).
    #[arg(long)]
    resource_id: String,
    /// The archiver function (name or ARN).
    #[arg(long)]
    function: String,
    /// The bucket of the mapping's on-failure destination (the archive bucket).
    #[arg(long, env = "DAS_ARCHIVE_BUCKET")]
    bucket: String,
    /// Where a new mapping starts reading: trim-horizon (the template's default) or latest.
    #[arg(long, value_enum, default_value = "trim-horizon")]
    starting_position: StartingPosition,
}

#[derive(Debug, clap::Args)]
struct DetachArgs {
    /// The region (default: the SDK's, e.g. AWS_REGION).
    #[arg(long)]
    region: Option<String>,
    /// The database's resource id (`cluster-…` or `db-…`).
    #[arg(long)]
    resource_id: String,
    /// The archiver function (name or ARN): only its mappings are deleted.
    #[arg(long)]
    function: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StartingPosition {
    TrimHorizon,
    Latest,
}

pub(super) async fn fleet(args: &FleetArgs) -> Result<ExitCode, String> {
    match &args.action {
        Action::Status(a) => status(a).await,
        Action::Attach(a) => attach(a).await,
        Action::Detach(a) => detach(a).await,
    }
}

async fn sdk_config(region: Option<&String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    loader.load().await
}

async fn status(args: &StatusArgs) -> Result<ExitCode, String> {
    let sdk = sdk_config(args.region.as_ref()).await;
    let databases = databases(&aws_sdk_rds::Client::new(&sdk)).await?;
    let mappings = mappings(&aws_sdk_lambda::Client::new(&sdk), args.function.as_deref()).await?;
    let s3 = s3_client(&sdk);
    let archives: Vec<Result<Option<Archived>, String>> = futures::stream::iter(&databases)
        .map(|db| last_archived(&s3, &args.bucket, &args.prefix, &db.resource_id))
        .buffered(S3_CONCURRENCY)
        .collect()
        .await;
    let now = now_secs();
    let silent_after = i64::from(args.silent_minutes) * 60;
    let mut rows = Vec::with_capacity(databases.len());
    for (db, archived) in databases.iter().zip(archives) {
        rows.push(model::row(db, &mappings, archived?.as_ref(), now, silent_after));
    }
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row).map_err(|e| e.to_string())?);
        }
    } else {
        let stdout = std::io::stdout();
        print!("{}", model::table(&rows, stdout.is_terminal()));
        let flagged = rows.iter().filter(|r| r.verdict.is_flagged()).count();
        eprintln!("{} database(s), {flagged} flagged", rows.len());
    }
    // The verdicts are data, not a failure of the command: scripts read them from --json.
    Ok(ExitCode::SUCCESS)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Path-style addressing for local S3-compatible servers, as the Lambda reads it.
fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var("DAS_S3_FORCE_PATH_STYLE").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    super::s3_client(sdk, path_style)
}

/// Every DB cluster, then every DB instance that is not an Aurora cluster member (DAS on Aurora
/// is a cluster's), paginated.
async fn databases(rds: &aws_sdk_rds::Client) -> Result<Vec<Database>, String> {
    let fail = |what: &str, e: String| format!("{what} failed (needs rds:{what}): {e}");
    let clusters: Vec<_> = rds
        .describe_db_clusters()
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::new();
    for c in clusters {
        let c = c.map_err(|e| {
            fail(
                "DescribeDBClusters",
                aws_sdk_rds::error::DisplayErrorContext(&e).to_string(),
            )
        })?;
        out.push(Database {
            kind: "cluster",
            name: c.db_cluster_identifier().unwrap_or_default().to_owned(),
            arn: c.db_cluster_arn().unwrap_or_default().to_owned(),
            resource_id: c.db_cluster_resource_id().unwrap_or_default().to_owned(),
            status: c.activity_stream_status().map_or("stopped", |s| s.as_str()).to_owned(),
            stream: c.activity_stream_kinesis_stream_name().map(str::to_owned),
        });
    }
    let instances: Vec<_> = rds
        .describe_db_instances()
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    for i in instances {
        let i = i.map_err(|e| {
            fail(
                "DescribeDBInstances",
                aws_sdk_rds::error::DisplayErrorContext(&e).to_string(),
            )
        })?;
        if i.db_cluster_identifier().is_some() {
            continue;
        }
        out.push(Database {
            kind: "instance",
            name: i.db_instance_identifier().unwrap_or_default().to_owned(),
            arn: i.db_instance_arn().unwrap_or_default().to_owned(),
            resource_id: i.dbi_resource_id().unwrap_or_default().to_owned(),
            status: i.activity_stream_status().map_or("stopped", |s| s.as_str()).to_owned(),
            stream: i.activity_stream_kinesis_stream_name().map(str::to_owned),
        });
    }
    Ok(out)
}

/// The event-source mappings of `function` (of every function without one), paginated.
async fn mappings(lambda: &aws_sdk_lambda::Client, function: Option<&str>) -> Result<Vec<Mapping>, String> {
    let items: Vec<_> = lambda
        .list_event_source_mappings()
        .set_function_name(function.map(str::to_owned))
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    items
        .into_iter()
        .map(|m| {
            let m = m.map_err(|e| {
                format!(
                    "ListEventSourceMappings failed (needs lambda:ListEventSourceMappings; is --function right?): {}",
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })?;
            Ok(Mapping {
                uuid: m.uuid().unwrap_or_default().to_owned(),
                state: m.state().unwrap_or("Unknown").to_owned(),
                event_source_arn: m.event_source_arn().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// The newest object under `<prefix><resource id>/`: the newest `dt=` partition, its newest
/// `hour=` partition, then the objects there, so a year of archive is never listed.
async fn last_archived(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    resource_id: &str,
) -> Result<Option<Archived>, String> {
    let base = format!("{prefix}{resource_id}/");
    let days = list(s3, bucket, &base, true).await?;
    let Some(day) = model::newest_partition(days.prefixes.iter().map(String::as_str), "dt") else {
        return Ok(None);
    };
    let hours = list(s3, bucket, day, true).await?;
    // An hour-less day would be an older layout: its objects are then directly under the day.
    let (objects, under) = match model::newest_partition(hours.prefixes.iter().map(String::as_str), "hour") {
        Some(hour) => (list(s3, bucket, hour, false).await?.objects, hour),
        None => (hours.objects, day),
    };
    let newest = model::newest_object(objects.iter().map(|(k, t)| (k.as_str(), t.secs())));
    Ok(newest.map(|(key, at_secs)| {
        let at = aws_sdk_s3::primitives::DateTime::from_secs(at_secs)
            .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
            .unwrap_or_else(|_| at_secs.to_string());
        tracing::debug!(under, key, "newest archived object");
        Archived {
            key: key.to_owned(),
            at_secs,
            at,
        }
    }))
}

/// One S3 listing: common prefixes (with the `/` delimiter) and objects with their LastModified.
#[derive(Default)]
struct Listing {
    prefixes: Vec<String>,
    objects: Vec<(String, aws_sdk_s3::primitives::DateTime)>,
}

async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, delimit: bool) -> Result<Listing, String> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delimit.then(|| "/".to_owned()))
        .into_paginator()
        .send();
    let mut listing = Listing::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "cannot list s3://{bucket}/{prefix} (needs s3:ListBucket; is --bucket right?): {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })?;
        listing.prefixes.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned)),
        );
        listing.objects.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().zip(o.last_modified()).map(|(key, at)| (key.to_owned(), *at))),
        );
    }
    Ok(listing)
}

/// The database with this resource id, and its stream ARN.
async fn find(sdk: &aws_config::SdkConfig, resource_id: &str) -> Result<(Database, String), String> {
    let db = databases(&aws_sdk_rds::Client::new(sdk))
        .await?
        .into_iter()
        .find(|db| db.resource_id == resource_id)
        .ok_or_else(|| {
            format!(
                "no DB cluster or instance of this region has resource id {resource_id} \
                 (`das fleet status` lists them; --region picks another region)"
            )
        })?;
    let stream_arn = db
        .stream_arn()
        .ok_or_else(|| format!("RDS reported an unexpected ARN {:?} for {resource_id}", db.arn))?;
    Ok((db, stream_arn))
}

/// A one-line JSON summary of what `attach`/`detach` did, on stdout.
fn report(action: &str, resource_id: &str, stream_arn: &str, function: &str, uuids: &[String]) {
    let summary = serde_json::json!({
        "action": action,
        "resource_id": resource_id,
        "stream_arn": stream_arn,
        "function": function,
        "mappings": uuids,
    });
    println!("{summary}");
}

/// The UUIDs of the function's event-source mappings that read the stream.
async fn reading(lambda: &aws_sdk_lambda::Client, function: &str, stream_arn: &str) -> Result<Vec<String>, String> {
    Ok(mappings(lambda, Some(function))
        .await?
        .into_iter()
        .filter(|m| m.reads(stream_arn))
        .map(|m| m.uuid)
        .collect())
}

async fn attach(args: &AttachArgs) -> Result<ExitCode, String> {
    let sdk = sdk_config(args.region.as_ref()).await;
    let (db, stream_arn) = find(&sdk, &args.resource_id).await?;
    if db.status != "started" {
        eprintln!(
            "das fleet attach: the activity stream of {} is {}: start it with `das stream start` \
             (CloudFormation cannot start an activity stream)",
            db.resource_id, db.status
        );
    }
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let existing = reading(&lambda, &args.function, &stream_arn).await?;
    if !existing.is_empty() {
        eprintln!("das fleet attach: {} already reads {stream_arn}", args.function);
        report(
            "already-attached",
            &db.resource_id,
            &stream_arn,
            &args.function,
            &existing,
        );
        return Ok(ExitCode::SUCCESS);
    }
    let position = match args.starting_position {
        StartingPosition::TrimHorizon => "TRIM_HORIZON",
        StartingPosition::Latest => "LATEST",
    };
    let partition = db.partition().unwrap_or("aws");
    let request = model::mapping_request(&args.function, &stream_arn, partition, &args.bucket, position);
    let uuid = create_mapping(&lambda, &request).await?;
    report("attached", &db.resource_id, &stream_arn, &args.function, &[uuid]);
    Ok(ExitCode::SUCCESS)
}

/// CreateEventSourceMapping with the request's settings; returns the new mapping's UUID.
async fn create_mapping(lambda: &aws_sdk_lambda::Client, r: &model::MappingRequest) -> Result<String, String> {
    let out = lambda
        .create_event_source_mapping()
        .function_name(&r.function)
        .event_source_arn(&r.event_source_arn)
        .starting_position(EventSourcePosition::from(r.starting_position))
        .batch_size(r.batch_size)
        .maximum_batching_window_in_seconds(r.maximum_batching_window_in_seconds)
        .parallelization_factor(r.parallelization_factor)
        .bisect_batch_on_function_error(r.bisect_batch_on_function_error)
        .maximum_retry_attempts(r.maximum_retry_attempts)
        .maximum_record_age_in_seconds(r.maximum_record_age_in_seconds)
        .set_function_response_types(
            r.report_batch_item_failures
                .then(|| vec![FunctionResponseType::ReportBatchItemFailures]),
        )
        .destination_config(
            DestinationConfig::builder()
                .on_failure(OnFailure::builder().destination(&r.on_failure_destination).build())
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateEventSourceMapping failed (needs lambda:CreateEventSourceMapping; the stream must \
                 exist, i.e. be started, and the function's role must read it): {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out.uuid().unwrap_or_default().to_owned())
}

async fn detach(args: &DetachArgs) -> Result<ExitCode, String> {
    let sdk = sdk_config(args.region.as_ref()).await;
    let (db, stream_arn) = find(&sdk, &args.resource_id).await?;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let ours = reading(&lambda, &args.function, &stream_arn).await?;
    for uuid in &ours {
        lambda
            .delete_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "DeleteEventSourceMapping {uuid} failed (needs lambda:DeleteEventSourceMapping): {}",
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })?;
    }
    let action = if ours.is_empty() { "not-attached" } else { "detached" };
    report(action, &db.resource_id, &stream_arn, &args.function, &ours);
    Ok(ExitCode::SUCCESS)
}
