//! Decoding a batch a window of records at a time, on the CPU pool.
//!
//! Each window's kept lines go into their arrival date-hour's archive object, compressed, and are
//! freed while the next records are decoded. So a batch never holds its whole NDJSON (10,000 records
//! of 20 events would be 180 MB of it, five times the Lambda event), and compression runs beside
//! decoding instead of after it.
//!
//! Where a window ends decides where gzip members start, so it must depend on the records alone (a
//! retried batch writes the same bytes under the same key): a window ends after the record that
//! brings it to [`WINDOW_DATA_BYTES`] of Kinesis record data (each record's own size, whatever KMS
//! answered for it), or to [`WINDOW_LINE_BYTES`] of rendered lines (what a record renders is a
//! function of the record and the settings; a record that failed renders nothing, and a failure that
//! can change on a retry is transient, and ends what is written).
//!
//! Records are rendered a step at a time: as many as may, inflated, hold [`STEP_INFLATED_BYTES`]
//! (deflate inflates at most [`MAX_INFLATE_RATIO`] times, and never past the decompression cap), so a
//! batch of highly compressible records cannot hold more than a few windows of lines at once. Steps
//! change only memory and parallelism, never where a window ends.
//!
//! Which records a window settles follows the batch's rule: a record that must be retried ends what
//! is written, and a stuck record may be given up (quarantined) instead ([`GiveUp`]). So decoding
//! stops at the first record that must be retried: nothing at or after it is written.
//!
//! What this must never do: await or touch AWS (it runs inside `spawn_blocking`), read the clock, or
//! cut windows by anything but the records themselves.

use super::give_up::GiveUpPolicy;
use super::*;

/// A window ends once its records' Kinesis data reaches this many bytes: about 900 one-event records,
/// or 40 of 500 events. Their NDJSON is 5 to 20 times more.
pub(super) const WINDOW_DATA_BYTES: usize = 1 << 20;

/// A window also ends once its records' rendered lines reach this many bytes, so highly compressible
/// records (up to 1,032 times smaller gzip'ed) never put a gigabyte of lines into one window.
pub(super) const WINDOW_LINE_BYTES: usize = 32 << 20;

/// The most that the records of one rendering step may inflate to, at worst: one record at the
/// default decompression cap (64 MiB), two of half that, or about 80 one-event records.
pub(super) const STEP_INFLATED_BYTES: usize = 96 << 20;

/// Deflate's largest compression ratio, about 1032:1 (<https://www.zlib.net/zlib_tech.html>): a
/// record's payload inflates to at most this many times its data.
pub(super) const MAX_INFLATE_RATIO: usize = 1032;

/// What decoding a batch left.
pub(super) struct DecodedBatch {
    /// Every record's fate, in order, up to and including `first_transient` (the records after it
    /// are not kept).
    pub(super) fates: Vec<Fate>,
    /// The first record that must be retried, if any.
    pub(super) first_transient: Option<usize>,
    /// Since when (Unix seconds) the shard has been failing at `first_transient`.
    pub(super) failing_since: Option<f64>,
    /// The archive objects of the records before it, by arrival date-hour.
    pub(super) hours: BTreeMap<HourKey, HourGroup>,
}

/// The give-up rule as one batch applies it, record by record in order: the policy, the batch's
/// clock, and when the shard started failing.
#[derive(Debug, Clone)]
pub(super) struct GiveUp {
    policy: Option<GiveUpPolicy>,
    /// Unix seconds, read once per batch by the caller.
    now: f64,
    /// Records of the batch this container left for retry before: position → failing since.
    remembered: BTreeMap<usize, f64>,
    /// Since when the shard has been failing, while no record since has settled by its own success.
    streak: Option<f64>,
}

impl GiveUp {
    /// The rule for one batch: `policy` (`None`: never give up) at `now` (Unix seconds), with the
    /// batch's records this container left for retry before (position, failing since).
    pub(super) fn new(policy: Option<GiveUpPolicy>, now: f64, remembered: Vec<(usize, f64)>) -> Self {
        Self {
            policy,
            now,
            remembered: remembered.into_iter().collect(),
            streak: None,
        }
    }

