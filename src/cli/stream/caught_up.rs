//! `das stream stop`'s check, on facts: stopping an activity stream deletes its Kinesis stream, so
//! it may go only once every record the stream holds is handled. Per shard, the newest sequence
//! number archived or quarantined — from the archive's object names, confirmed by the newest
//! object's `das-last-sequence-number` metadata — is compared with the records the stream holds
//! after it, which are read to the end of the shard and decrypted: a record holding only heartbeats
//! is never archived (the function skips them), so it is not missing; one with any other event, or
//! one that cannot be decrypted, is.
//!
//! It reads the stream, the archive and KMS; it never writes, deletes or stops anything. Sequence
//! numbers are compared as the integers they are (decimal strings of up to 128 digits).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::types::ShardIteratorType;

use crate::aws::batch::{decode_records, parse_envelope, Keyrings, RecordOrigin};
use crate::aws::keys::{KeyCache, KmsKeySource};
use crate::pipeline::envelope::ResourceId;
use crate::pipeline::filter::{Filter, FilterSpec};
use crate::pipeline::record::DecodeOptions;

/// Orders decimal sequence numbers as integers: the longer (without leading zeros) is the larger,
/// and of equal length the lexicographically larger.
pub(super) fn compare_sequences(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The shard and the last sequence number an archive object (`{shard}-{first}-{last}.ndjson…`) or a
/// quarantine document (`{shard}-{seq}[.outputs].json`) names, from its key (Kinesis shard ids are
/// `shardId-` and digits; sequence numbers are digits).
pub(super) fn named_sequence(key: &str) -> Option<(String, String)> {
    let file = key.rsplit('/').next()?;
    let stem = file.split('.').next()?;
    let (rest, last) = stem.rsplit_once('-')?;
    if last.is_empty() || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // An archive object names its first sequence number too.
    let shard = match rest.rsplit_once('-') {
        Some((shard, first))
            if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) && shard.contains('-') =>
        {
            shard
        }
        _ => rest,
    };
    Some((shard.to_owned(), last.to_owned()))
}

/// What one shard holds beyond the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ShardGap {
    pub(super) shard: String,
    /// The newest sequence number archived or quarantined.
    pub(super) handled: Option<String>,
    /// The newest sequence number in the stream (the handled one if nothing came after it).
    pub(super) newest: Option<String>,
    /// Records after the handled one.
    pub(super) after: u64,
    /// Of those, records holding only heartbeats (never archived).
    pub(super) heartbeats_only: u64,
    /// The first record that holds events the archive does not have.
    pub(super) first_missing: Option<String>,
    /// Records after the handled one that could not be decrypted (counted as missing).
    pub(super) undecodable: u64,
}

impl ShardGap {
    /// Records after the handled one that are not heartbeat-only: missing from the archive.
    pub(super) fn missing(&self) -> u64 {
        self.after - self.heartbeats_only
    }
}

