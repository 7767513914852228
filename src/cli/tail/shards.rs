//! The shard readers of `das tail`: list a stream's shards, decide which are ready (a child only
//! after its parents closed, so its records come after theirs), and read each one until it closes,
//! backing off on throttling and renewing an expired iterator. It moves record bytes to the
//! command's loop and never decodes them, and it never skips or replays a record on its own: a
//! child shard is read from its first record (or the `--from` time), an expired iterator resumes
//! after the last record read, and anything it cannot recover from is an error naming the shard,
//! never a silent end.

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

/// Where a shard found after a split or merge starts. Every record in a child arrived after the
/// reshard, so `latest` (which in the child would skip what arrived between the reshard and our
/// GetShardIterator) becomes the child's trim horizon; a time stays a time (a child's records
/// before it are what the user asked not to see), and the trim horizon stays itself.
/// <https://docs.aws.amazon.com/streams/latest/dev/kinesis-using-sdk-java-after-resharding.html>
pub(super) fn child_start(start: &Start) -> Start {
    match start {
        Start::Latest | Start::TrimHorizon => Start::TrimHorizon,
        Start::At(t) => Start::At(*t),
    }
}

/// One record as read: its bytes, sequence number and Kinesis arrival time.
pub(super) struct Record {
    pub(super) data: Vec<u8>,
    pub(super) sequence: String,
    /// `ApproximateArrivalTimestamp` in epoch milliseconds (0 if Kinesis sent none).
    pub(super) arrival_ms: i64,
}

