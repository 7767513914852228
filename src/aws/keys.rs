//! Data keys: each record's KMS ciphertext blob becomes the raw AES keyring that opens its message.
//!
//! [`DataKeySource`] is the one-method edge to KMS ([`KmsKeySource`]) or to a key the user already holds
//! ([`StaticKeySource`]). [`KeyCache`] sits in front of it for the life of a warm container: keyed by
//! (blob, encryption context), bounded in entries and age, one KMS call for any number of concurrent
//! lookups of the same blob, and it stores prepared keyrings so the AES key schedule runs once. Key
//! bytes live only in zeroizing buffers and inside the keyring; this module never logs them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use tokio::sync::OnceCell;
// Tokio's clock, so tests can move time forward instead of sleeping.
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::pipeline::envelope::ResourceId;
use crate::pipeline::error::{Classify, FailureKind};
use crate::pipeline::esdk::RawAesKeyring;

/// Why a data key could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// KMS refused this ciphertext for this context: the record itself is bad (permanent).
    #[error("KMS rejected the record's data key for {resource} ({code}: {message}); the key blob is corrupt or belongs to another stream")]
    Rejected {
        /// The resource whose encryption context was used.
        resource: String,
        /// The KMS error code, e.g. `InvalidCiphertextException`.
        code: String,
        /// The KMS error message.
        message: String,
    },
    /// KMS could not answer now: throttling, 5xx, timeout, network, access denied, disabled key (transient).
    #[error("KMS Decrypt failed for {resource} and will be retried: {detail}")]
    Unavailable {
        /// The resource whose key was being decrypted.
        resource: String,
        /// What the SDK reported.
        detail: String,
    },
    /// KMS returned a key that is not an AES key (permanent).
    #[error("KMS returned a {0}-byte data key; a DAS data key is 32 bytes")]
    BadKey(usize),
}

impl Classify for KeyError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Rejected { .. } | Self::BadKey(_) => FailureKind::Permanent,
            Self::Unavailable { .. } => FailureKind::Transient,
        }
    }
}

/// Turns a record's key blob into the 32-byte wrapping key.
#[async_trait]
pub trait DataKeySource: Send + Sync {
    /// Decrypts `blob` under the encryption context of `resource`.
    async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}

#[async_trait]
impl DataKeySource for Box<dyn DataKeySource> {
    async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.as_ref().decrypt(blob, resource).await
    }
}

/// How long one KMS `Decrypt` attempt may take. KMS answers in milliseconds; without a bound, a
/// network that drops packets (a VPC without a route or endpoint to KMS) holds the batch until the
/// Lambda's own timeout, which retries it blind and logs nothing useful.
pub const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one KMS `Decrypt` may take with the SDK's retries (3 attempts and their back-off).
pub const KMS_OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// KMS `Decrypt` with the DAS encryption context.
#[derive(Debug, Clone)]
pub struct KmsKeySource {
    client: aws_sdk_kms::Client,
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
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(attempt)
            .operation_timeout(operation)
            .build();
        // The SDK merges these with the configuration's own (connect timeout and so on).
        let kms = aws_sdk_kms::config::Builder::from(config)
            .timeout_config(timeouts)
            .build();
        Self {
            client: aws_sdk_kms::Client::from_conf(kms),
        }
    }
}

#[async_trait]
impl DataKeySource for KmsKeySource {
    async fn decrypt(&self, blob: &[u8], resource: &ResourceId) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let (context_key, context_value) = resource.encryption_context();
        let response = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(context_key, context_value)
            .send()
            .await
            .map_err(|err| {
                let resource = resource.to_string();
                match err.as_service_error() {
                    Some(
                        e @ (DecryptError::InvalidCiphertextException(_) | DecryptError::IncorrectKeyException(_)),
                    ) => KeyError::Rejected {
                        resource,
                        code: e.code().unwrap_or("InvalidCiphertextException").to_owned(),
                        message: e.message().unwrap_or_default().to_owned(),
                    },
                    _ => KeyError::Unavailable {
                        resource,
                        detail: DisplayErrorContext(&err).to_string(),
                    },
                }
            })?;
        let plaintext = Zeroizing::new(response.plaintext.map(Blob::into_inner).unwrap_or_default());
        Ok(plaintext)
    }
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

type CacheKey = (Vec<u8>, ResourceId);

struct Slot {
    keyring: OnceCell<Arc<RawAesKeyring>>,
    created: Instant,
}

/// A bounded, time-limited, single-flight cache of keyrings in front of a [`DataKeySource`].
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
        let slot = self.slot(blob, resource);
        if let Some(keyring) = slot.keyring.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(keyring));
        }
        let mut fetched = false;
        let keyring = slot
            .keyring
            .get_or_try_init(|| async {
                fetched = true;
                self.source_calls.fetch_add(1, Ordering::Relaxed);
                let key = self.source.decrypt(blob, resource).await?;
                RawAesKeyring::das(&key)
                    .map(Arc::new)
                    .map_err(|_| KeyError::BadKey(key.len()))
            })
            .await?;
        if !fetched {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Arc::clone(keyring))
    }

    /// The slot for a key, creating it (and making room) if needed. Holds the lock only briefly and
    /// never across an await.
    fn slot(&self, blob: &[u8], resource: &ResourceId) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let key: CacheKey = (blob.to_vec(), resource.clone());
        let now = Instant::now();
        if let Some(slot) = slots.get(&key) {
            if now.duration_since(slot.created) < self.limits.ttl {
                return Arc::clone(slot);
            }
        }
        if slots.len() >= self.limits.max_entries && !slots.contains_key(&key) {
            slots.retain(|_, s| now.duration_since(s.created) < self.limits.ttl);
            while slots.len() >= self.limits.max_entries.max(1) {
                let Some(oldest) = slots.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| k.clone()) else {
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
    async fn failures_are_not_cached() {
        let cache = KeyCache::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            KeyCacheLimits::default(),
        );
        assert!(cache.keyring(b"bad", &cluster()).await.is_err());
        assert!(cache.keyring(b"bad", &cluster()).await.is_err());
        assert_eq!(cache.stats().source_calls, 2);
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
    fn kms_rejections_are_permanent_and_outages_transient() {
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
    }
}
