//! Archive objects as other programs read them: a large `.ndjson.gz` object is several gzip members
//! (compressed in parallel), and a `.ndjson.zst` object one zstd frame; GNU `gzip -d` and Python's
//! `gzip` module must read each member, in order, as one stream; a zstd reader that stops after
//! the first frame must still get every line.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use crate::common;
use das_archiver::archive::{Compression, Layout};

/// About 4 MB of NDJSON lines, one "record" of 20 lines at a time: several gzip members.
fn records() -> Vec<Vec<u8>> {
    (0..2_000)
        .map(|r| {
            (0..20)
                .map(|e| {
                    format!(
                        "{{\"record\":{r},\"event\":{e},\"commandText\":\"SELECT {} FROM t{}\"}}\n",
                        r * 31 + e,
                        e
                    )
                })
                .collect::<String>()
                .into_bytes()
        })
        .collect()
}

fn object(compression: Compression, lines: &[Vec<u8>]) -> Vec<u8> {
    let layout = Layout {
        prefix: String::new(),
        compression,
    };
    let pieces: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    layout.archive_object("k".into(), &pieces).body
}

#[test]
fn a_multi_member_gzip_object_reads_whole_with_gnu_gzip_and_python() {
    let lines = records();
    let body = object(Compression::Gzip, &lines);
    let members = body.windows(4).filter(|w| *w == [0x1f, 0x8b, 0x08, 0x00]).count();
    assert!(members >= 3, "expected several gzip members, found {members}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object.ndjson.gz");
    std::fs::write(&path, &body).unwrap();
    let expected = lines.concat();

    let gnu = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
    assert!(gnu.status.success(), "{}", String::from_utf8_lossy(&gnu.stderr));
    assert!(
        gnu.stdout == expected,
        "gzip -dc read {} of {} bytes",
        gnu.stdout.len(),
        expected.len()
    );

    let script = "import gzip, sys\n\
                  whole = gzip.decompress(open(sys.argv[1], 'rb').read())\n\
                  with gzip.open(sys.argv[1], 'rb') as f:\n    streamed = f.read()\n\
                  assert whole == streamed\n\
                  sys.stdout.buffer.write(whole)\n";
    let python = Command::new(common::oracle_python())
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    assert!(
        python.stdout == expected,
        "Python read {} of {} bytes",
        python.stdout.len(),
        expected.len()
    );
}

#[test]
fn a_zstd_object_is_one_frame_holding_every_line() {
    let lines = records();
    let body = object(Compression::Zstd, &lines);
    let mut decoder = zstd::stream::Decoder::new(body.as_slice()).unwrap().single_frame();
    let mut first_frame = Vec::new();
    std::io::Read::read_to_end(&mut decoder, &mut first_frame).unwrap();
    assert!(first_frame == lines.concat(), "the first frame holds every line");
}
