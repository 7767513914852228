//! The eleven AWS Encryption SDK algorithm suites and what each one requires.
//!
//! [`SuiteId`] is the raw two-byte value from the wire (unknown values are kept and print in hex);
//! [`Suite::from_id`] is the only place that decides which ids are supported. This module knows nothing
//! about messages or keys.

use std::fmt;

/// The algorithm suite id exactly as it appears in a message header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SuiteId(pub u16);

impl SuiteId {
    /// AES-128-GCM, no key derivation.
    pub const AES_128_GCM_NO_KDF: Self = Self(0x0014);
    /// AES-192-GCM, no key derivation.
    pub const AES_192_GCM_NO_KDF: Self = Self(0x0046);
    /// AES-256-GCM, no key derivation.
    pub const AES_256_GCM_NO_KDF: Self = Self(0x0078);
    /// AES-128-GCM, HKDF-SHA256.
    pub const AES_128_GCM_HKDF_SHA256: Self = Self(0x0114);
    /// AES-192-GCM, HKDF-SHA256.
    pub const AES_192_GCM_HKDF_SHA256: Self = Self(0x0146);
    /// AES-256-GCM, HKDF-SHA256: the suite of Aurora PostgreSQL activity streams.
    pub const AES_256_GCM_HKDF_SHA256: Self = Self(0x0178);
    /// AES-128-GCM, HKDF-SHA256, ECDSA P-256 signature.
    pub const AES_128_GCM_HKDF_SHA256_ECDSA_P256: Self = Self(0x0214);
    /// AES-192-GCM, HKDF-SHA384, ECDSA P-384 signature.
    pub const AES_192_GCM_HKDF_SHA384_ECDSA_P384: Self = Self(0x0346);
    /// AES-256-GCM, HKDF-SHA384, ECDSA P-384 signature: the suite of Aurora MySQL activity streams.
    pub const AES_256_GCM_HKDF_SHA384_ECDSA_P384: Self = Self(0x0378);
    /// AES-256-GCM, HKDF-SHA512, key commitment (header v2).
    pub const AES_256_GCM_HKDF_SHA512_COMMIT_KEY: Self = Self(0x0478);
    /// AES-256-GCM, HKDF-SHA512, key commitment, ECDSA P-384 signature (header v2).
    pub const AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384: Self = Self(0x0578);
}

impl fmt::Debug for SuiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

impl fmt::Display for SuiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How the data key becomes the content encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// The data key is the encryption key.
    Identity,
    /// HKDF-SHA256, zero salt, info = suite id ‖ message id.
    HkdfSha256,
    /// HKDF-SHA384, zero salt, info = suite id ‖ message id.
    HkdfSha384,
    /// HKDF-SHA512, salt = message id, info = suite id ‖ "DERIVEKEY"; commit key info "COMMITKEY".
    HkdfSha512Commit,
}

/// The footer signature algorithm of a signed suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// ECDSA over P-256 with SHA-256.
    EcdsaP256Sha256,
    /// ECDSA over P-384 with SHA-384.
    EcdsaP384Sha384,
}

impl Signing {
    /// Length of the SEC1 compressed public key.
    pub const fn compressed_public_key_len(self) -> usize {
        match self {
            Self::EcdsaP256Sha256 => 33,
            Self::EcdsaP384Sha384 => 49,
        }
    }

    /// Length of the DER signature that ESDK producers (and our encoder) always emit.
    pub const fn fixed_signature_len(self) -> usize {
        match self {
            Self::EcdsaP256Sha256 => 71,
            Self::EcdsaP384Sha384 => 103,
        }
    }
}

/// Everything a decryptor needs to know about one supported suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// The wire id.
    pub id: SuiteId,
    /// Header version this suite must be carried in (1 or 2).
    pub header_version: u8,
    /// Data key and content key length in bytes (16, 24 or 32).
    pub key_len: usize,
    /// Key derivation.
    pub kdf: Kdf,
    /// Footer signature, if any.
    pub signing: Option<Signing>,
}

/// AES-GCM IV length used by every suite.
pub const IV_LEN: usize = 12;
/// AES-GCM tag length used by every suite.
pub const TAG_LEN: usize = 16;

impl Suite {
    /// The suite for a wire id, or `None` for an id the ESDK does not define.
    pub const fn from_id(id: SuiteId) -> Option<Self> {
        let (header_version, key_len, kdf, signing) = match id.0 {
            0x0014 => (1, 16, Kdf::Identity, None),
            0x0046 => (1, 24, Kdf::Identity, None),
            0x0078 => (1, 32, Kdf::Identity, None),
            0x0114 => (1, 16, Kdf::HkdfSha256, None),
            0x0146 => (1, 24, Kdf::HkdfSha256, None),
            0x0178 => (1, 32, Kdf::HkdfSha256, None),
            0x0214 => (1, 16, Kdf::HkdfSha256, Some(Signing::EcdsaP256Sha256)),
            0x0346 => (1, 24, Kdf::HkdfSha384, Some(Signing::EcdsaP384Sha384)),
            0x0378 => (1, 32, Kdf::HkdfSha384, Some(Signing::EcdsaP384Sha384)),
            0x0478 => (2, 32, Kdf::HkdfSha512Commit, None),
            0x0578 => (2, 32, Kdf::HkdfSha512Commit, Some(Signing::EcdsaP384Sha384)),
            _ => return None,
        };
        Some(Self {
            id,
            header_version,
            key_len,
            kdf,
            signing,
        })
    }

    /// Whether the suite commits to its key (v2 header suites).
    pub const fn is_committing(&self) -> bool {
        matches!(self.kdf, Kdf::HkdfSha512Commit)
    }

    /// Length of the message id in the header: 16 bytes for v1, 32 for v2.
    pub const fn message_id_len(&self) -> usize {
        if self.header_version == 2 {
            32
        } else {
            16
        }
    }

    /// Every suite the ESDK defines, in id order.
    pub fn all() -> impl Iterator<Item = Suite> {
        [
            0x0014, 0x0046, 0x0078, 0x0114, 0x0146, 0x0178, 0x0214, 0x0346, 0x0378, 0x0478, 0x0578,
        ]
        .into_iter()
        .filter_map(|id| Suite::from_id(SuiteId(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_eleven_suites_are_defined_and_unknown_ids_are_not() {
        assert_eq!(Suite::all().count(), 11);
        assert!(Suite::from_id(SuiteId(0x0179)).is_none());
        assert!(Suite::from_id(SuiteId(0)).is_none());
    }

    #[test]
    fn the_das_suites_are_v1_non_committing_and_only_0378_is_signed() {
        let pg = Suite::from_id(SuiteId::AES_256_GCM_HKDF_SHA256).unwrap();
        let my = Suite::from_id(SuiteId::AES_256_GCM_HKDF_SHA384_ECDSA_P384).unwrap();
        assert_eq!((pg.header_version, pg.is_committing(), pg.signing), (1, false, None));
        assert_eq!((my.header_version, my.is_committing()), (1, false));
        assert_eq!(my.signing, Some(Signing::EcdsaP384Sha384));
    }

    #[test]
    fn suite_ids_print_in_hex() {
        assert_eq!(format!("{}", SuiteId(0x0379)), "0x0379");
    }
}
