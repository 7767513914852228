//! The message body: framed (regular frames then one final frame) or non-framed (one block).
//!
//! Parsing only recognises the structure and enforces the sequence, IV and length rules, so that the
//! whole message is known to be well formed before any key is touched. Decrypting a frame lives in
//! `decrypt`; building one lives in `encrypt`.

use super::header::{ContentType, Header};
use super::reader::Reader;
use super::suite::{IV_LEN, TAG_LEN};
use super::EsdkError;

/// Marks a final frame where a regular frame's sequence number would be.
pub(crate) const FINAL_FRAME_MARKER: u32 = 0xFFFF_FFFF;
/// Body AAD content string of a regular frame.
pub(crate) const FRAME_AAD: &[u8] = b"AWSKMSEncryptionClient Frame";
/// Body AAD content string of the final frame.
pub(crate) const FINAL_FRAME_AAD: &[u8] = b"AWSKMSEncryptionClient Final Frame";
/// Body AAD content string of a non-framed body.
pub(crate) const SINGLE_BLOCK_AAD: &[u8] = b"AWSKMSEncryptionClient Single Block";
/// The ESDK's limit on a non-framed body: 2^36 - 32 bytes.
const MAX_NON_FRAMED_LEN: u64 = (1 << 36) - 32;

/// Which kind of AES-GCM block a [`Frame`] is; selects its body AAD string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A regular frame of exactly the frame length.
    Regular,
    /// The last frame.
    Final,
    /// The one block of a non-framed body.
    SingleBlock,
}

/// One authenticated block of the body, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Which kind of block.
    pub kind: FrameKind,
    /// Sequence number (1 for a non-framed body).
    pub sequence: u32,
    /// The AES-GCM IV from the wire.
    pub iv: &'a [u8; IV_LEN],
    /// The encrypted content; its length is the plaintext length.
    pub ciphertext: &'a [u8],
    /// The AES-GCM tag.
    pub tag: &'a [u8; TAG_LEN],
}

impl Frame<'_> {
    /// The body AAD string of this kind of block.
    pub(crate) fn aad_content(&self) -> &'static [u8] {
        match self.kind {
            FrameKind::Regular => FRAME_AAD,
            FrameKind::Final => FINAL_FRAME_AAD,
            FrameKind::SingleBlock => SINGLE_BLOCK_AAD,
        }
    }
}

/// The IV that the ESDK gives frame `sequence`: the number, big-endian, left-padded to 12 bytes.
pub(crate) fn frame_iv(sequence: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&sequence.to_be_bytes());
    iv
}

/// The body AAD: message id ‖ content string ‖ sequence number ‖ plaintext length.
pub(crate) fn body_aad(message_id: &[u8], content: &[u8], sequence: u32, len: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(message_id);
    out.extend_from_slice(content);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

/// Reads the whole body described by `header`, leaving `r` after it.
pub(crate) fn read_body<'a>(r: &mut Reader<'a>, header: &Header<'_>) -> Result<Vec<Frame<'a>>, EsdkError> {
    match header.content_type {
        ContentType::NonFramed => read_single_block(r).map(|f| vec![f]),
        ContentType::Framed => read_frames(r, header.frame_length),
    }
}

fn read_single_block<'a>(r: &mut Reader<'a>) -> Result<Frame<'a>, EsdkError> {
    let iv = r.array::<IV_LEN>("non-framed body IV")?;
    let len_offset = r.offset();
    let len = r.u64("non-framed content length")?;
    if len > MAX_NON_FRAMED_LEN {
        return Err(EsdkError::InvalidField {
            part: "body",
            field: "non-framed content length",
            value: len,
            rule: "must be at most 2^36 - 32",
            offset: len_offset,
        });
    }
    // Longer than the input is simply truncated; the conversion cannot fail after that check.
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= r.left())
        .ok_or(EsdkError::Truncated {
            what: "non-framed content",
            offset: r.offset(),
        })?;
    let ciphertext = r.bytes(len, "non-framed content")?;
    let tag = r.array::<TAG_LEN>("non-framed body tag")?;
    Ok(Frame {
        kind: FrameKind::SingleBlock,
        sequence: 1,
        iv,
        ciphertext,
        tag,
    })
}

