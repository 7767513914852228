//! # das-archiver
//!
//! Turns Amazon RDS / Aurora **Database Activity Streams** records into plain activity events.
//!
//! The pure decoding core follows the data one way, and the modules are named for each step:
//!
//! ```text
//! Kinesis record ─► envelope ─► [data key from KMS] ─► esdk::decrypt ─► gunzip ─► activity events
//! ```
//!
//! - [`envelope`]: the Kinesis record JSON and the KMS encryption context of a stream.
//! - [`esdk`]: AWS Encryption SDK messages (decrypt and encrypt) with the raw AES keyring.
//! - [`gunzip`]: bounded decompression.
//! - [`activity`]: the decrypted payload and its events, with lenient typed accessors.
//! - [`ndjson`]: one self-contained output line per event.
//! - [`filter`]: which events to archive, and which fields to drop or redact (pseudonymise).
//! - [`record`]: one record end to end, both ways (decode for archiving, encode for tests and load).
//! - [`simulate`]: realistic events per engine, for tests, demos and load.
//! - [`error`]: whether a failure is permanent (quarantine) or transient (retry).
//!
//! None of these modules does I/O, is `async`, or reads the environment: the edges (KMS, S3,
//! Kinesis) live elsewhere and hand the core bytes and keys.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod activity;
#[cfg(feature = "aws")]
pub mod archive;
#[cfg(feature = "aws")]
pub mod batch;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "aws")]
pub mod config;
pub mod envelope;
pub mod error;
pub mod esdk;
pub mod filter;
pub mod gunzip;
#[cfg(feature = "aws")]
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(any(feature = "lambda", feature = "cli"))]
pub mod logging;
pub mod ndjson;
pub mod record;
pub mod simulate;
pub mod utc;
