//! AWS Encryption SDK messages: decrypt (for every record) and encrypt (for tests, the simulator and
//! benchmarks), written on `aws-lc-rs` and checked against the official test vectors and the official
//! Python SDK.
//!
//! The module knows the ESDK message format and the raw AES keyring, and nothing about DAS, JSON or
//! gzip. It never releases plaintext before every tag (and, for signed suites, the signature) has
//! verified, never allocates from a length field it has not checked against the input and the
//! [`Limits`], and never lets key bytes out of zeroizing buffers.
//!
//! ```
//! use das_archiver::esdk::{decrypt, encrypt, DecryptOptions, EncryptOptions, RawAesKeyring};
//!
//! let keyring = RawAesKeyring::das(&[7u8; 32]).unwrap();
//! let message = encrypt(b"hello", &keyring, &EncryptOptions::default()).unwrap();
//! let decrypted = decrypt(&message, &keyring, &DecryptOptions::default()).unwrap();
//! assert_eq!(decrypted.plaintext, b"hello");
//! ```

mod body;
mod crypto;
mod encrypt;
mod error;
mod footer;
mod header;
mod keyring;
mod reader;
mod suite;

use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

pub use body::{Frame, FrameKind};
pub use encrypt::{encrypt, EncryptOptions};
pub use error::{EsdkError, Stage};
pub use header::{ContentType, EncryptedDataKey, Header, PUBLIC_KEY_CONTEXT_KEY};
pub use keyring::{KeyringError, RawAesKeyring, DAS_KEY_NAME, DAS_KEY_NAMESPACE};
pub use suite::{Kdf, Signing, Suite, SuiteId, IV_LEN, TAG_LEN};

use crypto::{AesGcmKey, HkdfHash};
use reader::Reader;

/// Bounds on what a message may ask of us, so hostile input cannot drive memory or CPU use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in bytes. Default 16 MiB (a Kinesis record is at most 10 MiB).
    pub max_message_len: usize,
    /// Largest frame length accepted. Default 4 MiB (DAS producers use 4 KiB and 256 KiB).
    pub max_frame_length: u32,
    /// Most encrypted data keys accepted. Default 8 (DAS sends exactly one).
    pub max_encrypted_data_keys: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_len: 16 << 20,
            max_frame_length: 4 << 20,
            max_encrypted_data_keys: 8,
        }
    }
}

/// Whether messages without key commitment are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitmentPolicy {
    /// Accept every suite (the ESDK's `*_ALLOW_DECRYPT`). DAS needs this: it writes 0x0178 and 0x0378.
    #[default]
    AllowNonCommitting,
    /// Accept only committing suites (0x0478, 0x0578): the ESDK's strict default.
    RequireCommitting,
}

/// Which algorithm suites a decryptor accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecryptPolicy {
    /// Key commitment requirement.
    pub commitment: CommitmentPolicy,
    /// If set, only these suites are accepted.
    pub allowed_suites: Option<Vec<SuiteId>>,
}

impl DecryptPolicy {
    fn check(&self, suite: &Suite) -> Result<(), EsdkError> {
        let committed_ok = suite.is_committing() || self.commitment == CommitmentPolicy::AllowNonCommitting;
        let listed_ok = self.allowed_suites.as_ref().is_none_or(|list| list.contains(&suite.id));
        if committed_ok && listed_ok {
            Ok(())
        } else {
            Err(EsdkError::SuiteNotAllowed(suite.id))
        }
    }
}

/// Limits and policy for [`decrypt`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecryptOptions {
    /// Size limits.
    pub limits: Limits,
    /// Suite policy.
    pub policy: DecryptPolicy,
}

/// A decrypted message: its plaintext and what its header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The authenticated plaintext.
    pub plaintext: Vec<u8>,
    /// The algorithm suite the message used.
    pub suite: SuiteId,
    /// Frame length (0 for non-framed).
    pub frame_length: u32,
    /// Number of frames (1 for non-framed).
    pub frame_count: usize,
}

