//! Findings from matched events: the in-memory counting state machine. A counting rule's events are
//! grouped per rule, count, key (the `by` fields' values) and tumbling window (start =
//! `floor(logTime / within) * within`); the group fires once, when it reaches its threshold, with a
//! deterministic `findingId`, so the same events give the same ids however they are batched. An
//! event seen twice (same shard, sequence number and index: a retried batch) is counted once.
//!
//! Counts live in this process only: events of one key handled by two containers are counted apart
//! (exact cross-container counts need a shared table, not built yet). Never reads the clock.

use std::collections::{HashMap, HashSet};

use aws_lc_rs::digest;
use serde::Serialize;
use serde_json::Value;

use super::{CountSpec, Field, RuleEvent, RuleSet};
use crate::pipeline::ocsf::time;
use crate::pipeline::utc::UtcDateTime;

/// Events a finding carries at most.
pub const MAX_FINDING_EVENTS: usize = 10;

/// Where an event comes from: its database and, when known, its Kinesis provenance.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventOrigin<'a> {
    /// The database's resource id (`cluster-…` or `db-…`).
    pub resource_id: &'a str,
    /// `kinesisShardId`.
    pub shard: Option<&'a str>,
    /// `kinesisSequenceNumber`.
    pub sequence: Option<&'a str>,
    /// `eventIndex`.
    pub index: Option<u64>,
}

impl EventOrigin<'_> {
    /// `shard/sequence/index`, when the event has a provenance.
    fn provenance(&self) -> Option<String> {
        match (self.shard, self.sequence, self.index) {
            (Some(shard), Some(seq), Some(index)) => Some(format!("{shard}/{seq}/{index}")),
            _ => None,
        }
    }
}

/// What a rule found: the schema of the `Database Activity Finding` detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// 32 hex digits of SHA-256(rule id, resource id, key, window start): equal for equal inputs.
    pub finding_id: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// The rule's severity label.
    pub severity: &'static str,
    /// The database's resource id.
    pub resource_id: String,
    /// `dbUserName` of the first event.
    pub db_user_name: Option<String>,
    /// `remoteHost` of the first event.
    pub remote_host: Option<String>,
    /// Events (or distinct values) counted when the rule fired.
    pub count: u64,
    /// `logTime` of the earliest event counted, as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub first_seen: Option<String>,
    /// `logTime` of the latest event counted.
    pub last_seen: Option<String>,
    /// Up to [`MAX_FINDING_EVENTS`] of the events counted, as the caller handed them (masked).
    pub events: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WindowKey {
    rule: usize,
    count: usize,
    key: String,
    start_ms: i64,
}

#[derive(Debug, Default)]
struct Window {
    end_ms: i64,
    counted: u64,
    distinct: HashSet<String>,
    seen: HashSet<String>,
    first_ms: i64,
    last_ms: i64,
    user: Option<String>,
    host: Option<String>,
    events: Vec<Value>,
    fired: bool,
}

/// Rules plus their counting state: events in, findings out.
#[derive(Debug)]
pub struct Detector {
    rules: RuleSet,
    windows: HashMap<WindowKey, Window>,
    untimed: u64,
}

impl Detector {
    /// A detector with no counts yet.
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules,
            windows: HashMap::new(),
            untimed: 0,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Events a counting rule matched but could not count, their `logTime` missing or unreadable.
    pub fn untimed(&self) -> u64 {
        self.untimed
    }

    /// Evaluates one event; `sample` gives the event as a finding should carry it (the masked line),
    /// and is called only when a finding will keep it.
    pub fn observe<E: RuleEvent + ?Sized>(
        &mut self,
        event: &E,
        origin: &EventOrigin<'_>,
        sample: &dyn Fn() -> Value,
    ) -> Vec<Finding> {
        let matched = self.rules.evaluate(event);
        let mut findings = Vec::new();
        for rule in matched {
            let Some(spec) = self.rules.rules().get(rule) else {
                continue;
            };
            if spec.counts.is_empty() {
                findings.push(self.single(rule, event, origin, sample));
                continue;
            }
            for count in 0..spec.counts.len() {
                if let Some(finding) = self.count(rule, count, event, origin, sample) {
                    findings.push(finding);
                }
            }
        }
        findings
    }

    /// Forgets the windows that ended before `ms` (epoch milliseconds); a late event of one of them
    /// would then open it again.
    pub fn forget_windows_ending_before(&mut self, ms: i64) {
        self.windows.retain(|_, w| w.end_ms >= ms);
    }

