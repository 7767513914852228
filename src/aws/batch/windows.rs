//! Decoding a batch a window of records at a time, on the CPU pool.
//!
//! Each window's kept lines go into their arrival date-hour's archive object, compressed, and are
//! freed while the next window is decoded. So a batch never holds its whole NDJSON (10,000 records of
//! 20 events would be 180 MB of it, five times the Lambda event), and compression runs beside
//! decoding instead of after it.
//!
//! Which records a window settles follows the batch's rule: a record that must be retried ends what
//! is written, and a stuck record older than the give-up age is given up (quarantined) instead. So
//! decoding stops after the window holding the first record that must be retried: nothing at or
//! after it is written, and decoding the rest would be wasted.
//!
//! What this must never do: await or touch AWS (it runs inside `spawn_blocking`), or cut windows by
//! anything but the records themselves: a retried batch must write the same bytes.

use super::*;

/// A window ends once its records' ESDK messages reach this many bytes: about 1,000 one-event
/// records, or 50 of 500 events. Their NDJSON is 5 to 20 times more, which bounds what a window holds.
pub(super) const WINDOW_MESSAGE_BYTES: usize = 1 << 20;

/// What decoding a batch left.
pub(super) struct DecodedBatch {
    /// Every record's fate, in order, up to the end of the window holding `first_transient` (the
    /// records after that window are not decoded).
    pub(super) fates: Vec<Fate>,
    /// The first record that must be retried, if any.
    pub(super) first_transient: Option<usize>,
    /// The archive objects of the records before it, by arrival date-hour.
    pub(super) hours: BTreeMap<HourKey, HourGroup>,
}

/// When a record that would be retried is given up instead.
#[derive(Debug, Clone, Copy)]
pub(super) struct GiveUp {
    after: Option<Duration>,
    /// Unix seconds, read once per batch.
    now: f64,
}

impl GiveUp {
    /// The give-up age (`None`: never), measured from now.
    pub(super) fn now(after: Option<Duration>) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self { after, now }
    }

    /// Gives up the records that would be retried (transient or configuration failures) but arrived
    /// longer ago than the give-up age, in order, and returns the position of the first one that is
    /// young enough to wait for: the retry point.
    fn apply(&self, inputs: &[InputRecord], fates: &mut [Fate]) -> Option<usize> {
        for (index, (fate, input)) in fates.iter_mut().zip(inputs).enumerate() {
            if !matches!(fate, Fate::Transient(_)) {
                continue;
            }
            let old = self
                .after
                .is_some_and(|limit| self.now - input.arrival_seconds >= limit.as_secs_f64());
            if !old {
                return Some(index);
            }
            if let Fate::Transient(failure) = std::mem::replace(fate, Fate::Decoded(Rendered::default())) {
                *fate = Fate::GivenUp(failure);
            }
        }
        None
    }
}

/// The CPU side of [`Archiver::process`]'s decode step: everything it needs, owned.
pub(super) struct Decoder {
    pub(super) filter: Arc<Filter>,
    pub(super) options: DecodeOptions,
    pub(super) compression: crate::aws::archive::Compression,
    /// Whether the NDJSON archive is written at all (OCSF-only functions free the lines unread).
    pub(super) ndjson: bool,
    pub(super) give_up: GiveUp,
}

/// A decoded window: where it starts in the batch, its fates, and how many of them are settled.
struct Window {
    start: usize,
    fates: Vec<Fate>,
    settled: usize,
}

impl Decoder {
    /// Decodes `jobs` (one per record of `batch`) window by window, sealing each window while the
    /// next one decodes.
    pub(super) fn run(&self, batch: &Batch, jobs: Vec<Job>) -> DecodedBatch {
        let ends = window_ends(&jobs);
        let mut jobs = jobs.into_iter();
        let mut decoded = DecodedBatch {
            fates: Vec::with_capacity(batch.records.len()),
            first_transient: None,
            hours: BTreeMap::new(),
        };
        let mut previous: Option<Window> = None;
        let mut start = 0;
        for end in ends {
            let window_jobs: Vec<Job> = jobs.by_ref().take(end - start).collect();
            let (rendered, ()) = rayon::join(
                || render_jobs(window_jobs, &self.filter, &self.options),
                || {
                    if let Some(window) = previous.as_mut() {
                        self.seal(batch, window, &mut decoded.hours);
                    }
                },
            );
            decoded.fates.extend(previous.take().into_iter().flat_map(|w| w.fates));
            let mut fates: Vec<Fate> = rendered.into_iter().map(Fate::of).collect();
            let cut = self
                .give_up
                .apply(batch.records.get(start..end).unwrap_or_default(), &mut fates);
            previous = Some(Window {
                start,
                settled: cut.unwrap_or(fates.len()),
                fates,
            });
            if let Some(cut) = cut {
                decoded.first_transient = Some(start + cut);
                break;
            }
            start = end;
        }
        if let Some(mut window) = previous {
            self.seal(batch, &mut window, &mut decoded.hours);
            decoded.fates.extend(window.fates);
        }
        decoded
    }

    /// Appends the window's settled lines to their date-hours' objects, then frees every line of
    /// the window (counts and OCSF events stay).
    fn seal(&self, batch: &Batch, window: &mut Window, hours: &mut BTreeMap<HourKey, HourGroup>) {
        if self.ndjson {
            let mut pieces: BTreeMap<HourKey, Vec<&[u8]>> = BTreeMap::new();
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
                });
                group.last = index;
                group.records += u64::from(rendered.kept > 0);
                group.events += rendered.kept;
                if !rendered.lines.is_empty() {
                    pieces.entry(hour).or_default().push(&rendered.lines);
                }
            }
            for (hour, lines) in pieces {
                if let Some(group) = hours.get_mut(&hour) {
                    group.body.append(&lines);
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

/// Where each window ends: after the record whose message brings the window to
/// [`WINDOW_MESSAGE_BYTES`], and at the end of the batch.
fn window_ends(jobs: &[Job]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut bytes = 0;
    for (index, job) in jobs.iter().enumerate() {
        bytes += job.as_ref().map_or(0, |(envelope, _, _)| envelope.message.len());
        if bytes >= WINDOW_MESSAGE_BYTES {
            ends.push(index + 1);
            bytes = 0;
        }
    }
    if ends.last() != Some(&jobs.len()) {
        ends.push(jobs.len());
    }
    ends
}