/// One GetRecords result, or the end of a shard.
pub(super) enum ShardEvent {
    Records {
        /// The shard they were read from.
        shard: String,
        /// The records, in order.
        records: Vec<Record>,
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
    /// Whether the shards were listed once: later listings find children, which start at
    /// [`child_start`].
    listed: bool,
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
            listed: false,
        }
    }

    /// The stream's name.
    pub(super) fn stream(&self) -> &str {
        &self.stream
    }

    /// The stream's ARN (for the region and account of OCSF events): `--stream` if it was one,
    /// else DescribeStreamSummary's answer.
    pub(super) async fn stream_arn(&self, given: &str) -> Result<String, String> {
        if given.starts_with("arn:") {
            return Ok(given.to_owned());
        }
        let out = self
            .client
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await
            .map_err(|e| format!("cannot describe {}: {}", self.stream, DisplayErrorContext(&e)))?;
        Ok(out
            .stream_description_summary()
            .map(|d| d.stream_arn().to_owned())
            .unwrap_or_default())
    }

    /// Lists the shards and starts a reader on every one that is ready: at the command's start on
    /// the first listing (with `latest`, shards already closed are skipped for good), at
    /// [`child_start`] afterwards.
    pub(super) async fn start_ready(&mut self) -> Result<(), String> {
        let shards = list_shards(&self.client, &self.stream).await?;
        let start = if self.listed {
            child_start(&self.start)
        } else {
            if self.start == Start::Latest {
                let skipped = closed_shards(&shards);
                self.started.extend(skipped.iter().cloned());
                self.closed.extend(skipped);
            }
            self.start.clone()
        };
        self.listed = true;
        for shard in ready_shards(&shards, &self.started, &self.closed) {
            self.started.insert(shard.clone());
            tokio::spawn(read_shard(
                self.client.clone(),
                self.stream.clone(),
                shard,
                start.clone(),
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
/// (so a child's records come after all of its parents').
fn ready_shards(shards: &[Shard], started: &HashSet<String>, closed: &HashSet<String>) -> Vec<String> {
    let listed: HashSet<&str> = shards.iter().map(Shard::shard_id).collect();
    shards
        .iter()
        .filter(|s| !started.contains(s.shard_id()))
        .filter(|s| {
            [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .all(|p| !listed.contains(p) || closed.contains(p))
        })
        .map(|s| s.shard_id().to_owned())
        .collect()
}

/// The shards that have an ending sequence number: with `latest`, nothing new arrives in them.
fn closed_shards(shards: &[Shard]) -> Vec<String> {
    shards
        .iter()
        .filter(|s| {
            s.sequence_number_range()
                .is_some_and(|r| r.ending_sequence_number().is_some())
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

/// Where a shard iterator points: the reader's start, or just after a record already read.
#[derive(Debug, PartialEq)]
enum Position<'a> {
    From(&'a Start),
    After(&'a str),
}

/// Where an expired iterator resumes: after the last record read, or, if none was, where the
/// reader started; never the trim horizon of a shard already partly read (that replays up to
/// the stream's retention). Iterators expire five minutes after they are issued:
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html>.
fn renewal_position<'a>(last_sequence: Option<&'a str>, start: &'a Start) -> Position<'a> {
    match last_sequence {
        Some(sequence) => Position::After(sequence),
        None => Position::From(start),
    }
}

/// The one GetShardIterator call, for the first iterator and for renewing an expired one. An
/// answer without an iterator is an error: a shard is closed only when GetRecords says so.
async fn shard_iterator(client: &Client, stream: &str, shard: &str, position: Position<'_>) -> Result<String, String> {
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
        Ok(out) => out
            .shard_iterator()
            .map(str::to_owned)
            .ok_or_else(|| "GetShardIterator answered without an iterator".to_owned()),
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
        start,
        tx,
        backoff: FIRST_BACKOFF,
        last_sequence: None,
    };
    let mut iterator = match first {
        Ok(iterator) => Some(iterator),
        Err(error) => return reader.fail(format!("cannot get a shard iterator: {error}")).await,
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
    /// Where this reader started: an expired iterator with nothing read yet resumes there.
    start: Start,
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
        let records: Vec<Record> = out
            .records()
            .iter()
            .map(|r| Record {
                data: r.data().as_ref().to_vec(),
                sequence: r.sequence_number().to_owned(),
                arrival_ms: r
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0),
            })
            .collect();
        let millis_behind = out.millis_behind_latest().unwrap_or(0);
        let caught_up = records.is_empty() && millis_behind == 0;
        if let Some(record) = records.last() {
            self.last_sequence = Some(record.sequence.clone());
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

    /// Throttled: back off and retry the same iterator. Expired: renew it at [`renewal_position`];
    /// a renewal that fails is an error. Anything else ends the shard's reader with an error.
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
            let position = renewal_position(self.last_sequence.as_deref(), &self.start);
            return match shard_iterator(&self.client, &self.stream, &self.shard, position).await {
                Ok(renewed) => ControlFlow::Continue(Some(renewed)),
                Err(error) => {
                    self.fail(format!("cannot renew its expired iterator: {error}")).await;
                    ControlFlow::Break(())
                }
            };
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
        assert_eq!(ready_shards(&shards, &started, &closed), ["s0"]);
        started.insert("s0".to_owned());
        closed.insert("s0".to_owned());
        assert_eq!(ready_shards(&shards, &started, &closed), ["s1", "s2"]);
        started.extend(["s1".to_owned(), "s2".to_owned()]);
        closed.insert("s1".to_owned());
        assert!(
            ready_shards(&shards, &started, &closed).is_empty(),
            "a merge waits for both parents"
        );
        closed.insert("s2".to_owned());
        assert_eq!(ready_shards(&shards, &started, &closed), ["s3"]);
    }

    #[test]
    fn latest_skips_the_closed_shards_and_starts_every_open_one_at_once() {
        let shards = [
            shard("s0", (None, None), false),
            shard("s1", (Some("s0"), None), true),
            shard("s2", (Some("s0"), None), true),
        ];
        let skipped: HashSet<String> = closed_shards(&shards).into_iter().collect();
        assert_eq!(skipped, HashSet::from(["s0".to_owned()]));
        assert_eq!(ready_shards(&shards, &skipped, &skipped), ["s1", "s2"]);
    }

    #[test]
    fn a_child_found_after_a_split_starts_at_its_trim_horizon_when_tail_started_at_latest() {
        assert_eq!(child_start(&Start::Latest), Start::TrimHorizon);
        assert_eq!(child_start(&Start::TrimHorizon), Start::TrimHorizon);
    }

    #[test]
    fn a_child_keeps_a_start_time_because_its_earlier_records_were_not_asked_for() {
        let t = DateTime::from_secs(1_790_000_000);
        assert_eq!(child_start(&Start::At(t)), Start::At(t));
    }

    #[test]
    fn an_expired_iterator_resumes_after_the_last_record_read() {
        assert_eq!(
            renewal_position(Some("4960"), &Start::TrimHorizon),
            Position::After("4960")
        );
        assert_eq!(renewal_position(Some("4960"), &Start::Latest), Position::After("4960"));
    }

    #[test]
    fn an_expired_iterator_with_nothing_read_resumes_where_the_reader_started_not_at_the_trim_horizon() {
        assert_eq!(renewal_position(None, &Start::Latest), Position::From(&Start::Latest));
        let t = DateTime::from_secs(1_790_000_000);
        assert_eq!(renewal_position(None, &Start::At(t)), Position::From(&Start::At(t)));
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("TRIM-HORIZON"), Ok(Start::TrimHorizon));
        assert!(matches!(parse_start("2026-11-22T08:00:00Z"), Ok(Start::At(_))));
        assert!(parse_start("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