/// The per-shard table `stop` prints.
pub(super) fn table(gaps: &[ShardGap]) -> String {
    let mut out = format!(
        "{:<24} {:>8} {:>10}  {:<58} {}\n",
        "shard", "missing", "heartbeats", "newest archived or quarantined", "newest in the stream"
    );
    for gap in gaps {
        out.push_str(&format!(
            "{:<24} {:>8} {:>10}  {:<58} {}\n",
            gap.shard,
            gap.missing(),
            gap.heartbeats_only,
            gap.handled.as_deref().unwrap_or("-"),
            gap.newest.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// The archive of one database: bucket, prefix (ending in `/` unless empty), and its S3 client.
pub(super) struct Archive {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
}

impl Archive {
    /// Per shard, the newest sequence number archived or quarantined for `resource` in the
    /// partitions from `since` (`YYYY-MM-DD`) on.
    pub(super) async fn handled(&self, resource: &ResourceId, since: &str) -> Result<BTreeMap<String, String>, String> {
        let archive = format!("{}{resource}/", self.prefix);
        let quarantine = format!("{}quarantine/{resource}/", self.prefix);
        let mut newest: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
        for (folder, is_archive) in [(archive, true), (quarantine, false)] {
            for key in self.list(&folder, &format!("{folder}dt={since}")).await? {
                let Some((shard, last)) = named_sequence(&key) else {
                    continue;
                };
                let entry = newest.entry(shard).or_insert_with(|| (last.clone(), None));
                if compare_sequences(&last, &entry.0) != Ordering::Less {
                    *entry = (last, is_archive.then_some(key));
                }
            }
        }
        let mut handled = BTreeMap::new();
        for (shard, (last, key)) in newest {
            let confirmed = match key {
                Some(key) => self.last_sequence_metadata(&key).await?.unwrap_or(last),
                None => last,
            };
            handled.insert(shard, confirmed);
        }
        Ok(handled)
    }

    /// The keys under `prefix` after `start_after` (keys sort by their `dt=` date).
    async fn list(&self, prefix: &str, start_after: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .start_after(start_after)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                format!(
                    "cannot list s3://{}/{prefix} (needs s3:ListBucket; --force skips the check): {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        Ok(keys)
    }

    /// The object's `das-last-sequence-number`, when it has one.
    async fn last_sequence_metadata(&self, key: &str) -> Result<Option<String>, String> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read s3://{}/{key} (needs s3:GetObject; --force skips the check): {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(head
            .metadata()
            .and_then(|m| m.get("das-last-sequence-number"))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .cloned())
    }
}

/// Tells records that hold events from records that hold only heartbeats, by decrypting them with
/// KMS under the database's encryption context. No filter but the heartbeat skip: a filter from the
/// operator's shell must not make a record look archived.
pub(super) struct Classifier {
    keys: KeyCache<KmsKeySource>,
    resource: ResourceId,
    filter: Arc<Filter>,
    options: DecodeOptions,
}

impl Classifier {
    pub(super) fn new(sdk: &aws_config::SdkConfig, resource: ResourceId) -> Result<Self, String> {
        let spec = FilterSpec {
            skip_heartbeats: true,
            ..FilterSpec::default()
        };
        Ok(Self {
            keys: KeyCache::new(KmsKeySource::new(sdk), crate::aws::keys::KeyCacheLimits::default()),
            resource,
            filter: Arc::new(Filter::new(&spec).map_err(|e| e.to_string())?),
            options: DecodeOptions::default(),
        })
    }

    /// Adds `records` (shard, sequence number, data) to `gap`.
    async fn add(&self, gap: &mut ShardGap, records: &[(String, Vec<u8>)]) -> Result<(), String> {
        let envelopes: Vec<_> = records.iter().map(|(_, data)| parse_envelope(Some(data))).collect();
        let mut keyrings = Keyrings::new();
        for envelope in envelopes.iter().flatten() {
            if !keyrings.contains_key(&envelope.key_blob) {
                let keyring = self.keys.keyring(&envelope.key_blob, &self.resource).await;
                keyrings.insert(envelope.key_blob.clone(), keyring.map_err(Arc::new));
            }
        }
        let origins = records.iter().map(|(seq, _)| RecordOrigin::new(&gap.shard, seq));
        let decoded = decode_records(
            envelopes.into_iter().zip(origins).collect(),
            &keyrings,
            &self.filter,
            &self.options,
        )
        .await
        .map_err(|e| format!("decoding failed: {e}"))?;
        for ((seq, _), result) in records.iter().zip(decoded) {
            gap.after += 1;
            match result {
                // Nothing kept with only the heartbeat skip: heartbeats (or no event at all), nothing to archive.
                Ok(rendered) if rendered.kept == 0 => gap.heartbeats_only += 1,
                Ok(_) => {}
                Err(err) => {
                    if gap.undecodable == 0 {
                        eprintln!("das stream stop: record {seq} of {} cannot be read: {err}", gap.shard);
                    }
                    gap.undecodable += 1;
                }
            }
            if gap.first_missing.is_none() && gap.after > gap.heartbeats_only {
                gap.first_missing = Some(seq.clone());
            }
            gap.newest = Some(seq.clone());
        }
        Ok(())
    }
}

/// What the stream holds after `handled` in `shard`, read to the shard's end (or the stream's tip).
pub(super) async fn gap(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    handled: Option<&str>,
    classifier: &Classifier,
) -> Result<ShardGap, String> {
    let mut gap = ShardGap {
        shard: shard.to_owned(),
        handled: handled.map(str::to_owned),
        newest: handled.map(str::to_owned),
        ..ShardGap::default()
    };
    let fail = |e: String| format!("cannot read {shard} of {stream} (--force skips the check): {e}");
    let mut request = kinesis.get_shard_iterator().stream_name(stream).shard_id(shard);
    request = match handled {
        Some(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let out = request
        .send()
        .await
        .map_err(|e| fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()))?;
    let mut iterator = out.shard_iterator().map(str::to_owned);
    let mut backoff = Duration::from_millis(200);
    while let Some(current) = iterator.take() {
        let out = match kinesis
            .get_records()
            .shard_iterator(&current)
            .limit(10_000)
            .send()
            .await
        {
            Ok(out) => out,
            // Five GetRecords per second per shard is the limit; `das tail` may be reading too.
            Err(e)
                if e.as_service_error()
                    .is_some_and(GetRecordsError::is_provisioned_throughput_exceeded_exception) =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                iterator = Some(current);
                continue;
            }
            Err(e) => return Err(fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string())),
        };
        let records: Vec<(String, Vec<u8>)> = out
            .records()
            .iter()
            .map(|r| (r.sequence_number().to_owned(), r.data().as_ref().to_vec()))
            .collect();
        let at_tip = records.is_empty() && out.millis_behind_latest().unwrap_or(0) == 0;
        classifier.add(&mut gap, &records).await.map_err(fail)?;
        if at_tip {
            break;
        }
        iterator = out.next_shard_iterator().map(str::to_owned);
    }
    Ok(gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_integers_not_as_text() {
        assert_eq!(compare_sequences("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequences(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
        assert_eq!(compare_sequences("0010", "10"), Ordering::Equal);
        assert_eq!(compare_sequences(&"9".repeat(128), &"9".repeat(127)), Ordering::Greater);
    }

    #[test]
    fn object_and_document_keys_name_their_shard_and_last_sequence_number() {
        let cases = [
            (
                "activity/cluster-A/dt=2026-11-22/hour=02/shardId-000000000001-4961-4999.ndjson.gz",
                Some(("shardId-000000000001", "4999")),
            ),
            (
                "activity/cluster-A/dt=2026-11-22/hour=02/shardId-000000000001-4961-4999.ndjson",
                Some(("shardId-000000000001", "4999")),
            ),
            (
                "activity/quarantine/cluster-A/dt=2026-11-22/shardId-000000000001-42.json",
                Some(("shardId-000000000001", "42")),
            ),
            (
                "activity/quarantine/cluster-A/dt=2026-11-22/shardId-000000000001-42.ocsf-parquet.json",
                Some(("shardId-000000000001", "42")),
            ),
            ("activity/cluster-A/dt=2026-11-22/hour=02/notes.txt", None),
        ];
        for (key, want) in cases {
            let got = named_sequence(key);
            assert_eq!(got.as_ref().map(|(s, l)| (s.as_str(), l.as_str())), want, "{key}");
        }
    }

    #[test]
    fn heartbeat_only_records_are_not_missing_and_the_table_says_so() {
        let gap = ShardGap {
            shard: "shardId-000000000000".into(),
            handled: Some("41".into()),
            newest: Some("49".into()),
            after: 8,
            heartbeats_only: 6,
            first_missing: Some("47".into()),
            undecodable: 0,
        };
        assert_eq!(gap.missing(), 2);
        let table = table(&[gap]);
        let row = table.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["shardId-000000000000", "2", "6", "41", "49"]);
    }
}
