//! The pure half of `das fleet`: what a database's activity stream, its event-source mapping and its
//! newest archived object add up to (the verdict), the mapping `attach` creates, the newest `dt=` /
//! `hour=` partition of an archive listing, and the table and NDJSON rows.
//!
//! No I/O, no clock and no AWS types here (the caller passes "now" and plain values), so every rule
//! is a unit test; it must never decide anything from a live call.

use serde::Serialize;

/// The prefix of every DAS Kinesis stream name; the rest is the resource id.
const STREAM_PREFIX: &str = "aws-rds-das-";

/// A DB cluster or a DB instance, as DescribeDBClusters / DescribeDBInstances report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Database {
    /// `cluster` or `instance`.
    pub(super) kind: &'static str,
    /// The identifier the user chose (`orders-prod`).
    pub(super) name: String,
    /// `arn:<partition>:rds:<region>:<account>:cluster:<name>` (or `…:db:<name>`).
    pub(super) arn: String,
    /// `cluster-…` (DbClusterResourceId) or `db-…` (DbiResourceId): the archive's path segment.
    pub(super) resource_id: String,
    /// `ActivityStreamStatus`: stopped, starting, started, stopping (absent means stopped).
    pub(super) status: String,
    /// `ActivityStreamKinesisStreamName`, absent while the stream is stopped.
    pub(super) stream: Option<String>,
}

impl Database {
    /// The stream's name: the reported one, else the one DAS gives it (`aws-rds-das-<resource id>`),
    /// so a mapping left behind on a stopped stream is still found.
    pub(super) fn stream_name(&self) -> String {
        self.stream
            .clone()
            .unwrap_or_else(|| format!("{STREAM_PREFIX}{}", self.resource_id))
    }

    /// The Kinesis stream ARN, in the database's partition, region and account (DAS creates the
    /// stream next to the database).
    pub(super) fn stream_arn(&self) -> Option<String> {
        let (partition, region, account) = arn_parts(&self.arn)?;
        Some(format!(
            "arn:{partition}:kinesis:{region}:{account}:stream/{}",
            self.stream_name()
        ))
    }

    /// `aws`, `aws-cn`, `aws-us-gov`… from the database ARN.
    pub(super) fn partition(&self) -> Option<&str> {
        arn_parts(&self.arn).map(|(partition, _, _)| partition)
    }
}

/// (partition, region, account) of an RDS ARN.
fn arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(partition), Some("rds"), Some(region), Some(account))
            if !partition.is_empty() && !region.is_empty() && !account.is_empty() =>
        {
            Some((partition, region, account))
        }
        _ => None,
    }
}

/// One event-source mapping, as ListEventSourceMappings reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mapping {
    pub(super) uuid: String,
    /// Creating, Enabling, Enabled, Disabling, Disabled, Updating, Deleting.
    pub(super) state: String,
    pub(super) event_source_arn: String,
}

impl Mapping {
    /// Whether this mapping reads `stream_arn`, directly or through an enhanced fan-out consumer
    /// (`<stream arn>/consumer/<name>:<timestamp>`).
    pub(super) fn reads(&self, stream_arn: &str) -> bool {
        self.event_source_arn == stream_arn
            || self
                .event_source_arn
                .strip_prefix(stream_arn)
                .is_some_and(|rest| rest.starts_with("/consumer/"))
    }
}

/// The newest object under a resource's archive prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Archived {
    pub(super) key: String,
    /// Its LastModified, epoch seconds.
    pub(super) at_secs: i64,
    /// The same, RFC 3339.
    pub(super) at: String,
}

/// What a database's row says, worst first in the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Verdict {
    /// The stream is started but no enabled mapping reads it: its events are not archived.
    StartedNotArchived,
    /// A mapping exists but the activity stream is stopped (the mapping reads nothing).
    ArchivedButStopped,
    /// Started and read, but no archived object is newer than the silence threshold.
    Silent,
    /// The stream is starting or stopping.
    Changing,
    /// No stream, no mapping: nothing to archive.
    NotStreaming,
    /// Started, read by an enabled mapping, and archived recently.
    Ok,
}

