//! Data keys: each record's KMS ciphertext blob becomes the raw AES keyring that opens its message.
//!
//! [`DataKeySource`] is the one-method edge to KMS ([`KmsKeySource`]) or to a key the user already holds
//! ([`StaticKeySource`]). [`KeyCache`] sits in front of it for the life of a warm container: keyed by a
//! SHA-256 of (blob, encryption context), bounded in entries and age whatever the input, one KMS call
//! for any number of concurrent lookups of the same blob, no slot kept for a failed lookup, and it
//! stores prepared keyrings so the AES key schedule runs once.
//!
//! KMS errors are classified the way AWS sends them (see [`KeyError`]): a bad blob is quarantined, an
//! outage is retried, and a deployment mistake (permissions, a missing key, credentials) is retried
//! with a message that says what to fix. Key bytes live only in zeroizing buffers and inside the
//! keyring; this module never logs them, and never puts a blob or a key into an error message.
//!
//! [`pseudonym`] is the KMS side of the pseudonym key (`DAS_PSEUDONYM_KEY`): making its blob and
//! opening it once per cold start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use tokio::sync::OnceCell;
// Tokio's clock, so tests can move time forward instead of sleeping.
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::pipeline::envelope::ResourceId;
use crate::pipeline::error::{Classify, FailureKind};
use crate::pipeline::esdk::RawAesKeyring;

pub mod pseudonym;
pub use pseudonym::{PseudonymKeyError, SealedPseudonymKey};

/// The largest `CiphertextBlob` KMS `Decrypt` accepts: "Length Constraints: Minimum length of 1.
/// Maximum length of 6144." (<https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html>).
/// A blob outside 1..=6144 bytes is rejected before any call: KMS would answer `ValidationException`.
pub const KMS_MAX_CIPHERTEXT_BLOB: usize = 6144;

/// Why a data key could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// KMS refused this ciphertext for this context: the record itself is bad (permanent).
    #[error("KMS rejected the record's data key for {resource} ({code}: {message}); the key blob is corrupt, belongs to another stream or key, or is not a KMS ciphertext")]
    Rejected {
        /// The resource whose encryption context was used.
        resource: String,
        /// The KMS error code, e.g. `InvalidCiphertextException`.
        code: String,
        /// The KMS error message.
        message: String,
    },
    /// The record's key blob cannot be a KMS ciphertext; no call was made (permanent).
    #[error("the record's data key blob is {0} bytes; KMS Decrypt accepts 1 to 6144 bytes, so the record is not a valid DAS record")]
    BlobSize(usize),
    /// KMS could not answer now: throttling, 5xx, timeout, network, disabled key (transient).
    #[error("KMS Decrypt failed for {resource} and will be retried: {detail}")]
    Unavailable {
        /// The resource whose key was being decrypted.
        resource: String,
        /// What the SDK reported.
        detail: String,
    },
    /// The deployment is wrong (permissions, key, credentials): retried, and the operator must act.
    #[error(
        "KMS Decrypt for {resource} failed with {code}: {fix}. Records are retried until this is fixed ({detail})"
    )]
    Configuration {
        /// The resource whose key was being decrypted.
        resource: String,
        /// The KMS error code, or what failed before the call (`CredentialsError`).
        code: String,
        /// What the operator should change.
        fix: &'static str,
        /// What the SDK reported.
        detail: String,
    },
    /// KMS returned a key that is not an AES key (permanent).
    #[error("KMS returned a {0}-byte data key; a DAS data key is 32 bytes")]
    BadKey(usize),
}

impl KeyError {
    /// Whether the error is a deployment mistake that a person must fix (permissions, a missing
    /// key, credentials): retried like an outage, but worth an ERROR log and an alarm, not a WARN.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Configuration { .. })
    }
}

impl Classify for KeyError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Rejected { .. } | Self::BlobSize(_) | Self::BadKey(_) => FailureKind::Permanent,
            // A configuration error is retried: once fixed, the same record succeeds.
            Self::Unavailable { .. } | Self::Configuration { .. } => FailureKind::Transient,
        }
    }
}

