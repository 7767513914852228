//! The AWS edges (feature `aws`): where the pure [`crate::pipeline`] meets KMS, S3 and the
//! environment. Each edge sits behind a small trait ([`keys::DataKeySource`], [`archive::Sink`]) so
//! the batch logic is tested without AWS.
//!
//! [`config`] reads the environment → [`keys`] turns key blobs into keyrings (KMS, cached) →
//! [`batch`] runs one Kinesis batch through the pipeline → [`archive`] names the objects, [`compress`]
//! compresses them (in parallel) and [`archive`]'s sinks write them; [`outputs`] says what is written
//! where. Imports go one way, down that list (`tests/it/architecture.rs` checks it): `batch` uses
//! `archive`, `archive` uses `compress`, never the reverse.

pub mod archive;
pub mod batch;
pub mod compress;
pub mod config;
pub mod keys;
pub mod outputs;

/// The SDK's bound on one attempt and on the whole call with its retries, for the KMS and S3
/// clients alike; the SDK merges it with the configuration's own timeouts (connect and so on).
fn timeouts(attempt: std::time::Duration, operation: std::time::Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}