impl Verdict {
    /// Whether the row needs the operator's attention.
    pub(super) fn is_flagged(self) -> bool {
        matches!(self, Self::StartedNotArchived | Self::ArchivedButStopped | Self::Silent)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::StartedNotArchived => "started-not-archived",
            Self::ArchivedButStopped => "archived-but-stopped",
            Self::Silent => "silent",
            Self::Changing => "changing",
            Self::NotStreaming => "not-streaming",
            Self::Ok => "ok",
        }
    }
}

/// The verdict from the stream status, the state of the mapping that reads it (if any), and the
/// age in seconds of the newest archived object (if any).
pub(super) fn verdict(
    status: &str,
    mapping_state: Option<&str>,
    archived_age_secs: Option<i64>,
    silent_after_secs: i64,
) -> Verdict {
    match (status, mapping_state) {
        ("started", Some("Enabled")) => match archived_age_secs {
            Some(age) if age <= silent_after_secs => Verdict::Ok,
            _ => Verdict::Silent,
        },
        ("started", _) => Verdict::StartedNotArchived,
        ("stopped", Some(_)) => Verdict::ArchivedButStopped,
        ("stopped", None) => Verdict::NotStreaming,
        _ => Verdict::Changing,
    }
}

/// One database in `das fleet status`; also its `--json` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Row {
    pub(super) resource_id: String,
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) stream: String,
    pub(super) activity_stream_status: String,
    pub(super) mapping_state: Option<String>,
    pub(super) mapping_uuid: Option<String>,
    pub(super) last_archived_at: Option<String>,
    pub(super) last_archived_key: Option<String>,
    pub(super) verdict: Verdict,
}

/// The row of `db`, given every mapping of the function(s) and its newest archived object.
pub(super) fn row(
    db: &Database,
    mappings: &[Mapping],
    archived: Option<&Archived>,
    now_secs: i64,
    silent_after_secs: i64,
) -> Row {
    let stream_arn = db.stream_arn().unwrap_or_default();
    // Several mappings on one stream (e.g. a second function): an enabled one decides.
    let mapping = mappings
        .iter()
        .filter(|m| m.reads(&stream_arn))
        .max_by_key(|m| m.state == "Enabled");
    Row {
        resource_id: db.resource_id.clone(),
        name: db.name.clone(),
        kind: db.kind,
        stream: db.stream_name(),
        activity_stream_status: db.status.clone(),
        mapping_state: mapping.map(|m| m.state.clone()),
        mapping_uuid: mapping.map(|m| m.uuid.clone()),
        last_archived_at: archived.map(|a| a.at.clone()),
        last_archived_key: archived.map(|a| a.key.clone()),
        verdict: verdict(
            &db.status,
            mapping.map(|m| m.state.as_str()),
            archived.map(|a| now_secs - a.at_secs),
            silent_after_secs,
        ),
    }
}

/// The newest `<label>=…/` partition among `prefixes` (S3 CommonPrefixes ending in `/`): `dt=` is
/// `YYYY-MM-DD` and `hour=` is `HH`, so the greatest string is the newest.
pub(super) fn newest_partition<'a>(prefixes: impl IntoIterator<Item = &'a str>, label: &str) -> Option<&'a str> {
    let wanted = format!("{label}=");
    prefixes
        .into_iter()
        .filter(|p| {
            p.trim_end_matches('/')
                .rsplit('/')
                .next()
                .is_some_and(|last| last.starts_with(&wanted))
        })
        .max()
}

/// The newest of (key, LastModified epoch seconds) pairs; ties go to the greatest key (the later
/// sequence numbers of one shard).
pub(super) fn newest_object<'a>(objects: impl IntoIterator<Item = (&'a str, i64)>) -> Option<(&'a str, i64)> {
    objects.into_iter().max_by_key(|&(key, at)| (at, key))
}

