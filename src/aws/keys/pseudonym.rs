//! The KMS side of the pseudonym key (`DAS_PSEUDONYM_KEY`): making its blob and opening it.
//!
//! The key of the keyed pseudonyms ([`PseudonymKey`]) never exists in clear outside memory. KMS
//! makes it with `GenerateDataKeyWithoutPlaintext` (AES_256, so 32 bytes) under a KMS key the
//! operator chooses and the encryption context [`PURPOSE_CONTEXT`], and returns only its ciphertext
//! blob ([`SealedPseudonymKey`]), which is what the template and the environment hold. The function
//! opens it once per cold start with `Decrypt` under the same context, so IAM can allow exactly that
//! (`kms:EncryptionContext:das-archiver:purpose`).
//!
//! This module never logs, prints or puts into an error the key or the blob (errors carry the KMS
//! code and message, which hold neither).

use std::fmt;

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::{is_credentials_error, KmsKeySource, KMS_MAX_CIPHERTEXT_BLOB};
use crate::pipeline::filter::PseudonymKey;

/// The encryption context of every pseudonym key blob: it binds the blob to this one use, so a
/// `kms:Decrypt` permission conditioned on it opens nothing else, and no other blob of the same KMS
/// key opens as a pseudonym key.
pub const PURPOSE_CONTEXT: (&str, &str) = ("das-archiver:purpose", "pseudonym-key");

/// The KMS ciphertext blob of a pseudonym key, as `GenerateDataKeyWithoutPlaintext` returns it
/// (<https://docs.aws.amazon.com/kms/latest/APIReference/API_GenerateDataKeyWithoutPlaintext.html>).
/// Not secret, but it is shown nowhere: `Debug` gives only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPseudonymKey(Vec<u8>);

impl SealedPseudonymKey {
    /// The blob in `text` (standard base64, as `das pseudonym-key new` prints it), or what is wrong
    /// with it (never the text itself).
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        let blob = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "not base64; set it to the line `das pseudonym-key new --kms-key-id <key>` prints")?;
        if blob.is_empty() || blob.len() > KMS_MAX_CIPHERTEXT_BLOB {
            return Err("not a KMS ciphertext blob (1 to 6144 bytes); set it to the line `das pseudonym-key new --kms-key-id <key>` prints");
        }
        Ok(Self(blob))
    }

    /// The blob as standard base64, the form `DAS_PSEUDONYM_KEY` takes.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }
}

impl fmt::Debug for SealedPseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedPseudonymKey(<{} bytes>)", self.0.len())
    }
}

/// Why a pseudonym key could not be made or opened. Nothing is archived until it is fixed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PseudonymKeyError {
    /// A KMS call failed; `fix` says what to change.
    #[error("KMS {operation} of the pseudonym key (DAS_PSEUDONYM_KEY) failed with {code}: {fix} ({detail})")]
    Kms {
        /// `Decrypt` or `GenerateDataKeyWithoutPlaintext`.
        operation: &'static str,
        /// The KMS error code, or what failed before the call (`CredentialsError`).
        code: String,
        /// What the operator should change.
        fix: &'static str,
        /// What the SDK reported (never the blob).
        detail: String,
    },
    /// KMS returned a key that is not 32 bytes.
    #[error("KMS returned a {0}-byte pseudonym key; a pseudonym key is 32 bytes: make DAS_PSEUDONYM_KEY again with `das pseudonym-key new --kms-key-id <key>`")]
    BadKey(usize),
}