/// Turns a record's key blob into the 32-byte wrapping key.
#[async_trait]
pub trait DataKeySource: Send + Sync {
    /// Decrypts `blob` under the encryption context of `resource`.
    async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError>;

    /// Rejects a blob that this source can never accept, before any lookup (and before a cache
    /// slot is made for it). The default accepts every blob.
    fn check_blob(&self, _blob: &[u8]) -> Result<(), KeyError> {
        Ok(())
    }
}

#[async_trait]
impl DataKeySource for Box<dyn DataKeySource> {
    async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.as_ref().decrypt(blob, resource).await
    }

    fn check_blob(&self, blob: &[u8]) -> Result<(), KeyError> {
        self.as_ref().check_blob(blob)
    }
}

/// How long one KMS `Decrypt` attempt may take. KMS answers in milliseconds; without a bound, a
/// network that drops packets (a VPC without a route or endpoint to KMS) holds the batch until the
/// Lambda's own timeout, which retries it blind and logs nothing useful.
pub const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one KMS `Decrypt` may take with the SDK's retries (3 attempts and their back-off).
pub const KMS_OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// The most key lookups a batch runs at once ([`KeyCache::keyrings`]). DAS reuses a data key for
/// many records, so a batch usually names a handful of blobs, but a batch of records from many
/// producers (or an attacker's) can name thousands: each lookup in flight holds a connection to KMS,
/// so a file descriptor of the 1,024 a Lambda function has
/// (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>), and draws on the
/// account's shared `Decrypt` request quota (thousands per second, per Region:
/// <https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html>), which
/// throttles every other user of the key when exceeded. 32 at a time, at a few milliseconds each,
/// is thousands of lookups a second already.
pub const KEY_LOOKUP_CONCURRENCY: usize = 32;

/// KMS `Decrypt` with the DAS encryption context, and with the DAS key pinned when one is configured.
#[derive(Debug, Clone)]
pub struct KmsKeySource {
    client: aws_sdk_kms::Client,
    key_id: Option<String>,
}

impl KmsKeySource {
    /// A source using the SDK configuration's endpoint, region and credentials, with calls bounded
    /// by [`KMS_ATTEMPT_TIMEOUT`] and [`KMS_OPERATION_TIMEOUT`].
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::with_timeouts(config, KMS_ATTEMPT_TIMEOUT, KMS_OPERATION_TIMEOUT)
    }

    /// [`KmsKeySource::new`] with other bounds on one attempt and on the whole call. A call that
    /// exceeds them fails as [`KeyError::Unavailable`] (transient).
    pub fn with_timeouts(config: &aws_config::SdkConfig, attempt: Duration, operation: Duration) -> Self {
        let kms = aws_sdk_kms::config::Builder::from(config)
            .timeout_config(super::timeouts(attempt, operation))
            .build();
        Self {
            client: aws_sdk_kms::Client::from_conf(kms),
            key_id: None,
        }
    }

    /// Pins the KMS key (`DAS_KMS_KEY_ARN`). With exactly one ARN, every `Decrypt` passes it as
    /// `KeyId`, so KMS answers a blob made under any other key with `IncorrectKeyException`
    /// (quarantined) instead of `AccessDeniedException` (a configuration error, retried). With
    /// several ARNs no `KeyId` is passed: one stack may archive streams encrypted under different
    /// keys, and `Decrypt` takes one `KeyId`; IAM (`kms:Decrypt` on those keys only) still applies.
    pub fn with_key_arns(mut self, arns: &[String]) -> Self {
        self.key_id = match arns {
            [one] => Some(one.clone()),
            _ => None,
        };
        self
    }

    /// The `KeyId` every `Decrypt` passes, if the key is pinned.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