/// The mapping `das fleet attach` creates: the template's defaults (template.yaml, the
/// `ActivityStream…` event-source mappings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MappingRequest {
    pub(super) function: String,
    pub(super) event_source_arn: String,
    /// `TRIM_HORIZON` or `LATEST`.
    pub(super) starting_position: &'static str,
    pub(super) batch_size: i32,
    pub(super) maximum_batching_window_in_seconds: i32,
    pub(super) parallelization_factor: i32,
    pub(super) bisect_batch_on_function_error: bool,
    pub(super) maximum_retry_attempts: i32,
    pub(super) maximum_record_age_in_seconds: i32,
    /// Always `ReportBatchItemFailures`: the function reports partial batch failures.
    pub(super) report_batch_item_failures: bool,
    /// `arn:<partition>:s3:::<bucket>`.
    pub(super) on_failure_destination: String,
}

/// The template's mapping for `stream_arn`, failed batches to `bucket` in `partition`.
pub(super) fn mapping_request(
    function: &str,
    stream_arn: &str,
    partition: &str,
    bucket: &str,
    starting_position: &'static str,
) -> MappingRequest {
    MappingRequest {
        function: function.to_owned(),
        event_source_arn: stream_arn.to_owned(),
        starting_position,
        batch_size: 1000,
        maximum_batching_window_in_seconds: 60,
        parallelization_factor: 1,
        bisect_batch_on_function_error: true,
        maximum_retry_attempts: 10_000,
        maximum_record_age_in_seconds: 64_800,
        report_batch_item_failures: true,
        on_failure_destination: format!("arn:{partition}:s3:::{bucket}"),
    }
}

const HEADERS: [&str; 7] = [
    "RESOURCE ID",
    "DATABASE",
    "STREAM",
    "MAPPING",
    "LAST ARCHIVED",
    "VERDICT",
    "LAST KEY",
];

/// The rows as an aligned table; `color` marks flagged verdicts (bold red) for a terminal.
pub(super) fn table(rows: &[Row], color: bool) -> String {
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.resource_id.clone(),
                format!("{} ({})", r.name, r.kind),
                r.activity_stream_status.clone(),
                r.mapping_state.clone().unwrap_or_else(|| "-".into()),
                r.last_archived_at.clone().unwrap_or_else(|| "-".into()),
                r.verdict.as_str().to_owned(),
                r.last_archived_key.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = line(&HEADERS.map(str::to_owned), &widths, None);
    for (row, line_cells) in rows.iter().zip(&cells) {
        let flag = (color && row.verdict.is_flagged()).then_some(5);
        out.push_str(&line(line_cells, &widths, flag));
    }
    out
}

