//! The shard readers of `das tail`: list a stream's shards, decide which are ready (a child only
//! after its parents closed, so its records come after theirs), and read each one until it closes,
//! backing off on throttling and renewing an expired iterator. It moves record bytes to the
//! command's loop and never decodes them.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;
use tokio::sync::mpsc;

/// Where reading starts in each shard.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Start {
    Latest,
    TrimHorizon,
    At(DateTime),
}

/// Parses `--from`.
pub(super) fn parse_start(text: &str) -> Result<Start, String> {
    match text.to_ascii_lowercase().as_str() {
        "latest" => Ok(Start::Latest),
        "trim-horizon" | "trim_horizon" => Ok(Start::TrimHorizon),
        _ => DateTime::from_str(text, aws_sdk_kinesis::primitives::DateTimeFormat::DateTime)
            .map(Start::At)
            .map_err(|_| format!("{text:?} is not latest, trim-horizon or an RFC 3339 time like 2026-11-22T08:00:00Z")),
    }
}

/// One GetRecords result, or the end of a shard.
pub(super) enum ShardEvent {
    Records {
        /// The shard they were read from.
        shard: String,
        /// Each record's data and sequence number, in order.
        records: Vec<(Vec<u8>, String)>,
        millis_behind: i64,
    },
    Closed {
        shard: String,
    },
    Failed {
        shard: String,
        error: String,
    },
}

/// The readers of one stream: which shards were started and which have closed.
pub(super) struct Readers {
    client: Client,
    stream: String,
    start: Start,
    tx: mpsc::Sender<ShardEvent>,
    started: HashSet<String>,
    closed: HashSet<String>,
}

impl Readers {
    /// Readers of `stream` from `start`, sending what they read to `tx`. None runs yet.
    pub(super) fn new(client: Client, stream: String, start: Start, tx: mpsc::Sender<ShardEvent>) -> Self {
        Self {
            client,
            stream,
            start,
            tx,
            started: HashSet::new(),
            closed: HashSet::new(),
        }
    }

    /// The stream's name.
    pub(super) fn stream(&self) -> &str {
        &self.stream
    }

    /// Lists the shards and starts a reader on every one that is ready.
    pub(super) async fn start_ready(&mut self) -> Result<(), String> {
        let shards = list_shards(&self.client, &self.stream).await?;
        for shard in ready_shards(&shards, &self.started, &self.closed, self.start == Start::Latest) {
            self.started.insert(shard.clone());
            tokio::spawn(read_shard(
                self.client.clone(),
                self.stream.clone(),
                shard,
                self.start.clone(),
                self.tx.clone(),
            ));
        }
        Ok(())
    }

    /// Notes that `shard` closed and starts its children once they are ready.
    pub(super) async fn closed(&mut self, shard: String) -> Result<(), String> {
        self.closed.insert(shard);
        self.start_ready().await
    }
}

/// The shards to start now: not started yet, and every parent that is in the listing has finished
/// (so a child's records come after all of its parents'). With `latest`, closed shards are skipped.
fn ready_shards(shards: &[Shard], started: &HashSet<String>, closed: &HashSet<String>, latest: bool) -> Vec<String> {
    let listed: HashSet<&str> = shards.iter().map(Shard::shard_id).collect();
    shards
        .iter()
        .filter(|s| !started.contains(s.shard_id()))
        .filter(|s| {
            !latest
                || s.sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none())
        })
        .filter(|s| {
            [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .all(|p| !listed.contains(p) || closed.contains(p) || latest)
        })
        .map(|s| s.shard_id().to_owned())
        .collect()
}

async fn list_shards(client: &Client, stream: &str) -> Result<Vec<Shard>, String> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = request
            .send()
            .await
            .map_err(|e| format!("cannot list the shards of {stream}: {}", DisplayErrorContext(&e)))?;
        shards.extend(out.shards().iter().cloned());
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// Where a shard iterator points: the command's start, or just after a record already read.
enum Position<'a> {
    From(&'a Start),
    After(&'a str),
}

/// The one GetShardIterator call, for the first iterator and for renewing an expired one.
async fn shard_iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    position: Position<'_>,
) -> Result<Option<String>, String> {
    let request = client.get_shard_iterator().stream_name(stream).shard_id(shard);
    let request = match position {
        Position::From(Start::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
        Position::From(Start::TrimHorizon) => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Position::From(Start::At(t)) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(*t),
        Position::After(sequence) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence),
    };
    match request.send().await {
        Ok(out) => Ok(out.shard_iterator().map(str::to_owned)),
        Err(e) => Err(DisplayErrorContext(&e).to_string()),
    }
}

