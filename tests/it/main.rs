//! Every integration test, in one test binary: each former `tests/*.rs` file is a module here, so the
//! crate is linked into one test executable instead of twelve.
//!
//! Run one file's tests with its module path, e.g. `cargo test --all-features --test it lambda_moto::`.
//! A new test file goes in this directory with one more line below (`mod fault_kms;` for
//! `tests/it/fault_kms.rs`); it reaches the shared helpers as `use crate::common;`.

mod common;
/// Mapped OCSF events of every engine and odd shape, shared by the OCSF tests.
mod ocsf_corpus;

mod architecture;
mod archive_readers;
mod cli;
mod das_sample;
mod encoder_roundtrip;
mod esdk_vectors;
mod fault_model;
mod fleet;
mod fuzz_regressions;
mod lambda_emulator;
mod lambda_moto;
mod mask_corpus;
mod moto_harness;
mod ocsf_mapping;
mod ocsf_parquet;
mod ocsf_schema;
mod originals;
mod pseudonyms;
mod python_oracle;
mod redrive;
mod rules;
mod sample_events;
mod security_lake;
mod smoke;
mod template;
