//! The AWS edges (feature `aws`): where the pure [`crate::pipeline`] meets KMS, S3 and the
//! environment. Each edge sits behind a small trait ([`keys::DataKeySource`], [`archive::Sink`]) so
//! the batch logic is tested without AWS.
//!
//! [`config`] reads the environment → [`keys`] turns key blobs into keyrings (KMS, cached) →
//! [`batch`] runs one Kinesis batch through the pipeline → [`archive`] names and writes the objects.

pub mod archive;
pub mod batch;
pub mod config;
pub mod keys;
