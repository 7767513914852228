//! The compression of archive objects: gzip as members compressed in parallel, or zstd, as the
//! lines arrive.
//!
//! A batch's archive object is its records' NDJSON lines, often several megabytes (a 10,000-record
//! batch of 20-event records: 180 MB), and compressing it is the largest CPU stage of the Lambda
//! after decoding. So the batch hands its lines over a window of records at a time
//! ([`ObjectEncoder::append`]) and frees them, and never holds a whole object's NDJSON.
//!
//! gzip: each window's lines are cut into chunks of about [`MEMBER_LEN`] bytes, at record
//! boundaries, and each chunk becomes one gzip member on the CPU pool, so all cores compress. A gzip
//! file is by definition "a series of members" that decompress to their concatenation (RFC 1952,
//! section 2.2, <https://www.rfc-editor.org/rfc/rfc1952#section-2.2>; GNU `gunzip`
//! <https://www.gnu.org/software/gzip/manual/html_node/Advanced-usage.html>, Python's `gzip` and flate2's
//! `MultiGzDecoder` read them, tested; so does Java's `GZIPInputStream`, which Athena's Trino engine
//! reads gzip text with, not tested here). zstd objects are one
//! frame, compressed by one streaming encoder: several frames are valid zstd too, but some readers
//! (Python's `zstandard.decompress`) stop after the first.
//!
//! What this must never do: depend on the number of threads or on timing. Windows and chunks are cut
//! by record counts and byte counts alone, so a retried batch writes the same bytes under the same
//! key.

use std::cell::RefCell;
use std::io::Write as _;

use rayon::prelude::*;

use crate::aws::archive::Compression;

/// One archive object's body, compressed as its lines arrive.
pub struct ObjectEncoder {
    state: EncoderState,
}

enum EncoderState {
    Gzip(Vec<u8>),
    Zstd(zstd::stream::Encoder<'static, Vec<u8>>),
    Plain(Vec<u8>),
    /// zstd could not allocate its state or refused a write: the object cannot be encoded.
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
        let state = match compression {
            Compression::Gzip => EncoderState::Gzip(Vec::new()),
            Compression::Zstd => {
                zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL).map_or(EncoderState::Failed, EncoderState::Zstd)
            }
            Compression::None => EncoderState::Plain(Vec::new()),
        };
        Self { state }
    }

    /// Appends the concatenation of `pieces` (a window of records' lines, in order).
    pub fn append(&mut self, pieces: &[&[u8]]) {
        match &mut self.state {
            EncoderState::Gzip(body) => body.extend_from_slice(&gzip(pieces)),
            EncoderState::Zstd(encoder) => {
                if pieces.iter().try_for_each(|piece| encoder.write_all(piece)).is_err() {
                    self.state = EncoderState::Failed;
                }
            }
            EncoderState::Plain(body) => pieces.iter().for_each(|piece| body.extend_from_slice(piece)),
            EncoderState::Failed => {}
        }
    }

    /// The finished object; `None` if zstd failed (it can only fail to allocate).
    pub fn finish(self) -> Option<Encoded> {
        let (body, compression) = match self.state {
            EncoderState::Gzip(body) => (body, Compression::Gzip),
            EncoderState::Zstd(encoder) => (encoder.finish().ok()?, Compression::Zstd),
            EncoderState::Plain(body) => (body, Compression::None),
            EncoderState::Failed => return None,
        };
        Some(Encoded { body, compression })
    }
}

/// The NDJSON bytes per gzip member: large enough that the ratio does not suffer (deflate's window
/// is 32 KiB, so a member boundary costs a few hundred bytes of a megabyte), small enough that a
/// 10,000-record batch (about 8 MB) keeps every core of a Lambda busy.
pub const MEMBER_LEN: usize = 1 << 20;

/// The zstd level of archive objects: 1. On DAS NDJSON it is as small as level 3 (zstd's default)
/// or smaller, and no slower (`make bench`, section 6, two runs on 2026-12-02: 500-event records,
/// 21.2 KB in 365–546 µs against 22.2–22.4 KB in 600–696 µs; a whole 10,000-record object, 424 KB
/// against 460 KB); gzip-6 takes about 5 times as long for the same size.
pub const ZSTD_LEVEL: i32 = 1;

/// Gzip (libdeflate, level 6) of the concatenation of `pieces`, as one member per chunk of about
/// [`MEMBER_LEN`] bytes. libdeflate's whole-buffer compressor is about 20 % faster than zlib at the
/// same level and 9 % smaller on our NDJSON (`make bench`).
pub fn gzip(pieces: &[&[u8]]) -> Vec<u8> {
    let chunks = chunks(pieces, MEMBER_LEN);
    if let [only] = chunks.as_slice() {
        return gzip_member(only);
    }
    let members: Vec<Vec<u8>> = chunks.par_iter().map(|chunk| gzip_member(chunk)).collect();
    members.concat()
}

/// Consecutive runs of `pieces` of at least `target` bytes each (the last may be shorter). A piece is
/// never split: it is one record's lines, and a record larger than `target` is a chunk of its own.
fn chunks<'a, 'b>(pieces: &'b [&'a [u8]], target: usize) -> Vec<&'b [&'a [u8]]> {
    let mut chunks = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (index, piece) in pieces.iter().enumerate() {
        len += piece.len();
        if len >= target {
            chunks.extend(pieces.get(start..=index));
            (start, len) = (index + 1, 0);
        }
    }
    if start < pieces.len() || chunks.is_empty() {
        chunks.extend(pieces.get(start..));
    }
    chunks
}

