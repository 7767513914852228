//! `das unmask`: the break-glass way back from a masked archive line to the event as the database
//! sent it. A line's provenance (`kinesisShardId`, `kinesisSequenceNumber`, `eventIndex`) names its
//! Kinesis record; the function kept that record, still encrypted, in the originals object beside
//! the line's archive object (`DAS_KEEP_ORIGINALS`, [`Layout::originals_key`]). This finds the
//! object from the keys alone (`{shard}-{first seq}-{last seq}` names the records it holds), reads
//! the record's line, decrypts it (KMS `Decrypt` with the DAS encryption context, through the same
//! key cache as the function) and prints its events, unmasked, as the archive would with
//! `DAS_MASK_SQL=off` and no filters: all of them, heartbeats included, or only `--event-index`.
//!
//! Reading `originals/` is denied by the bucket policy to everyone but the break-glass role, and so
//! is `kms:Decrypt` on the DAS key to everyone but the function and that role: run it as that role.
//!
//! What this must never do: write SQL text, bind values or key material anywhere but stdout (errors
//! name keys, sequence numbers and counts, never a line's content), or write to the bucket.

use std::cmp::Ordering;
use std::io::Write as _;
use std::process::ExitCode;

use crate::aws::archive::{Layout, OriginalRecord};
use crate::aws::config::Settings;
use crate::aws::keys::{KeyCache, KmsKeySource};
use crate::pipeline::envelope::{Envelope, ResourceId};
use crate::pipeline::filter::{Filter, FilterSpec};
use crate::pipeline::mask::MaskMode;
use crate::pipeline::record::{render_record, RecordOrigin};

/// The most an originals object may inflate to: a Lambda batch is at most 6 MB of records, about
/// 8 MB as base64 lines.
const MAX_OBJECT_LEN: usize = 256 << 20;

#[derive(Debug, clap::Args)]
pub(super) struct UnmaskArgs {
    /// The archive bucket (default: DAS_ARCHIVE_BUCKET).
    #[arg(long)]
    bucket: Option<String>,
    /// The archive prefix (default: DAS_ARCHIVE_PREFIX, else `activity/`).
    #[arg(long)]
    prefix: Option<String>,
    /// The database: the line's `cluster-…` or `db-…` id (its stream's resource id).
    #[arg(long)]
    resource_id: String,
    /// The line's `kinesisShardId`.
    #[arg(long)]
    shard: String,
    /// The line's `kinesisSequenceNumber`.
    #[arg(long)]
    sequence: String,
    /// The line's `eventIndex`: print only that event (default: every event of the record).
    #[arg(long)]
    event_index: Option<usize>,
    /// The line's arrival day (its `dt` partition, `YYYY-MM-DD`): look only there instead of in
    /// every day of the resource.
    #[arg(long)]
    date: Option<String>,
}

/// Where to look, and with what.
struct Originals {
    client: aws_sdk_s3::Client,
    bucket: String,
    layout: Layout,
}

pub(super) async fn unmask(args: &UnmaskArgs) -> Result<ExitCode, String> {
    let resource = ResourceId::parse(&args.resource_id).map_err(|e| format!("--resource-id: {e}"))?;
    if let Some(date) = &args.date {
        if !is_date(date) {
            return Err(format!("--date {date:?} is not YYYY-MM-DD"));
        }
    }
    let settings = settings(args)?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let originals = Originals {
        client: super::s3_client(&sdk, settings.s3_force_path_style),
        bucket: settings.bucket.clone(),
        layout: settings.layout.clone(),
    };
    let Some(record) = originals.find(&resource, args).await? else {
        eprintln!(
            "das unmask: no originals object under s3://{}/{} holds record {} of {} (was DAS_KEEP_ORIGINALS on \
             when it was archived?)",
            originals.bucket,
            originals.day_prefix(&resource, args.date.as_deref()),
            args.sequence,
            args.shard
        );
        return Ok(ExitCode::from(1));
    };
    let keys = KeyCache::new(
        KmsKeySource::new(&sdk).with_key_arns(&settings.kms_key_arns),
        settings.key_cache,
    );
    let lines = decrypt(&record, &resource, &keys, &settings).await?;
    print_events(&lines, args)
}

