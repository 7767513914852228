//! The ESDK message header (versions 1 and 2): parsing from untrusted bytes and serializing for the
//! encoder, side by side so that each can test the other.
//!
//! Like rustls's message codecs, every part of the header has its own small reader next to its
//! writer (version, suite, encryption context, encrypted data keys, content type, the v1-only fields,
//! frame length, authentication fields), and [`Header::read`] just reads the parts in the order of the
//! message-format specification's header structure
//! (<https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/message-format.html#header-structure>).
//!
//! Parsing checks every structural rule of the format (versions, suite, canonical encryption context,
//! EDK count, content type, reserved bytes, IV length, frame length) and every configured limit, but
//! does no cryptography: authenticating the header is `decrypt`'s job.

use super::reader::Reader;
use super::suite::{Suite, SuiteId, IV_LEN, TAG_LEN};
use super::{EsdkError, Limits};

/// The encryption context key that carries a signed suite's public key.
pub const PUBLIC_KEY_CONTEXT_KEY: &str = "aws-crypto-public-key";

/// The only message type a v1 header may carry: customer authenticated encrypted data.
const V1_MESSAGE_TYPE: u8 = 0x80;
/// Length of the v2 algorithm suite data (the key commitment).
const COMMITMENT_LEN: usize = 32;

/// Framed (many fixed-size frames) or non-framed (one block) content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Content type 0x01: the whole plaintext in one AES-GCM block.
    NonFramed,
    /// Content type 0x02: fixed-length frames and one final frame.
    Framed,
}

impl ContentType {
    fn wire(self) -> u8 {
        match self {
            Self::NonFramed => 0x01,
            Self::Framed => 0x02,
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, EsdkError> {
        let offset = r.offset();
        match r.u8("content type")? {
            0x01 => Ok(Self::NonFramed),
            0x02 => Ok(Self::Framed),
            other => Err(invalid(
                "content type",
                u64::from(other),
                "must be 0x01 (non-framed) or 0x02 (framed)",
                offset,
            )),
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        out.push(self.wire());
    }
}

/// One encrypted data key entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedDataKey<'a> {
    /// Key provider id (for a raw AES keyring, its namespace; DAS: `BC`).
    pub provider_id: &'a [u8],
    /// Key provider information (raw AES: key name ‖ tag bits ‖ IV length ‖ IV).
    pub provider_info: &'a [u8],
    /// The wrapped data key (raw AES: ciphertext ‖ tag).
    pub ciphertext: &'a [u8],
}

impl<'a> EncryptedDataKey<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, EsdkError> {
        Ok(Self {
            provider_id: r.u16_prefixed("encrypted data key provider id")?,
            provider_info: r.u16_prefixed("encrypted data key provider info")?,
            ciphertext: r.u16_prefixed("encrypted data key")?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), EsdkError> {
        put_u16_prefixed(out, self.provider_id, "encrypted data key provider id")?;
        put_u16_prefixed(out, self.provider_info, "encrypted data key provider info")?;
        put_u16_prefixed(out, self.ciphertext, "encrypted data key")
    }

    /// The count and the entries: at least one, at most the configured limit.
    fn read_list(r: &mut Reader<'a>, limits: &Limits) -> Result<Vec<Self>, EsdkError> {
        let count_offset = r.offset();
        let count = r.u16("encrypted data key count")?;
        if count == 0 {
            return Err(invalid(
                "encrypted data key count",
                0,
                "a message needs at least one encrypted data key",
                count_offset,
            ));
        }
        if count > limits.max_encrypted_data_keys {
            return Err(EsdkError::LimitExceeded {
                what: "encrypted data key count",
                value: u64::from(count),
                limit: u64::from(limits.max_encrypted_data_keys),
            });
        }
        // Bounded by the limit just checked, so the capacity is not attacker-driven.
        let mut keys = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            keys.push(Self::read(r)?);
        }
        Ok(keys)
    }

    fn write_list(keys: &[Self], out: &mut Vec<u8>) -> Result<(), EsdkError> {
        put_u16(out, keys.len(), "encrypted data key count")?;
        keys.iter().try_for_each(|key| key.write(out))
    }
}

/// The header authentication fields: the IV (v1 only; v2 implies zero) and the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderAuth<'a> {
    pub(crate) iv: [u8; IV_LEN],
    pub(crate) tag: &'a [u8; TAG_LEN],
}