/// One thread's compressor and buffers, kept between objects: libdeflate's compressor holds about
/// 300 KB of tables that cost more to set up than a small object costs to compress, and the buffers
/// would otherwise be allocated and zeroed (page faults included) once per member.
struct GzipState {
    compressor: libdeflater::Compressor,
    input: Vec<u8>,
    output: Vec<u8>,
}

thread_local! {
    static GZIP: RefCell<GzipState> = RefCell::new(GzipState {
        compressor: libdeflater::Compressor::new(libdeflater::CompressionLvl::default()),
        input: Vec::new(),
        output: Vec::new(),
    });
}

/// Buffers larger than this are not kept for the next member (a single huge record's lines).
const KEPT_BUFFER_LEN: usize = 4 * MEMBER_LEN;

/// One gzip member holding the concatenation of `chunk`.
fn gzip_member(chunk: &[&[u8]]) -> Vec<u8> {
    let state = GZIP.try_with(|state| {
        let mut state = state.try_borrow_mut().ok()?;
        let GzipState {
            compressor,
            input,
            output,
        } = &mut *state;
        let body = contiguous(chunk, input);
        let bound = compressor.gzip_compress_bound(body.len());
        if output.len() < bound {
            output.resize(bound, 0);
        }
        let len = compressor.gzip_compress(body, output).ok()?;
        let member = output.get(..len).map(<[u8]>::to_vec);
        if output.len() > KEPT_BUFFER_LEN {
            *output = Vec::new();
        }
        if input.capacity() > KEPT_BUFFER_LEN {
            *input = Vec::new();
        }
        member
    });
    // Only reachable while the thread is being torn down, or if libdeflate refused a buffer of its
    // own bound: zlib gives the same format.
    state
        .ok()
        .flatten()
        .unwrap_or_else(|| with_contiguous(chunk, crate::pipeline::gunzip::gzip))
}

/// `pieces` as one slice: the piece itself when there is one, else copied into `buffer`.
fn contiguous<'a>(pieces: &[&'a [u8]], buffer: &'a mut Vec<u8>) -> &'a [u8] {
    if let [only] = pieces {
        return only;
    }
    buffer.clear();
    buffer.reserve(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces {
        buffer.extend_from_slice(piece);
    }
    buffer
}

/// Runs `f` on the concatenation of `pieces`.
fn with_contiguous<T>(pieces: &[&[u8]], f: impl FnOnce(&[u8]) -> T) -> T {
    let mut buffer = Vec::new();
    f(contiguous(pieces, &mut buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(records: usize) -> Vec<Vec<u8>> {
        (0..records)
            .map(|i| format!("{{\"record\":{i},\"commandText\":\"SELECT {}\"}}\n", i * 7919 % 1000).into_bytes())
            .collect()
    }

    fn pieces(lines: &[Vec<u8>]) -> Vec<&[u8]> {
        lines.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn chunks_end_at_piece_boundaries_once_they_reach_the_target() {
        let data: Vec<Vec<u8>> = [3, 4, 1, 9, 2].iter().map(|&n| vec![b'x'; n]).collect();
        let pieces = pieces(&data);
        let lens: Vec<Vec<usize>> = chunks(&pieces, 5)
            .iter()
            .map(|c| c.iter().map(|p| p.len()).collect())
            .collect();
        assert_eq!(lens, vec![vec![3, 4], vec![1, 9], vec![2]]);
        assert_eq!(chunks(&[], 5).len(), 1, "no pieces is one empty member");
    }

    #[test]
    fn a_large_object_is_several_members_that_decompress_to_the_lines() {
        let data = lines(60_000);
        let whole = data.concat();
        assert!(whole.len() > 2 * MEMBER_LEN);
        let body = gzip(&pieces(&data));
        let members = memchr::memmem::find_iter(&body, &[0x1f, 0x8b, 0x08, 0x00]).count();
        assert!(members >= 2, "{members} member(s)");
        assert_eq!(crate::pipeline::gunzip::gunzip(&body, 64 << 20).unwrap(), whole);
        let mut python_like = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(body.as_slice()),
            &mut python_like,
        )
        .unwrap();
        assert_eq!(python_like, whole);
    }

    #[test]
    fn the_same_lines_give_the_same_bytes_on_any_pool() {
        let data = lines(60_000);
        let on_the_global_pool = gzip(&pieces(&data));
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert!(
                pool.install(|| gzip(&pieces(&data))) == on_the_global_pool,
                "{threads} thread(s)"
            );
        }
    }

    #[test]
    fn a_small_object_is_one_member_as_one_buffer_would_give() {
        let data = lines(10);
        let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
        let whole = data.concat();
        let mut expected = vec![0; compressor.gzip_compress_bound(whole.len())];
        let len = compressor.gzip_compress(&whole, &mut expected).unwrap();
        expected.truncate(len);
        assert_eq!(gzip(&pieces(&data)), expected);
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
                Compression::Gzip => crate::pipeline::gunzip::gunzip(&encoded.body, 64 << 20).unwrap(),
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
        std::io::Read::read_to_end(&mut decoder, &mut first_frame).unwrap();
        assert!(first_frame == data.concat());
    }
}