#[async_trait]
impl DataKeySource for KmsKeySource {
    async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.check_blob(blob)?;
        let (context_key, context_value) = resource.encryption_context();
        let response = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(context_key, context_value)
            .set_key_id(self.key_id.clone())
            .send()
            .await
            .map_err(|err| {
                let status = err.raw_response().map(|r| r.status().as_u16());
                classify_decrypt_error(&err, status, resource)
            })?;
        let plaintext = Zeroizing::new(response.plaintext.map(Blob::into_inner).unwrap_or_default());
        Ok(plaintext)
    }

    fn check_blob(&self, blob: &[u8]) -> Result<(), KeyError> {
        if blob.is_empty() || blob.len() > KMS_MAX_CIPHERTEXT_BLOB {
            return Err(KeyError::BlobSize(blob.len()));
        }
        Ok(())
    }
}

/// KMS error codes that mean the record's blob is bad: KMS will never accept it (quarantine).
/// `InvalidCiphertextException`, `IncorrectKeyException` and `InvalidKeyUsageException` are
/// Decrypt's documented errors (<https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html>);
/// `ValidationException` is the common error for a parameter outside its constraints
/// (<https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html>).
const PERMANENT_CODES: [&str; 4] = [
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "InvalidKeyUsageException",
    "ValidationException",
];

/// The configuration error for a KMS code, with what to fix, or `None` when the code is not one.
/// `AccessDeniedException` and `NotFoundException` are Decrypt's errors (API_Decrypt.html above);
/// the credential codes are KMS's common errors (CommonErrors.html above).
fn configuration_fix(code: &str) -> Option<&'static str> {
    match code {
        "AccessDeniedException" => Some(
            "the function's role or the key policy does not allow kms:Decrypt with this encryption context; \
             grant it on the DAS key, or set DAS_KMS_KEY_ARN to the stream's key so that a blob under another \
             key is quarantined instead",
        ),
        "NotFoundException" => Some(
            "the KMS key does not exist in this account and region; check DAS_KMS_KEY_ARN and the function's \
             region (a DAS stream's key is in the database's region)",
        ),
        "UnrecognizedClientException"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "InvalidSignatureException" => Some(
            "the function's AWS credentials are invalid or expired; check the execution role (or the AWS_* \
             credentials and AWS_REGION the command runs with)",
        ),
        _ => None,
    }
}

/// What the AWS SDK's own retry classifier treats as throttling or transient codes (aws-runtime's
/// `THROTTLING_ERRORS` and `TRANSIENT_ERRORS`): an outage, however a service spells it.
fn is_throttling_or_transient(code: &str) -> bool {
    aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
        || aws_runtime::retries::classifiers::TRANSIENT_ERRORS.contains(&code)
}

/// Classifies a failed `Decrypt` by the error code the SDK surfaced (many KMS errors arrive as
/// unmodelled errors, so the code string, not the typed variant, is what is matched). Everything
/// that is neither a bad blob nor a deployment mistake is an outage and retried: throttling,
/// `KMSInternalException`, `DependencyTimeoutException`, `KeyUnavailableException`, a disabled or
/// pending key (`KMSInvalidStateException`, `DisabledException`), 5xx, timeouts, network errors.
fn classify_decrypt_error<R: std::fmt::Debug + 'static>(
    err: &SdkError<DecryptError, R>,
    status: Option<u16>,
    resource: &ResourceId,
) -> KeyError {
    let resource = resource.to_string();
    let detail = match status {
        Some(status) => format!("HTTP {status}: {}", DisplayErrorContext(err)),
        None => DisplayErrorContext(err).to_string(),
    };
    let code = err.as_service_error().and_then(ProvideErrorMetadata::code);
    if let Some(code) = code.filter(|c| PERMANENT_CODES.contains(c)) {
        let message = err
            .as_service_error()
            .and_then(ProvideErrorMetadata::message)
            .unwrap_or_default()
            .to_owned();
        return KeyError::Rejected {
            resource,
            code: code.to_owned(),
            message,
        };
    }
    if let Some((code, fix)) = code.and_then(|c| configuration_fix(c).map(|fix| (c, fix))) {
        return KeyError::Configuration {
            resource,
            code: code.to_owned(),
            fix,
            detail,
        };
    }
    if let SdkError::ConstructionFailure(_) = err {
        return KeyError::Configuration {
            resource,
            code: "RequestNotBuilt".to_owned(),
            fix: "the KMS request could not be built; check AWS_REGION and the endpoint settings",
            detail,
        };
    }
    if code.is_none() && is_credentials_error(err) {
        return KeyError::Configuration {
            resource,
            code: "CredentialsError".to_owned(),
            fix: "no AWS credentials could be loaded; check the execution role (or the AWS_* credentials and \
                  profile the command runs with)",
            detail,
        };
    }
    if let Some(code) = code.filter(|c| is_throttling_or_transient(c)) {
        return KeyError::Unavailable {
            resource,
            detail: format!("{code} (throttled or transient): {detail}"),
        };
    }
    KeyError::Unavailable { resource, detail }
}