/// The archive's bucket, prefix and decoding limits: flags over the `DAS_*` environment.
fn settings(args: &UnmaskArgs) -> Result<Settings, String> {
    let mut extra = Vec::new();
    if let Some(bucket) = &args.bucket {
        extra.push(("DAS_ARCHIVE_BUCKET", bucket.clone()));
    }
    if let Some(prefix) = &args.prefix {
        extra.push(("DAS_ARCHIVE_PREFIX", prefix.clone()));
    }
    super::filters::FilterArgs::default()
        .settings(&extra)
        .map_err(|e| format!("name the archive with --bucket (and --prefix): {e}"))
}

impl Originals {
    /// `{prefix}originals/{resource}/`, or that day's folder.
    fn day_prefix(&self, resource: &ResourceId, date: Option<&str>) -> String {
        let day = date.map(|d| format!("dt={d}/")).unwrap_or_default();
        format!("{}{resource}/{day}", self.layout.originals_prefix())
    }

    /// The record's line in the first originals object that holds it, reading only the objects
    /// whose names cover its sequence number.
    async fn find(&self, resource: &ResourceId, args: &UnmaskArgs) -> Result<Option<OriginalRecord>, String> {
        for key in self.candidates(resource, args).await? {
            let body = self.read(&key).await?;
            let found = body
                .split(|b| *b == b'\n')
                .filter_map(|line| serde_json::from_slice::<OriginalRecord>(line).ok())
                .find(|r| r.shard_id == args.shard && r.sequence_number == args.sequence);
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The keys below the resource's (or the day's) originals folder whose
    /// `{shard}-{first}-{last}` name covers the sequence number.
    async fn candidates(&self, resource: &ResourceId, args: &UnmaskArgs) -> Result<Vec<String>, String> {
        let prefix = self.day_prefix(resource, args.date.as_deref());
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                format!(
                    "cannot list s3://{}/{prefix} (needs s3:ListBucket): {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })?;
            let covering = page.contents().iter().filter_map(|o| o.key());
            keys.extend(
                covering
                    .filter(|key| covers(key, &args.shard, &args.sequence))
                    .map(str::to_owned),
            );
        }
        Ok(keys)
    }

    /// An originals object's lines, decompressed as its name says.
    async fn read(&self, key: &str) -> Result<Vec<u8>, String> {
        let fail = |what: String| format!("cannot read s3://{}/{key}: {what}", self.bucket);
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                fail(format!(
                    "{} (only the break-glass role may read originals/)",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .into_bytes();
        if key.ends_with(".gz") {
            crate::pipeline::gunzip::gunzip(&body, MAX_OBJECT_LEN).map_err(|e| fail(e.to_string()))
        } else if key.ends_with(".zst") {
            let mut out = Vec::new();
            let mut decoder = zstd::stream::read::Decoder::new(&body[..]).map_err(|e| fail(e.to_string()))?;
            std::io::copy(&mut std::io::Read::take(&mut decoder, MAX_OBJECT_LEN as u64), &mut out)
                .map_err(|e| fail(e.to_string()))?;
            Ok(out)
        } else {
            Ok(body.to_vec())
        }
    }
}

/// Whether the object `key`, named `{shard}-{first}-{last}.ndjson…`, may hold record `sequence` of
/// `shard`.
fn covers(key: &str, shard: &str, sequence: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or_default();
    let Some(span) = name.strip_prefix(shard).and_then(|rest| rest.strip_prefix('-')) else {
        return false;
    };
    let span = span.split('.').next().unwrap_or_default();
    let Some((first, last)) = span.split_once('-') else {
        return false;
    };
    compare_sequences(first, sequence) != Ordering::Greater && compare_sequences(sequence, last) != Ordering::Greater
}

/// Kinesis sequence numbers compared as the (up to 128-bit) integers they are.
fn compare_sequences(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// The record's events as archive lines, unmasked (`DAS_MASK_SQL=off`: statements that set a
/// password or key stay masked, as ever), none filtered, heartbeats included.
async fn decrypt(
    record: &OriginalRecord,
    resource: &ResourceId,
    keys: &KeyCache<KmsKeySource>,
    settings: &Settings,
) -> Result<Vec<u8>, String> {
    let at = format!("record {} of {}", record.sequence_number, record.shard_id);
    let data = record
        .data_bytes()
        .ok_or_else(|| format!("{at}: its data is not base64"))?;
    let envelope = Envelope::parse(&data).map_err(|e| format!("{at}: {e}"))?;
    let keyring = keys
        .keyring(&envelope.key_blob, resource)
        .await
        .map_err(|e| format!("{at}: the data key could not be decrypted (needs kms:Decrypt on the DAS key): {e}"))?;
    let filter = Filter::new(&FilterSpec {
        skip_heartbeats: false,
        mask_sql: MaskMode::Off,
        ..FilterSpec::default()
    })
    .map_err(|e| e.to_string())?;
    let origin = RecordOrigin::new(&record.shard_id, &record.sequence_number);
    let rendered =
        tokio::task::block_in_place(|| render_record(&envelope, &keyring, &filter, &settings.decode, &origin))
            .map_err(|e| format!("{at}: {e}"))?;
    Ok(rendered.lines)
}

/// Every line, or the `--event-index`th; exit 1 when the record has no such event.
fn print_events(lines: &[u8], args: &UnmaskArgs) -> Result<ExitCode, String> {
    let events: Vec<&[u8]> = lines.split_inclusive(|b| *b == b'\n').collect();
    let chosen: Vec<&[u8]> = match args.event_index {
        None => events.clone(),
        Some(index) => match events.get(index) {
            Some(line) => vec![line],
            None => {
                eprintln!(
                    "das unmask: record {} of {} has {} events; --event-index {index} is not one of them",
                    args.sequence,
                    args.shard,
                    events.len()
                );
                return Ok(ExitCode::from(1));
            }
        },
    };
    let mut out = std::io::stdout().lock();
    for line in chosen {
        match out.write_all(line) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(format!("cannot write output: {e}")),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write output: {e}")),
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_a_candidate_when_its_name_spans_the_sequence_number_as_integers() {
        let key = "activity/originals/cluster-A/dt=2026-11-22/hour=02/shardId-000000000000-95-120.ndjson.gz";
        let shard = "shardId-000000000000";
        for (sequence, covered) in [
            ("95", true),
            ("100", true),
            ("120", true),
            ("94", false),
            ("121", false),
            ("1000", false),
        ] {
            assert_eq!(covers(key, shard, sequence), covered, "{sequence}");
        }
        assert!(!covers(key, "shardId-000000000001", "100"), "another shard's object");
        assert!(covers(&key.replace(".ndjson.gz", ".ndjson"), shard, "100"));
        assert!(!covers(
            "activity/originals/cluster-A/dt=2026-11-22/hour=02/junk",
            shard,
            "100"
        ));
    }

    #[test]
    fn sequence_numbers_compare_as_integers_not_as_text() {
        assert_eq!(compare_sequences("9", "10"), Ordering::Less);
        assert_eq!(compare_sequences("0010", "10"), Ordering::Equal);
        assert_eq!(
            compare_sequences(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692540925702759324208523137515618"
            ),
            Ordering::Less
        );
    }

    #[test]
    fn only_a_yyyy_mm_dd_date_narrows_the_search() {
        assert!(is_date("2026-11-22"));
        for bad in ["2026-11-2", "2026/11/22", "dt=2026-11-22", "../../x/"] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
