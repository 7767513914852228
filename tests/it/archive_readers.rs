//! Archive objects as other programs read them. A large `.ndjson.gz` object is one gzip member
//! whose deflate stream was compressed in parallel chunks, and a `.ndjson.zst` object one zstd
//! frame; every reader people query archives with must read every line of them, in order: GNU
//! `gzip -dc`, Python's `gzip`, flate2's single-member `GzDecoder`, DuckDB's `read_json`, pyarrow's
//! JSON reader, Java's `GZIPInputStream` over a stream whose `available()` is 0 (how Trino, Athena's
//! engine, read gzip text before its release 422), and for zstd DuckDB, pyarrow and the `zstd` CLI.
//! A reader that stops after the first gzip member would lose lines without an error. flate2's
//! `GzDecoder` is such a reader on every version (shown on a two-member file below). Java's is on
//! some builds: through this test's stream, Debian 12's OpenJDK 17.0.15 read 245,075 of the 490,150
//! bytes of a two-member file, while 17.0.21.1 and Temurin 25.0.3 read both (measured 2026-12-02).
//! The fix that reads on after a member's trailer (JDK-7036144, JDK 23, backported to 17 and 21)
//! was reverted in 2026 (JDK-8381670; in Amazon Corretto 17, 21 and 25 too:
//! <https://github.com/corretto/corretto-17/pull/268>), and JDK 27 makes reading on opt-in
//! (`jdk.util.gzip.tryReadAheadAfterTrailer`, <https://github.com/openjdk/jdk/pull/31748>): one
//! member is the only layout every build reads whole.
//!
//! Needs the venv's Python (`make venv`: pyarrow, duckdb), a JDK's `java` and the `zstd` CLI
//! (`make test-tools`, which `make test` runs first).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;
use das_archiver::archive::Layout;
use das_archiver::compress::Compression;

/// About 2.6 MB of NDJSON lines, one "record" of 20 lines at a time: three deflate chunks.
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

/// The rows a table reader must return for `records()`, as `archive_read.py` prints them.
fn rows() -> String {
    (0..2_000)
        .flat_map(|r| (0..20).map(move |e| format!("{r}\t{e}\tSELECT {} FROM t{e}\n", r * 31 + e)))
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

/// The object of `records()` written as `object.ndjson.<extension>` in a new temporary directory.
fn written(compression: Compression) -> (tempfile::TempDir, PathBuf) {
    let extension = match compression {
        Compression::Gzip => "gz",
        Compression::Zstd => "zst",
        Compression::None => "",
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("object.ndjson.{extension}"));
    std::fs::write(&path, object(compression, &records())).unwrap();
    (dir, path)
}

/// The standard output of `command`, which must succeed; `reader` names it in failures.
fn run(reader: &str, command: &mut Command) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{reader} could not be started ({e}); run `make test-tools`"));
    assert!(
        out.status.success(),
        "{reader} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts that `reader` read exactly `expected`, every line in order.
fn assert_every_line(reader: &str, read: &[u8], expected: &[u8]) {
    let lines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(lines(read), lines(expected), "{reader}: lines read");
    assert!(
        read == expected,
        "{reader}: the lines read differ from the lines written"
    );
}

fn oracle_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/archive_read.py")
}

/// What `archive_read.py <reader>` reads from `path`.
fn python_reader(reader: &str, path: &Path) -> Vec<u8> {
    run(
        reader,
        Command::new(common::oracle_python())
            .arg(oracle_script())
            .arg(reader)
            .arg(path),
    )
}

/// What Java's `GZIPInputStream` reads from `path` through a stream whose `available()` is 0.
fn java_reader(path: &Path) -> Vec<u8> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/GzipAvailableZero.java");
    run("java GZIPInputStream", Command::new("java").arg(source).arg(path))
}

/// What flate2's `GzDecoder`, which reads one member, reads from `body`, and the bytes left after it.
fn single_member_reader(body: &[u8]) -> (Vec<u8>, usize) {
    let mut decoder = flate2::bufread::GzDecoder::new(body);
    let mut plain = Vec::new();
    decoder.read_to_end(&mut plain).unwrap();
    (plain, decoder.into_inner().len())
}

