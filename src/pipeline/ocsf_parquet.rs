//! OCSF events as Apache Parquet objects laid out for an Amazon Security Lake custom source.
//!
//! Security Lake asks a custom source for Parquet objects, one OCSF event class per object, under
//! `ext/{source}/region={region}/accountId={account}/eventDay={YYYYMMDD}/`, each covering 5 minutes
//! to a day of events (<https://docs.aws.amazon.com/security-lake/latest/userguide/custom-sources.html>).
//! [`encode`] writes one object's bytes: rows sorted by `time`, nested OCSF objects as Parquet
//! structs, `unmapped` (an object of strings) as a `map<string,string>`, zstd pages. [`split_by_event_day`] and [`object_key`] place the objects; the key is deterministic,
//! so a retried batch rewrites the same objects instead of adding duplicates.
//!
//! Pure: events in, bytes and keys out. No I/O, no clock; a mapping bug that produces an attribute
//! the schema lacks is an error here, never a silently dropped column.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::pipeline::utc::UtcDateTime;

mod columns;

/// Rows turned into one Arrow batch at a time.
const BATCH_ROWS: usize = 8_192;
/// zstd level of the Parquet pages: level 3 is zstd's default speed/size balance.
const ZSTD_LEVEL: i32 = 3;

/// Why a set of OCSF events cannot become one Parquet object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcsfParquetError {
    /// Security Lake wants one OCSF class per object.
    #[error(
        "event {index} has OCSF class_uid {found}, but this object holds class {expected}; write each class to its own object"
    )]
    MixedClasses {
        /// The event's position in the input.
        index: usize,
        /// The class of the first event.
        expected: i64,
        /// The class found (or `none`).
        found: String,
    },
    /// An event does not fit the Parquet schema: an attribute without a column, or of another type.
    /// The message names the column, never a value.
    #[error(
        "an OCSF event does not fit the Parquet schema of das-archiver ({0}); this is a bug: report it with the das-archiver version"
    )]
    Schema(#[source] arrow_schema::ArrowError),
    /// The Parquet writer failed.
    #[error("writing the OCSF Parquet object failed")]
    Parquet(#[source] parquet::errors::ParquetError),
}

/// Encodes `events` (OCSF Datastore Activity events from [`crate::pipeline::ocsf`], all of one
/// class) as one Parquet object, rows sorted by `time` (ties keep their input order).
pub fn encode(events: &[Value]) -> Result<Vec<u8>, OcsfParquetError> {
    check_one_class(events)?;
    let mut order: Vec<&Value> = events.iter().collect();
    order.sort_by_key(|event| time_of(event));
    let schema = schema();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).map_err(OcsfParquetError::Parquet)?,
        ))
        .set_created_by(format!("das-archiver {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties)).map_err(OcsfParquetError::Parquet)?;
    for chunk in order.chunks(BATCH_ROWS) {
        let batch = columns::record_batch(&schema, chunk).map_err(OcsfParquetError::Schema)?;
        writer.write(&batch).map_err(OcsfParquetError::Parquet)?;
    }
    writer.into_inner().map_err(OcsfParquetError::Parquet)
}

fn check_one_class(events: &[Value]) -> Result<(), OcsfParquetError> {
    let class = |event: &Value| event.get("class_uid").and_then(Value::as_i64);
    let Some(expected) = events.first().and_then(class) else {
        return match events.first() {
            None => Ok(()),
            Some(_) => Err(OcsfParquetError::MixedClasses {
                index: 0,
                expected: crate::pipeline::ocsf::CLASS_UID,
                found: "none".into(),
            }),
        };
    };
    match events
        .iter()
        .enumerate()
        .find(|(_, event)| class(event) != Some(expected))
    {
        Some((index, event)) => Err(OcsfParquetError::MixedClasses {
            index,
            expected,
            found: class(event).map_or_else(|| "none".into(), |c| c.to_string()),
        }),
        None => Ok(()),
    }
}

/// An event's `time` (epoch milliseconds); 0 if it has none.
fn time_of(event: &Value) -> i64 {
    event.get("time").and_then(Value::as_i64).unwrap_or(0)
}

/// The `eventDay` partition value of an epoch-millisecond time: its UTC date as `YYYYMMDD`.
pub fn event_day(time_ms: i64) -> String {
    let t = UtcDateTime::from_unix_micros(time_ms.saturating_mul(1_000));
    format!("{:04}{:02}{:02}", t.year, t.month, t.day)
}

/// Groups events by the UTC day of their `time` (`YYYYMMDD`, ascending), keeping their order:
/// one Parquet object per event day per invocation.
pub fn split_by_event_day(events: Vec<Value>) -> BTreeMap<String, Vec<Value>> {
    let mut days: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in events {
        days.entry(event_day(time_of(&event))).or_default().push(event);
    }
    days
}

/// Where the objects go: the custom source's place in the Security Lake bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination<'a> {
    /// Prefix before `ext/` (usually empty); a `/` is added if it lacks one.
    pub prefix: &'a str,
    /// The custom source name given to Security Lake.
    pub source: &'a str,
    /// The `region=` partition value.
    pub region: &'a str,
    /// The `accountId=` partition value.
    pub account: &'a str,
}

