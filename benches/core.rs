//! Criterion benchmarks of the decoding core: whole records (envelope → decrypt → gunzip → parse →
//! NDJSON) for realistic shapes, and each stage alone on the same bytes, so the pipeline can be read
//! against its parts. Run with `make bench`; results go to `target/criterion`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use das_archiver::activity::{ActivityRecord, ParseLimits};
use das_archiver::envelope::Envelope;
use das_archiver::esdk::{decrypt, DecryptOptions, Message, RawAesKeyring};
use das_archiver::gunzip::{gunzip, gzip};
use das_archiver::ndjson::write_event_line;
use das_archiver::record::{self, DecodeOptions, EncodeOptions};
use das_archiver::simulate::{Engine, Simulator};

const KEY: [u8; 32] = [0x24; 32];

struct Shape {
    name: &'static str,
    data: Vec<u8>,
    json_len: usize,
}

fn shapes() -> Vec<Shape> {
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let mut out = Vec::new();
    for (name, engine, events) in [
        ("heartbeat/0178", Engine::AuroraPostgresql, 0),
        ("1-event/0178", Engine::AuroraPostgresql, 1),
        ("1-event/0378", Engine::AuroraMysql, 1),
        ("20-events/0178", Engine::AuroraPostgresql, 20),
        ("100-events/0178", Engine::AuroraPostgresql, 100),
        ("100-events/0378", Engine::AuroraMysql, 100),
        ("500-events/0178", Engine::AuroraPostgresql, 500),
    ] {
        let mut sim = Simulator::new(engine, "cluster-BENCH", "db-BENCH", 42);
        let mut list = sim.events(events);
        if events == 0 {
            list.push(sim.heartbeat());
        }
        let payload = sim.payload(&list);
        let options = EncodeOptions {
            version: engine.record_version().into(),
            esdk: engine.encrypt_options(),
        };
        let data = record::encode_with(&payload, &keyring, &[1u8; 184], &options).unwrap();
        out.push(Shape {
            name,
            data,
            json_len: payload.len(),
        });
    }
    out
}

/// The whole per-record path with the key already in hand.
fn decode_record(data: &[u8], keyring: &RawAesKeyring, options: &DecodeOptions, line: &mut Vec<u8>) -> usize {
    let envelope = Envelope::parse(data).unwrap();
    let payload = record::decode(&envelope, keyring, options).unwrap();
    let activity = ActivityRecord::parse(&payload.json, options.payload).unwrap();
    line.clear();
    for event in activity.events.iter().filter(|e| !e.is_heartbeat()) {
        write_event_line(event, &activity, line);
    }
    line.len()
}

fn pipeline(c: &mut Criterion) {
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let options = DecodeOptions::default();
    let mut group = c.benchmark_group("record");
    let mut line = Vec::new();
    for shape in shapes() {
        group.throughput(Throughput::Bytes(shape.json_len as u64));
        group.bench_function(shape.name, |b| {
            b.iter(|| decode_record(black_box(&shape.data), &keyring, &options, &mut line))
        });
    }
    group.finish();
}

fn stages(c: &mut Criterion) {
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let mut group = c.benchmark_group("stage");
    for shape in shapes()
        .into_iter()
        .filter(|s| s.name.starts_with("100-events") || s.name.starts_with("1-event"))
    {
        let envelope = Envelope::parse(&shape.data).unwrap();
        let compressed = decrypt(&envelope.message, &keyring, &DecryptOptions::default())
            .unwrap()
            .plaintext;
        let json = gunzip(&compressed, 64 << 20).unwrap();
        let name = shape.name;
        group.throughput(Throughput::Bytes(shape.json_len as u64));
        group.bench_function(format!("envelope-json+base64/{name}"), |b| {
            b.iter(|| Envelope::parse(black_box(&shape.data)).unwrap())
        });
        group.bench_function(format!("esdk-parse/{name}"), |b| {
            b.iter(|| {
                Message::parse(black_box(&envelope.message), &Default::default())
                    .unwrap()
                    .frames
                    .len()
            })
        });
        group.bench_function(format!("esdk-decrypt/{name}"), |b| {
            b.iter(|| decrypt(black_box(&envelope.message), &keyring, &DecryptOptions::default()).unwrap())
        });
        group.bench_function(format!("inflate/{name}"), |b| {
            b.iter(|| gunzip(black_box(&compressed), 64 << 20).unwrap())
        });
        group.bench_function(format!("json-parse/{name}"), |b| {
            b.iter(|| {
                ActivityRecord::parse(black_box(&json), ParseLimits::default())
                    .unwrap()
                    .events
                    .len()
            })
        });
        group.bench_function(format!("deflate-output/{name}"), |b| {
            b.iter(|| gzip(black_box(&json)).len())
        });
        // AES-GCM alone over the same number of bytes as the record's ciphertext.
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
        let mut sealed = compressed.clone();
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut sealed)
            .unwrap();
        let mut out = vec![0u8; sealed.len()];
        group.bench_function(format!("aes-gcm-open/{name}"), |b| {
            b.iter(|| {
                key.open_separate_gather(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    black_box(&sealed),
                    tag.as_ref(),
                    &mut out,
                )
                .unwrap()
            })
        });
        if name.ends_with("0378") {
            let signed = Message::parse(&envelope.message, &Default::default()).unwrap();
            let pk_b64 = signed.header.context_value("aws-crypto-public-key").unwrap();
            let pk = base64::engine::general_purpose::STANDARD.decode(pk_b64).unwrap();
            let sig = signed.signature.unwrap();
            group.bench_function(format!("ecdsa-p384-verify/{name}"), |b| {
                b.iter(|| {
                    signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, &pk)
                        .verify(black_box(signed.signed_bytes), sig)
                        .unwrap()
                })
            });
        }
    }
    group.throughput(Throughput::Elements(1));
    let salt = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA384, &[]);
    group.bench_function("hkdf-sha384-derive", |b| {
        b.iter(|| {
            let mut okm = [0u8; 32];
            struct Len;
            impl aws_lc_rs::hkdf::KeyType for Len {
                fn len(&self) -> usize {
                    32
                }
            }
            salt.extract(black_box(&KEY))
                .expand(&[b"\x03\x78", &[7u8; 16]], Len)
                .unwrap()
                .fill(&mut okm)
                .unwrap();
            okm
        })
    });
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
    let _ = pair.public_key();
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = pipeline, stages
}
criterion_main!(benches);