/// A message whose structure has been fully recognised, before any cryptography.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header.
    pub header: Header<'a>,
    /// The body's frames in order (one block for non-framed content).
    pub frames: Vec<Frame<'a>>,
    /// The footer signature for signed suites.
    pub signature: Option<&'a [u8]>,
    /// Header ‖ body: what the signature covers.
    pub signed_bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses a whole message: header, body and footer, then requires the end of input.
    pub fn parse(bytes: &'a [u8], limits: &Limits) -> Result<Self, EsdkError> {
        if bytes.len() > limits.max_message_len {
            return Err(EsdkError::LimitExceeded {
                what: "message length",
                value: bytes.len() as u64,
                limit: limits.max_message_len as u64,
            });
        }
        let mut r = Reader::new(bytes);
        let header = Header::read(&mut r, bytes, limits)?;
        let frames = body::read_body(&mut r, &header)?;
        let signed_bytes = bytes.get(..r.offset()).ok_or(EsdkError::Truncated {
            what: "body",
            offset: r.offset(),
        })?;
        let signature = match header.suite.signing {
            Some(_) => Some(footer::read_footer(&mut r)?),
            None => None,
        };
        r.expect_end("message")?;
        Ok(Self {
            header,
            frames,
            signature,
            signed_bytes,
        })
    }

    /// Total plaintext length: the sum of the frames' content lengths (never more than the input).
    pub fn plaintext_len(&self) -> usize {
        self.frames.iter().map(|f| f.ciphertext.len()).sum()
    }

    /// Authenticates and decrypts the message; returns the plaintext only if everything verified.
    pub fn decrypt(&self, keyring: &RawAesKeyring, policy: &DecryptPolicy) -> Result<Vec<u8>, EsdkError> {
        let mut plaintext = Vec::new();
        self.decrypt_into(keyring, policy, &mut plaintext)?;
        Ok(plaintext)
    }

    /// [`Message::decrypt`] into a caller's buffer (replacing its contents), so a caller decrypting
    /// many messages reuses one allocation. On any failure the buffer is wiped and left empty: no
    /// unauthenticated plaintext is ever left in it.
    pub fn decrypt_into(
        &self,
        keyring: &RawAesKeyring,
        policy: &DecryptPolicy,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), EsdkError> {
        // `resize` below writes every byte of the new contents, so the old ones need no wiping here.
        plaintext.clear();
        let result = self.decrypt_frames(keyring, policy, plaintext);
        if result.is_err() {
            plaintext.zeroize();
        }
        result
    }

    fn decrypt_frames(
        &self,
        keyring: &RawAesKeyring,
        policy: &DecryptPolicy,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), EsdkError> {
        let header = &self.header;
        let suite = &header.suite;
        policy.check(suite)?;
        let data_key = keyring.unwrap_data_key(
            &header.encrypted_data_keys,
            header.encryption_context_bytes,
            suite.key_len,
        )?;
        let content_key = derive_content_key(header, &data_key)?;
        let key = AesGcmKey::new(&content_key).ok_or(EsdkError::Crypto("set up an AES-GCM key"))?;
        key.open(&header.header_iv, header.body_bytes, &[], header.auth_tag, &mut [])
            .map_err(|_| EsdkError::HeaderAuthentication)?;

        plaintext.resize(self.plaintext_len(), 0);
        let mut rest: &mut [u8] = plaintext;
        let mut aad = Vec::with_capacity(header.message_id.len() + 48);
        for frame in &self.frames {
            let (out, tail) = rest.split_at_mut(frame.ciphertext.len());
            rest = tail;
            body::body_aad(
                header.message_id,
                frame.aad_content(),
                frame.sequence,
                out.len() as u64,
                &mut aad,
            );
            key.open(frame.iv, &aad, frame.ciphertext, frame.tag, out)
                .map_err(|_| EsdkError::BodyAuthentication {
                    sequence: frame.sequence,
                })?;
        }
        self.verify_signature()
    }

    fn verify_signature(&self) -> Result<(), EsdkError> {
        let (Some(signing), Some(signature)) = (self.header.suite.signing, self.signature) else {
            return Ok(());
        };
        let encoded = self
            .header
            .context_value(PUBLIC_KEY_CONTEXT_KEY)
            .ok_or(EsdkError::SigningKey("signed suite without aws-crypto-public-key"))?;
        let public_key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| EsdkError::SigningKey("aws-crypto-public-key is not valid base64"))?;
        if public_key.len() != signing.compressed_public_key_len() {
            return Err(EsdkError::SigningKey(
                "aws-crypto-public-key is not a compressed point of the suite's curve",
            ));
        }
        if crypto::ecdsa_verify(signing, &public_key, self.signed_bytes, signature) {
            Ok(())
        } else {
            Err(EsdkError::Signature)
        }
    }
}

