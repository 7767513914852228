//! One DAS record end to end, in both directions.
//!
//! Decoding: envelope (already parsed) + the wrapping key that KMS returned for its key blob →
//! ESDK decrypt → gunzip → the payload JSON, ready for [`ActivityRecord::parse`]. Encoding does the
//! reverse exactly as the DAS producer does, for tests, the simulator and benchmarks. Neither
//! direction does I/O: the KMS call that turns `key_blob` into a wrapping key happens at the edge.

use crate::pipeline::activity::{ActivityError, ActivityRecord, ParseLimits};
use crate::pipeline::envelope::{Envelope, EnvelopeError};
use crate::pipeline::esdk::{self, DecryptOptions, EncryptOptions, EsdkError, KeyringError, RawAesKeyring, SuiteId};
use crate::pipeline::gunzip::{self, GunzipError, DEFAULT_MAX_DECOMPRESSED_LEN};

/// Why a record could not be decoded; every variant is permanent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The Kinesis data is not a DAS envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The wrapping key is unusable.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The ESDK message is malformed, tampered or refused.
    #[error(transparent)]
    Esdk(#[from] EsdkError),
    /// The plaintext is not gzip or inflates too far.
    #[error(transparent)]
    Gunzip(#[from] GunzipError),
    /// The payload is not an activity record.
    #[error(transparent)]
    Activity(#[from] ActivityError),
}

/// Limits and policy for decoding a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// ESDK limits and suite policy.
    pub esdk: DecryptOptions,
    /// Cap on decompressed payload bytes (default 64 MiB).
    pub max_decompressed_len: usize,
    /// Limits on the payload's contents.
    pub payload: ParseLimits,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            esdk: DecryptOptions::default(),
            max_decompressed_len: DEFAULT_MAX_DECOMPRESSED_LEN,
            payload: ParseLimits::default(),
        }
    }
}

/// A decrypted, decompressed payload and what its ESDK header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPayload {
    /// The payload JSON text.
    pub json: Vec<u8>,
    /// The ESDK algorithm suite the producer used.
    pub suite: SuiteId,
    /// The ESDK frame length the producer used.
    pub frame_length: u32,
}

impl DecodedPayload {
    /// Parses the payload's events, borrowing from it.
    pub fn activity(&self, options: &DecodeOptions) -> Result<ActivityRecord<'_>, RecordError> {
        Ok(ActivityRecord::parse(&self.json, options.payload)?)
    }
}

/// Decrypts and decompresses a record's payload with the raw AES keyring built on its wrapping key.
pub fn decode(
    envelope: &Envelope,
    keyring: &RawAesKeyring,
    options: &DecodeOptions,
) -> Result<DecodedPayload, RecordError> {
    let decrypted = esdk::decrypt(&envelope.message, keyring, &options.esdk)?;
    let json = gunzip::gunzip(&decrypted.plaintext, options.max_decompressed_len)?;
    Ok(DecodedPayload {
        json,
        suite: decrypted.suite,
        frame_length: decrypted.frame_length,
    })
}

/// What the encoder needs besides the payload.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Record version to write (`1.1` for Aurora PostgreSQL, `1.2` Aurora MySQL, `1.3` Oracle, `1.4` SQL Server).
    pub version: String,
    /// ESDK suite and framing.
    pub esdk: EncryptOptions,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            version: "1.1".to_owned(),
            esdk: EncryptOptions::default(),
        }
    }
}

/// Builds a DAS Kinesis record from a payload JSON, as the producer does: gzip → ESDK message with
/// the raw AES keyring `BC`/`DataKey` on `wrapping_key` → envelope carrying `key_blob`, the KMS
/// ciphertext of `wrapping_key`. Returns the record's JSON bytes (the Kinesis record data).
pub fn encode(
    payload_json: &[u8],
    wrapping_key: &[u8],
    key_blob: &[u8],
    options: &EncodeOptions,
) -> Result<Vec<u8>, RecordError> {
    let keyring = RawAesKeyring::das(wrapping_key)?;
    encode_with(payload_json, &keyring, key_blob, options)
}

/// Like [`encode`], with a keyring the caller keeps across records (as the producer reuses its key).
pub fn encode_with(
    payload_json: &[u8],
    keyring: &RawAesKeyring,
    key_blob: &[u8],
    options: &EncodeOptions,
) -> Result<Vec<u8>, RecordError> {
    let compressed = gunzip::gzip(payload_json);
    let message = esdk::encrypt(&compressed, keyring, &options.esdk)?;
    let envelope = Envelope {
        version: options.version.clone(),
        message,
        key_blob: key_blob.to_vec(),
    };
    Ok(envelope.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::activity::payload_json;
    use serde_json::json;

    #[test]
    fn an_encoded_record_decodes_to_the_same_events() {
        let events = vec![
            json!({"type":"record","command":"SELECT","commandText":"select 1"}),
            json!({"type":"heartbeat"}),
        ];
        let payload = payload_json("cluster-ABC", "db-DEF", &events);
        for esdk in [EncryptOptions::aurora_postgresql(), EncryptOptions::aurora_mysql()] {
            let data = encode(
                &payload,
                &[3u8; 32],
                b"kms-blob",
                &EncodeOptions {
                    version: "1.2".into(),
                    esdk,
                },
            )
            .unwrap();
            let envelope = Envelope::parse(&data).unwrap();
            assert_eq!(
                (envelope.version.as_str(), envelope.key_blob.as_slice()),
                ("1.2", &b"kms-blob"[..])
            );
            let keyring = RawAesKeyring::das(&[3u8; 32]).unwrap();
            let decoded = decode(&envelope, &keyring, &DecodeOptions::default()).unwrap();
            assert_eq!(decoded.json, payload);
            let activity = decoded.activity(&DecodeOptions::default()).unwrap();
            assert_eq!(activity.events.len(), 2);
            assert_eq!(activity.events[0].command().as_deref(), Some("SELECT"));
        }
    }

    #[test]
    fn the_wrong_wrapping_key_fails_at_the_key_unwrap() {
        let data = encode(b"{}", &[1u8; 32], b"blob", &EncodeOptions::default()).unwrap();
        let keyring = RawAesKeyring::das(&[2u8; 32]).unwrap();
        let err = decode(&Envelope::parse(&data).unwrap(), &keyring, &DecodeOptions::default()).unwrap_err();
        assert!(
            matches!(err, RecordError::Esdk(EsdkError::NoDataKey { count: 1 })),
            "{err}"
        );
    }
}