/// Reads one shard until it closes, sending what it reads.
async fn read_shard(client: Client, stream: String, shard: String, start: Start, tx: mpsc::Sender<ShardEvent>) {
    let first = shard_iterator(&client, &stream, &shard, Position::From(&start)).await;
    let mut reader = ShardReader {
        client,
        stream,
        shard,
        tx,
        backoff: FIRST_BACKOFF,
        last_sequence: None,
    };
    let mut iterator = match first {
        Ok(iterator) => iterator,
        Err(error) => return reader.fail(error).await,
    };
    while let Some(current) = iterator.take() {
        match reader.poll(current).await {
            ControlFlow::Continue(next) => iterator = next,
            ControlFlow::Break(()) => return,
        }
    }
    let _ = reader.tx.send(ShardEvent::Closed { shard: reader.shard }).await;
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The state of one shard's read loop.
struct ShardReader {
    client: Client,
    stream: String,
    shard: String,
    tx: mpsc::Sender<ShardEvent>,
    backoff: Duration,
    last_sequence: Option<String>,
}

impl ShardReader {
    /// One GetRecords: the next iterator (`None` once the shard closed), or stop.
    async fn poll(&mut self, current: String) -> ControlFlow<(), Option<String>> {
        match self
            .client
            .get_records()
            .shard_iterator(&current)
            .limit(10_000)
            .send()
            .await
        {
            Ok(out) => self.deliver(out).await,
            Err(e) => self.recover(current, e).await,
        }
    }

    /// Sends the records read, then waits: five GetRecords per second per shard is the Kinesis
    /// limit, and a reader that has caught up polls once a second.
    async fn deliver(&mut self, out: GetRecordsOutput) -> ControlFlow<(), Option<String>> {
        self.backoff = FIRST_BACKOFF;
        let records: Vec<(Vec<u8>, String)> = out
            .records()
            .iter()
            .map(|r| (r.data().as_ref().to_vec(), r.sequence_number().to_owned()))
            .collect();
        let millis_behind = out.millis_behind_latest().unwrap_or(0);
        let caught_up = records.is_empty() && millis_behind == 0;
        if let Some((_, sequence)) = records.last() {
            self.last_sequence = Some(sequence.clone());
        }
        if !records.is_empty()
            && self
                .tx
                .send(ShardEvent::Records {
                    shard: self.shard.clone(),
                    records,
                    millis_behind,
                })
                .await
                .is_err()
        {
            return ControlFlow::Break(());
        }
        let pause = if caught_up {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(210)
        };
        tokio::time::sleep(pause).await;
        ControlFlow::Continue(out.next_shard_iterator().map(str::to_owned))
    }

    /// Throttled: back off and retry the same iterator. Expired: renew it after the last record
    /// read (or at the trim horizon if none was). Anything else ends the shard's reader.
    async fn recover(
        &mut self,
        current: String,
        error: SdkError<GetRecordsError, HttpResponse>,
    ) -> ControlFlow<(), Option<String>> {
        let service = error.as_service_error();
        if service.is_some_and(GetRecordsError::is_provisioned_throughput_exceeded_exception) {
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(Duration::from_secs(10));
            return ControlFlow::Continue(Some(current));
        }
        if service.is_some_and(GetRecordsError::is_expired_iterator_exception) {
            let position = match &self.last_sequence {
                Some(sequence) => Position::After(sequence),
                None => Position::From(&Start::TrimHorizon),
            };
            let renewed = shard_iterator(&self.client, &self.stream, &self.shard, position).await;
            return ControlFlow::Continue(renewed.ok().flatten());
        }
        self.fail(DisplayErrorContext(&error).to_string()).await;
        ControlFlow::Break(())
    }

    async fn fail(&self, error: String) {
        let failed = ShardEvent::Failed {
            shard: self.shard.clone(),
            error,
        };
        let _ = self.tx.send(failed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::SequenceNumberRange;

    fn shard(id: &str, parents: (Option<&str>, Option<&str>), open: bool) -> Shard {
        let range = SequenceNumberRange::builder()
            .starting_sequence_number("1")
            .set_ending_sequence_number((!open).then(|| "9".to_owned()))
            .build()
            .unwrap();
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parents.0.map(str::to_owned))
            .set_adjacent_parent_shard_id(parents.1.map(str::to_owned))
            .sequence_number_range(range)
            .build()
            .unwrap()
    }

    #[test]
    fn children_start_only_after_their_parents_close() {
        let shards = [
            shard("s0", (None, None), false),
            shard("s1", (Some("s0"), None), true),
            shard("s2", (Some("s0"), None), true),
            shard("s3", (Some("s1"), Some("s2")), true),
        ];
        let mut started = HashSet::new();
        let mut closed = HashSet::new();
        assert_eq!(ready_shards(&shards, &started, &closed, false), ["s0"]);
        started.insert("s0".to_owned());
        closed.insert("s0".to_owned());
        assert_eq!(ready_shards(&shards, &started, &closed, false), ["s1", "s2"]);
        started.extend(["s1".to_owned(), "s2".to_owned()]);
        closed.insert("s1".to_owned());
        assert!(
            ready_shards(&shards, &started, &closed, false).is_empty(),
            "a merge waits for both parents"
        );
        closed.insert("s2".to_owned());
        assert_eq!(ready_shards(&shards, &started, &closed, false), ["s3"]);
    }

    #[test]
    fn latest_starts_every_open_shard_at_once() {
        let shards = [
            shard("s0", (None, None), false),
            shard("s1", (Some("s0"), None), true),
            shard("s2", (Some("s0"), None), true),
        ];
        assert_eq!(
            ready_shards(&shards, &HashSet::new(), &HashSet::new(), true),
            ["s1", "s2"]
        );
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("TRIM-HORIZON"), Ok(Start::TrimHorizon));
        assert!(matches!(parse_start("2026-11-22T08:00:00Z"), Ok(Start::At(_))));
        assert!(parse_start("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