impl<'a> HeaderAuth<'a> {
    fn read(r: &mut Reader<'a>, version: u8) -> Result<Self, EsdkError> {
        let iv = if version == 1 {
            *r.array::<IV_LEN>("header IV")?
        } else {
            [0u8; IV_LEN]
        };
        let tag = r.array::<TAG_LEN>("header authentication tag")?;
        Ok(Self { iv, tag })
    }

    /// Appends the IV (v1 headers only) and the tag.
    pub(crate) fn write(&self, version: u8, out: &mut Vec<u8>) {
        if version == 1 {
            out.extend_from_slice(&self.iv);
        }
        out.extend_from_slice(self.tag);
    }
}

/// A parsed, not yet authenticated, message header. Borrows from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// Header version: 1 or 2.
    pub version: u8,
    /// The algorithm suite.
    pub suite: Suite,
    /// 16 bytes (v1) or 32 bytes (v2).
    pub message_id: &'a [u8],
    /// The serialized encryption context (empty when there is none); the raw AES keyring's AAD.
    pub encryption_context_bytes: &'a [u8],
    /// The encryption context, in the canonical (sorted) order of the wire.
    pub encryption_context: Vec<(&'a str, &'a str)>,
    /// Encrypted data keys, at least one.
    pub encrypted_data_keys: Vec<EncryptedDataKey<'a>>,
    /// Framed or not.
    pub content_type: ContentType,
    /// Frame length; 0 for non-framed content.
    pub frame_length: u32,
    /// The header authentication IV (v1 from the wire; v2 is always zero).
    pub header_iv: [u8; IV_LEN],
    /// The v2 algorithm suite data: the key commitment.
    pub commitment: Option<&'a [u8; 32]>,
    /// The header authentication tag.
    pub auth_tag: &'a [u8; TAG_LEN],
    /// The header body: every header byte before the auth IV/tag, authenticated by `auth_tag`.
    pub body_bytes: &'a [u8],
    /// Total header length in bytes, including the authentication fields.
    pub len: usize,
}

impl<'a> Header<'a> {
    /// Parses a header from the start of `r`, leaving `r` at the first body byte: the parts in the
    /// specification's order, each checked as it is read.
    pub(crate) fn read(r: &mut Reader<'a>, whole: &'a [u8], limits: &Limits) -> Result<Self, EsdkError> {
        let start = r.offset();
        let version = read_version(r)?;
        let suite = read_suite(r, version)?;
        let message_id = r.bytes(suite.message_id_len(), "message id")?;
        let (encryption_context_bytes, encryption_context) = read_encryption_context(r)?;
        check_signing_key(&suite, &encryption_context)?;
        let encrypted_data_keys = EncryptedDataKey::read_list(r, limits)?;
        let content_type = ContentType::read(r)?;
        if version == 1 {
            read_v1_fields(r)?;
        }
        let frame_length = read_frame_length(r, content_type, limits)?;
        let commitment = read_suite_data(r, version)?;
        let body_end = r.offset();
        let auth = HeaderAuth::read(r, version)?;
        let body_bytes = whole.get(start..body_end).ok_or(EsdkError::Truncated {
            what: "header",
            offset: start,
        })?;
        Ok(Self {
            version,
            suite,
            message_id,
            encryption_context_bytes,
            encryption_context,
            encrypted_data_keys,
            content_type,
            frame_length,
            header_iv: auth.iv,
            commitment,
            auth_tag: auth.tag,
            body_bytes,
            len: r.offset() - start,
        })
    }

