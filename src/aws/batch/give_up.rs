//! When a record that keeps failing is given up (quarantined, still encrypted, redrivable) instead of
//! holding its shard: the pure rule ([`GiveUpPolicy::verdict`]) and the little a warm container
//! remembers to apply it ([`FailingRecords`]).
//!
//! A record that fails transiently (or on a configuration error) is given up only when
//! - it is older than `DAS_GIVE_UP_AFTER_SECONDS` (12 h) **and** its shard has been failing in this
//!   container, with no record settled by its own success since, for `DAS_GIVE_UP_FAILING_SECONDS`
//!   (30 min); or
//! - it is within [`RETENTION_MARGIN`] of the stream's retention (`DAS_STREAM_RETENTION_HOURS`, 24):
//!   kept waiting, it would be trimmed from the stream, and every record behind it with it.
//!
//! Age alone is not enough: during a catch-up (after an outage, or a new mapping reading from
//! `TRIM_HORIZON`) every record is older than 12 h, and one throttled `Decrypt` would quarantine them
//! with no retry at all. Lambda retries a failing Kinesis batch right away and again and again (no
//! back-off between invocations; each attempt is bounded by the KMS and S3 timeouts, seconds), so
//! 30 minutes of failure is hundreds of attempts: not bad luck. The failing time is what this
//! container saw; Lambda may run a retry in a new container, which starts again from zero, so the
//! retention rule is the backstop that never lets a record expire.
//!
//! What this must never do: give up a record that has not failed (only transient failures reach it),
//! read the clock (the caller passes `now`), or grow without bound.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long before the stream's retention a failing record is given up whatever else: a few
/// invocations (each at most the function's timeout, 15 min at most) and Lambda's polling fit many
/// times in an hour, so the record is quarantined before Kinesis trims it.
pub const RETENTION_MARGIN: Duration = Duration::from_secs(3600);

/// The most failing records a container remembers; each is a shard id, a sequence number and a time
/// (about 150 bytes). A container sees the retry points of the shards it serves, a handful.
pub const MAX_FAILING_RECORDS: usize = 1024;

/// `DAS_GIVE_UP_AFTER_SECONDS`, `DAS_GIVE_UP_FAILING_SECONDS`, `DAS_STREAM_RETENTION_HOURS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUpPolicy {
    /// The age (since Kinesis arrival) below which a failing record is always retried.
    pub after: Duration,
    /// How long the record's shard must have been failing in this container.
    pub failing_for: Duration,
    /// The stream's retention period.
    pub retention: Duration,
}

/// Why a record was given up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GiveUpReason {
    /// Older than the give-up age and failing for longer than the failing time.
    StillFailing {
        /// Seconds since the record arrived.
        age: f64,
        /// Seconds the shard has been failing in this container.
        failing: f64,
    },
    /// Within [`RETENTION_MARGIN`] of the stream's retention.
    NearRetention {
        /// Seconds since the record arrived.
        age: f64,
    },
}

impl GiveUpPolicy {
    /// Whether a record `age` seconds old, whose shard has been failing for `failing` seconds, is
    /// given up, and why; `None`: retry it.
    pub fn verdict(&self, age: f64, failing: f64) -> Option<GiveUpReason> {
        let backstop = self.retention.saturating_sub(RETENTION_MARGIN).as_secs_f64();
        if age >= backstop {
            return Some(GiveUpReason::NearRetention { age });
        }
        (age >= self.after.as_secs_f64() && failing >= self.failing_for.as_secs_f64())
            .then_some(GiveUpReason::StillFailing { age, failing })
    }

    /// The reason written into the quarantine document and the log.
    pub fn describe(&self, reason: &GiveUpReason) -> String {
        match *reason {
            GiveUpReason::StillFailing { age, failing } => format!(
                "given up: still failing after {failing:.0} s of retries (DAS_GIVE_UP_FAILING_SECONDS={}), {age:.0} s \
                 after it arrived (DAS_GIVE_UP_AFTER_SECONDS={})",
                self.failing_for.as_secs(),
                self.after.as_secs()
            ),
            GiveUpReason::NearRetention { age } => format!(
                "given up: {age:.0} s after it arrived, within {} s of the stream's {} h retention \
                 (DAS_STREAM_RETENTION_HOURS), where Kinesis would drop it",
                RETENTION_MARGIN.as_secs(),
                self.retention.as_secs() / 3600
            ),
        }
    }
}

/// The records this container last left for retry (each shard's retry point), with the time their
/// shard started failing (Unix seconds): when Lambda sends the record again, its shard's failing time
/// goes on from there. Bounded by [`MAX_FAILING_RECORDS`].
#[derive(Debug, Default)]
pub struct FailingRecords {
    by_shard: Mutex<HashMap<String, HashMap<String, f64>>>,
}

