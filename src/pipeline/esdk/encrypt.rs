//! Building ESDK messages the way the DAS producer does: a fresh data key and message id per message,
//! wrapped by a raw AES keyring, framed content, and an ECDSA footer for signed suites.
//!
//! Used by tests, the simulator and the benchmarks. The output is byte-compatible with the official
//! SDKs (checked against the Python SDK in the tests).

use base64::Engine as _;

use super::body::{self, FrameKind};
use super::crypto::{self, AesGcmKey, EcdsaSigner};
use super::footer;
use super::header::{self, ContentType, EncryptedDataKey, HeaderAuth, HeaderFields, PUBLIC_KEY_CONTEXT_KEY};
use super::suite::{Suite, SuiteId, IV_LEN, TAG_LEN};
use super::{derive_keys, EsdkError, RawAesKeyring};

/// What to encrypt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Algorithm suite (default 0x0178, as Aurora PostgreSQL).
    pub suite: SuiteId,
    /// Frame length; 0 writes a non-framed body. Default 4096, as Aurora PostgreSQL.
    pub frame_length: u32,
    /// Extra encryption context pairs (DAS sends none; signed suites add the public key themselves).
    pub encryption_context: Vec<(String, String)>,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        Self {
            suite: SuiteId::AES_256_GCM_HKDF_SHA256,
            frame_length: 4096,
            encryption_context: Vec::new(),
        }
    }
}

impl EncryptOptions {
    /// Suite 0x0178 with 4 KiB frames: what Aurora PostgreSQL writes.
    pub fn aurora_postgresql() -> Self {
        Self::default()
    }

    /// Suite 0x0378 with 256 KiB frames: what Aurora MySQL writes.
    pub fn aurora_mysql() -> Self {
        Self {
            suite: SuiteId::AES_256_GCM_HKDF_SHA384_ECDSA_P384,
            frame_length: 262_144,
            ..Self::default()
        }
    }
}

/// Encrypts `plaintext` into a complete ESDK message.
pub fn encrypt(plaintext: &[u8], keyring: &RawAesKeyring, options: &EncryptOptions) -> Result<Vec<u8>, EsdkError> {
    let suite = Suite::from_id(options.suite).ok_or(EsdkError::UnknownSuite(options.suite))?;
    let content_type = if options.frame_length == 0 {
        ContentType::NonFramed
    } else {
        ContentType::Framed
    };

    let signer = suite.signing.map(EcdsaSigner::generate).transpose()?;
    let mut context = options.encryption_context.clone();
    context.retain(|(k, _)| k != PUBLIC_KEY_CONTEXT_KEY);
    if let Some(signer) = &signer {
        let public_key = base64::engine::general_purpose::STANDARD.encode(signer.compressed_public_key()?);
        context.push((PUBLIC_KEY_CONTEXT_KEY.to_owned(), public_key));
    }
    let mut context_bytes = Vec::new();
    header::write_encryption_context(&context, &mut context_bytes)?;

    let data_key = crypto::random_key(suite.key_len)?;
    let mut message_id = vec![0u8; suite.message_id_len()];
    crypto::random_bytes(&mut message_id)?;
    let (provider_info, wrapped_key) = keyring.wrap_data_key(&data_key, &context_bytes)?;
    let edks = [EncryptedDataKey {
        provider_id: keyring.namespace().as_bytes(),
        provider_info: &provider_info,
        ciphertext: &wrapped_key,
    }];
    let (content_key, commitment) = derive_keys(&suite, &message_id, &data_key)?;
    let key = AesGcmKey::new(&content_key).ok_or(EsdkError::Crypto("set up an AES-GCM key"))?;

    let mut out = Vec::with_capacity(plaintext.len() + plaintext.len() / 64 + 512);
    HeaderFields {
        suite,
        message_id: &message_id,
        encryption_context_bytes: &context_bytes,
        encrypted_data_keys: &edks,
        content_type,
        frame_length: options.frame_length,
        commitment: commitment.as_deref(),
    }
    .write_body(&mut out)?;
    // The ESDK writes an all-zero header IV; v2 headers have no IV field at all.
    let header_iv = [0u8; IV_LEN];
    let header_tag = key.seal(&header_iv, &out, &mut [])?;
    HeaderAuth {
        iv: header_iv,
        tag: &header_tag,
    }
    .write(suite.header_version, &mut out);

    match content_type {
        ContentType::NonFramed => write_block(&key, &message_id, FrameKind::SingleBlock, 1, plaintext, &mut out)?,
        ContentType::Framed => write_frames(&key, &message_id, options.frame_length, plaintext, &mut out)?,
    }
    if let Some(signer) = &signer {
        let signature = signer.sign_fixed_len(&out)?;
        footer::write_footer(&signature, &mut out)?;
    }
    Ok(out)
}

/// Full regular frames, then a final frame with the rest. Like the Python and Java SDKs, a plaintext
/// that is a whole number of frames ends with an empty final frame.
fn write_frames(
    key: &AesGcmKey,
    message_id: &[u8],
    frame_length: u32,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EsdkError> {
    let frame_len = usize::try_from(frame_length).map_err(|_| EsdkError::Crypto("use a frame length this wide"))?;
    let mut rest = plaintext;
    let mut sequence: u32 = 1;
    while rest.len() >= frame_len && !rest.is_empty() {
        let (chunk, tail) = rest.split_at(frame_len);
        write_block(key, message_id, FrameKind::Regular, sequence, chunk, out)?;
        rest = tail;
        sequence = sequence
            .checked_add(1)
            .filter(|s| *s != body::FINAL_FRAME_MARKER)
            .ok_or(EsdkError::LimitExceeded {
                what: "frame count",
                value: u64::from(u32::MAX),
                limit: u64::from(u32::MAX - 1),
            })?;
    }
    write_block(key, message_id, FrameKind::Final, sequence, rest, out)
}

fn write_block(
    key: &AesGcmKey,
    message_id: &[u8],
    kind: FrameKind,
    sequence: u32,
    chunk: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EsdkError> {
    let iv = body::frame_iv(sequence);
    let content = match kind {
        FrameKind::Regular => body::FRAME_AAD,
        FrameKind::Final => body::FINAL_FRAME_AAD,
        FrameKind::SingleBlock => body::SINGLE_BLOCK_AAD,
    };
    match kind {
        FrameKind::Regular => out.extend_from_slice(&sequence.to_be_bytes()),
        FrameKind::Final => {
            out.extend_from_slice(&body::FINAL_FRAME_MARKER.to_be_bytes());
            out.extend_from_slice(&sequence.to_be_bytes());
        }
        FrameKind::SingleBlock => {}
    }
    out.extend_from_slice(&iv);
    match kind {
        FrameKind::Regular => {}
        FrameKind::Final => out.extend_from_slice(&(chunk.len() as u32).to_be_bytes()),
        FrameKind::SingleBlock => out.extend_from_slice(&(chunk.len() as u64).to_be_bytes()),
    }
    let mut aad = Vec::with_capacity(message_id.len() + 48);
    body::body_aad(message_id, content, sequence, chunk.len() as u64, &mut aad);
    let start = out.len();
    out.extend_from_slice(chunk);
    let tag: [u8; TAG_LEN] = key.seal(&iv, &aad, out.get_mut(start..).unwrap_or_default())?;
    out.extend_from_slice(&tag);
    Ok(())
}