    /// The value of an encryption context key.
    pub fn context_value(&self, key: &str) -> Option<&'a str> {
        self.encryption_context.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// A header field that breaks a rule of the format.
fn invalid(field: &'static str, value: u64, rule: &'static str, offset: usize) -> EsdkError {
    EsdkError::InvalidField {
        part: "header",
        field,
        value,
        rule,
        offset,
    }
}

/// The version byte and, for version 1, the message type byte after it.
fn read_version(r: &mut Reader<'_>) -> Result<u8, EsdkError> {
    let version = r.u8("header version")?;
    if version != 1 && version != 2 {
        return Err(EsdkError::UnsupportedVersion(version));
    }
    if version == 1 {
        let message_type = r.u8("message type")?;
        if message_type != V1_MESSAGE_TYPE {
            return Err(EsdkError::UnsupportedType(message_type));
        }
    }
    Ok(version)
}

fn write_version(version: u8, out: &mut Vec<u8>) {
    out.push(version);
    if version == 1 {
        out.push(V1_MESSAGE_TYPE);
    }
}

/// The algorithm suite id: a suite the ESDK defines, for this header version.
fn read_suite(r: &mut Reader<'_>, version: u8) -> Result<Suite, EsdkError> {
    let suite_id = SuiteId(r.u16("algorithm suite id")?);
    let suite = Suite::from_id(suite_id).ok_or(EsdkError::UnknownSuite(suite_id))?;
    if suite.header_version != version {
        return Err(EsdkError::SuiteVersionMismatch {
            suite: suite_id,
            version,
        });
    }
    Ok(suite)
}

fn write_suite(suite: &Suite, out: &mut Vec<u8>) {
    out.extend_from_slice(&suite.id.0.to_be_bytes());
}

/// The v1-only fields between content type and frame length: four reserved zero bytes and the IV
/// length, which is 12 for every suite.
fn read_v1_fields(r: &mut Reader<'_>) -> Result<(), EsdkError> {
    let reserved_offset = r.offset();
    let reserved = r.u32("reserved field")?;
    if reserved != 0 {
        return Err(invalid(
            "reserved field",
            u64::from(reserved),
            "must be zero",
            reserved_offset,
        ));
    }
    let iv_len_offset = r.offset();
    let iv_len = r.u8("IV length")?;
    if usize::from(iv_len) != IV_LEN {
        return Err(invalid(
            "IV length",
            u64::from(iv_len),
            "must be 12 for every algorithm suite",
            iv_len_offset,
        ));
    }
    Ok(())
}

fn write_v1_fields(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.push(IV_LEN as u8);
}

/// The frame length: 0 for non-framed content, within the limit for framed content.
fn read_frame_length(r: &mut Reader<'_>, content_type: ContentType, limits: &Limits) -> Result<u32, EsdkError> {
    let offset = r.offset();
    let frame_length = r.u32("frame length")?;
    let rule_broken = |rule| invalid("frame length", u64::from(frame_length), rule, offset);
    match content_type {
        ContentType::NonFramed if frame_length != 0 => Err(rule_broken("must be 0 for non-framed content")),
        ContentType::Framed if frame_length == 0 => Err(rule_broken("must be greater than 0 for framed content")),
        ContentType::Framed if frame_length > limits.max_frame_length => Err(EsdkError::LimitExceeded {
            what: "frame length",
            value: u64::from(frame_length),
            limit: u64::from(limits.max_frame_length),
        }),
        _ => Ok(frame_length),
    }
}

/// The v2 algorithm suite data (the key commitment); v1 headers have none.
fn read_suite_data<'a>(r: &mut Reader<'a>, version: u8) -> Result<Option<&'a [u8; COMMITMENT_LEN]>, EsdkError> {
    if version == 2 {
        r.array::<COMMITMENT_LEN>("algorithm suite data").map(Some)
    } else {
        Ok(None)
    }
}

/// An encryption context as read: its serialized bytes (the keyring's AAD) and its pairs.
type ContextRead<'a> = (&'a [u8], Vec<(&'a str, &'a str)>);

/// The u16-prefixed encryption context block.
fn read_encryption_context<'a>(r: &mut Reader<'a>) -> Result<ContextRead<'a>, EsdkError> {
    let len = usize::from(r.u16("encryption context length")?);
    let mut block = r.sub(len, "encryption context")?;
    let bytes = block.rest();
    Ok((bytes, read_context_pairs(&mut block, len)?))
}

