//! A cursor over untrusted bytes that cannot panic and never copies.
//!
//! Every read checks the remaining length first and names the structure it was reading, so a short or
//! malformed message becomes an [`EsdkError::Truncated`] that says where it ended. It never indexes a
//! slice, never allocates, and never trusts a length field beyond the bytes that are actually present.

use super::EsdkError;

/// A position in a byte slice; reads advance it.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// Offset of `buf[0]` in the whole message, for error messages.
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, offset: 0 }
    }

    /// Byte offset of the next read within the whole message.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes not yet read, without consuming them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Bytes not yet read.
    pub(crate) fn left(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], EsdkError> {
        let (head, tail) = self.buf.split_at_checked(n).ok_or(EsdkError::Truncated {
            what,
            offset: self.offset,
        })?;
        self.buf = tail;
        self.offset += n;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<&'a [u8; N], EsdkError> {
        let (head, tail) = self.buf.split_first_chunk::<N>().ok_or(EsdkError::Truncated {
            what,
            offset: self.offset,
        })?;
        self.buf = tail;
        self.offset += N;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, EsdkError> {
        self.array::<1>(what).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, EsdkError> {
        self.array::<2>(what).map(|b| u16::from_be_bytes(*b))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, EsdkError> {
        self.array::<4>(what).map(|b| u32::from_be_bytes(*b))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, EsdkError> {
        self.array::<8>(what).map(|b| u64::from_be_bytes(*b))
    }

    /// Peeks at the next four bytes as a big-endian u32 without consuming them.
    pub(crate) fn peek_u32(&self, what: &'static str) -> Result<u32, EsdkError> {
        self.buf
            .first_chunk::<4>()
            .map(|b| u32::from_be_bytes(*b))
            .ok_or(EsdkError::Truncated {
                what,
                offset: self.offset,
            })
    }

    /// A u16 length prefix followed by that many bytes.
    pub(crate) fn u16_prefixed(&mut self, what: &'static str) -> Result<&'a [u8], EsdkError> {
        let len = self.u16(what)?;
        self.bytes(usize::from(len), what)
    }

    /// A reader over exactly the next `n` bytes; this reader skips past them.
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, EsdkError> {
        let offset = self.offset;
        let buf = self.bytes(n, what)?;
        Ok(Reader { buf, offset })
    }

    /// Fails unless every byte has been read.
    pub(crate) fn expect_end(&self, what: &'static str) -> Result<(), EsdkError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(EsdkError::TrailingBytes {
                what,
                offset: self.offset,
                count: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_integers_and_tracks_the_offset() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 3, 9]);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 2);
        assert_eq!(r.u32("c").unwrap(), 3);
        assert_eq!(r.offset(), 7);
        assert_eq!(r.left(), 1);
    }

    #[test]
    fn a_short_read_names_the_field_and_offset() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        let err = r.u16_prefixed("provider id").unwrap_err();
        assert_eq!(
            err,
            EsdkError::Truncated {
                what: "provider id",
                offset: 2
            }
        );
    }

    #[test]
    fn a_sub_reader_is_bounded_and_reports_leftovers() {
        let mut r = Reader::new(&[1, 2, 3, 4]);
        let mut sub = r.sub(3, "block").unwrap();
        assert_eq!(sub.u8("x").unwrap(), 1);
        assert_eq!(
            sub.expect_end("block"),
            Err(EsdkError::TrailingBytes {
                what: "block",
                offset: 1,
                count: 2
            })
        );
        assert_eq!(r.offset(), 3);
        assert!(sub.bytes(3, "y").is_err());
    }
}
