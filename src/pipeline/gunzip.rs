//! Bounded gunzip of a decrypted payload.
//!
//! A few kilobytes of gzip can inflate to gigabytes, so decompression stops at a configurable cap and
//! reports a clear error instead of exhausting memory. It never allocates more than the cap (plus the
//! read buffer), and never accepts bytes that are not gzip.
//!
//! Two decoders, one answer. A DAS payload is one gzip member whose trailer gives its exact size, so
//! it is inflated in one call by libdeflate, 1.6–2.7 times faster than a streaming inflater on our
//! payloads (`make bench`); everything else (several members, trailing bytes, a corrupt stream, a
//! size beyond the cap) goes through flate2's streaming decoder, which handles every case exactly and
//! stops at the cap.

use std::cell::RefCell;
use std::io::Read;

use flate2::bufread::MultiGzDecoder;

/// Default cap on decompressed bytes: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 64 << 20;

/// Why a payload could not be decompressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GunzipError {
    /// The payload does not start with the gzip magic bytes.
    #[error("gunzip: the decrypted payload is not gzip (it starts with {0:02x?}, expected 1f 8b)")]
    NotGzip([u8; 2]),
    /// The payload is shorter than a gzip header.
    #[error("gunzip: the decrypted payload is only {0} byte(s), too short for gzip")]
    TooShort(usize),
    /// The stream is corrupt or truncated.
    #[error("gunzip: the gzip stream is corrupt or truncated: {0}")]
    Corrupt(#[source] std::io::Error),
    /// The payload inflates beyond the cap.
    #[error("gunzip: the payload inflates to more than {limit} bytes (a decompression bomb, or raise the limit)")]
    TooLarge {
        /// The cap in force.
        limit: usize,
    },
}

/// Decompresses one or more concatenated gzip members, failing past `max_len` output bytes.
pub fn gunzip(input: &[u8], max_len: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    gunzip_into(input, max_len, &mut out)?;
    Ok(out)
}

/// [`gunzip`] into a caller's buffer, replacing its contents, so a thread inflating many payloads
/// reuses one allocation.
pub fn gunzip_into(input: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<(), GunzipError> {
    out.clear();
    match input {
        [0x1f, 0x8b, ..] => {}
        [a, b, ..] => return Err(GunzipError::NotGzip([*a, *b])),
        _ => return Err(GunzipError::TooShort(input.len())),
    }
    if single_member(input, max_len, out) {
        return Ok(());
    }
    out.clear();
    out.reserve(initial_capacity(input, max_len));
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(input)
        .take(limit)
        .read_to_end(out)
        .map_err(GunzipError::Corrupt)?;
    if out.len() > max_len {
        return Err(GunzipError::TooLarge { limit: max_len });
    }
    Ok(())
}

thread_local! {
    /// libdeflate's decompressor holds about 10 KB of tables; one per thread, reused.
    static DECOMPRESSOR: RefCell<libdeflater::Decompressor> = RefCell::new(libdeflater::Decompressor::new());
}

/// The payload inflated by libdeflate in one call, if it is one gzip member of the size its trailer
/// states (within the cap); `None` sends it to the streaming decoder.
///
/// libdeflate checks the member's CRC-32 and size but cannot say where the member ended, so this path
/// is taken only for input that cannot hold a second member (no gzip member header `1f 8b 08` after
/// the first byte; compressed bytes contain one by chance in about 1 of 16 million positions), and
/// its result only when it has the size the input's last 4 bytes state. What this lets through is
/// bytes after the member that are not a member and end with its size: the content is still exact,
/// where the streaming decoder would have refused the junk.
fn single_member(input: &[u8], max_len: usize, out: &mut Vec<u8>) -> bool {
    if input
        .get(1..)
        .is_some_and(|rest| memchr::memmem::find(rest, &[0x1f, 0x8b, 0x08]).is_some())
    {
        return false;
    }
    let Some(size) = trailer_size(input) else {
        return false;
    };
    if size > max_len || size > input.len().saturating_mul(MAX_DEFLATE_RATIO) {
        return false;
    }
    out.resize(size, 0);
    let written = DECOMPRESSOR
        .try_with(|d| d.try_borrow_mut().ok().map(|mut d| d.gzip_decompress(input, out)))
        .ok()
        .flatten();
    matches!(written, Some(Ok(n)) if n == size)
}

/// The size the gzip trailer (ISIZE, the last 4 bytes) states.
fn trailer_size(input: &[u8]) -> Option<usize> {
    let trailer = input.len().checked_sub(4).and_then(|start| input.get(start..))?;
    usize::try_from(u32::from_le_bytes(trailer.try_into().ok()?)).ok()
}

/// Deflate's largest expansion: a stored length/distance pair of 258 bytes costs at least 2 bits,
/// so no stream inflates to more than about 1032 times its size.
const MAX_DEFLATE_RATIO: usize = 1032;

/// The output buffer to start with. The gzip trailer's ISIZE (the last member's length mod 2^32) is
/// right for every single-member payload, which saves the regrowth that costs a large record about a
/// tenth of its inflate time; it is only a hint from untrusted bytes, so it is clamped to the cap and
/// to what the input could possibly inflate to, and a payload that lies about it still decompresses
/// correctly (the buffer grows as needed).
fn initial_capacity(input: &[u8], max_len: usize) -> usize {
    let isize_trailer = input
        .len()
        .checked_sub(4)
        .and_then(|start| input.get(start..))
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_le_bytes);
    usize::try_from(isize_trailer)
        .unwrap_or(usize::MAX)
        .max(input.len())
        .min(input.len().saturating_mul(MAX_DEFLATE_RATIO))
        .min(max_len)
}