    /// Settles record `index`'s fate, in order: a transient failure is given up (the fate becomes
    /// [`Fate::GivenUp`]) or is the retry point, in which case this returns since when the shard has
    /// been failing. A record that decoded, or failed permanently, ends the shard's failing streak.
    fn settle(&mut self, index: usize, input: &InputRecord, fate: &mut Fate) -> Option<f64> {
        if let Some(since) = self.remembered.remove(&index) {
            self.streak = Some(self.streak.map_or(since, |s| s.min(since)));
        }
        match fate {
            Fate::Decoded(_) | Fate::Permanent(_) => {
                self.streak = None;
                None
            }
            Fate::GivenUp { .. } => None,
            Fate::Transient(_) => {
                let since = self.streak.unwrap_or(self.now);
                let verdict = self
                    .policy
                    .and_then(|p| p.verdict(self.now - input.arrival_seconds, self.now - since));
                let Some(reason) = verdict else {
                    return Some(since);
                };
                if let Fate::Transient(failure) = std::mem::replace(fate, Fate::Decoded(Rendered::default())) {
                    *fate = Fate::GivenUp { failure, reason, since };
                }
                self.streak = Some(since);
                None
            }
        }
    }
}

/// The CPU side of [`Archiver::process`]'s decode step: everything it needs, owned.
pub(super) struct Decoder {
    pub(super) filter: Arc<Filter>,
    pub(super) options: DecodeOptions,
    pub(super) compression: crate::aws::compress::Compression,
    /// Whether the NDJSON archive is written at all (OCSF-only functions free the lines unread).
    pub(super) ndjson: bool,
    /// Whether each archive object gets its originals object (`DAS_KEEP_ORIGINALS`).
    pub(super) keep_originals: bool,
    pub(super) give_up: GiveUp,
}

/// A window: where it starts in the batch, its fates, and how many of them are settled (written).
struct Window {
    start: usize,
    fates: Vec<Fate>,
    settled: usize,
}

impl Window {
    fn at(start: usize) -> Self {
        Self {
            start,
            fates: Vec::new(),
            settled: 0,
        }
    }

    /// Bytes of lines it holds.
    fn lines(&self) -> usize {
        self.fates.iter().map(lines_len).sum()
    }
}

/// Where windows end: the running totals of the open window.
#[derive(Default)]
struct Cutter {
    data: usize,
    lines: usize,
}

impl Cutter {
    /// Adds one record; whether the window ends after it.
    fn push(&mut self, data: usize, lines: usize) -> bool {
        self.data += data;
        self.lines += lines;
        let end = self.data >= WINDOW_DATA_BYTES || self.lines >= WINDOW_LINE_BYTES;
        if end {
            *self = Self::default();
        }
        end
    }
}

impl Decoder {
    /// Decodes `jobs` (one per record of `batch`) a step at a time, sealing each finished window
    /// while the next step decodes.
    pub(super) fn run(mut self, batch: &Batch, jobs: Vec<Job>) -> DecodedBatch {
        let mut decoded = DecodedBatch {
            fates: Vec::with_capacity(batch.records.len()),
            first_transient: None,
            failing_since: None,
            hours: BTreeMap::new(),
        };
        let mut cutter = Cutter::default();
        let mut open = Window::at(0);
        let mut closed: Vec<Window> = Vec::new();
        let mut jobs = jobs.into_iter();
        let mut next = 0;
        while next < batch.records.len() && decoded.first_transient.is_none() {
            let count = step_len(batch.records.get(next..).unwrap_or_default(), &self.options);
            let step: Vec<Job> = jobs.by_ref().take(count).collect();
            let rendered = self.render_beside_sealing(batch, step, &mut closed, &mut decoded);
            for (offset, result) in rendered.into_iter().enumerate() {
                let index = next + offset;
                let Some(input) = batch.records.get(index) else { break };
                let mut fate = Fate::of(result);
                let retry = self.give_up.settle(index, input, &mut fate);
                let lines = lines_len(&fate);
                open.fates.push(fate);
                if retry.is_some() {
                    decoded.first_transient = Some(index);
                    decoded.failing_since = retry;
                    open.settled = open.fates.len() - 1;
                    break;
                }
                open.settled = open.fates.len();
                if cutter.push(data_len(input), lines) {
                    closed.push(std::mem::replace(&mut open, Window::at(index + 1)));
                }
            }
            next += count;
        }
        closed.push(open);
        for mut window in closed {
            self.seal(batch, &mut window, &mut decoded.hours);
            decoded.fates.extend(window.fates);
        }
        decoded
    }

    /// Renders one step's jobs while the windows closed so far are sealed, then hands their fates
    /// over. When those windows hold many lines (highly compressible records), they are sealed first
    /// instead, so a window's lines and the next step's are not held at once.
    fn render_beside_sealing(
        &self,
        batch: &Batch,
        step: Vec<Job>,
        closed: &mut Vec<Window>,
        decoded: &mut DecodedBatch,
    ) -> Vec<Decoded> {
        let mut sealing = std::mem::take(closed);
        let hours = &mut decoded.hours;
        let seal_all = |windows: &mut Vec<Window>, hours: &mut BTreeMap<HourKey, HourGroup>| {
            for window in windows.iter_mut() {
                self.seal(batch, window, hours);
            }
        };
        let rendered = if sealing.iter().map(Window::lines).sum::<usize>() >= WINDOW_LINE_BYTES {
            seal_all(&mut sealing, hours);
            render_jobs(step, &self.filter, &self.options)
        } else {
            rayon::join(
                || render_jobs(step, &self.filter, &self.options),
                || seal_all(&mut sealing, hours),
            )
            .0
        };
        decoded.fates.extend(sealing.into_iter().flat_map(|w| w.fates));
        rendered
    }