    /// A finding for one event of a rule without `count`.
    fn single<E: RuleEvent + ?Sized>(
        &self,
        rule: usize,
        event: &E,
        origin: &EventOrigin<'_>,
        sample: &dyn Fn() -> Value,
    ) -> Finding {
        let at = event_ms(event);
        let key = origin
            .provenance()
            .unwrap_or_else(|| event.field(Field::LogTime).unwrap_or_default().into_owned());
        let mut window = Window {
            counted: 1,
            first_ms: at.unwrap_or(0),
            last_ms: at.unwrap_or(0),
            user: field(event, Field::DbUserName),
            host: field(event, Field::RemoteHost),
            events: vec![sample()],
            ..Window::default()
        };
        window.fired = true;
        self.finding(
            rule,
            origin.resource_id,
            &format!("event={key}"),
            at.unwrap_or(0),
            &window,
            at.is_some(),
        )
    }

    /// Counts one event for one `count` of a rule; the finding if this event reaches the threshold.
    fn count<E: RuleEvent + ?Sized>(
        &mut self,
        rule: usize,
        count: usize,
        event: &E,
        origin: &EventOrigin<'_>,
        sample: &dyn Fn() -> Value,
    ) -> Option<Finding> {
        let spec: CountSpec = self.rules.rules().get(rule)?.counts.get(count)?.clone();
        let Some(at) = event_ms(event) else {
            self.untimed += 1;
            return None;
        };
        let length_ms = i64::try_from(spec.within_seconds).ok()?.checked_mul(1_000)?;
        let start_ms = at.div_euclid(length_ms) * length_ms;
        let key = spec
            .by
            .iter()
            .map(|f| format!("{}={}", f.name(), event.field(*f).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        let window_key = WindowKey {
            rule,
            count,
            key,
            start_ms,
        };
        let window = self.windows.entry(window_key.clone()).or_insert_with(|| Window {
            end_ms: start_ms + length_ms,
            first_ms: at,
            last_ms: at,
            user: field(event, Field::DbUserName),
            host: field(event, Field::RemoteHost),
            ..Window::default()
        });
        if let Some(provenance) = origin.provenance() {
            if !window.seen.insert(provenance) {
                return None;
            }
        }
        let counts = match spec.distinct {
            Some(f) => match event.field(f) {
                Some(value) => window.distinct.insert(value.into_owned()),
                None => false,
            },
            None => true,
        };
        if !counts {
            return None;
        }
        window.counted += 1;
        window.first_ms = window.first_ms.min(at);
        window.last_ms = window.last_ms.max(at);
        if window.events.len() < MAX_FINDING_EVENTS && !window.fired {
            window.events.push(sample());
        }
        if window.fired || window.counted < spec.at_least {
            return None;
        }
        window.fired = true;
        let window = self.windows.get(&window_key)?;
        Some(self.finding(rule, origin.resource_id, &window_key.key, start_ms, window, true))
    }

    fn finding(&self, rule: usize, resource_id: &str, key: &str, start_ms: i64, w: &Window, timed: bool) -> Finding {
        let spec = self.rules.rules().get(rule);
        let rule_id = spec.map(|r| r.id.clone()).unwrap_or_default();
        Finding {
            finding_id: finding_id(&rule_id, resource_id, key, start_ms.div_euclid(1_000)),
            rule_id,
            title: spec.map(|r| r.title.clone()).unwrap_or_default(),
            severity: spec.map(|r| r.severity.label()).unwrap_or_default(),
            resource_id: resource_id.to_owned(),
            db_user_name: w.user.clone(),
            remote_host: w.host.clone(),
            count: w.counted,
            first_seen: timed.then(|| iso(w.first_ms)),
            last_seen: timed.then(|| iso(w.last_ms)),
            events: w.events.clone(),
        }
    }
}

/// The event's `logTime` in epoch milliseconds.
fn event_ms<E: RuleEvent + ?Sized>(event: &E) -> Option<i64> {
    time::parse(&event.field(Field::LogTime)?).map(|t| t.epoch_ms)
}

fn field<E: RuleEvent + ?Sized>(event: &E, f: Field) -> Option<String> {
    event.field(f).map(std::borrow::Cow::into_owned)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn iso(ms: i64) -> String {
    let t = UtcDateTime::from_unix_micros(ms.saturating_mul(1_000));
    format!("{}T{}.{:03}Z", t.date(), t.time(), ms.rem_euclid(1_000))
}

/// The first 32 hex digits of SHA-256 over the parts, each followed by a NUL byte.
pub(crate) fn finding_id(rule_id: &str, resource_id: &str, key: &str, window_start_seconds: i64) -> String {
    let start = window_start_seconds.to_string();
    let mut input = Vec::new();
    for part in [rule_id, resource_id, key, start.as_str()] {
        input.extend_from_slice(part.as_bytes());
        input.push(0);
    }
    let hash = digest::digest(&digest::SHA256, &input);
    hash.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect()
}