/// One padded line; the cell at `highlight` in bold red.
fn line(cells: &[String; 7], widths: &[usize; 7], highlight: Option<usize>) -> String {
    let mut out = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        let padded = format!("{cell:<width$}");
        if highlight == Some(i) {
            out.push_str(&format!("\u{1b}[1;31m{padded}\u{1b}[0m"));
        } else {
            out.push_str(&padded);
        }
        out.push_str("  ");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_MINUTES: i64 = 600;

    fn cluster(status: &str) -> Database {
        Database {
            kind: "cluster",
            name: "orders".into(),
            arn: "arn:aws:rds:eu-west-1:123456789012:cluster:orders".into(),
            resource_id: "cluster-ABC".into(),
            status: status.into(),
            stream: (status == "started").then(|| "aws-rds-das-cluster-ABC".into()),
        }
    }

    fn mapping(state: &str, arn: &str) -> Mapping {
        Mapping {
            uuid: "u-1".into(),
            state: state.into(),
            event_source_arn: arn.into(),
        }
    }

    const STREAM_ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/aws-rds-das-cluster-ABC";

    #[test]
    fn a_started_stream_without_an_enabled_mapping_is_started_not_archived() {
        assert_eq!(
            verdict("started", None, Some(5), TEN_MINUTES),
            Verdict::StartedNotArchived
        );
        for state in ["Disabled", "Creating", "Enabling", "Disabling"] {
            assert_eq!(
                verdict("started", Some(state), Some(5), TEN_MINUTES),
                Verdict::StartedNotArchived,
                "{state}"
            );
        }
    }

    #[test]
    fn a_mapping_on_a_stopped_stream_is_archived_but_stopped() {
        assert_eq!(
            verdict("stopped", Some("Enabled"), None, TEN_MINUTES),
            Verdict::ArchivedButStopped
        );
        assert_eq!(
            verdict("stopped", Some("Disabled"), None, TEN_MINUTES),
            Verdict::ArchivedButStopped
        );
        assert_eq!(verdict("stopped", None, None, TEN_MINUTES), Verdict::NotStreaming);
    }

    #[test]
    fn a_read_stream_with_nothing_archived_lately_is_silent_and_a_fresh_one_is_ok() {
        assert_eq!(
            verdict("started", Some("Enabled"), Some(601), TEN_MINUTES),
            Verdict::Silent
        );
        assert_eq!(verdict("started", Some("Enabled"), None, TEN_MINUTES), Verdict::Silent);
        assert_eq!(verdict("started", Some("Enabled"), Some(600), TEN_MINUTES), Verdict::Ok);
        assert_eq!(verdict("starting", None, None, TEN_MINUTES), Verdict::Changing);
        assert!(Verdict::Silent.is_flagged() && !Verdict::Ok.is_flagged() && !Verdict::NotStreaming.is_flagged());
    }

    #[test]
    fn the_stream_arn_comes_from_the_database_arn_even_when_the_stream_is_stopped() {
        assert_eq!(cluster("started").stream_arn().as_deref(), Some(STREAM_ARN));
        assert_eq!(cluster("stopped").stream_arn().as_deref(), Some(STREAM_ARN));
        let mut china = cluster("stopped");
        china.arn = "arn:aws-cn:rds:cn-north-1:111122223333:db:oracle1".into();
        assert_eq!(china.partition(), Some("aws-cn"));
        assert_eq!(
            china.stream_arn().as_deref(),
            Some("arn:aws-cn:kinesis:cn-north-1:111122223333:stream/aws-rds-das-cluster-ABC")
        );
        china.arn = "orders".into();
        assert_eq!(china.stream_arn(), None);
    }

    #[test]
    fn a_mapping_reads_its_stream_directly_or_through_a_consumer_but_not_a_longer_name() {
        assert!(mapping("Enabled", STREAM_ARN).reads(STREAM_ARN));
        assert!(mapping("Enabled", &format!("{STREAM_ARN}/consumer/das:1700000000")).reads(STREAM_ARN));
        assert!(!mapping("Enabled", &format!("{STREAM_ARN}2")).reads(STREAM_ARN));
    }

    #[test]
    fn a_row_prefers_the_enabled_mapping_and_ages_the_archive_from_now() {
        let archived = Archived {
            key: "activity/cluster-ABC/dt=2026-12-01/hour=23/s-1-2.ndjson.gz".into(),
            at_secs: 1_000,
            at: "1970-01-01T00:16:40Z".into(),
        };
        let mappings = [
            mapping("Disabled", STREAM_ARN),
            Mapping {
                uuid: "u-2".into(),
                ..mapping("Enabled", STREAM_ARN)
            },
            mapping("Enabled", "arn:aws:kinesis:eu-west-1:123456789012:stream/other"),
        ];
        let ok = row(&cluster("started"), &mappings, Some(&archived), 1_300, TEN_MINUTES);
        assert_eq!((ok.mapping_uuid.as_deref(), ok.verdict), (Some("u-2"), Verdict::Ok));
        let silent = row(&cluster("started"), &mappings, Some(&archived), 1_601, TEN_MINUTES);
        assert_eq!(silent.verdict, Verdict::Silent);
        let json = serde_json::to_value(&silent).unwrap();
        assert_eq!(json["verdict"], "silent");
        assert_eq!(json["last_archived_at"], "1970-01-01T00:16:40Z");
        assert_eq!(json["stream"], "aws-rds-das-cluster-ABC");
    }

    #[test]
    fn the_newest_partition_is_the_greatest_labelled_prefix() {
        let dts = [
            "activity/cluster-A/dt=2025-12-31/",
            "activity/cluster-A/dt=2026-12-01/",
            "activity/cluster-A/dt=2026-01-31/",
            "activity/cluster-A/zzz/",
        ];
        assert_eq!(newest_partition(dts, "dt"), Some("activity/cluster-A/dt=2026-12-01/"));
        let hours = [
            "p/dt=2026-12-01/hour=09/",
            "p/dt=2026-12-01/hour=23/",
            "p/dt=2026-12-01/hour=10/",
        ];
        assert_eq!(newest_partition(hours, "hour"), Some("p/dt=2026-12-01/hour=23/"));
        assert_eq!(newest_partition(["p/other/"], "dt"), None);
    }

    #[test]
    fn the_newest_object_is_the_last_modified_and_then_the_greatest_key() {
        let objects = [("a-1-5", 100), ("a-6-9", 200), ("b-1-3", 200), ("a-0-0", 50)];
        assert_eq!(newest_object(objects), Some(("b-1-3", 200)));
        assert_eq!(newest_object([]), None);
    }

    #[test]
    fn attach_asks_for_the_template_s_mapping_with_failures_to_the_bucket() {
        let r = mapping_request("das-archiver", STREAM_ARN, "aws-cn", "audit", "TRIM_HORIZON");
        assert_eq!(r.on_failure_destination, "arn:aws-cn:s3:::audit");
        assert_eq!(r.event_source_arn, STREAM_ARN);
        // The same numbers as the template's parameter defaults.
        let template = include_str!("../../../template.yaml");
        for (parameter, value) in [
            ("StartingPosition", r.starting_position.to_owned()),
            ("BatchSize", r.batch_size.to_string()),
            (
                "MaximumBatchingWindowInSeconds",
                r.maximum_batching_window_in_seconds.to_string(),
            ),
            ("ParallelizationFactor", r.parallelization_factor.to_string()),
            (
                "BisectBatchOnFunctionError",
                r.bisect_batch_on_function_error.to_string(),
            ),
            ("MaximumRetryAttempts", r.maximum_retry_attempts.to_string()),
            ("MaximumRecordAgeInSeconds", r.maximum_record_age_in_seconds.to_string()),
        ] {
            assert_eq!(template_default(template, parameter), value, "{parameter}");
        }
        assert!(r.report_batch_item_failures && template.contains("FunctionResponseTypes: [ReportBatchItemFailures]"));
    }

    /// The `Default:` of a top-level template parameter, unquoted.
    fn template_default(template: &str, parameter: &str) -> String {
        let block = template
            .split(&format!("\n  {parameter}:\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no parameter {parameter}"));
        let line = block
            .lines()
            .take_while(|l| l.starts_with("    "))
            .find_map(|l| l.trim().strip_prefix("Default:"))
            .unwrap_or_else(|| panic!("no default for {parameter}"));
        line.trim().trim_matches('"').to_owned()
    }

    #[test]
    fn the_table_aligns_columns_and_marks_flagged_rows_only_in_color() {
        let rows = [
            row(&cluster("started"), &[], None, 0, TEN_MINUTES),
            Row {
                resource_id: "db-XYZ".into(),
                verdict: Verdict::Ok,
                ..row(&cluster("stopped"), &[], None, 0, TEN_MINUTES)
            },
        ];
        let plain = table(&rows, false);
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("RESOURCE ID  DATABASE"));
        assert!(lines[1].contains("started-not-archived") && !plain.contains('\u{1b}'));
        let verdict_column = lines[0].find("VERDICT").unwrap();
        assert_eq!(lines[2].find("ok").unwrap(), verdict_column);
        let colored = table(&rows, true);
        assert_eq!(colored.matches("\u{1b}[1;31m").count(), 1);
    }
}