impl FailingRecords {
    /// Removes and returns, for each record of `records` (shard id, sequence number) that this
    /// container left for retry, its position and the time its shard started failing.
    pub fn take<'a>(&self, records: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(usize, f64)> {
        let mut map = self.by_shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for (index, (shard, sequence)) in records.into_iter().enumerate() {
            if let Some(since) = map.get_mut(shard).and_then(|seqs| seqs.remove(sequence)) {
                found.push((index, since));
            }
        }
        map.retain(|_, seqs| !seqs.is_empty());
        found
    }

    /// Remembers that the record `sequence` of `shard` is left for retry, its shard failing since
    /// `since`. When full, the record whose shard has been failing the shortest time is forgotten
    /// (its failing time would start again at zero: a later give-up, never an earlier one).
    pub fn remember(&self, shard: &str, sequence: &str, since: f64) {
        let mut map = self.by_shard.lock().unwrap_or_else(PoisonError::into_inner);
        let len: usize = map.values().map(HashMap::len).sum();
        let known = map.get(shard).is_some_and(|seqs| seqs.contains_key(sequence));
        if len >= MAX_FAILING_RECORDS && !known {
            let newest = map
                .iter()
                .flat_map(|(shard, seqs)| seqs.iter().map(move |(seq, t)| (*t, shard, seq)))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(t, shard, seq)| (t, shard.clone(), seq.clone()));
            match newest {
                Some((t, _, _)) if t <= since => return,
                Some((_, shard, seq)) => {
                    if let Some(seqs) = map.get_mut(&shard) {
                        seqs.remove(&seq);
                    }
                }
                None => {}
            }
        }
        map.entry(shard.to_owned())
            .or_default()
            .insert(sequence.to_owned(), since);
    }

    /// Records remembered.
    pub fn len(&self) -> usize {
        let map = self.by_shard.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().map(HashMap::len).sum()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: f64 = 3600.0;

    fn policy() -> GiveUpPolicy {
        GiveUpPolicy {
            after: Duration::from_secs(12 * 3600),
            failing_for: Duration::from_secs(1800),
            retention: Duration::from_secs(24 * 3600),
        }
    }

    #[test]
    fn an_old_record_that_just_failed_is_retried() {
        assert_eq!(policy().verdict(13.0 * HOUR, 0.0), None);
        assert_eq!(policy().verdict(13.0 * HOUR, 1799.0), None);
    }

    #[test]
    fn an_old_record_failing_for_the_failing_time_is_given_up() {
        assert_eq!(
            policy().verdict(13.0 * HOUR, 1800.0),
            Some(GiveUpReason::StillFailing {
                age: 13.0 * HOUR,
                failing: 1800.0
            })
        );
    }

    #[test]
    fn a_young_record_is_retried_however_long_it_fails() {
        assert_eq!(policy().verdict(11.0 * HOUR, 10.0 * HOUR), None);
    }

    #[test]
    fn a_record_near_the_retention_is_given_up_on_its_first_failure() {
        assert_eq!(policy().verdict(22.9 * HOUR, 0.0), None);
        assert_eq!(
            policy().verdict(23.0 * HOUR, 0.0),
            Some(GiveUpReason::NearRetention { age: 23.0 * HOUR })
        );
    }

    #[test]
    fn the_reasons_name_their_settings() {
        let p = policy();
        let failing = p.describe(&p.verdict(13.0 * HOUR, 2000.0).unwrap());
        assert!(failing.contains("DAS_GIVE_UP_FAILING_SECONDS=1800"), "{failing}");
        let near = p.describe(&p.verdict(23.5 * HOUR, 0.0).unwrap());
        assert!(near.contains("24 h retention"), "{near}");
    }

    #[test]
    fn a_remembered_record_is_found_once_at_its_position() {
        let memory = FailingRecords::default();
        memory.remember("shard-1", "200", 1000.0);
        memory.remember("shard-2", "200", 2000.0);
        let batch = [("shard-1", "100"), ("shard-1", "200"), ("shard-1", "300")];
        assert_eq!(memory.take(batch), [(1, 1000.0)]);
        assert_eq!(memory.take(batch), []);
        assert_eq!(memory.len(), 1, "the other shard's record stays");
    }

    #[test]
    fn the_memory_is_bounded_and_keeps_the_longest_failing_records() {
        let memory = FailingRecords::default();
        for i in 0..(MAX_FAILING_RECORDS + 10) {
            memory.remember("shard", &i.to_string(), i as f64);
        }
        assert_eq!(memory.len(), MAX_FAILING_RECORDS);
        assert_eq!(memory.take([("shard", "0")]), [(0, 0.0)]);
    }
}
