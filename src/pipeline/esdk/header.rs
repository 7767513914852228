//! The ESDK message header (versions 1 and 2): parsing from untrusted bytes and serializing for the
//! encoder, side by side so that each can test the other.
//!
//! Parsing checks every structural rule of the format (versions, suite, canonical encryption context,
//! EDK count, content type, reserved bytes, IV length, frame length) and every configured limit, but
//! does no cryptography: authenticating the header is `decrypt`'s job.

use super::reader::Reader;
use super::suite::{Suite, SuiteId, IV_LEN, TAG_LEN};
use super::{EsdkError, Limits};

/// The encryption context key that carries a signed suite's public key.
pub const PUBLIC_KEY_CONTEXT_KEY: &str = "aws-crypto-public-key";

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
    /// Parses a header from the start of `r`, leaving `r` at the first body byte.
    pub(crate) fn read(r: &mut Reader<'a>, whole: &'a [u8], limits: &Limits) -> Result<Self, EsdkError> {
        let start = r.offset();
        let version = r.u8("header version")?;
        if version != 1 && version != 2 {
            return Err(EsdkError::UnsupportedVersion(version));
        }
        if version == 1 {
            let message_type = r.u8("message type")?;
            if message_type != 0x80 {
                return Err(EsdkError::UnsupportedType(message_type));
            }
        }
        let suite_id = SuiteId(r.u16("algorithm suite id")?);
        let suite = Suite::from_id(suite_id).ok_or(EsdkError::UnknownSuite(suite_id))?;
        if suite.header_version != version {
            return Err(EsdkError::SuiteVersionMismatch {
                suite: suite_id,
                version,
            });
        }
        let message_id = r.bytes(suite.message_id_len(), "message id")?;

        let ec_len = usize::from(r.u16("encryption context length")?);
        let mut ec_reader = r.sub(ec_len, "encryption context")?;
        let encryption_context_bytes = ec_reader.rest();
        let encryption_context = read_encryption_context(&mut ec_reader, ec_len)?;
        check_signing_key(&suite, &encryption_context)?;

        let edk_count_offset = r.offset();
        let edk_count = r.u16("encrypted data key count")?;
        if edk_count == 0 {
            return Err(invalid(
                "encrypted data key count",
                0,
                "a message needs at least one encrypted data key",
                edk_count_offset,
            ));
        }
        if edk_count > limits.max_encrypted_data_keys {
            return Err(EsdkError::LimitExceeded {
                what: "encrypted data key count",
                value: u64::from(edk_count),
                limit: u64::from(limits.max_encrypted_data_keys),
            });
        }
        // Bounded by the limit just checked, so the capacity is not attacker-driven.
        let mut encrypted_data_keys = Vec::with_capacity(usize::from(edk_count));
        for _ in 0..edk_count {
            encrypted_data_keys.push(EncryptedDataKey {
                provider_id: r.u16_prefixed("encrypted data key provider id")?,
                provider_info: r.u16_prefixed("encrypted data key provider info")?,
                ciphertext: r.u16_prefixed("encrypted data key")?,
            });
        }

        let content_type_offset = r.offset();
        let content_type = match r.u8("content type")? {
            0x01 => ContentType::NonFramed,
            0x02 => ContentType::Framed,
            other => {
                return Err(invalid(
                    "content type",
                    u64::from(other),
                    "must be 0x01 (non-framed) or 0x02 (framed)",
                    content_type_offset,
                ))
            }
        };
        if version == 1 {
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
        }
        let frame_length_offset = r.offset();
        let frame_length = r.u32("frame length")?;
        check_frame_length(content_type, frame_length, frame_length_offset, limits)?;

        let commitment = if version == 2 {
            Some(r.array::<32>("algorithm suite data")?)
        } else {
            None
        };
        let body_end = r.offset();
        let header_iv = if version == 1 {
            *r.array::<IV_LEN>("header IV")?
        } else {
            [0u8; IV_LEN]
        };
        let auth_tag = r.array::<TAG_LEN>("header authentication tag")?;
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
            header_iv,
            commitment,
            auth_tag,
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

fn check_frame_length(
    content_type: ContentType,
    frame_length: u32,
    offset: usize,
    limits: &Limits,
) -> Result<(), EsdkError> {
    let rule_broken = |rule| invalid("frame length", u64::from(frame_length), rule, offset);
    match content_type {
        ContentType::NonFramed if frame_length != 0 => Err(rule_broken("must be 0 for non-framed content")),
        ContentType::Framed if frame_length == 0 => Err(rule_broken("must be greater than 0 for framed content")),
        ContentType::Framed if frame_length > limits.max_frame_length => Err(EsdkError::LimitExceeded {
            what: "frame length",
            value: u64::from(frame_length),
            limit: u64::from(limits.max_frame_length),
        }),
        _ => Ok(()),
    }
}

/// Reads the key-value block of the encryption context, enforcing the canonical form: a non-zero
/// count, UTF-8 keys and values, keys strictly ascending by their bytes, nothing left over.
fn read_encryption_context<'a>(r: &mut Reader<'a>, len: usize) -> Result<Vec<(&'a str, &'a str)>, EsdkError> {
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
    pub(crate) commitment: Option<&'k [u8; 32]>,
}

impl HeaderFields<'_> {
    /// Appends the header body (everything the header tag authenticates) to `out`.
    pub(crate) fn write_body(&self, out: &mut Vec<u8>) -> Result<(), EsdkError> {
        let version = self.suite.header_version;
        out.push(version);
        if version == 1 {
            out.push(0x80);
        }
        out.extend_from_slice(&self.suite.id.0.to_be_bytes());
        out.extend_from_slice(self.message_id);
        put_u16_prefixed(out, self.encryption_context_bytes, "encryption context")?;
        put_u16(out, self.encrypted_data_keys.len(), "encrypted data key count")?;
        for edk in self.encrypted_data_keys {
            put_u16_prefixed(out, edk.provider_id, "encrypted data key provider id")?;
            put_u16_prefixed(out, edk.provider_info, "encrypted data key provider info")?;
            put_u16_prefixed(out, edk.ciphertext, "encrypted data key")?;
        }
        out.push(self.content_type.wire());
        if version == 1 {
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.push(IV_LEN as u8);
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
