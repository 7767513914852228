//! The compression of archive objects: gzip as one member whose deflate stream is compressed in
//! parallel chunks, or zstd as one frame, as the lines arrive.
//!
//! A batch's archive object is its records' NDJSON lines, often many megabytes (a 10,000-record
//! batch of 20-event records: about 180 MB), and compressing it is the largest CPU stage of the
//! Lambda after decoding. So the batch hands its lines over a window of records at a time
//! ([`ObjectEncoder::append`]) and frees them, and never holds a whole object's NDJSON.
//!
//! gzip: every object is **one** gzip member. A gzip file may be a series of members (RFC 1952,
//! section 2.2), but readers that stop after the first one lose the rest of the lines without an
//! error: flate2's `GzDecoder`, and Java's `GZIPInputStream` over a stream whose `available()` is 0
//! on the JDK builds without JDK-7036144's fix, or with its 2026 revert (Trino, Athena's engine,
//! worked around it in its release 422). For an audit archive a silently short query is the worst
//! failure. The parallelism is pigz's (<https://zlib.net/pigz/pigz.pdf>): the lines are cut into
//! chunks of about [`CHUNK_LEN`] bytes, at record boundaries, and each chunk is compressed on the CPU
//! pool as raw deflate (zlib-rs) primed with the 32 KiB before it (deflate's window, so the cut costs
//! almost no ratio) and ended by a sync flush, which closes it on a byte boundary with an empty
//! stored block (RFC 1951, section 3.2.4); the chunks' deflate, one after the other, is one deflate
//! stream, which the last chunk ends. Each chunk's CRC-32 is computed beside it and the CRC-32s are
//! combined for the trailer (zlib's `crc32_combine`). `tests/it/archive_readers.rs` reads such
//! objects whole with GNU gzip, Python, flate2's single-member `GzDecoder`, DuckDB, pyarrow and
//! Java's `GZIPInputStream` over a stream whose `available()` is 0.
//!
//! zstd objects are one frame, compressed by one streaming encoder: several frames are valid zstd
//! too, but some readers (Python's `zstandard.decompress`) stop after the first.
//!
//! What this must never do: depend on the number of threads, on timing, or on how the lines were
//! split into windows. Chunks are cut by byte counts at record boundaries alone, over the object's
//! lines as a whole (what a window leaves over waits for the next one), so a retried batch writes
//! the same bytes under the same key.

use std::cell::RefCell;
use std::io::Write as _;
use std::ops::Range;

use flate2::{Compress, CompressError, Crc, FlushCompress, Status};
use rayon::prelude::*;

/// How archive objects are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip (`.ndjson.gz`), the default: DAS JSON compresses about 10:1.
    #[default]
    Gzip,
    /// zstd (`.ndjson.zst`), level 1. Athena engine 3 reads ZSTD text files, JSON included, telling
    /// the codec by the extension (<https://docs.aws.amazon.com/athena/latest/ug/compression-support-hive.html>).
    Zstd,
    /// Plain NDJSON (`.ndjson`).
    None,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" | "gz" => Ok(Self::Gzip),
            "zstd" | "zst" => Ok(Self::Zstd),
            "none" | "off" => Ok(Self::None),
            other => Err(format!("{other:?} is not a compression; use gzip, zstd or none")),
        }
    }
}

/// One archive object's body, compressed as its lines arrive.
pub struct ObjectEncoder {
    state: EncoderState,
}

enum EncoderState {
    Gzip(GzipMember),
    Zstd(zstd::stream::Encoder<'static, Vec<u8>>),
    Plain(Vec<u8>),
    /// The compressor refused its input or could not allocate: the object cannot be encoded.
    Failed,
}

/// A finished body and how it is compressed.
pub struct Encoded {
    /// The object's bytes.
    pub body: Vec<u8>,
    /// Its compression.
    pub compression: Compression,
}

impl ObjectEncoder {
    /// An empty object compressed with `compression`.
    pub fn new(compression: Compression) -> Self {
        Self::with_chunk_len(compression, CHUNK_LEN)
    }

    fn with_chunk_len(compression: Compression, chunk_len: usize) -> Self {
        let state = match compression {
            Compression::Gzip => EncoderState::Gzip(GzipMember::new(chunk_len)),
            Compression::Zstd => {
                zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL).map_or(EncoderState::Failed, EncoderState::Zstd)
            }
            Compression::None => EncoderState::Plain(Vec::new()),
        };
        Self { state }
    }

