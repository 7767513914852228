//! # das-archiver
//!
//! Turns Amazon RDS / Aurora **Database Activity Streams** records into a durable audit archive.
//!
//! The source tree is the architecture. Data flows one way, and each folder is one side of the
//! one rule that matters most: the pure core never touches AWS.
//!
//! ```text
//! Kinesis record ─► envelope ─► data key (KMS, cached) ─► esdk ─► gunzip ─► activity ─► filter ─► mask ─► ndjson ─► sink
//!                   └──────────── pipeline/ (pure) ──────────────────────────────────────────────────────┘   aws/
//! ```
//!
//! [`pipeline`], the pure core — no I/O, no `async`, no environment (checked by `tests/it/architecture.rs`
//! and by `make lint` building the library without features):
//! - [`envelope`]: the Kinesis record JSON and the KMS encryption context of a stream.
//! - [`esdk`]: AWS Encryption SDK messages (decrypt and encrypt) with the raw AES keyring.
//! - [`gunzip`]: bounded decompression.
//! - [`activity`]: the decrypted payload and its events, with lenient typed accessors.
//! - [`filter`]: which events to archive, and which fields to drop or redact (keyed pseudonyms, HMAC-SHA-256).
//! - [`mask`]: SQL literals and bind values masked per engine dialect, query fingerprints.
//! - [`ndjson`]: one self-contained output line per event.
//! - `ocsf`: OCSF 1.1.0 Datastore Activity events for Amazon Security Lake; `ocsf_parquet` (feature `ocsf-parquet`): their Parquet objects and keys.
//! - [`record`]: one record end to end, both ways (decode for archiving, encode for tests and load).
//! - [`error`]: whether a failure is permanent (quarantine) or transient (retry).
//! - [`json_error`]: JSON errors reduced to category, line and column, never quoting the input.
//! - [`utc`]: calendar arithmetic for partition names, without clocks or time zones.
//! - [`simulate`]: realistic events per engine, for tests, demos and load.
//! - `rules`: detection rules (JSON) evaluated on decoded events, with in-memory windowed counts and
//!   deterministic finding ids (delivery not built yet).
//!
//! `aws` (feature `aws`), the edges — the only code that talks to AWS, each behind a small trait:
//! - `config`: settings from the environment (the only reader of it).
//! - `keys`: data keys from KMS, cached; `keys::pseudonym`: the KMS-encrypted pseudonym key, made and opened.
//! - `batch`: one Kinesis batch end to end — archived, quarantined or retried, never lost.
//! - `archive`: object layout and the sinks (S3, a directory, memory).
//! - `compress`: archive objects' gzip (one member, compressed in parallel chunks) and zstd.
//! - `outputs`: what a deployment writes where (the archive, Security Lake), plain data.
//!
//! Within `aws`, imports go one way, down the list (`batch` → `archive` → `compress`).
//!
//! Front doors: `lambda` (the function's handler, feature `lambda`), `cli` (the `das` command,
//! feature `cli`), `logging` (log setup for both), and the binaries in `src/bin/`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod pipeline;

#[cfg(feature = "aws")]
pub mod aws;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(any(feature = "lambda", feature = "cli"))]
pub mod logging;

// The short paths (`das_archiver::esdk`, `das_archiver::batch`, …) that tests, benches, fuzz targets
// and users already name.
pub use pipeline::{activity, envelope, error, esdk, filter, gunzip, json_error, mask, ndjson, record, simulate, utc};

#[cfg(feature = "aws")]
pub use aws::{archive, batch, compress, config, keys, outputs};
