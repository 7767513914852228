//! Criterion benchmarks of the decoding core, shaped for `bench/report.py`:
//!
//! - `record/<shape>`: one Kinesis record through the Lambda's per-record path (envelope → ESDK
//!   decrypt → gunzip → parse → filter → NDJSON lines), key in hand;
//! - `record-gzip/<shape>`: 32 different records of the shape through the same path, their lines then
//!   gzip'ed as one archive object (as the Lambda compresses each object): all the CPU work records
//!   cost the Lambda;
//! - `stage-<name>/<shape>`: each stage alone on the same bytes (envelope, AES-GCM, HKDF, ECDSA P-384
//!   verify, inflate, JSON parse, gzip of the output as archive objects), so the pipeline can be read against the
//!   ceiling its stages imply.
//!
//! - `compress-<codec>/<shape>`: the lines of 32 records of the 20- and 500-event shapes compressed as
//!   one archive object with gzip level 6 (libdeflate, `DAS_COMPRESSION=gzip`), zstd level 1
//!   (`DAS_COMPRESSION=zstd`) and zstd level 3; the objects' sizes go to `target/bench-shapes/compression.json`.
//! - `compress-object/<layout>`: a whole 10,000-record batch of 20-event records (its NDJSON, the 32
//!   records of the shape over and over) gzip'ed as one archive object on a one-thread pool, so time is
//!   CPU: `one-member` is the encoder of archive objects (one gzip member, parallel deflate chunks),
//!   `multi-member-libdeflate` the layout before it (one libdeflate gzip member per chunk), kept here as
//!   the baseline; the sizes go to `target/bench-shapes/compress-object.json`.
//! - `mask/<size>`: SQL literal masking plus the query fingerprint of one PostgreSQL statement of
//!   about 100 bytes and of 2 KB (a multi-row `INSERT` full of literals): what each event with a statement costs.
//! - `rules/default-pack`: the default detection rules evaluated on 2,000 decoded events (500 of the
//!   simulator's pgbench-like mix per engine, no attack): what rules cost per event (goal ≤ 0.5 µs).
//!
//! The records are also written to `target/bench-shapes/` with their wrapping key, so that the
//! Python reference path (`bench/reference.py`) times exactly the same bytes in the same run.
//! Run with `make bench`; criterion writes its estimates to `target/criterion/`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;
use aws_lc_rs::signature;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use das_archiver::activity::{ActivityRecord, ParseLimits};
use das_archiver::archive::Layout;
use das_archiver::compress::Compression;
use das_archiver::envelope::Envelope;
use das_archiver::esdk::{decrypt, DecryptOptions, Message, RawAesKeyring};
use das_archiver::filter::{Filter, FilterSpec};
use das_archiver::gunzip::gunzip;
use das_archiver::mask::{fingerprint, mask_sql, Dialect, MaskMode};
use das_archiver::record::{self, render_record, DecodeOptions, EncodeOptions, RecordOrigin};

/// A realistic Kinesis origin: every archive line carries these.
fn origin() -> RecordOrigin {
    RecordOrigin::new(
        "shardId-000000000000",
        "49590338271490256608559692538361571095921575989136588898",
    )
}
use das_archiver::simulate::{Engine, Simulator};

const KEY: [u8; 32] = [0x24; 32];

/// One realistic record shape: `<events>-<suite>`, e.g. `20-events-0378`.
struct Shape {
    id: String,
    events: usize,
    suite: &'static str,
    /// The Kinesis record data (the DAS envelope JSON).
    data: Vec<u8>,
    /// The decompressed activity payload.
    json: Vec<u8>,
    /// The decrypted, still compressed payload.
    compressed: Vec<u8>,
    /// The NDJSON lines the record renders to.
    lines: Vec<u8>,
    /// Other records of the same shape (different statements), so that streaming gzip sees output
    /// as varied as a real object rather than one record repeated.
    others: Vec<Vec<u8>>,
}

/// Records of one shape compressed together by the gzip benchmarks, as one archive object.
const GZIP_GROUP: usize = 32;

