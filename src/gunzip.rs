//! Bounded gunzip of a decrypted payload.
//!
//! A few kilobytes of gzip can inflate to gigabytes, so decompression stops at a configurable cap and
//! reports a clear error instead of exhausting memory. It never allocates more than the cap (plus the
//! read buffer), and never accepts bytes that are not gzip.

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
    match input {
        [0x1f, 0x8b, ..] => {}
        [a, b, ..] => return Err(GunzipError::NotGzip([*a, *b])),
        _ => return Err(GunzipError::TooShort(input.len())),
    }
    let mut out = Vec::with_capacity(initial_capacity(input, max_len));
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(input)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(GunzipError::Corrupt)?;
    if out.len() > max_len {
        return Err(GunzipError::TooLarge { limit: max_len });
    }
    Ok(out)
}

/// The output buffer to start with. The gzip trailer's ISIZE (the last member's length mod 2^32) is
/// right for every single-member payload, which saves the regrowth that costs a large record about a
/// tenth of its inflate time; it is only a hint from untrusted bytes, so it is clamped to the cap,
/// and a payload that lies about it still decompresses correctly (the buffer grows as needed).
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
    fn rejects_a_bomb_at_the_cap_without_inflating_it_all() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert!(matches!(gunzip(&bomb, 1 << 20), Err(GunzipError::TooLarge { limit }) if limit == 1 << 20));
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