/// Whether the request failed before it was sent because no credentials could be loaded (the
/// provider's error is somewhere in the chain of sources).
fn is_credentials_error<E: std::error::Error + 'static, R: std::fmt::Debug + 'static>(err: &SdkError<E, R>) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A key the caller already has (tests, `das replay --wrapping-key`): every blob maps to it.
pub struct StaticKeySource {
    key: Zeroizing<Vec<u8>>,
}

impl StaticKeySource {
    /// A source that always returns `key`.
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: Zeroizing::new(key.to_vec()),
        }
    }
}

#[async_trait]
impl DataKeySource for StaticKeySource {
    async fn decrypt(&self, _blob: &[u8], _resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Ok(self.key.clone())
    }
}

/// Bounds of a [`KeyCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCacheLimits {
    /// Most keys kept (default 1000).
    pub max_entries: usize,
    /// Longest a key is kept after it was fetched (default 15 minutes).
    pub ttl: Duration,
}

impl Default for KeyCacheLimits {
    fn default() -> Self {
        Self {
            max_entries: 1000,
            ttl: Duration::from_secs(900),
        }
    }
}

/// Counters of a [`KeyCache`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCacheStats {
    /// Calls made to the key source (KMS).
    pub source_calls: u64,
    /// Lookups answered from the cache (including waits on a call already in flight).
    pub hits: u64,
}

/// SHA-256 of (blob length, blob, resource id): 32 bytes per entry whatever the blob's size, and
/// never the blob itself (which an attacker controls and which a map would keep alive).
type CacheKey = [u8; 32];