    /// Appends the window's settled lines to their date-hours' objects, then frees every line of
    /// the window (counts and OCSF events stay).
    fn seal(&self, batch: &Batch, window: &mut Window, hours: &mut BTreeMap<HourKey, HourGroup>) {
        if self.ndjson {
            let mut pieces: BTreeMap<HourKey, Vec<&[u8]>> = BTreeMap::new();
            let mut originals: BTreeMap<HourKey, Vec<Vec<u8>>> = BTreeMap::new();
            let settled = window.fates.iter().take(window.settled).enumerate();
            for (offset, fate) in settled {
                let Fate::Decoded(rendered) = fate else { continue };
                let index = window.start + offset;
                let Some(input) = batch.records.get(index) else {
                    continue;
                };
                let arrival = UtcDateTime::from_unix_seconds(input.arrival_seconds);
                let hour = (arrival.year, arrival.month, arrival.day, arrival.hour);
                let group = hours.entry(hour).or_insert_with(|| HourGroup {
                    arrival,
                    first: index,
                    last: index,
                    records: 0,
                    events: 0,
                    body: ObjectEncoder::new(self.compression),
                    originals: self.keep_originals.then(|| ObjectEncoder::new(self.compression)),
                });
                group.last = index;
                group.records += u64::from(rendered.kept > 0);
                group.events += rendered.kept;
                if !rendered.lines.is_empty() {
                    pieces.entry(hour).or_default().push(&rendered.lines);
                }
                // The records of the archive object's lines, and only those: its das-record-count.
                if let (true, true, Some(data)) = (self.keep_originals, rendered.kept > 0, &input.data) {
                    originals.entry(hour).or_default().push(original_line(input, data));
                }
            }
            for (hour, lines) in pieces {
                if let Some(group) = hours.get_mut(&hour) {
                    group.body.append(&lines);
                }
            }
            for (hour, lines) in originals {
                let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
                if let Some(encoder) = hours.get_mut(&hour).and_then(|g| g.originals.as_mut()) {
                    encoder.append(&lines);
                }
            }
        }
        for fate in &mut window.fates {
            if let Fate::Decoded(rendered) = fate {
                rendered.lines = Vec::new();
            }
        }
    }
}

/// A record's line in its originals object: the Kinesis record as received.
fn original_line(input: &InputRecord, data: &[u8]) -> Vec<u8> {
    OriginalRecord::line(
        &input.shard_id,
        &input.sequence_number,
        input.arrival_seconds,
        &input.partition_key,
        data,
    )
}

/// A record's Kinesis data size (0 for data that was not base64): what windows are cut by.
fn data_len(input: &InputRecord) -> usize {
    input.data.as_ref().map_or(0, Vec::len)
}

/// The bytes of lines a fate holds.
fn lines_len(fate: &Fate) -> usize {
    match fate {
        Fate::Decoded(rendered) => rendered.lines.len(),
        _ => 0,
    }
}

/// How many of `records` the next step renders: at least one, and as many as may, at worst,
/// inflate to [`STEP_INFLATED_BYTES`] together.
fn step_len(records: &[InputRecord], options: &DecodeOptions) -> usize {
    let mut inflated = 0usize;
    let mut count = 0;
    for record in records {
        let worst = data_len(record)
            .saturating_mul(MAX_INFLATE_RATIO)
            .min(options.max_decompressed_len);
        inflated = inflated.saturating_add(worst);
        if count > 0 && inflated > STEP_INFLATED_BYTES {
            break;
        }
        count += 1;
    }
    count
}

/// Where the windows of `records` end when every record renders `lines[i]` bytes: for tests.
#[cfg(test)]
pub(super) fn window_ends(records: &[InputRecord], lines: &[usize]) -> Vec<usize> {
    let mut cutter = Cutter::default();
    let mut ends: Vec<usize> = records
        .iter()
        .zip(lines)
        .enumerate()
        .filter(|(_, (record, lines))| cutter.push(data_len(record), **lines))
        .map(|(index, _)| index + 1)
        .collect();
    if ends.last() != Some(&records.len()) {
        ends.push(records.len());
    }
    ends
}