/// Heartbeat-only, 1, 20 and 500 events; 0x0178 as Aurora PostgreSQL writes it, 0x0378 as Aurora
/// MySQL does.
fn shapes() -> Vec<Shape> {
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let filter = lambda_filter();
    let mut out = Vec::new();
    for events in [0usize, 1, 20, 500] {
        for (suite, engine) in [("0178", Engine::AuroraPostgresql), ("0378", Engine::AuroraMysql)] {
            let options = EncodeOptions {
                version: engine.record_version().into(),
                esdk: engine.encrypt_options(),
            };
            let make = |seed: u64| {
                let mut sim = Simulator::new(engine, "cluster-BENCH", "db-BENCH", seed);
                let mut list = sim.events(events);
                if events == 0 {
                    list.push(sim.heartbeat());
                }
                let json = sim.payload(&list);
                let data = record::encode_with(&json, &keyring, &[1u8; 184], &options).unwrap();
                (json, data)
            };
            let (json, data) = make(42);
            let others = (1..GZIP_GROUP as u64).map(|seed| make(42 + seed).1).collect();
            let envelope = Envelope::parse(&data).unwrap();
            let compressed = decrypt(&envelope.message, &keyring, &DecryptOptions::default())
                .unwrap()
                .plaintext;
            let lines = render_record(&envelope, &keyring, &filter, &DecodeOptions::default(), &origin())
                .unwrap()
                .lines;
            let id = match events {
                0 => format!("heartbeat-{suite}"),
                1 => format!("1-event-{suite}"),
                n => format!("{n}-events-{suite}"),
            };
            out.push(Shape {
                id,
                events,
                suite,
                data,
                json,
                compressed,
                lines,
                others,
            });
        }
    }
    out
}

/// The Lambda's default filter: everything but heartbeats.
fn lambda_filter() -> Filter {
    Filter::new(&FilterSpec {
        skip_heartbeats: true,
        ..FilterSpec::default()
    })
    .unwrap()
}

