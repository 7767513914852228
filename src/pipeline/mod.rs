//! The pure decoding core, in the order a record flows through it: [`envelope`] → [`esdk`] →
//! [`gunzip`] → [`activity`] → [`filter`] → [`ndjson`], with [`record`] doing one record end to end.
//!
//! Nothing here may do I/O, be `async`, read the environment or the clock, or name anything in
//! `crate::aws`: the edges hand this code bytes and keys, and take bytes back. `tests/it/architecture.rs`
//! enforces it, and `make lint` builds this folder with no crate features.

pub mod activity;
pub mod envelope;
pub mod error;
pub mod esdk;
pub mod filter;
pub mod gunzip;
pub mod json_error;
pub mod mask;
pub mod ndjson;
pub mod ocsf;
#[cfg(feature = "ocsf-parquet")]
pub mod ocsf_parquet;
pub mod record;
pub mod rules;
pub mod simulate;
pub mod utc;
