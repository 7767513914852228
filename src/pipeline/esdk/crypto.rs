//! Thin, typed wrappers over `aws-lc-rs` for the four primitives the ESDK uses: AES-GCM, HKDF,
//! ECDSA verification and (for the encoder) ECDSA signing and random bytes.
//!
//! Chosen by measurement (see the benchmarks): aws-lc-rs verifies a P-384 signature about 4× faster
//! than RustCrypto `p384` here, and the AWS SDK already depends on it. This module never logs and never
//! returns key bytes except into the caller's zeroizing buffer.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
use aws_lc_rs::hkdf;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use super::suite::{Signing, IV_LEN, TAG_LEN};
use super::EsdkError;

/// An AES-GCM key of 16, 24 or 32 bytes, with its key schedule prepared once.
pub(crate) struct AesGcmKey(LessSafeKey);

impl AesGcmKey {
    /// Returns `None` when the key is not 16, 24 or 32 bytes long.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        let algorithm = match key.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            32 => &aead::AES_256_GCM,
            _ => return None,
        };
        UnboundKey::new(algorithm, key).ok().map(|k| Self(LessSafeKey::new(k)))
    }

    /// Authenticates `ciphertext` and `aad` against `tag` and writes the plaintext into `out`
    /// (same length as `ciphertext`). On failure `out` holds garbage that the caller must discard.
    pub(crate) fn open(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), ()> {
        self.0
            .open_separate_gather(Nonce::assume_unique_for_key(*iv), Aad::from(aad), ciphertext, tag, out)
            .map_err(|_| ())
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal(&self, iv: &[u8; IV_LEN], aad: &[u8], in_out: &mut [u8]) -> Result<[u8; TAG_LEN], EsdkError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*iv), Aad::from(aad), in_out)
            .map_err(|_| EsdkError::Crypto("encrypt with AES-GCM"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }
}

/// The hash behind an HKDF.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HkdfHash {
    Sha256,
    Sha384,
    Sha512,
}

struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Extract once, then one Expand per `(info, out)` pair.
pub(crate) fn hkdf(
    hash: HkdfHash,
    salt: Option<&[u8]>,
    ikm: &[u8],
    outputs: &mut [(&[&[u8]], &mut [u8])],
) -> Result<(), EsdkError> {
    let algorithm = match hash {
        HkdfHash::Sha256 => hkdf::HKDF_SHA256,
        HkdfHash::Sha384 => hkdf::HKDF_SHA384,
        HkdfHash::Sha512 => hkdf::HKDF_SHA512,
    };
    let salt = match salt {
        Some(s) if !s.is_empty() => hkdf::Salt::new(algorithm, s),
        _ => hkdf::Salt::none(algorithm),
    };
    let prk = salt.extract(ikm);
    for (info, out) in outputs.iter_mut() {
        prk.expand(info, OutputLen(out.len()))
            .and_then(|okm| okm.fill(out))
            .map_err(|_| EsdkError::Crypto("derive a key with HKDF"))?;
    }
    Ok(())
}

/// Verifies a DER ECDSA signature over `message` with a SEC1 (compressed or not) public key.
pub(crate) fn ecdsa_verify(signing: Signing, public_key: &[u8], message: &[u8], signature_der: &[u8]) -> bool {
    let algorithm: &'static signature::EcdsaVerificationAlgorithm = match signing {
        Signing::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        Signing::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
    };
    signature::UnparsedPublicKey::new(algorithm, public_key)
        .verify(message, signature_der)
        .is_ok()
}

/// A fresh ECDSA key pair for signing one message (the encoder's side of a signed suite).
pub(crate) struct EcdsaSigner {
    signing: Signing,
    key_pair: EcdsaKeyPair,
}

impl EcdsaSigner {
    pub(crate) fn generate(signing: Signing) -> Result<Self, EsdkError> {
        let algorithm: &'static signature::EcdsaSigningAlgorithm = match signing {
            Signing::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Signing::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        };
        let key_pair = EcdsaKeyPair::generate(algorithm).map_err(|_| EsdkError::Crypto("generate an ECDSA key"))?;
        Ok(Self { signing, key_pair })
    }

    /// The public key in SEC1 compressed form, as the ESDK puts it in the encryption context.
    pub(crate) fn compressed_public_key(&self) -> Result<Vec<u8>, EsdkError> {
        let bin: EcPublicKeyCompressedBin<'static> = self
            .key_pair
            .public_key()
            .as_be_bytes()
            .map_err(|_| EsdkError::Crypto("encode an ECDSA public key"))?;
        Ok(bin.as_ref().to_vec())
    }

    /// Signs `message`, re-signing until the DER signature has the fixed length that ESDK producers
    /// always emit (103 bytes for P-384), so our records are byte-shaped like the real ones.
    pub(crate) fn sign_fixed_len(&self, message: &[u8]) -> Result<Vec<u8>, EsdkError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let wanted = self.signing.fixed_signature_len();
        // Each attempt hits the wanted length with probability about 1/2; 64 misses in a row means
        // something other than chance.
        for _ in 0..64 {
            let sig = self
                .key_pair
                .sign(&rng, message)
                .map_err(|_| EsdkError::Crypto("sign with ECDSA"))?;
            if sig.as_ref().len() == wanted {
                return Ok(sig.as_ref().to_vec());
            }
        }
        Err(EsdkError::Crypto("produce a fixed-length ECDSA signature"))
    }
}

/// Cryptographically secure random bytes.
pub(crate) fn random_bytes(out: &mut [u8]) -> Result<(), EsdkError> {
    aws_lc_rs::rand::fill(out).map_err(|_| EsdkError::Crypto("generate random bytes"))
}

/// A zeroizing buffer of `len` random bytes, for keys.
pub(crate) fn random_key(len: usize) -> Result<Zeroizing<Vec<u8>>, EsdkError> {
    let mut key = Zeroizing::new(vec![0u8; len]);
    random_bytes(&mut key)?;
    Ok(key)
}
