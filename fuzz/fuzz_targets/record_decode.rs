//! DAS Kinesis records: raw record JSON, or a valid record around a fuzzed payload or gzip stream
//! (see `das_archiver_fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| das_archiver_fuzz::record_decode(data));