/// Parses, authenticates and decrypts one ESDK message with a raw AES keyring.
pub fn decrypt(bytes: &[u8], keyring: &RawAesKeyring, options: &DecryptOptions) -> Result<Decrypted, EsdkError> {
    let mut plaintext = Vec::new();
    let header = decrypt_into(bytes, keyring, options, &mut plaintext)?;
    Ok(Decrypted {
        plaintext,
        suite: header.suite,
        frame_length: header.frame_length,
        frame_count: header.frame_count,
    })
}

/// What a decrypted message's header said (see [`decrypt_into`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptedHeader {
    /// The algorithm suite the message used.
    pub suite: SuiteId,
    /// Frame length (0 for non-framed).
    pub frame_length: u32,
    /// Number of frames (1 for non-framed).
    pub frame_count: usize,
}

/// [`decrypt`] into a caller's buffer, replacing its contents (wiped and empty on failure), so a
/// thread decrypting many records reuses one allocation.
pub fn decrypt_into(
    bytes: &[u8],
    keyring: &RawAesKeyring,
    options: &DecryptOptions,
    plaintext: &mut Vec<u8>,
) -> Result<DecryptedHeader, EsdkError> {
    let message = Message::parse(bytes, &options.limits)?;
    // The policy is checked before any key work, and again inside `Message::decrypt` for direct callers.
    options.policy.check(&message.header.suite)?;
    message.decrypt_into(keyring, &options.policy, plaintext)?;
    Ok(DecryptedHeader {
        suite: message.header.suite.id,
        frame_length: message.header.frame_length,
        frame_count: message.frames.len(),
    })
}

/// A content key and, for committing suites, the key commitment.
pub(crate) type DerivedKeys = (Zeroizing<Vec<u8>>, Option<Zeroizing<[u8; 32]>>);

/// Derives the content key and, for committing suites, the 32-byte key commitment.
///
/// HKDF-Extract runs once; committing suites expand twice from it.
pub(crate) fn derive_keys(suite: &Suite, message_id: &[u8], data_key: &[u8]) -> Result<DerivedKeys, EsdkError> {
    let suite_id = suite.id.0.to_be_bytes();
    let mut key = Zeroizing::new(vec![0u8; suite.key_len]);
    let hash = match suite.kdf {
        Kdf::Identity => {
            key.copy_from_slice(data_key);
            return Ok((key, None));
        }
        Kdf::HkdfSha256 => HkdfHash::Sha256,
        Kdf::HkdfSha384 => HkdfHash::Sha384,
        Kdf::HkdfSha512Commit => {
            let mut commit = Zeroizing::new([0u8; 32]);
            crypto::hkdf(
                HkdfHash::Sha512,
                Some(message_id),
                data_key,
                &mut [
                    (&[&suite_id, b"DERIVEKEY"], &mut key),
                    (&[b"COMMITKEY"], &mut commit[..]),
                ],
            )?;
            return Ok((key, Some(commit)));
        }
    };
    crypto::hkdf(hash, None, data_key, &mut [(&[&suite_id, message_id], &mut key)])?;
    Ok((key, None))
}

/// Derives the content key for a parsed header, checking the v2 key commitment in constant time
/// before the header tag is looked at.
fn derive_content_key(header: &Header<'_>, data_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, EsdkError> {
    let (key, commitment) = derive_keys(&header.suite, header.message_id, data_key)?;
    match (commitment, header.commitment) {
        (None, None) => Ok(key),
        (Some(derived), Some(wire)) => aws_lc_rs::constant_time::verify_slices_are_equal(&derived[..], wire)
            .map(|()| key)
            .map_err(|_| EsdkError::CommitmentMismatch),
        _ => Err(EsdkError::CommitmentMismatch),
    }
}
