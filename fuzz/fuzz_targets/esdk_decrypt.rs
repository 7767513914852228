//! ESDK messages: raw bytes, or edits of a valid 0x0178/0x0378 message (see `das_archiver_fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| das_archiver_fuzz::esdk_decrypt(data));