/// Which records an object holds, for a key that a retry of the same batch reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span<'a> {
    /// The stream's resource id (`cluster-…`/`db-…`): shards of different streams share names.
    pub resource_id: &'a str,
    /// The shard.
    pub shard_id: &'a str,
    /// Sequence number of the batch's first record.
    pub first_sequence: &'a str,
    /// Sequence number of the batch's last record.
    pub last_sequence: &'a str,
}

/// `{prefix}ext/{source}/region={region}/accountId={account}/eventDay={day}/{resource}_{shard}_{first}_{last}.parquet`.
pub fn object_key(destination: &Destination<'_>, span: &Span<'_>, event_day: &str) -> String {
    let prefix = match destination.prefix {
        "" => String::new(),
        p if p.ends_with('/') => p.to_owned(),
        p => format!("{p}/"),
    };
    format!(
        "{prefix}ext/{}/region={}/accountId={}/eventDay={event_day}/{}_{}_{}_{}.parquet",
        destination.source,
        destination.region,
        destination.account,
        span.resource_id,
        span.shard_id,
        span.first_sequence,
        span.last_sequence,
    )
}

/// The Parquet schema: every attribute [`crate::pipeline::ocsf`] writes, OCSF integer types as
/// Int32, long and timestamp types as Int64, every column nullable.
pub fn schema() -> SchemaRef {
    let endpoint = || object(vec![text("ip"), text("name"), int("port"), text("instance_uid")]);
    let mut fields = Vec::new();
    for (name, int_type) in [
        ("activity_id", false),
        ("category_uid", false),
        ("class_uid", false),
        ("type_uid", true),
        ("type_id", false),
        ("severity_id", false),
        ("status_id", false),
        ("time", true),
        ("timezone_offset", false),
        ("start_time", true),
        ("end_time", true),
    ] {
        fields.push(if int_type { long(name) } else { int(name) });
    }
    for name in [
        "activity_name",
        "category_name",
        "class_name",
        "type_name",
        "type",
        "severity",
        "status",
        "status_code",
        "status_detail",
    ] {
        fields.push(text(name));
    }
    fields.push(Field::new("actor", actor(), true));
    fields.push(Field::new("src_endpoint", endpoint(), true));
    fields.push(Field::new("dst_endpoint", endpoint(), true));
    fields.push(Field::new(
        "database",
        object(vec![text("name"), text("uid"), int("type_id"), text("type")]),
        true,
    ));
    fields.push(Field::new("table", object(vec![text("name")]), true));
    fields.push(Field::new(
        "query_info",
        object(vec![text("query_string"), text("name"), text("uid")]),
        true,
    ));
    fields.push(Field::new("metadata", metadata(), true));
    fields.push(Field::new("cloud", cloud(), true));
    fields.push(Field::new("unmapped", string_map(), true));
    Arc::new(Schema::new(fields))
}

fn actor() -> DataType {
    object(vec![
        Field::new("user", object(vec![text("name"), int("type_id")]), true),
        Field::new("session", object(vec![text("uid")]), true),
    ])
}

fn metadata() -> DataType {
    let product = object(vec![
        text("name"),
        text("vendor_name"),
        text("version"),
        Field::new("feature", object(vec![text("name")]), true),
    ]);
    object(vec![
        text("version"),
        Field::new("product", product, true),
        Field::new(
            "profiles",
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        ),
        text("uid"),
        text("correlation_uid"),
        int("sequence"),
        text("log_name"),
        text("log_provider"),
        text("original_time"),
        text("event_code"),
    ])
}

fn cloud() -> DataType {
    object(vec![
        text("provider"),
        text("region"),
        Field::new("account", object(vec![text("uid")]), true),
    ])
}

/// `map<string,string>`, as Security Lake's tables type `unmapped`.
fn string_map() -> DataType {
    let entries = Field::new(
        "key_value",
        object(vec![Field::new("key", DataType::Utf8, false), text("value")]),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn object(fields: Vec<Field>) -> DataType {
    DataType::Struct(Fields::from(fields))
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