    /// Appends the concatenation of `pieces` (a window of records' lines, in order; each piece is
    /// one record's lines and is never split between chunks).
    pub fn append(&mut self, pieces: &[&[u8]]) {
        let failed = match &mut self.state {
            EncoderState::Gzip(member) => member.append(pieces).is_err(),
            EncoderState::Zstd(encoder) => pieces.iter().try_for_each(|piece| encoder.write_all(piece)).is_err(),
            EncoderState::Plain(body) => {
                pieces.iter().for_each(|piece| body.extend_from_slice(piece));
                false
            }
            EncoderState::Failed => false,
        };
        if failed {
            self.state = EncoderState::Failed;
        }
    }

    /// The finished object; `None` if the compressor failed (it can only fail to allocate).
    pub fn finish(self) -> Option<Encoded> {
        let (body, compression) = match self.state {
            EncoderState::Gzip(member) => (member.finish().ok()?, Compression::Gzip),
            EncoderState::Zstd(encoder) => (encoder.finish().ok()?, Compression::Zstd),
            EncoderState::Plain(body) => (body, Compression::None),
            EncoderState::Failed => return None,
        };
        Some(Encoded { body, compression })
    }
}

/// The NDJSON bytes per deflate chunk: large enough that a chunk's sync flush and fresh Huffman
/// tables cost nothing measurable (a few hundred bytes of a megabyte's output), small enough that
/// a 10,000-record batch keeps every core of a Lambda busy.
pub const CHUNK_LEN: usize = 1 << 20;

/// The deflate level of gzip objects: 6, zlib's default. On 16 MB of Aurora MySQL NDJSON (`das
/// simulate`, 20-event records) in 1 MiB chunks primed with the dictionary, zlib-rs wrote 4.75 % of
/// the NDJSON at level 4, 4.30 % at level 5 and 4.03 % at level 6, against 4.42 % for libdeflate
/// level 6 as one member per chunk (the layout before this one); in thread CPU time (best of 5, a
/// throwaway harness, 2026-12-02, without zlib-rs's CPU detection) level 4 took 0.6–0.7, level 5
/// 0.8 and level 6 1.05–1.1 times libdeflate's. Level 6 keeps about the CPU of before and makes
/// objects 7–9 % smaller, which outweighs level 5's saving as soon as an object is kept a month.
/// `cargo bench --bench core -- compress-object` measures the encoder on a whole batch (README,
/// "The archive").
const DEFLATE_LEVEL: u32 = 6;

/// Deflate's window: a chunk is primed with this many bytes of the lines before it, which is all a
/// deflate match can reach back.
const DICTIONARY_LEN: usize = 32 << 10;

/// The gzip header of every object: no name, no time stamp (so a retry gives the same bytes), no
/// extra flags, OS "unknown" (RFC 1952, section 2.3), as libdeflate writes it.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// The zstd level of archive objects: 1. On DAS NDJSON it is as small as level 3 (zstd's default)
/// or smaller, and no slower (`make bench`, section 6, two runs on 2026-12-02: 500-event records,
/// 21.2 KB in 365–546 µs against 22.2–22.4 KB in 600–696 µs; a whole 10,000-record object, 424 KB
/// against 460 KB); gzip-6 takes about 5 times as long for the same size.
pub const ZSTD_LEVEL: i32 = 1;

/// One gzip member, compressed a chunk at a time.
struct GzipMember {
    /// The header and the deflate stream so far.
    body: Vec<u8>,
    /// CRC-32 and length (mod 2^32) of the lines compressed so far.
    crc: Crc,
    /// Lines not compressed yet: whole pieces, fewer than `chunk_len` bytes.
    pending: Vec<u8>,
    /// The last [`DICTIONARY_LEN`] bytes of the lines compressed so far.
    history: Vec<u8>,
    chunk_len: usize,
}

impl GzipMember {
    fn new(chunk_len: usize) -> Self {
        Self {
            body: GZIP_HEADER.to_vec(),
            crc: Crc::new(),
            pending: Vec::new(),
            history: Vec::new(),
            chunk_len,
        }
    }

