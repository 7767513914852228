//! The raw AES keyring: how a DAS message's data key is wrapped with the 32-byte key that KMS returns.
//!
//! A keyring holds a wrapping key and the namespace and name that identify it in an encrypted data key
//! entry (`BC` and `DataKey` for every DAS producer). It unwraps data keys for `decrypt` and wraps them
//! for `encrypt`. It never exposes the wrapping key, and its `Debug` output never shows key bytes.

use std::fmt;

use zeroize::Zeroizing;

use super::crypto::{self, AesGcmKey};
use super::header::EncryptedDataKey;
use super::suite::{IV_LEN, TAG_LEN};
use super::EsdkError;

/// The key namespace (provider id) every DAS producer uses.
pub const DAS_KEY_NAMESPACE: &str = "BC";
/// The key name every DAS producer uses.
pub const DAS_KEY_NAME: &str = "DataKey";

/// Tag length in bits, as the provider info records it.
const TAG_BITS: u32 = (TAG_LEN * 8) as u32;

/// Why a keyring could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The wrapping key has a length AES does not support.
    #[error("raw AES keyring: the wrapping key is {0} bytes; it must be 16, 24 or 32 (a DAS key from KMS is 32)")]
    WrappingKeyLength(usize),
}

/// A raw AES keyring: namespace, name and a prepared AES-GCM wrapping key.
pub struct RawAesKeyring {
    namespace: String,
    name: String,
    wrapping_key: AesGcmKey,
}

impl fmt::Debug for RawAesKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAesKeyring")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("wrapping_key", &"<redacted>")
            .finish()
    }
}

impl RawAesKeyring {
    /// A keyring with the DAS namespace `BC` and name `DataKey`.
    pub fn das(wrapping_key: &[u8]) -> Result<Self, KeyringError> {
        Self::new(DAS_KEY_NAMESPACE, DAS_KEY_NAME, wrapping_key)
    }

    /// A keyring with any namespace and name (the official test vectors use others).
    pub fn new(namespace: &str, name: &str, wrapping_key: &[u8]) -> Result<Self, KeyringError> {
        let wrapping_key = AesGcmKey::new(wrapping_key).ok_or(KeyringError::WrappingKeyLength(wrapping_key.len()))?;
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            wrapping_key,
        })
    }

    /// The key namespace (EDK provider id).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Unwraps the first EDK that belongs to this keyring and authenticates under its wrapping key.
    ///
    /// `context` is the serialized encryption context, the AAD of the wrap.
    pub(crate) fn unwrap_data_key(
        &self,
        edks: &[EncryptedDataKey<'_>],
        context: &[u8],
        key_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, EsdkError> {
        let mut data_key = Zeroizing::new(vec![0u8; key_len]);
        for edk in edks {
            let Some(iv) = self.wrap_iv(edk) else { continue };
            let Some((ciphertext, tag)) = edk.ciphertext.split_last_chunk::<TAG_LEN>() else {
                continue;
            };
            if ciphertext.len() != key_len {
                continue;
            }
            if self
                .wrapping_key
                .open(iv, context, ciphertext, tag, &mut data_key)
                .is_ok()
            {
                return Ok(data_key);
            }
        }
        Err(EsdkError::NoDataKey {
            count: u16::try_from(edks.len()).unwrap_or(u16::MAX),
        })
    }

    /// The wrap IV of an EDK if its provider id and info say it is ours:
    /// info = key name ‖ tag bits (u32 = 128) ‖ IV length (u32 = 12) ‖ IV.
    fn wrap_iv<'e>(&self, edk: &EncryptedDataKey<'e>) -> Option<&'e [u8; IV_LEN]> {
        if edk.provider_id != self.namespace.as_bytes() {
            return None;
        }
        let rest = edk.provider_info.strip_prefix(self.name.as_bytes())?;
        let (tag_bits, rest) = rest.split_first_chunk::<4>()?;
        let (iv_len, iv) = rest.split_first_chunk::<4>()?;
        let iv: &[u8; IV_LEN] = iv.try_into().ok()?;
        (u32::from_be_bytes(*tag_bits) == TAG_BITS && u32::from_be_bytes(*iv_len) == IV_LEN as u32).then_some(iv)
    }

    /// Wraps `data_key` under a fresh random IV; returns (provider info, ciphertext ‖ tag).
    pub(crate) fn wrap_data_key(&self, data_key: &[u8], context: &[u8]) -> Result<(Vec<u8>, Vec<u8>), EsdkError> {
        let mut iv = [0u8; IV_LEN];
        crypto::random_bytes(&mut iv)?;
        let mut info = Vec::with_capacity(self.name.len() + 8 + IV_LEN);
        info.extend_from_slice(self.name.as_bytes());
        info.extend_from_slice(&TAG_BITS.to_be_bytes());
        info.extend_from_slice(&(IV_LEN as u32).to_be_bytes());
        info.extend_from_slice(&iv);
        let mut wrapped = data_key.to_vec();
        let tag = self.wrapping_key.seal(&iv, context, &mut wrapped)?;
        wrapped.extend_from_slice(&tag);
        Ok((info, wrapped))
    }
}