#[test]
fn a_large_gzip_object_is_one_member_that_flate2_gz_decoder_reads_whole() {
    let lines = records();
    assert!(
        lines.concat().len() > 2 * das_archiver::compress::CHUNK_LEN,
        "several chunks"
    );
    let body = object(Compression::Gzip, &lines);
    let (read, left) = single_member_reader(&body);
    assert_every_line("flate2 GzDecoder", &read, &lines.concat());
    assert_eq!(left, 0, "nothing follows the first gzip member");
}

#[test]
fn gnu_gzip_reads_every_line_of_a_gzip_object() {
    let (_dir, path) = written(Compression::Gzip);
    let read = run("gzip -dc", Command::new("gzip").arg("-dc").arg(&path));
    assert_every_line("gzip -dc", &read, &records().concat());
}

#[test]
fn python_gzip_reads_every_line_of_a_gzip_object() {
    let (_dir, path) = written(Compression::Gzip);
    assert_every_line("Python gzip", &python_reader("python-gzip", &path), &records().concat());
}

#[test]
fn java_gzip_input_stream_over_a_zero_available_stream_reads_every_line_of_a_gzip_object() {
    let (_dir, path) = written(Compression::Gzip);
    assert_every_line("java GZIPInputStream", &java_reader(&path), &records().concat());
}

#[test]
fn duckdb_read_json_reads_every_line_of_gzip_and_zstd_objects() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        let (_dir, path) = written(compression);
        let reader = format!("DuckDB read_json ({compression:?})");
        assert_every_line(&reader, &python_reader("duckdb", &path), rows().as_bytes());
    }
}

#[test]
fn pyarrow_json_reads_every_line_of_gzip_and_zstd_objects() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        let (_dir, path) = written(compression);
        let reader = format!("pyarrow.json ({compression:?})");
        assert_every_line(&reader, &python_reader("pyarrow", &path), rows().as_bytes());
    }
}

#[test]
fn the_zstd_cli_reads_every_line_of_a_zstd_object() {
    let (_dir, path) = written(Compression::Zstd);
    let read = run("zstd -dc", Command::new("zstd").arg("-dc").arg(&path));
    assert_every_line("zstd -dc", &read, &records().concat());
}

#[test]
fn a_zstd_object_is_one_frame_holding_every_line() {
    let lines = records();
    let body = object(Compression::Zstd, &lines);
    let mut decoder = zstd::stream::Decoder::new(body.as_slice()).unwrap().single_frame();
    let mut first_frame = Vec::new();
    decoder.read_to_end(&mut first_frame).unwrap();
    assert_every_line("zstd single frame", &first_frame, &lines.concat());
}

/// The control: flate2's `GzDecoder` loses lines silently on a file of several gzip members (what
/// archive objects were before), so its reading every line of an object means something.
#[test]
fn flate2_gz_decoder_stops_after_the_first_member_of_a_two_member_file() {
    let lines = records();
    let (first, second) = lines.split_at(1_000);
    let two_members = [
        das_archiver::gunzip::gzip(&first.concat()),
        das_archiver::gunzip::gzip(&second.concat()),
    ]
    .concat();
    let (read, left) = single_member_reader(&two_members);
    assert!(
        read == first.concat() && left > 0,
        "flate2 GzDecoder reads the first member only"
    );

    // Java's GZIPInputStream is not asserted here: whether it reads on after a trailer depends on the
    // JDK build (module doc).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-members.ndjson.gz");
    std::fs::write(&path, &two_members).unwrap();
    let read = run("gzip -dc", Command::new("gzip").arg("-dc").arg(&path));
    assert!(read == lines.concat(), "gzip -dc reads both members");
}

/// The README's "top statement shapes per user this week" query (section "Sensitive data"), as written.
fn readme_top_shapes_query() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("## Sensitive data").unwrap()..];
    let start = section.find("```sql\n").unwrap() + "```sql\n".len();
    section[start..start + section[start..].find("```").unwrap()].to_owned()
}