/// Writes the shapes where `bench/reference.py` reads them.
fn write_shapes(shapes: &[Shape]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-shapes");
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = Vec::new();
    for shape in shapes {
        let path = dir.join(format!("{}.json", shape.id));
        std::fs::write(&path, &shape.data).unwrap();
        manifest.push(serde_json::json!({
            "id": shape.id,
            "events": shape.events,
            "suite": shape.suite,
            "record": path,
            "record_bytes": shape.data.len(),
            "json_bytes": shape.json.len(),
            "ndjson_bytes": shape.lines.len(),
        }));
    }
    let manifest =
        serde_json::json!({"wrapping_key_hex": hex(&KEY), "gzip_group_records": GZIP_GROUP, "shapes": manifest});
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pipeline(c: &mut Criterion) {
    let shapes = shapes();
    write_shapes(&shapes);
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let filter = lambda_filter();
    let options = DecodeOptions::default();
    let one_record = |data: &[u8]| {
        let envelope = Envelope::parse(data).unwrap();
        render_record(&envelope, &keyring, &filter, &options, &origin())
            .unwrap()
            .lines
    };
    let mut group = c.benchmark_group("record");
    for shape in &shapes {
        group.throughput(Throughput::Bytes(shape.json.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(&shape.id), |b| {
            b.iter(|| one_record(black_box(&shape.data)).len())
        });
    }
    group.finish();
    // The Lambda gzips each object whole: an iteration here is a group of GZIP_GROUP different records
    // of the shape, decoded and their lines compressed as one object (bench/report.py divides).
    let layout = Layout {
        prefix: String::new(),
        compression: Compression::Gzip,
    };
    let mut group = c.benchmark_group("record-gzip");
    for shape in &shapes {
        let records: Vec<&[u8]> = std::iter::once(&shape.data[..])
            .chain(shape.others.iter().map(|r| &r[..]))
            .collect();
        group.throughput(Throughput::Bytes(shape.json.len() as u64 * GZIP_GROUP as u64));
        group.bench_function(BenchmarkId::from_parameter(&shape.id), |b| {
            b.iter(|| {
                let mut lines = Vec::new();
                for record in &records {
                    lines.extend_from_slice(&one_record(black_box(record)));
                }
                layout.archive_object(String::new(), &[&lines]).body.len()
            })
        });
    }
    group.finish();
}

fn stages(c: &mut Criterion) {
    let shapes = shapes();
    let stage = |c: &mut Criterion, name: &str, f: &dyn Fn(&Shape) -> Option<StageRun<'_>>| {
        let mut group = c.benchmark_group(format!("stage-{name}"));
        for shape in &shapes {
            if let Some(run) = f(shape) {
                group.throughput(Throughput::Bytes(shape.json.len() as u64));
                group.bench_function(BenchmarkId::from_parameter(&shape.id), |b| b.iter(&run));
            }
        }
        group.finish();
    };
    stage(c, "envelope", &|s| {
        Some(Box::new(move || {
            Envelope::parse(black_box(&s.data)).unwrap().message.len()
        }))
    });
    // Our whole ESDK decrypt, for reference (not part of the ceiling: AES-GCM and HKDF are).
    stage(c, "esdk-decrypt", &|s| {
        let message = Envelope::parse(&s.data).unwrap().message;
        let keyring = RawAesKeyring::das(&KEY).unwrap();
        Some(Box::new(move || {
            decrypt(black_box(&message), &keyring, &DecryptOptions::default())
                .unwrap()
                .plaintext
                .len()
        }))
    });
    // AES-GCM alone over the ciphertext bytes, plus the data key unwrap (32 bytes) the message needs.
    stage(c, "aes-gcm", &|s| {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
        let seal = |plain: &[u8]| {
            let mut sealed = plain.to_vec();
            let tag = key
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut sealed)
                .unwrap();
            (sealed, tag)
        };
        let (body, body_tag) = seal(&s.compressed);
        let (wrapped, wrapped_tag) = seal(&[7u8; 32]);
        Some(Box::new(move || {
            let mut out = vec![0u8; body.len()];
            let mut data_key = [0u8; 32];
            for (sealed, tag, out) in [
                (&body, &body_tag, &mut out[..]),
                (&wrapped, &wrapped_tag, &mut data_key[..]),
            ] {
                key.open_separate_gather(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    black_box(sealed),
                    tag.as_ref(),
                    out,
                )
                .unwrap();
            }
            out.len()
        }))
    });
    stage(c, "hkdf", &|s| {
        let algorithm = if s.suite == "0378" {
            hkdf::HKDF_SHA384
        } else {
            hkdf::HKDF_SHA256
        };
        Some(Box::new(move || {
            let mut okm = [0u8; 32];
            hkdf::Salt::new(algorithm, &[])
                .extract(black_box(&KEY))
                .expand(&[b"\x01\x78", &[7u8; 16]], OkmLen)
                .unwrap()
                .fill(&mut okm)
                .unwrap();
            okm.len()
        }))
    });
    stage(c, "ecdsa-p384-verify", &|s| {
        if s.suite != "0378" {
            return None;
        }
        let message = Envelope::parse(&s.data).unwrap().message;
        let parsed = Message::parse(&message, &Default::default()).unwrap();
        let public_key = base64::engine::general_purpose::STANDARD
            .decode(parsed.header.context_value("aws-crypto-public-key").unwrap())
            .unwrap();
        let signature = parsed.signature.unwrap().to_vec();
        let signed_len = parsed.signed_bytes.len();
        Some(Box::new(move || {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, &public_key)
                .verify(black_box(&message[..signed_len]), &signature)
                .unwrap();
            signed_len
        }))
    });
    stage(c, "inflate", &|s| {
        Some(Box::new(move || {
            gunzip(black_box(&s.compressed), 64 << 20).unwrap().len()
        }))
    });
    stage(c, "json-parse", &|s| {
        Some(Box::new(move || {
            ActivityRecord::parse(black_box(&s.json), ParseLimits::default())
                .unwrap()
                .events
                .len()
        }))
    });
    // Deflate of the output as the Lambda does it: the lines of GZIP_GROUP records as one object.
    stage(c, "deflate-output", &|s| {
        let filter = lambda_filter();
        let keyring = RawAesKeyring::das(&KEY).unwrap();
        let mut lines = s.lines.clone();
        for data in &s.others {
            let envelope = Envelope::parse(data).unwrap();
            let rendered = render_record(&envelope, &keyring, &filter, &DecodeOptions::default(), &origin()).unwrap();
            lines.extend_from_slice(&rendered.lines);
        }
        let layout = Layout {
            prefix: String::new(),
            compression: Compression::Gzip,
        };
        Some(Box::new(move || {
            layout.archive_object(String::new(), &[black_box(&lines)]).body.len()
        }))
    });
}

/// One stage on one shape's bytes, ready to be timed; `None` where the stage does not apply.
type StageRun<'a> = Box<dyn Fn() -> usize + 'a>;