    /// Compresses every full chunk of the pending lines and `pieces`, in parallel, and keeps the
    /// rest pending.
    fn append(&mut self, pieces: &[&[u8]]) -> Result<(), CompressError> {
        let mut segments: Vec<&[u8]> = Vec::with_capacity(pieces.len() + 1);
        segments.extend(Some(self.pending.as_slice()).filter(|pending| !pending.is_empty()));
        segments.extend_from_slice(pieces);
        let (full, rest) = full_chunks(&segments, self.chunk_len);
        let compressed: Vec<(Vec<u8>, Crc)> = full
            .par_iter()
            .map(|range| {
                let before = segments.get(..range.start).unwrap_or_default();
                let chunk = segments.get(range.clone()).unwrap_or_default();
                compress_chunk(&tail(before, &self.history), chunk, FlushCompress::Sync)
            })
            .collect::<Result<_, _>>()?;
        for (deflate, crc) in &compressed {
            self.body.extend_from_slice(deflate);
            self.crc.combine(crc);
        }
        let done = segments.get(..rest).unwrap_or_default();
        let history = tail(done, &self.history);
        let pending = segments.get(rest..).unwrap_or_default().concat();
        (self.history, self.pending) = (history, pending);
        Ok(())
    }

    /// The member: the pending lines as the last chunk, which ends the deflate stream, then the
    /// trailer (CRC-32 and length mod 2^32, little-endian).
    fn finish(mut self) -> Result<Vec<u8>, CompressError> {
        let (deflate, crc) = compress_chunk(&self.history, &[&self.pending], FlushCompress::Finish)?;
        self.body.extend_from_slice(&deflate);
        self.crc.combine(&crc);
        self.body.extend_from_slice(&self.crc.sum().to_le_bytes());
        self.body.extend_from_slice(&self.crc.amount().to_le_bytes());
        Ok(self.body)
    }
}

/// The runs of `segments` that reach `target` bytes, as index ranges, and the index where the
/// remainder (shorter than `target`) starts. A segment is never split.
fn full_chunks(segments: &[&[u8]], target: usize) -> (Vec<Range<usize>>, usize) {
    let mut chunks = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (index, segment) in segments.iter().enumerate() {
        len += segment.len();
        if len >= target {
            chunks.push(start..index + 1);
            (start, len) = (index + 1, 0);
        }
    }
    (chunks, start)
}

/// The last [`DICTIONARY_LEN`] bytes of `history` followed by `segments`.
fn tail(segments: &[&[u8]], history: &[u8]) -> Vec<u8> {
    let mut parts = Vec::new();
    let mut needed = DICTIONARY_LEN;
    for part in segments.iter().rev().copied().chain([history]) {
        if needed == 0 {
            break;
        }
        let take = part.len().min(needed);
        parts.extend(part.get(part.len() - take..));
        needed -= take;
    }
    parts.iter().rev().copied().collect::<Vec<_>>().concat()
}

/// One thread's deflate state and input buffer, kept between chunks: the state holds about 300 KB
/// of window and hash tables that cost more to allocate and zero than a small object costs to
/// compress, and the buffer would otherwise be allocated (and its pages faulted in) once per chunk.
struct ChunkState {
    deflate: Compress,
    input: Vec<u8>,
}

thread_local! {
    static CHUNK_STATE: RefCell<ChunkState> = RefCell::new(ChunkState {
        deflate: Compress::new(flate2::Compression::new(DEFLATE_LEVEL), false),
        input: Vec::new(),
    });
}

/// Input buffers larger than this are not kept for the next chunk (a single huge record's lines).
const KEPT_BUFFER_LEN: usize = 4 * CHUNK_LEN;

/// Raw deflate of the concatenation of `chunk`, primed with `dictionary`, ended by `flush` (`Sync`:
/// on a byte boundary, the stream left open; `Finish`: the stream's last block), and its CRC-32.
fn compress_chunk(dictionary: &[u8], chunk: &[&[u8]], flush: FlushCompress) -> Result<(Vec<u8>, Crc), CompressError> {
    let on_this_thread = CHUNK_STATE.try_with(|state| {
        let mut state = state.try_borrow_mut().ok()?;
        let ChunkState { deflate, input } = &mut *state;
        let result = deflate_chunk(deflate, dictionary, contiguous(chunk, input), flush);
        if input.capacity() > KEPT_BUFFER_LEN {
            *input = Vec::new();
        }
        Some(result)
    });
    match on_this_thread {
        Ok(Some(result)) => result,
        // Only while the thread is being torn down: a fresh state gives the same bytes.
        _ => {
            let mut deflate = Compress::new(flate2::Compression::new(DEFLATE_LEVEL), false);
            deflate_chunk(&mut deflate, dictionary, &chunk.concat(), flush)
        }
    }
}

