//! Replays the fuzz seeds (`fuzz/seeds/<target>/`) and saved crashes (`fuzz/regressions/<target>/`)
//! through exactly the code the fuzz targets run, so a fixed panic stays fixed without `cargo fuzz`.
//!
//! The harness is `fuzz/src/lib.rs`, included here as a module: the targets in `fuzz/fuzz_targets/` are
//! one-line calls into it. A panic in any input fails the test that replays its directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

/// The fuzz harness, shared with the fuzz crate.
#[path = "../../fuzz/src/lib.rs"]
#[allow(unreachable_pub)]
mod harness;

/// Every file in `fuzz/<kind>/<target>/` (none if the directory does not exist), sorted by name.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

/// Runs every input of a target through its harness function, naming the file if one panics.
fn replay(kind: &str, target: &str, run: fn(&[u8])) -> usize {
    let files = inputs(kind, target);
    for file in &files {
        let data = std::fs::read(file).unwrap();
        eprintln!("{kind}/{target}: {}", file.display());
        run(&data);
    }
    files.len()
}

#[test]
fn every_esdk_decrypt_seed_runs_without_panicking() {
    assert!(
        replay("seeds", "esdk_decrypt", harness::esdk_decrypt) > 0,
        "no seeds found"
    );
}

#[test]
fn every_record_decode_seed_runs_without_panicking() {
    assert!(
        replay("seeds", "record_decode", harness::record_decode) > 0,
        "no seeds found"
    );
}

#[test]
fn every_mask_sql_seed_runs_without_panicking() {
    assert!(replay("seeds", "mask_sql", harness::mask_sql) > 0, "no seeds found");
}

#[test]
fn every_saved_mask_sql_crash_runs_without_panicking() {
    replay("regressions", "mask_sql", harness::mask_sql);
}

#[test]
fn every_saved_esdk_decrypt_crash_runs_without_panicking() {
    replay("regressions", "esdk_decrypt", harness::esdk_decrypt);
}

#[test]
fn every_saved_record_decode_crash_runs_without_panicking() {
    replay("regressions", "record_decode", harness::record_decode);
}

#[test]
fn every_base_message_decrypts_to_its_plaintext_unedited() {
    for base in harness::base_messages() {
        let decrypted = das_archiver::esdk::decrypt(
            &base.message,
            harness::keyring(),
            &das_archiver::esdk::DecryptOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", base.name));
        assert_eq!(decrypted.plaintext, base.plaintext, "{}", base.name);
    }
}