/// Reads the key-value block of the encryption context, enforcing the canonical form: a non-zero
/// count, UTF-8 keys and values, keys strictly ascending by their bytes, nothing left over.
fn read_context_pairs<'a>(r: &mut Reader<'a>, len: usize) -> Result<Vec<(&'a str, &'a str)>, EsdkError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let count_offset = r.offset();
    let count = r.u16("encryption context pair count")?;
    if count == 0 {
        return Err(EsdkError::InvalidEncryptionContext {
            rule: "a non-empty block must hold at least one pair",
            offset: count_offset,
        });
    }
    // Each pair takes at least 4 bytes, so the block length bounds the capacity.
    let mut pairs: Vec<(&'a str, &'a str)> = Vec::with_capacity(usize::from(count).min(r.left() / 4));
    for _ in 0..count {
        let offset = r.offset();
        let key = utf8(r.u16_prefixed("encryption context key")?, offset)?;
        let value = utf8(r.u16_prefixed("encryption context value")?, offset)?;
        if let Some((previous, _)) = pairs.last() {
            if previous.as_bytes() >= key.as_bytes() {
                return Err(EsdkError::InvalidEncryptionContext {
                    rule: "keys must be unique and sorted in ascending byte order",
                    offset,
                });
            }
        }
        pairs.push((key, value));
    }
    r.expect_end("encryption context")?;
    Ok(pairs)
}

fn utf8(bytes: &[u8], offset: usize) -> Result<&str, EsdkError> {
    std::str::from_utf8(bytes).map_err(|_| EsdkError::InvalidEncryptionContext {
        rule: "keys and values must be UTF-8",
        offset,
    })
}

/// A signed suite must carry its public key in the context; an unsigned one must not.
fn check_signing_key(suite: &Suite, context: &[(&str, &str)]) -> Result<(), EsdkError> {
    let present = context.iter().any(|(k, _)| *k == PUBLIC_KEY_CONTEXT_KEY);
    match (suite.signing.is_some(), present) {
        (true, false) => Err(EsdkError::SigningKey(
            "signed algorithm suite but no aws-crypto-public-key in the encryption context",
        )),
        (false, true) => Err(EsdkError::SigningKey(
            "unsigned algorithm suite but the encryption context holds aws-crypto-public-key",
        )),
        _ => Ok(()),
    }
}

/// Serializes an encryption context canonically (sorted by key bytes). Empty gives no bytes.
pub(crate) fn write_encryption_context(pairs: &[(String, String)], out: &mut Vec<u8>) -> Result<(), EsdkError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if sorted.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
        return Err(EsdkError::InvalidEncryptionContext {
            rule: "keys must be unique",
            offset: 0,
        });
    }
    put_u16(out, sorted.len(), "encryption context pair count")?;
    for (key, value) in sorted {
        put_u16_prefixed(out, key.as_bytes(), "encryption context key")?;
        put_u16_prefixed(out, value.as_bytes(), "encryption context value")?;
    }
    Ok(())
}

/// The fields the encoder chooses; serialized into a header body by [`HeaderFields::write_body`].
pub(crate) struct HeaderFields<'k> {
    pub(crate) suite: Suite,
    pub(crate) message_id: &'k [u8],
    pub(crate) encryption_context_bytes: &'k [u8],
    pub(crate) encrypted_data_keys: &'k [EncryptedDataKey<'k>],
    pub(crate) content_type: ContentType,
    pub(crate) frame_length: u32,
    pub(crate) commitment: Option<&'k [u8; COMMITMENT_LEN]>,
}

impl HeaderFields<'_> {
    /// Appends the header body (everything the header tag authenticates) to `out`: the parts in the
    /// order [`Header::read`] reads them.
    pub(crate) fn write_body(&self, out: &mut Vec<u8>) -> Result<(), EsdkError> {
        let version = self.suite.header_version;
        write_version(version, out);
        write_suite(&self.suite, out);
        out.extend_from_slice(self.message_id);
        put_u16_prefixed(out, self.encryption_context_bytes, "encryption context")?;
        EncryptedDataKey::write_list(self.encrypted_data_keys, out)?;
        self.content_type.write(out);
        if version == 1 {
            write_v1_fields(out);
        }
        out.extend_from_slice(&self.frame_length.to_be_bytes());
        if let Some(commitment) = self.commitment {
            out.extend_from_slice(commitment);
        }
        Ok(())
    }
}