/// `pieces` as one slice: the piece itself when there is one, else copied into `buffer`. deflate is
/// given each chunk in one call because zlib-rs's output depends on how its input is split between
/// calls, and a chunk's pieces depend on how the batch cut its windows.
fn contiguous<'a>(pieces: &[&'a [u8]], buffer: &'a mut Vec<u8>) -> &'a [u8] {
    if let [only] = pieces {
        return only;
    }
    buffer.clear();
    buffer.reserve(pieces.iter().map(|piece| piece.len()).sum());
    for piece in pieces {
        buffer.extend_from_slice(piece);
    }
    buffer
}

/// Raw deflate of `input` by `deflate`, reset and primed with `dictionary`, ended by `flush`.
fn deflate_chunk(
    deflate: &mut Compress,
    dictionary: &[u8],
    mut input: &[u8],
    flush: FlushCompress,
) -> Result<(Vec<u8>, Crc), CompressError> {
    deflate.reset();
    if !dictionary.is_empty() {
        deflate.set_dictionary(dictionary)?;
    }
    let mut crc = Crc::new();
    crc.update(input);
    let mut output = Vec::with_capacity(deflate_bound(input.len()));
    loop {
        let (read, written) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress_vec(input, &mut output, flush)?;
        let consumed = usize::try_from(deflate.total_in() - read).unwrap_or(input.len());
        input = input.get(consumed..).unwrap_or_default();
        let room_left = output.len() < output.capacity();
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A flush is complete once deflate stops with output space to spare.
            _ => input.is_empty() && room_left,
        };
        let stuck = status == Status::BufError && deflate.total_in() == read && deflate.total_out() == written;
        if done || (stuck && room_left) {
            return Ok((output, crc));
        }
        // The bound below makes this unreachable; should it ever be wrong, deflate goes on.
        output.reserve(output.capacity().max(MIN_SPARE));
    }
}

/// zlib's `deflateBound` for raw deflate (what `len` bytes can take at worst, stored blocks), plus
/// the sync flush's empty stored block: the output fits and deflate runs in one call.
fn deflate_bound(len: usize) -> usize {
    len + (len >> 12) + (len >> 14) + (len >> 25) + 7 + 5
}

