//! Everything that can be wrong with an ESDK message, each saying what and where.

use super::suite::SuiteId;

/// Why an AWS Encryption SDK message was rejected.
///
/// Every variant is a property of the message (or of the key it was given), so all of them are
/// permanent failures: retrying the same bytes gives the same answer. Building one never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EsdkError {
    /// The input ended in the middle of a structure.
    #[error("ESDK message: input ends inside the {what} at byte {offset}; the message is truncated")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Where it started to be read.
        offset: usize,
    },
    /// Bytes were left over after a structure that must be consumed whole.
    #[error("ESDK message: {count} unexpected byte(s) after the {what} at byte {offset}")]
    TrailingBytes {
        /// The structure that should have ended.
        what: &'static str,
        /// Offset of the first extra byte.
        offset: usize,
        /// How many extra bytes.
        count: usize,
    },
    /// The header version byte is neither 1 nor 2.
    #[error("ESDK header: version {0} is not supported (expected 1 or 2); this is not an ESDK message")]
    UnsupportedVersion(u8),
    /// The v1 message type byte is not 0x80.
    #[error("ESDK header: message type 0x{0:02X} is not supported (expected 0x80)")]
    UnsupportedType(u8),
    /// The suite id is not one of the eleven the ESDK defines.
    #[error("ESDK header: algorithm suite {0} is unknown")]
    UnknownSuite(SuiteId),
    /// The suite is defined but belongs to the other header version.
    #[error("ESDK header: algorithm suite {suite} cannot appear in a version {version} header")]
    SuiteVersionMismatch {
        /// The suite id.
        suite: SuiteId,
        /// The header version it appeared in.
        version: u8,
    },
    /// The suite is valid but the configured policy does not accept it.
    #[error("ESDK header: algorithm suite {0} is not allowed by this decryptor's policy (add it to the allowed suites to accept it)")]
    SuiteNotAllowed(SuiteId),
    /// A header field breaks a rule of the format.
    #[error("ESDK {part}: {field} {value} at byte {offset} is invalid: {rule}")]
    InvalidField {
        /// `header`, `body` or `footer`.
        part: &'static str,
        /// The field.
        field: &'static str,
        /// Its value as read.
        value: u64,
        /// The rule it breaks.
        rule: &'static str,
        /// Where it was read.
        offset: usize,
    },
    /// The serialized encryption context is not canonical.
    #[error("ESDK header: encryption context at byte {offset} is invalid: {rule}")]
    InvalidEncryptionContext {
        /// The rule it breaks.
        rule: &'static str,
        /// Where it was read.
        offset: usize,
    },
    /// The signature public key in the encryption context is missing, unexpected or malformed.
    #[error("ESDK header: {0}")]
    SigningKey(&'static str),
    /// A size or count is larger than the configured limit.
    #[error(
        "ESDK message: {what} {value} exceeds the limit of {limit}; raise the limit only if the producer is trusted"
    )]
    LimitExceeded {
        /// What was too large.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The limit in force.
        limit: u64,
    },
    /// No encrypted data key matched the keyring, or none decrypted with its wrapping key.
    #[error("ESDK keyring: none of the {count} encrypted data key(s) could be unwrapped by the raw AES keyring (wrong wrapping key, or a different key namespace/name, or a tampered message)")]
    NoDataKey {
        /// How many EDKs the message carried.
        count: u16,
    },
    /// The v2 commitment key does not match the data key.
    #[error("ESDK header: the key commitment does not match the data key (tampered message or wrong key)")]
    CommitmentMismatch,
    /// The header authentication tag did not verify.
    #[error("ESDK header: authentication tag does not verify (tampered header or wrong key)")]
    HeaderAuthentication,
    /// A frame's sequence number is not the next one.
    #[error("ESDK body: frame at byte {offset} has sequence number {found}, expected {expected}")]
    FrameSequence {
        /// The sequence number that must come next.
        expected: u32,
        /// The one on the wire.
        found: u32,
        /// Where it was read.
        offset: usize,
    },
    /// A frame's IV is not its sequence number, left-padded.
    #[error("ESDK body: frame {sequence} has an IV that is not its sequence number")]
    FrameIv {
        /// The frame's sequence number.
        sequence: u32,
    },
    /// A frame (or the single non-framed block) failed its AES-GCM tag.
    #[error("ESDK body: frame {sequence} does not authenticate (tampered or reordered content)")]
    BodyAuthentication {
        /// The frame's sequence number (1 for a non-framed body).
        sequence: u32,
    },
    /// The footer signature is not a valid ECDSA signature over header and body.
    #[error("ESDK footer: the ECDSA signature does not verify (tampered message)")]
    Signature,
    /// The crypto library refused an operation on valid-looking input (should not happen).
    #[error("ESDK crypto: the crypto library failed to {0}")]
    Crypto(&'static str),
}

/// Where in the decrypt checklist a message was rejected; for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// The bytes do not form a well-formed message.
    Parse,
    /// The message ended early.
    Truncated,
    /// Extra bytes after the message or inside a block.
    Trailing,
    /// Valid, but refused by the suite policy or a size limit.
    Policy,
    /// The data key could not be unwrapped.
    KeyUnwrap,
    /// Key commitment failed.
    Commitment,
    /// The header tag failed.
    HeaderAuth,
    /// A body frame failed (tag, sequence or IV).
    BodyAuth,
    /// The footer signature failed.
    Signature,
    /// The crypto library failed on valid input: a bug or a broken platform, not the message.
    Internal,
}

impl EsdkError {
    /// The checklist stage that rejected the message.
    pub fn stage(&self) -> Stage {
        match self {
            Self::Truncated { .. } => Stage::Truncated,
            Self::TrailingBytes { .. } => Stage::Trailing,
            Self::UnsupportedVersion(_)
            | Self::UnsupportedType(_)
            | Self::UnknownSuite(_)
            | Self::SuiteVersionMismatch { .. }
            | Self::InvalidField { .. }
            | Self::InvalidEncryptionContext { .. }
            | Self::SigningKey(_) => Stage::Parse,
            Self::SuiteNotAllowed(_) | Self::LimitExceeded { .. } => Stage::Policy,
            Self::NoDataKey { .. } => Stage::KeyUnwrap,
            Self::CommitmentMismatch => Stage::Commitment,
            Self::HeaderAuthentication => Stage::HeaderAuth,
            Self::FrameSequence { .. } | Self::FrameIv { .. } | Self::BodyAuthentication { .. } => Stage::BodyAuth,
            Self::Signature => Stage::Signature,
            Self::Crypto(_) => Stage::Internal,
        }
    }
}