fn put_u16(out: &mut Vec<u8>, value: usize, what: &'static str) -> Result<(), EsdkError> {
    let v = u16::try_from(value).map_err(|_| EsdkError::LimitExceeded {
        what,
        value: value as u64,
        limit: u64::from(u16::MAX),
    })?;
    out.extend_from_slice(&v.to_be_bytes());
    Ok(())
}

fn put_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), EsdkError> {
    put_u16(out, bytes.len(), what)?;
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Each part's reader against its writer, then the rules each reader enforces.

    use super::*;

    const DAS_SUITE: SuiteId = SuiteId::AES_256_GCM_HKDF_SHA256;

    fn suite(id: SuiteId) -> Suite {
        Suite::from_id(id).unwrap()
    }

    fn field_of(err: EsdkError) -> &'static str {
        match err {
            EsdkError::InvalidField { field, .. } => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// A u16-prefixed encryption context block, as the header carries it.
    fn context_block(list: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        write_encryption_context(&pairs(list), &mut block).unwrap();
        let mut out = Vec::new();
        put_u16_prefixed(&mut out, &block, "encryption context").unwrap();
        out
    }

    #[test]
    fn the_version_reader_reads_what_its_writer_writes_for_both_versions() {
        for version in [1, 2] {
            let mut out = Vec::new();
            write_version(version, &mut out);
            let mut r = Reader::new(&out);
            assert_eq!(read_version(&mut r).unwrap(), version);
            assert_eq!(r.left(), 0);
        }
    }

    #[test]
    fn a_version_other_than_1_or_2_and_a_v1_type_other_than_0x80_are_unsupported() {
        assert_eq!(
            read_version(&mut Reader::new(&[3])),
            Err(EsdkError::UnsupportedVersion(3))
        );
        assert_eq!(
            read_version(&mut Reader::new(&[1, 0x81])),
            Err(EsdkError::UnsupportedType(0x81))
        );
        // Version 2 has no message type byte: the next byte is not read.
        assert_eq!(read_version(&mut Reader::new(&[2, 0x81])), Ok(2));
    }

    #[test]
    fn the_suite_reader_reads_every_suite_its_writer_writes() {
        for s in Suite::all() {
            let mut out = Vec::new();
            write_suite(&s, &mut out);
            assert_eq!(read_suite(&mut Reader::new(&out), s.header_version).unwrap(), s);
        }
    }

    #[test]
    fn an_unknown_suite_or_one_of_the_other_header_version_is_rejected() {
        assert_eq!(
            read_suite(&mut Reader::new(&[0x01, 0x79]), 1),
            Err(EsdkError::UnknownSuite(SuiteId(0x0179)))
        );
        assert_eq!(
            read_suite(&mut Reader::new(&[0x04, 0x78]), 1),
            Err(EsdkError::SuiteVersionMismatch {
                suite: SuiteId(0x0478),
                version: 1
            })
        );
    }

    #[test]
    fn the_encryption_context_reads_back_sorted_with_its_exact_bytes() {
        let out = context_block(&[("b", "2"), ("a", "1")]);
        let mut r = Reader::new(&out);
        let (bytes, read) = read_encryption_context(&mut r).unwrap();
        assert_eq!(read, vec![("a", "1"), ("b", "2")]);
        assert_eq!(bytes, &out[2..]);
        assert_eq!(r.left(), 0);
        assert_eq!(context_block(&[]), vec![0, 0]);
        assert_eq!(read_encryption_context(&mut Reader::new(&[0, 0])).unwrap().1, vec![]);
    }

    #[test]
    fn a_non_canonical_encryption_context_is_rejected() {
        let rule_of = |bytes: &[u8]| match read_encryption_context(&mut Reader::new(bytes)) {
            Err(EsdkError::InvalidEncryptionContext { rule, .. }) => rule,
            other => panic!("expected InvalidEncryptionContext, got {other:?}"),
        };
        assert!(rule_of(&[0, 2, 0, 0]).contains("at least one pair"));
        assert!(rule_of(&[0, 8, 0, 1, 0, 1, 0xFF, 0, 1, b'v']).contains("UTF-8"));
        let unsorted = [0, 12, 0, 2, 0, 1, b'b', 0, 0, 0, 1, b'a', 0, 0];
        assert!(rule_of(&unsorted).contains("sorted"));
        let duplicated = [0, 12, 0, 2, 0, 1, b'a', 0, 0, 0, 1, b'a', 0, 0];
        assert!(rule_of(&duplicated).contains("unique"));
        assert!(matches!(
            read_encryption_context(&mut Reader::new(&[0, 8, 0, 1, 0, 1, b'a', 0, 0, 9])),
            Err(EsdkError::TrailingBytes { .. })
        ));
        let mut out = Vec::new();
        let duplicate_keys = write_encryption_context(&pairs(&[("a", "1"), ("a", "2")]), &mut out);
        assert!(matches!(
            duplicate_keys,
            Err(EsdkError::InvalidEncryptionContext { .. })
        ));
    }

    #[test]
    fn a_signed_suite_needs_the_public_key_in_the_context_and_an_unsigned_one_must_not_have_it() {
        let signed = suite(SuiteId::AES_256_GCM_HKDF_SHA384_ECDSA_P384);
        let with_key = [(PUBLIC_KEY_CONTEXT_KEY, "A")];
        assert!(check_signing_key(&signed, &with_key).is_ok());
        assert!(matches!(check_signing_key(&signed, &[]), Err(EsdkError::SigningKey(_))));
        assert!(check_signing_key(&suite(DAS_SUITE), &[]).is_ok());
        assert!(matches!(
            check_signing_key(&suite(DAS_SUITE), &with_key),
            Err(EsdkError::SigningKey(_))
        ));
    }

    #[test]
    fn encrypted_data_keys_read_back_as_written() {
        let keys = [
            EncryptedDataKey {
                provider_id: b"BC",
                provider_info: b"DataKey-info",
                ciphertext: &[7; 48],
            },
            EncryptedDataKey {
                provider_id: b"",
                provider_info: b"i",
                ciphertext: b"c",
            },
        ];
        let mut out = Vec::new();
        EncryptedDataKey::write_list(&keys, &mut out).unwrap();
        let mut r = Reader::new(&out);
        assert_eq!(EncryptedDataKey::read_list(&mut r, &Limits::default()).unwrap(), keys);
        assert_eq!(r.left(), 0);
    }

    #[test]
    fn no_encrypted_data_key_more_than_the_limit_or_a_short_entry_is_rejected() {
        let limits = Limits::default();
        let none = EncryptedDataKey::read_list(&mut Reader::new(&[0, 0]), &limits).unwrap_err();
        assert_eq!(field_of(none), "encrypted data key count");
        assert_eq!(
            EncryptedDataKey::read_list(&mut Reader::new(&[0, 9]), &limits),
            Err(EsdkError::LimitExceeded {
                what: "encrypted data key count",
                value: 9,
                limit: 8
            })
        );
        assert_eq!(
            EncryptedDataKey::read_list(&mut Reader::new(&[0, 1, 0, 2, b'B']), &limits),
            Err(EsdkError::Truncated {
                what: "encrypted data key provider id",
                offset: 4
            })
        );
    }

    #[test]
    fn both_content_types_read_back_and_any_other_byte_is_rejected() {
        for content_type in [ContentType::NonFramed, ContentType::Framed] {
            let mut out = Vec::new();
            content_type.write(&mut out);
            assert_eq!(ContentType::read(&mut Reader::new(&out)), Ok(content_type));
        }
        assert_eq!(
            field_of(ContentType::read(&mut Reader::new(&[3])).unwrap_err()),
            "content type"
        );
    }

    #[test]
    fn the_v1_fields_read_back_and_a_non_zero_reserved_field_or_other_iv_length_is_rejected() {
        let mut out = Vec::new();
        write_v1_fields(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(read_v1_fields(&mut r), Ok(()));
        assert_eq!(r.left(), 0);
        let reserved = read_v1_fields(&mut Reader::new(&[0, 0, 0, 1, 12])).unwrap_err();
        assert_eq!(field_of(reserved), "reserved field");
        let iv_len = read_v1_fields(&mut Reader::new(&[0, 0, 0, 0, 16])).unwrap_err();
        assert_eq!(field_of(iv_len), "IV length");
    }

    #[test]
    fn the_frame_length_must_fit_the_content_type_and_the_limit() {
        let limits = Limits::default();
        let read = |content_type, length: u32| {
            read_frame_length(&mut Reader::new(&length.to_be_bytes()), content_type, &limits)
        };
        assert_eq!(read(ContentType::Framed, 4096), Ok(4096));
        assert_eq!(read(ContentType::NonFramed, 0), Ok(0));
        assert_eq!(
            field_of(read(ContentType::NonFramed, 4096).unwrap_err()),
            "frame length"
        );
        assert_eq!(field_of(read(ContentType::Framed, 0).unwrap_err()), "frame length");
        assert!(matches!(
            read(ContentType::Framed, limits.max_frame_length + 1),
            Err(EsdkError::LimitExceeded {
                what: "frame length",
                ..
            })
        ));
    }

    #[test]
    fn only_v2_headers_carry_suite_data() {
        let data = [5u8; COMMITMENT_LEN];
        assert_eq!(read_suite_data(&mut Reader::new(&data), 2), Ok(Some(&data)));
        assert_eq!(read_suite_data(&mut Reader::new(&data), 1), Ok(None));
        assert!(matches!(
            read_suite_data(&mut Reader::new(&data[1..]), 2),
            Err(EsdkError::Truncated {
                what: "algorithm suite data",
                ..
            })
        ));
    }

    #[test]
    fn the_authentication_fields_read_back_and_v2_has_no_iv_on_the_wire() {
        let tag = [9u8; TAG_LEN];
        for (version, iv, wire_len) in [(1, [3u8; IV_LEN], IV_LEN + TAG_LEN), (2, [0u8; IV_LEN], TAG_LEN)] {
            let auth = HeaderAuth { iv, tag: &tag };
            let mut out = Vec::new();
            auth.write(version, &mut out);
            assert_eq!(out.len(), wire_len);
            assert_eq!(HeaderAuth::read(&mut Reader::new(&out), version), Ok(auth));
        }
        assert!(matches!(
            HeaderAuth::read(&mut Reader::new(&[0; IV_LEN + 1]), 1),
            Err(EsdkError::Truncated {
                what: "header authentication tag",
                ..
            })
        ));
    }

    #[test]
    fn a_whole_header_reads_back_as_written_for_both_versions() {
        let commitment = [4u8; COMMITMENT_LEN];
        let cases = [
            (DAS_SUITE, 16, ContentType::Framed, 4096, None),
            (SuiteId(0x0478), 32, ContentType::NonFramed, 0, Some(&commitment)),
        ];
        for (suite_id, id_len, content_type, frame_length, commitment) in cases {
            let (suite, message_id, tag) = (suite(suite_id), vec![1u8; id_len], [2u8; TAG_LEN]);
            let mut context_bytes = Vec::new();
            write_encryption_context(&pairs(&[("k", "v")]), &mut context_bytes).unwrap();
            let keys = [EncryptedDataKey {
                provider_id: b"BC",
                provider_info: b"info",
                ciphertext: b"wrapped",
            }];
            let fields = HeaderFields {
                suite,
                message_id: &message_id,
                encryption_context_bytes: &context_bytes,
                encrypted_data_keys: &keys,
                content_type,
                frame_length,
                commitment,
            };
            let mut out = Vec::new();
            fields.write_body(&mut out).unwrap();
            let body_len = out.len();
            HeaderAuth {
                iv: [0; IV_LEN],
                tag: &tag,
            }
            .write(suite.header_version, &mut out);
            out.push(0xEE); // the first body byte, which the header must not consume
            let header = Header::read(&mut Reader::new(&out), &out, &Limits::default()).unwrap();
            assert_eq!(
                (header.version, header.suite, header.message_id),
                (suite.header_version, suite, &message_id[..])
            );
            assert_eq!(header.encryption_context, vec![("k", "v")]);
            assert_eq!(header.encryption_context_bytes, &context_bytes[..]);
            assert_eq!(header.encrypted_data_keys, keys);
            assert_eq!((header.content_type, header.frame_length), (content_type, frame_length));
            assert_eq!((header.commitment, header.auth_tag), (commitment, &tag));
            assert_eq!((header.body_bytes.len(), header.len), (body_len, out.len() - 1));
        }
    }
}