/// Gzip-compresses `input` at the default level, as the DAS producer does.
pub fn gzip(input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(input.len() / 4 + 64), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(input);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_gzip() {
        let data = b"{\"type\":\"DatabaseActivityMonitoringRecord\"}".repeat(100);
        assert_eq!(gunzip(&gzip(&data), 1 << 20).unwrap(), data);
    }

    #[test]
    fn accepts_concatenated_members() {
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"abcd");
    }

    #[test]
    fn members_with_the_same_trailer_are_all_decompressed() {
        // The second member ends with the first one's trailer: only the member scan tells them apart.
        let one = gzip(&b"{\"n\":1}".repeat(500));
        let two = [one.clone(), one.clone()].concat();
        assert_eq!(gunzip(&two, 1 << 20).unwrap(), b"{\"n\":1}".repeat(1000));
    }

    #[test]
    fn the_fast_path_and_the_streaming_decoder_agree() {
        for (len, seed) in [(0usize, 1u64), (1, 2), (4095, 3), (70_000, 4)] {
            let mut state = seed;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    b"SELECT abcdefghij 0123456789,\n"[(state >> 59) as usize % 30]
                })
                .collect();
            let gz = gzip(&data);
            let mut fast = Vec::new();
            assert!(single_member(&gz, 1 << 20, &mut fast), "{len}");
            assert_eq!(fast, data, "{len}");
            let mut streamed = Vec::new();
            MultiGzDecoder::new(&gz[..]).read_to_end(&mut streamed).unwrap();
            assert_eq!(gunzip(&gz, 1 << 20).unwrap(), streamed);
            // Over the cap, the fast path steps aside and the streaming decoder reports it.
            if len > 0 {
                assert!(!single_member(&gz, len - 1, &mut fast));
                assert!(matches!(gunzip(&gz, len - 1), Err(GunzipError::TooLarge { .. })));
            }
        }
    }

    #[test]
    fn rejects_a_bomb_at_the_cap_without_inflating_it_all() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert!(matches!(gunzip(&bomb, 1 << 20), Err(GunzipError::TooLarge { limit }) if limit == 1 << 20));
    }

    #[test]
    fn a_trailer_that_lies_about_the_size_cannot_make_a_large_buffer() {
        let mut liar = gzip(b"tiny");
        let len = liar.len();
        liar[len - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(initial_capacity(&liar, 64 << 20), len * MAX_DEFLATE_RATIO);
        assert_eq!(initial_capacity(&liar, 100), 100);
        assert!(matches!(gunzip(&liar, 64 << 20), Err(GunzipError::Corrupt(_))));
        let honest = gzip(&[7u8; 50_000]);
        assert_eq!(initial_capacity(&honest, 64 << 20), 50_000);
    }

    #[test]
    fn accepts_exactly_the_cap() {
        assert_eq!(gunzip(&gzip(&[1u8; 1000]), 1000).unwrap().len(), 1000);
    }

    #[test]
    fn rejects_non_gzip_truncated_and_trailing_garbage() {
        assert!(matches!(gunzip(b"{}", 10), Err(GunzipError::NotGzip(_))));
        assert!(matches!(gunzip(b"", 10), Err(GunzipError::TooShort(0))));
        let full = gzip(b"hello world");
        assert!(matches!(
            gunzip(&full[..full.len() - 3], 100),
            Err(GunzipError::Corrupt(_))
        ));
        let mut trailing = full.clone();
        trailing.extend_from_slice(b"junk");
        assert!(gunzip(&trailing, 100).is_err());
    }
}