struct OkmLen;

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        32
    }
}

/// The archive codecs compared in `make bench`: name, and the object body for some lines.
type Codec = (&'static str, fn(&[u8]) -> Vec<u8>);

const CODECS: [Codec; 3] = [
    ("gzip-6", |lines| {
        layout(Compression::Gzip).archive_object(String::new(), &[lines]).body
    }),
    ("zstd-1", |lines| {
        layout(Compression::Zstd).archive_object(String::new(), &[lines]).body
    }),
    ("zstd-3", |lines| zstd::bulk::compress(lines, 3).unwrap()),
];

fn layout(compression: Compression) -> Layout {
    Layout {
        prefix: String::new(),
        compression,
    }
}

/// gzip-6 against zstd 1 and 3 on the output of GZIP_GROUP records of the 20- and 500-event shapes:
/// time per object (bench/report.py divides by the group) and object size, written beside the shapes.
fn compression(c: &mut Criterion) {
    let filter = lambda_filter();
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let mut sizes = serde_json::Map::new();
    let objects: Vec<(String, Vec<u8>)> = shapes()
        .into_iter()
        .filter(|s| s.events == 20 || s.events == 500)
        .map(|s| {
            let mut lines = s.lines.clone();
            for data in &s.others {
                let envelope = Envelope::parse(data).unwrap();
                let rendered =
                    render_record(&envelope, &keyring, &filter, &DecodeOptions::default(), &origin()).unwrap();
                lines.extend_from_slice(&rendered.lines);
            }
            (s.id, lines)
        })
        .collect();
    for (name, compress) in CODECS {
        let mut group = c.benchmark_group(format!("compress-{name}"));
        for (id, lines) in &objects {
            let entry = sizes
                .entry(id.clone())
                .or_insert_with(|| serde_json::json!({"ndjson_bytes": lines.len()}));
            entry[name] = compress(lines).len().into();
            group.throughput(Throughput::Bytes(lines.len() as u64));
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter(|| compress(black_box(lines)).len())
            });
        }
        group.finish();
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-shapes");
    std::fs::create_dir_all(&dir).unwrap();
    let doc = serde_json::json!({"group_records": GZIP_GROUP, "shapes": sizes});
    std::fs::write(dir.join("compression.json"), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// Records in the `compress-object` benchmark's object: a whole Lambda batch.
const OBJECT_RECORDS: usize = 10_000;

/// Bytes of NDJSON per member of the baseline layout (its `MEMBER_LEN`).
const BASELINE_MEMBER_LEN: usize = 1 << 20;

thread_local! {
    static BASELINE: std::cell::RefCell<(libdeflater::Compressor, Vec<u8>, Vec<u8>)> = std::cell::RefCell::new((
        libdeflater::Compressor::new(libdeflater::CompressionLvl::default()),
        Vec::new(),
        Vec::new(),
    ));
}

/// Archive objects' gzip before issue 21 (kept as the baseline): the lines cut into chunks of at
/// least 1 MiB at record boundaries, each chunk one libdeflate level-6 gzip member on the CPU pool,
/// with per-thread compressor and buffers.
fn multi_member_libdeflate(pieces: &[&[u8]]) -> Vec<u8> {
    use rayon::prelude::*;
    let mut chunks: Vec<&[&[u8]]> = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (index, piece) in pieces.iter().enumerate() {
        len += piece.len();
        if len >= BASELINE_MEMBER_LEN {
            chunks.push(&pieces[start..=index]);
            (start, len) = (index + 1, 0);
        }
    }
    if start < pieces.len() || chunks.is_empty() {
        chunks.push(&pieces[start..]);
    }
    let members: Vec<Vec<u8>> = chunks
        .par_iter()
        .map(|chunk| {
            BASELINE.with(|state| {
                let (compressor, input, output) = &mut *state.borrow_mut();
                input.clear();
                chunk.iter().for_each(|piece| input.extend_from_slice(piece));
                output.resize(compressor.gzip_compress_bound(input.len()), 0);
                let len = compressor.gzip_compress(input, output).unwrap();
                output[..len].to_vec()
            })
        })
        .collect();
    members.concat()
}

/// A way to gzip an object's pieces (`compress-object`).
type ObjectLayout = dyn Fn(&[&[u8]]) -> Vec<u8> + Sync;

/// The CPU of gzip'ing a whole batch's object, one member against the multi-member baseline.
fn compress_object(c: &mut Criterion) {
    let shape = shapes().into_iter().find(|s| s.id == "20-events-0378").unwrap();
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let filter = lambda_filter();
    let mut records = vec![shape.lines.clone()];
    for data in &shape.others {
        let envelope = Envelope::parse(data).unwrap();
        let rendered = render_record(&envelope, &keyring, &filter, &DecodeOptions::default(), &origin()).unwrap();
        records.push(rendered.lines);
    }
    let pieces: Vec<&[u8]> = (0..OBJECT_RECORDS)
        .map(|i| records[i % records.len()].as_slice())
        .collect();
    let ndjson_bytes: usize = pieces.iter().map(|p| p.len()).sum();
    let one_member = |pieces: &[&[u8]]| layout(Compression::Gzip).archive_object(String::new(), pieces).body;
    let layouts: [(&str, &ObjectLayout); 2] = [
        ("multi-member-libdeflate", &multi_member_libdeflate),
        ("one-member", &one_member),
    ];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut sizes = serde_json::json!({"records": OBJECT_RECORDS, "ndjson_bytes": ndjson_bytes});
    let mut group = c.benchmark_group("compress-object");
    group.sample_size(10).sampling_mode(criterion::SamplingMode::Flat);
    group.throughput(Throughput::Bytes(ndjson_bytes as u64));
    for (name, encode) in layouts {
        let body = encode(&pieces);
        assert!(gunzip(&body, 1 << 30).unwrap().len() == ndjson_bytes);
        sizes[name] = body.len().into();
        group.bench_function(name, |b| b.iter(|| pool.install(|| encode(black_box(&pieces))).len()));
    }
    group.finish();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-shapes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compress-object.json"),
        serde_json::to_vec_pretty(&sizes).unwrap(),
    )
    .unwrap();
}

/// Statements for the `mask` group: an ordinary 100-byte one and a 2 KB one full of literals (a
/// multi-row `INSERT`), PostgreSQL dialect.
fn mask_statements() -> Vec<(&'static str, String)> {
    let short = "SELECT id, email FROM customers WHERE email = 'bob@example.com' AND created > '2026-01-01' LIMIT 10";
    let mut long = String::from("INSERT INTO payments (id, card, amount, note, created) VALUES ");
    let mut row = 0;
    while long.len() < 2_000 {
        if row > 0 {
            long.push_str(", ");
        }
        long.push_str(&format!(
            "({row}, '4111 1111 1111 {:04}', {}.{:02}, E'it''s row {row}', '2026-12-0{} 10:00:00')",
            row * 7 % 10_000,
            row * 13,
            row % 100,
            row % 9 + 1
        ));
        row += 1;
    }
    vec![("100B", short.to_owned()), ("2KB", long)]
}

/// `mask`: masking plus fingerprint of one statement, what each event with a statement costs.
fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for (id, statement) in mask_statements() {
        group.throughput(Throughput::Bytes(statement.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                let masked = mask_sql(black_box(&statement), Dialect::Postgres, MaskMode::Literals);
                (masked.len(), fingerprint(black_box(&statement), Dialect::Postgres))
            })
        });
    }
    group.finish();
}

/// `rules/default-pack`: the default pack on decoded events of every engine.
fn rules(c: &mut Criterion) {
    use das_archiver::pipeline::rules::RuleSet;
    use das_archiver::simulate::{Engine, Simulator};
    let payloads: Vec<Vec<u8>> = Engine::ALL
        .into_iter()
        .map(|engine| {
            let mut sim = Simulator::new(engine, "cluster-BENCH", "db-BENCH", 11);
            let events = sim.events(500);
            sim.payload(&events)
        })
        .collect();
    let records: Vec<ActivityRecord<'_>> = payloads
        .iter()
        .map(|p| ActivityRecord::parse(p, ParseLimits::default()).unwrap())
        .collect();
    let pack = RuleSet::default_pack().unwrap();
    let events = records.iter().map(|r| r.events.len() as u64).sum();
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(events));
    group.bench_function("default-pack", |b| {
        b.iter(|| {
            records
                .iter()
                .flat_map(|r| r.events.iter())
                .map(|e| pack.evaluate(black_box(e)).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
    targets = pipeline, stages, compression, compress_object, masking, rules
}
criterion_main!(benches);