#[test]
fn the_readme_top_statement_shapes_query_runs_in_duckdb_over_an_archive_das_replay_wrote() {
    use das_archiver::simulate::{lambda_kinesis_event, Engine, Simulator};
    use std::collections::BTreeMap;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let keyring = das_archiver::esdk::RawAesKeyring::das(&hex::decode(KEY).unwrap()).unwrap();
    let mut sim = Simulator::new(
        Engine::AuroraPostgresql,
        "cluster-SHAPES00000000000000000001",
        "db-SHAPES1",
        5,
    );
    let records: Vec<Vec<u8>> = (0..8)
        .map(|_| {
            let events = sim.events(50);
            let payload = sim.payload(&events);
            das_archiver::record::encode_with(&payload, &keyring, b"key-blob", &Default::default()).unwrap()
        })
        .collect();
    let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-cluster-SHAPES00000000000000000001";
    let event = lambda_kinesis_event(arn, "shardId-000000000000", &records, 0, 1_795_316_400.0);
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(&event).unwrap()).unwrap();
    let out_dir = dir.path().join("out");
    run(
        "das replay",
        Command::new(env!("CARGO_BIN_EXE_das"))
            .arg("replay")
            .arg(&event_path)
            .args(["--out-dir", out_dir.to_str().unwrap(), "--wrapping-key", KEY])
            .env_remove("DAS_WRAPPING_KEY")
            .env_remove("DAS_MASK_SQL"),
    );

    // What the query must return, from the archive's lines: per user, the ten most frequent shapes.
    let objects: Vec<PathBuf> = common::files_below(&out_dir).iter().map(|f| out_dir.join(f)).collect();
    assert!(
        objects.iter().all(|o| o.to_string_lossy().ends_with(".ndjson.gz")),
        "{objects:?}"
    );
    let mut counts: BTreeMap<(String, String), (u64, BTreeSet<String>)> = BTreeMap::new();
    for object in &objects {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(object).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        for line in text.lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let (Some(user), Some(print)) = (event["dbUserName"].as_str(), event["commandFingerprint"].as_str()) else {
                continue;
            };
            let entry = counts.entry((user.to_owned(), print.to_owned())).or_default();
            entry.0 += 1;
            entry
                .1
                .insert(event["commandText"].as_str().unwrap_or_default().to_owned());
        }
    }
    let mut expected: Vec<(String, String, u64)> = counts
        .iter()
        .map(|((u, f), (n, _))| (u.clone(), f.clone(), *n))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    expected.retain(|(u, _, _)| {
        let n = per_user.entry(u.clone()).or_default();
        *n += 1;
        *n <= 10
    });
    assert!(
        expected.len() > 3,
        "the simulated traffic has several users and shapes: {expected:?}"
    );

    // The archive as the Glue table shows it, in DuckDB: the line's fields, plus the partition columns as
    // strings, dated today so that "this week" holds them (DuckDB's own hive partitioning would read `dt`
    // from the object paths, typed DATE: turned off).
    let script = "import duckdb, json, sys\n\
        files = sys.argv[1:]\n\
        con = duckdb.connect()\n\
        con.execute('CREATE SCHEMA das_archive_mystack')\n\
        con.execute(\"CREATE TABLE das_archive_mystack.activity AS SELECT *, 'cluster-X' AS resource_id, \
          CAST(current_date AS VARCHAR) AS dt, '00' AS hour FROM read_json(?, format = 'newline_delimited', hive_partitioning = false, \
          union_by_name = true)\", [files])\n\
        print(json.dumps(con.execute(sys.stdin.read()).fetchall()))\n";
    let mut child = Command::new(common::oracle_python())
        .args(["-c", script])
        .args(&objects)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), readme_top_shapes_query().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<(String, String, u64, String)> = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, String, u64)> = rows.iter().map(|(u, f, n, _)| (u.clone(), f.clone(), *n)).collect();
    assert_eq!(got, expected);
    for (user, print, _, example) in &rows {
        assert!(
            counts[&(user.clone(), print.clone())].1.contains(example),
            "{example} is one of its shape's statements"
        );
    }
}