fn read_frames<'a>(r: &mut Reader<'a>, frame_length: u32) -> Result<Vec<Frame<'a>>, EsdkError> {
    // Frame length was checked against the limit when the header was parsed.
    let frame_len = usize::try_from(frame_length).map_err(|_| EsdkError::LimitExceeded {
        what: "frame length",
        value: u64::from(frame_length),
        limit: usize::MAX as u64,
    })?;
    let mut frames = Vec::new();
    let mut expected: u32 = 1;
    loop {
        let offset = r.offset();
        if r.peek_u32("frame sequence number")? == FINAL_FRAME_MARKER {
            frames.push(read_final_frame(r, expected, frame_length)?);
            return Ok(frames);
        }
        if expected == FINAL_FRAME_MARKER {
            return Err(EsdkError::InvalidField {
                part: "body",
                field: "frame count",
                value: u64::from(expected),
                rule: "a message holds at most 2^32 - 1 frames",
                offset,
            });
        }
        frames.push(read_regular_frame(r, expected, frame_len)?);
        expected += 1;
    }
}

/// A frame before the last: sequence number, IV, `frame_len` bytes of content, tag.
fn read_regular_frame<'a>(r: &mut Reader<'a>, expected: u32, frame_len: usize) -> Result<Frame<'a>, EsdkError> {
    let sequence = read_sequence(r, expected)?;
    let iv = read_iv(r, sequence)?;
    let ciphertext = r.bytes(frame_len, "frame content")?;
    let tag = r.array::<TAG_LEN>("frame tag")?;
    Ok(Frame {
        kind: FrameKind::Regular,
        sequence,
        iv,
        ciphertext,
        tag,
    })
}

/// The final frame: its marker, sequence number, IV, a content length of at most the frame
/// length, the content and the tag.
fn read_final_frame<'a>(r: &mut Reader<'a>, expected: u32, frame_length: u32) -> Result<Frame<'a>, EsdkError> {
    r.u32("final frame marker")?;
    let sequence = read_sequence(r, expected)?;
    let iv = read_iv(r, sequence)?;
    let len_offset = r.offset();
    let len = r.u32("final frame content length")?;
    if len > frame_length {
        return Err(EsdkError::InvalidField {
            part: "body",
            field: "final frame content length",
            value: u64::from(len),
            rule: "must not exceed the frame length",
            offset: len_offset,
        });
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let ciphertext = r.bytes(len, "final frame content")?;
    let tag = r.array::<TAG_LEN>("final frame tag")?;
    Ok(Frame {
        kind: FrameKind::Final,
        sequence,
        iv,
        ciphertext,
        tag,
    })
}

fn read_sequence(r: &mut Reader<'_>, expected: u32) -> Result<u32, EsdkError> {
    let offset = r.offset();
    let found = r.u32("frame sequence number")?;
    if found != expected {
        return Err(EsdkError::FrameSequence {
            expected,
            found,
            offset,
        });
    }
    Ok(found)
}

fn read_iv<'a>(r: &mut Reader<'a>, sequence: u32) -> Result<&'a [u8; IV_LEN], EsdkError> {
    let iv = r.array::<IV_LEN>("frame IV")?;
    if *iv != frame_iv(sequence) {
        return Err(EsdkError::FrameIv { sequence });
    }
    Ok(iv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ivs_are_the_left_padded_sequence_number() {
        assert_eq!(frame_iv(1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(frame_iv(0x0102_0304)[8..], [1, 2, 3, 4]);
    }

    #[test]
    fn the_body_aad_strings_have_the_spec_lengths() {
        assert_eq!(
            (FRAME_AAD.len(), FINAL_FRAME_AAD.len(), SINGLE_BLOCK_AAD.len()),
            (28, 34, 35)
        );
    }
}
