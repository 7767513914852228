//! SQL statements of any dialect through the masker and the fingerprint (see `das_archiver_fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| das_archiver_fuzz::mask_sql(data));