impl KmsKeySource {
    /// Makes a new pseudonym key under the KMS key `kms_key_id` (a key id, key ARN, alias name or
    /// alias ARN) and returns only its blob: the key itself is never seen outside KMS.
    pub async fn new_pseudonym_key(&self, kms_key_id: &str) -> Result<SealedPseudonymKey, PseudonymKeyError> {
        const OPERATION: &str = "GenerateDataKeyWithoutPlaintext";
        let (context_key, context_value) = PURPOSE_CONTEXT;
        let response = self
            .client
            .generate_data_key_without_plaintext()
            .key_id(kms_key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(context_key, context_value)
            .send()
            .await
            .map_err(|err| kms_error(OPERATION, &err))?;
        let blob = response.ciphertext_blob.map(Blob::into_inner).unwrap_or_default();
        if blob.is_empty() {
            return Err(PseudonymKeyError::BadKey(0));
        }
        Ok(SealedPseudonymKey(blob))
    }

    /// Opens a pseudonym key blob with `Decrypt` under [`PURPOSE_CONTEXT`].
    pub async fn open_pseudonym_key(&self, sealed: &SealedPseudonymKey) -> Result<PseudonymKey, PseudonymKeyError> {
        let (context_key, context_value) = PURPOSE_CONTEXT;
        let response = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(sealed.0.as_slice()))
            .encryption_context(context_key, context_value)
            .send()
            .await
            .map_err(|err| kms_error("Decrypt", &err))?;
        let plaintext = Zeroizing::new(response.plaintext.map(Blob::into_inner).unwrap_or_default());
        PseudonymKey::from_slice(&plaintext).ok_or(PseudonymKeyError::BadKey(plaintext.len()))
    }
}

/// What the operator must change for a KMS error `code` of `operation`.
fn fix(operation: &'static str, code: &str) -> &'static str {
    match (operation, code) {
        ("Decrypt", "AccessDeniedException") => {
            "the role (or the key policy) does not allow kms:Decrypt on the KMS key of DAS_PSEUDONYM_KEY with the \
             encryption context das-archiver:purpose=pseudonym-key; grant it (the template does when the \
             PseudonymKmsKeyArn parameter names that key)"
        }
        (_, "AccessDeniedException") => {
            "your credentials (or the key policy) do not allow kms:GenerateDataKeyWithoutPlaintext on that KMS key"
        }
        (_, "InvalidCiphertextException" | "IncorrectKeyException" | "ValidationException") => {
            "DAS_PSEUDONYM_KEY is not a blob made by `das pseudonym-key new` in this account; make one and set it"
        }
        (_, "NotFoundException") => {
            "the KMS key does not exist in this account and region; check the key and the region"
        }
        (_, "DisabledException" | "KMSInvalidStateException") => {
            "the KMS key is disabled or pending deletion; enable it (a deleted key makes the pseudonym key, and so \
             every pseudonym made with it, unrecoverable)"
        }
        (_, "InvalidKeyUsageException") => "the KMS key is not a symmetric encryption key; choose one that is",
        (_, "CredentialsError") => {
            "no AWS credentials could be loaded; check the execution role (or the AWS_* credentials the command runs with)"
        }
        _ => {
            "KMS could not answer (throttling, an outage, or no network path to KMS such as a VPC without a KMS \
             endpoint); nothing is archived until it does (the function's batch is retried)"
        }
    }
}

/// The typed error for a failed KMS call: its code (or `CredentialsError`) and what to fix.
fn kms_error<E, R>(operation: &'static str, err: &SdkError<E, R>) -> PseudonymKeyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    let code = match err.as_service_error().and_then(ProvideErrorMetadata::code) {
        Some(code) => code.to_owned(),
        None if is_credentials_error(err) => "CredentialsError".to_owned(),
        None => "Unavailable".to_owned(),
    };
    PseudonymKeyError::Kms {
        operation,
        fix: fix(operation, &code),
        code,
        detail: DisplayErrorContext(err).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_reads_base64_and_shows_only_its_length() {
        let sealed = SealedPseudonymKey::from_base64(" AQIDBA== ").unwrap();
        assert_eq!(sealed.to_base64(), "AQIDBA==");
        assert_eq!(format!("{sealed:?}"), "SealedPseudonymKey(<4 bytes>)");
        for bad in ["not base64!", "", "===="] {
            let err = SealedPseudonymKey::from_base64(bad).unwrap_err();
            assert!(err.contains("das pseudonym-key new"), "{err}");
        }
        let too_long = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 6145]);
        assert!(SealedPseudonymKey::from_base64(&too_long).is_err());
    }

    #[test]
    fn a_denied_decrypt_names_the_permission_and_the_encryption_context() {
        let denied = fix("Decrypt", "AccessDeniedException");
        assert!(denied.contains("kms:Decrypt") && denied.contains("das-archiver:purpose=pseudonym-key"));
        assert!(denied.contains("PseudonymKmsKeyArn"));
        assert!(fix("Decrypt", "InvalidCiphertextException").contains("das pseudonym-key new"));
        assert!(fix("Decrypt", "ThrottlingException").contains("nothing is archived until"));
    }
}