/// The least output space added should [`deflate_bound`] ever be short.
const MIN_SPARE: usize = 64 << 10;

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn lines(records: usize) -> Vec<Vec<u8>> {
        (0..records)
            .map(|i| format!("{{\"record\":{i},\"commandText\":\"SELECT {}\"}}\n", i * 7919 % 1000).into_bytes())
            .collect()
    }

    fn pieces(lines: &[Vec<u8>]) -> Vec<&[u8]> {
        lines.iter().map(Vec::as_slice).collect()
    }

    fn gzip(compression_chunk: usize, windows: &[&[Vec<u8>]]) -> Vec<u8> {
        let mut encoder = ObjectEncoder::with_chunk_len(Compression::Gzip, compression_chunk);
        for window in windows {
            encoder.append(&pieces(window));
        }
        encoder.finish().unwrap().body
    }

    /// What a reader that stops after the first member (flate2's `GzDecoder`) reads.
    fn first_member(body: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body).read_to_end(&mut plain).unwrap();
        plain
    }

    #[test]
    fn chunks_end_at_segment_boundaries_once_they_reach_the_target() {
        let data: Vec<Vec<u8>> = [3, 4, 1, 9, 2].iter().map(|&n| vec![b'x'; n]).collect();
        assert_eq!(full_chunks(&pieces(&data), 5), (vec![0..2, 2..4], 4));
        assert_eq!(full_chunks(&[], 5), (vec![], 0));
    }

    #[test]
    fn the_dictionary_is_the_last_32_kib_across_segments_and_history() {
        let history = vec![b'h'; 40 << 10];
        let (a, b) = (vec![b'a'; 10 << 10], vec![b'b'; 5 << 10]);
        let dictionary = tail(&[&a, &b], &history);
        assert_eq!(dictionary.len(), DICTIONARY_LEN);
        assert_eq!(dictionary, [vec![b'h'; 17 << 10], a.clone(), b.clone()].concat());
        assert_eq!(tail(&[&a], &[]), a, "fewer bytes than the window: all of them");
    }

    #[test]
    fn a_large_object_is_one_member_that_a_single_member_reader_reads_whole() {
        let data = lines(60_000);
        let whole = data.concat();
        assert!(whole.len() > 2 * CHUNK_LEN);
        let body = gzip(CHUNK_LEN, &[&data]);
        let mut decoder = flate2::bufread::GzDecoder::new(body.as_slice());
        let mut plain = Vec::new();
        decoder.read_to_end(&mut plain).unwrap();
        assert!(plain == whole, "GzDecoder reads every line");
        assert!(decoder.into_inner().is_empty(), "nothing follows the first member");
        assert_eq!(crate::pipeline::gunzip::gunzip(&body, 64 << 20).unwrap(), whole);
    }

    #[test]
    fn the_same_lines_give_the_same_bytes_on_any_pool_and_any_windows() {
        let data = lines(60_000);
        let on_the_global_pool = gzip(CHUNK_LEN, &[&data]);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert!(
                pool.install(|| gzip(CHUNK_LEN, &[&data])) == on_the_global_pool,
                "{threads} thread(s)"
            );
        }
        let windows: Vec<&[Vec<u8>]> = data.chunks(7_000).collect();
        assert!(gzip(CHUNK_LEN, &windows) == on_the_global_pool, "in windows");
    }

    #[test]
    fn chunks_smaller_than_the_window_and_tiny_windows_still_give_every_line() {
        let data = lines(2_000);
        let windows: Vec<&[Vec<u8>]> = data.chunks(3).collect();
        for chunk_len in [1, 1_000, 5_000, 40_000] {
            let body = gzip(chunk_len, &windows);
            assert!(first_member(&body) == data.concat(), "chunks of {chunk_len} bytes");
            assert!(
                body == gzip(chunk_len, &[&data]),
                "chunks of {chunk_len} bytes, windows"
            );
        }
    }

    #[test]
    fn an_empty_object_is_a_valid_empty_member() {
        for windows in [&[][..], &[&[][..]][..]] {
            let body = gzip(CHUNK_LEN, windows);
            assert_eq!(first_member(&body), b"");
            assert_eq!(crate::pipeline::gunzip::gunzip(&body, 1 << 20).unwrap(), b"");
        }
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_of_one_stream() {
        let data = lines(60_000);
        let chunked = gzip(64 << 10, &[&data]).len();
        let mut whole = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(DEFLATE_LEVEL));
        whole.write_all(&data.concat()).unwrap();
        let one_stream = whole.finish().unwrap().len();
        assert!(
            chunked * 100 < one_stream * 102,
            "{chunked} bytes in 64 KiB chunks, {one_stream} as one stream"
        );
    }

    #[test]
    fn an_object_appended_a_window_at_a_time_decompresses_to_all_its_lines() {
        let data = lines(30_000);
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let mut encoder = ObjectEncoder::new(compression);
            for window in data.chunks(7_000) {
                encoder.append(&pieces(window));
            }
            let encoded = encoder.finish().unwrap();
            assert_eq!(encoded.compression, compression);
            let plain = match compression {
                Compression::Gzip => first_member(&encoded.body),
                Compression::Zstd => zstd::stream::decode_all(encoded.body.as_slice()).unwrap(),
                Compression::None => encoded.body,
            };
            assert!(plain == data.concat(), "{compression:?}");
        }
    }

    #[test]
    fn zstd_objects_are_one_frame_of_the_lines() {
        let data = lines(20_000);
        let mut encoder = ObjectEncoder::new(Compression::Zstd);
        encoder.append(&pieces(&data));
        let body = encoder.finish().unwrap().body;
        let mut decoder = zstd::stream::Decoder::new(body.as_slice()).unwrap().single_frame();
        let mut first_frame = Vec::new();
        decoder.read_to_end(&mut first_frame).unwrap();
        assert!(first_frame == data.concat());
    }
}