fn cache_key(blob: &[u8], resource: &ResourceId) -> CacheKey {
    let mut context = digest::Context::new(&digest::SHA256);
    // The length prefix keeps (blob, id) pairs from colliding by moving bytes between the two.
    context.update(&(blob.len() as u64).to_be_bytes());
    context.update(blob);
    context.update(resource.as_str().as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

struct Slot {
    keyring: OnceCell<Arc<RawAesKeyring>>,
    created: Instant,
}

/// A bounded, time-limited, single-flight cache of keyrings in front of a [`DataKeySource`].
///
/// Memory is bounded whatever the input: at most `max_entries` slots (in-flight lookups included),
/// each a 32-byte digest and one keyring; a blob the source rejects up front gets no slot, and a
/// lookup that fails removes its slot.
pub struct KeyCache<S> {
    source: S,
    limits: KeyCacheLimits,
    slots: Mutex<HashMap<CacheKey, Arc<Slot>>>,
    source_calls: AtomicU64,
    hits: AtomicU64,
}

impl<S: DataKeySource> KeyCache<S> {
    /// An empty cache in front of `source`.
    pub fn new(source: S, limits: KeyCacheLimits) -> Self {
        Self {
            source,
            limits,
            slots: Mutex::new(HashMap::new()),
            source_calls: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// The keyring for a record's key blob, from the cache or (once) from the source.
    pub async fn keyring(&self, blob: &[u8], resource: &ResourceId) -> Result<Arc<RawAesKeyring>, KeyError> {
        self.source.check_blob(blob)?;
        let key = cache_key(blob, resource);
        let slot = self.slot(key);
        if let Some(keyring) = slot.keyring.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(keyring));
        }
        let mut fetched = false;
        let result = slot
            .keyring
            .get_or_try_init(|| async {
                fetched = true;
                self.source_calls.fetch_add(1, Ordering::Relaxed);
                let key = self.source.decrypt(blob, resource).await?;
                RawAesKeyring::das(&key)
                    .map(Arc::new)
                    .map_err(|_| KeyError::BadKey(key.len()))
            })
            .await;
        match result {
            Ok(keyring) => {
                if !fetched {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Arc::clone(keyring))
            }
            Err(err) => {
                self.forget(&key, &slot);
                Err(err)
            }
        }
    }

    /// The keyring of each of `blobs` (distinct), [`KEY_LOOKUP_CONCURRENCY`] lookups at a time, in
    /// no particular order.
    pub async fn keyrings<'b>(
        &self,
        blobs: impl IntoIterator<Item = &'b [u8]>,
        resource: &ResourceId,
    ) -> Vec<(&'b [u8], Result<Arc<RawAesKeyring>, KeyError>)> {
        use futures::StreamExt as _;
        let lookups = blobs
            .into_iter()
            .map(|blob| async move { (blob, self.keyring(blob, resource).await) });
        futures::stream::iter(lookups)
            .buffer_unordered(KEY_LOOKUP_CONCURRENCY)
            .collect()
            .await
    }

    /// Removes a failed lookup's slot, unless another lookup has replaced or filled it meanwhile.
    fn forget(&self, key: &CacheKey, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots
            .get(key)
            .is_some_and(|s| Arc::ptr_eq(s, slot) && s.keyring.get().is_none())
        {
            slots.remove(key);
        }
    }

    /// The slot for a key, creating it (and making room) if needed. Holds the lock only briefly and
    /// never across an await.
    fn slot(&self, key: CacheKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(slot) = slots.get(&key) {
            if now.duration_since(slot.created) < self.limits.ttl {
                return Arc::clone(slot);
            }
        }
        if slots.len() >= self.limits.max_entries && !slots.contains_key(&key) {
            slots.retain(|_, s| now.duration_since(s.created) < self.limits.ttl);
            while slots.len() >= self.limits.max_entries.max(1) {
                let Some(oldest) = slots.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) else {
                    break;
                };
                slots.remove(&oldest);
            }
        }
        let slot = Arc::new(Slot {
            keyring: OnceCell::new(),
            created: now,
        });
        slots.insert(key, Arc::clone(&slot));
        slot
    }

    /// Source calls and hits so far.
    pub fn stats(&self) -> KeyCacheStats {
        KeyCacheStats {
            source_calls: self.source_calls.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether the cache holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts calls, waits a little so concurrent lookups overlap, and fails for blob `b"bad"`.
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl DataKeySource for Counting {
        async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if blob == b"bad" {
                return Err(KeyError::Unavailable {
                    resource: resource.to_string(),
                    detail: "throttled".into(),
                });
            }
            Ok(Zeroizing::new(vec![blob.first().copied().unwrap_or(0); 32]))
        }
    }

    fn cluster() -> ResourceId {
        ResourceId::parse("cluster-ABC").unwrap()
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_blob_make_one_source_call() {
        let cache = KeyCache::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            KeyCacheLimits::default(),
        );
        let resource = cluster();
        let lookups = (0..50).map(|_| cache.keyring(b"blob", &resource));
        let results = futures::future::join_all(lookups).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(cache.source.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            cache.stats(),
            KeyCacheStats {
                source_calls: 1,
                hits: 49
            }
        );
    }

    #[tokio::test]
    async fn the_encryption_context_is_part_of_the_cache_key() {
        let cache = KeyCache::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            KeyCacheLimits::default(),
        );
        cache.keyring(b"blob", &cluster()).await.unwrap();
        cache
            .keyring(b"blob", &ResourceId::parse("db-ABC").unwrap())
            .await
            .unwrap();
        assert_eq!(cache.stats().source_calls, 2);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_leave_no_slot() {
        let cache = KeyCache::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            KeyCacheLimits::default(),
        );
        assert!(cache.keyring(b"bad", &cluster()).await.is_err());
        assert!(cache.is_empty());
        assert!(cache.keyring(b"bad", &cluster()).await.is_err());
        assert_eq!(cache.stats().source_calls, 2);
        assert!(cache.is_empty());
    }

    /// Fails every lookup at once, like KMS answering junk blobs with InvalidCiphertextException.
    struct Rejecting;

    #[async_trait]
    impl DataKeySource for Rejecting {
        async fn decrypt(&self, _blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
            tokio::task::yield_now().await;
            Err(KeyError::Rejected {
                resource: resource.to_string(),
                code: "InvalidCiphertextException".into(),
                message: String::new(),
            })
        }
    }

    #[tokio::test]
    async fn a_hundred_thousand_distinct_junk_blobs_leave_the_cache_empty() {
        let limits = KeyCacheLimits {
            max_entries: 100,
            ttl: Duration::from_secs(900),
        };
        let cache = KeyCache::new(Rejecting, limits);
        let blobs: Vec<Vec<u8>> = (0u32..100_000).map(|i| i.to_be_bytes().repeat(64)).collect();
        // A thousand at a time, as a batch looks up its distinct blobs: in flight, slots stay within
        // the bound. (One join over all 100,000 would measure tokio's scheduler, not the cache.)
        for chunk in blobs.chunks(1000) {
            let lookups = chunk.iter().map(|blob| async {
                let result = cache.keyring(blob, &cluster()).await;
                assert!(cache.len() <= 100);
                result
            });
            let results = futures::future::join_all(lookups).await;
            assert!(results.iter().all(Result::is_err));
            assert_eq!(cache.len(), 0);
        }
        assert_eq!(cache.stats().source_calls, 100_000);
    }

    #[tokio::test]
    async fn blobs_kms_cannot_accept_get_no_call_and_no_slot() {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let cache = KeyCache::new(KmsKeySource::new(&config), KeyCacheLimits::default());
        for len in [0, KMS_MAX_CIPHERTEXT_BLOB + 1, 1 << 20] {
            for i in 0..1000u32 {
                let mut blob = vec![0u8; len];
                if let Some(first) = blob.first_mut() {
                    *first = i as u8;
                }
                let err = cache.keyring(&blob, &cluster()).await.err();
                assert!(matches!(err, Some(KeyError::BlobSize(n)) if n == len), "{err:?}");
            }
        }
        assert_eq!((cache.len(), cache.stats().source_calls), (0, 0));
        let source = KmsKeySource::new(&config);
        assert!(source.check_blob(&[1; KMS_MAX_CIPHERTEXT_BLOB]).is_ok());
        assert!(source.check_blob(&[1]).is_ok());
    }

    #[test]
    fn the_cache_key_is_a_digest_of_blob_and_context() {
        let a = cache_key(b"blob", &cluster());
        assert_eq!(a, cache_key(b"blob", &cluster()));
        assert_ne!(a, cache_key(b"blob", &ResourceId::parse("db-ABC").unwrap()));
        assert_ne!(a, cache_key(b"blob2", &cluster()));
    }

    #[test]
    fn only_one_configured_key_arn_is_passed_as_key_id() {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let one = ["arn:aws:kms:us-east-1:123456789012:key/a".to_owned()];
        let two = [one[0].clone(), "arn:aws:kms:us-east-1:123456789012:key/b".to_owned()];
        assert_eq!(
            KmsKeySource::new(&config).with_key_arns(&one).key_id(),
            Some(one[0].as_str())
        );
        assert_eq!(KmsKeySource::new(&config).with_key_arns(&two).key_id(), None);
        assert_eq!(KmsKeySource::new(&config).with_key_arns(&[]).key_id(), None);
    }

    fn classified(code: &str, status: Option<u16>) -> KeyError {
        let metadata = aws_sdk_kms::error::ErrorMetadata::builder()
            .code(code)
            .message("from KMS")
            .build();
        let err = SdkError::service_error(DecryptError::generic(metadata), ());
        classify_decrypt_error(&err, status, &cluster())
    }

    #[test]
    fn kms_error_codes_are_classified_as_aws_sends_them() {
        for code in PERMANENT_CODES {
            let err = classified(code, Some(400));
            assert_eq!(
                (err.failure_kind(), err.is_configuration()),
                (FailureKind::Permanent, false),
                "{code}"
            );
            assert!(err.to_string().contains(code));
        }
        for code in [
            "ThrottlingException",
            "KMSInternalException",
            "DependencyTimeoutException",
            "KMSInvalidStateException",
            "DisabledException",
            "KeyUnavailableException",
            "RequestTimeout",
            "SomethingNew",
        ] {
            let err = classified(code, Some(500));
            assert_eq!(
                (err.failure_kind(), err.is_configuration()),
                (FailureKind::Transient, false),
                "{code}"
            );
            assert!(
                err.to_string().contains(code) && err.to_string().contains("HTTP 500"),
                "{err}"
            );
        }
        for (code, fix) in [
            ("AccessDeniedException", "kms:Decrypt"),
            ("NotFoundException", "DAS_KMS_KEY_ARN"),
            ("UnrecognizedClientException", "credentials"),
            ("ExpiredTokenException", "credentials"),
        ] {
            let err = classified(code, Some(400));
            assert_eq!(
                (err.failure_kind(), err.is_configuration()),
                (FailureKind::Transient, true),
                "{code}"
            );
            assert!(err.to_string().contains(fix), "{err}");
        }
    }

    #[test]
    fn timeouts_and_network_errors_are_transient() {
        let timeout: SdkError<DecryptError, ()> = SdkError::timeout_error("attempt timeout");
        let err = classify_decrypt_error(&timeout, None, &cluster());
        assert_eq!(
            (err.failure_kind(), err.is_configuration()),
            (FailureKind::Transient, false)
        );
        let network: SdkError<DecryptError, ()> =
            SdkError::dispatch_failure(aws_sdk_kms::error::ConnectorError::io("connection refused".into()));
        let err = classify_decrypt_error(&network, None, &cluster());
        assert_eq!(
            (err.failure_kind(), err.is_configuration()),
            (FailureKind::Transient, false)
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded_in_entries() {
        let limits = KeyCacheLimits {
            max_entries: 3,
            ttl: Duration::from_secs(900),
        };
        let cache = KeyCache::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            limits,
        );
        for blob in [b"a", b"b", b"c", b"d", b"e"] {
            cache.keyring(blob, &cluster()).await.unwrap();
        }
        assert_eq!(cache.len(), 3);
        cache.keyring(b"e", &cluster()).await.unwrap();
        assert_eq!(cache.stats().source_calls, 5, "the newest key is still cached");
    }

    #[tokio::test]
    async fn the_cache_is_bounded_in_age() {
        let limits = KeyCacheLimits {
            max_entries: 3,
            ttl: Duration::from_millis(20),
        };
        let cache = KeyCache::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            limits,
        );
        cache.keyring(b"e", &cluster()).await.unwrap();
        // Sleeping guarantees at least this long has passed, whatever the machine's load.
        tokio::time::sleep(Duration::from_millis(60)).await;
        cache.keyring(b"e", &cluster()).await.unwrap();
        assert_eq!(cache.stats().source_calls, 2, "an expired key is fetched again");
    }

    #[test]
    fn kms_rejections_are_permanent_outages_and_configuration_transient() {
        let rejected = KeyError::Rejected {
            resource: "cluster-A".into(),
            code: "InvalidCiphertextException".into(),
            message: String::new(),
        };
        let outage = KeyError::Unavailable {
            resource: "cluster-A".into(),
            detail: "timeout".into(),
        };
        assert_eq!(rejected.failure_kind(), FailureKind::Permanent);
        assert_eq!(outage.failure_kind(), FailureKind::Transient);
        assert_eq!(KeyError::BlobSize(6145).failure_kind(), FailureKind::Permanent);
        let configuration = KeyError::Configuration {
            resource: "cluster-A".into(),
            code: "AccessDeniedException".into(),
            fix: "grant kms:Decrypt",
            detail: String::new(),
        };
        assert_eq!(configuration.failure_kind(), FailureKind::Transient);
        assert!(configuration.is_configuration() && !outage.is_configuration() && !rejected.is_configuration());
    }
}
