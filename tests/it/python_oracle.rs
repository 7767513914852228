//! Our ESDK code against the official Python `aws-encryption-sdk` 4.x, in both directions:
//! messages the Python SDK encrypts in DAS shape decrypt here to the same bytes, and records we
//! encode decrypt in the Python SDK exactly the way the AWS documentation's DAS sample does it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use das_archiver::activity::payload_json;
use das_archiver::envelope::Envelope;
use das_archiver::esdk::{decrypt, encrypt, DecryptOptions, EncryptOptions, RawAesKeyring, Suite, SuiteId};
use das_archiver::record::{self, DecodeOptions, EncodeOptions};
use serde_json::{json, Value};

const KEY: [u8; 32] = [
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c,
    0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4,
];

fn key_hex() -> String {
    hex::encode(KEY)
}

#[test]
fn messages_the_python_sdk_encrypts_in_das_shape_decrypt_here_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let sizes = [0usize, 3, 4096, 5000, 262_144, 1 << 20, 5 << 20];
    for suite in ["0178", "0378"] {
        for frame_length in [4096u32, 262_144] {
            for (i, size) in sizes.iter().enumerate() {
                let name = format!("{suite}-f{frame_length}-{size}");
                let plaintext = common::pseudo_random_bytes(*size, i as u64 + u64::from(frame_length));
                std::fs::write(dir.path().join(&name), &plaintext).unwrap();
                cases.push(json!({"name": name, "wrapping_key_hex": key_hex(), "suite": suite,
                    "frame_length": frame_length, "plaintext": dir.path().join(&name),
                    "ciphertext": dir.path().join(format!("{name}.esdk"))}));
                expected.push((name, suite, frame_length, plaintext));
            }
        }
    }
    // Every other suite, and non-framed bodies, with a caller encryption context.
    for suite in Suite::all() {
        for frame_length in [0u32, 512] {
            let name = format!("{:04x}-f{frame_length}-ctx", suite.id.0);
            let plaintext = common::pseudo_random_bytes(2048, u64::from(suite.id.0));
            std::fs::write(dir.path().join(&name), &plaintext).unwrap();
            let suite_hex = format!("{:04x}", suite.id.0);
            cases.push(json!({"name": name, "wrapping_key_hex": key_hex(), "suite": suite_hex,
                "frame_length": frame_length, "plaintext": dir.path().join(&name),
                "ciphertext": dir.path().join(format!("{name}.esdk")),
                "encryption_context": {"purpose": "das-archiver test", "aaa": "first"}}));
            expected.push((name, "", frame_length, plaintext));
        }
    }
    common::run_oracle("encrypt", &json!({ "cases": cases }), dir.path());

    let keyring = RawAesKeyring::das(&KEY).unwrap();
    for (name, suite, frame_length, plaintext) in &expected {
        let message = std::fs::read(dir.path().join(format!("{name}.esdk"))).unwrap();
        let out = decrypt(&message, &keyring, &DecryptOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out.plaintext == *plaintext, "{name}: plaintext differs");
        assert_eq!(out.frame_length, *frame_length, "{name}");
        if !suite.is_empty() {
            assert_eq!(format!("{:04x}", out.suite.0), *suite, "{name}");
        }
        // A tampered copy must fail here too.
        let mut tampered = message.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(
            decrypt(&tampered, &keyring, &DecryptOptions::default()).is_err(),
            "{name}: tampered accepted"
        );
    }
}

fn sample_events(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({"logTime":"2026-11-22 03:00:00.123456+00","statementId":i,"substatementId":1,"objectType":"TABLE",
                "command":"SELECT","objectName":"pgbench_accounts","databaseName":"bench","dbUserName":"app",
                "remoteHost":"10.0.0.5","remotePort":"51234","sessionId":"6561a0b1.1f2c","rowCount":1,
                "commandText":format!("SELECT abalance FROM pgbench_accounts WHERE aid = {i};"),"paramList":[],
                "pid":8123,"clientApplication":"pgbench","exitCode":null,"class":"READ","serverVersion":"16.4",
                "serverType":"PostgreSQL","serviceName":"Amazon Aurora PostgreSQL-Compatible edition",
                "serverHost":"10.0.1.10","netProtocol":"TCP","dbProtocol":"Postgres 3.0","type":"record",
                "errorMessage":null,"startTime":null,"ünïcode":"é\"\\\n"})
        })
        .chain(std::iter::once(json!({"type":"heartbeat"})))
        .collect()
}

#[test]
fn records_we_encode_decrypt_in_the_python_sdk_the_way_the_aws_sample_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let shapes = [
        ("pg-1", EncryptOptions::aurora_postgresql(), 1),
        ("pg-500", EncryptOptions::aurora_postgresql(), 500),
        ("my-1", EncryptOptions::aurora_mysql(), 1),
        ("my-500", EncryptOptions::aurora_mysql(), 500),
        ("my-heartbeat", EncryptOptions::aurora_mysql(), 0),
    ];
    for (name, esdk, events) in shapes {
        let payload = payload_json("cluster-ABCDEFGHIJKL", "db-MNOPQRSTUV", &sample_events(events));
        let data = record::encode(
            &payload,
            &KEY,
            b"opaque-kms-blob",
            &EncodeOptions {
                version: "1.1".into(),
                esdk,
            },
        )
        .unwrap();
        std::fs::write(dir.path().join(name), &data).unwrap();
        cases.push(
            json!({"name": name, "wrapping_key_hex": key_hex(), "record": dir.path().join(name),
            "payload_out": dir.path().join(format!("{name}.json"))}),
        );
        expected.push((name, payload));
    }
    let summary = common::run_oracle("decrypt-das", &json!({ "cases": cases }), dir.path());
    assert_eq!(summary["failed"], json!({}), "{summary}");
    for (name, payload) in expected {
        let theirs: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(format!("{name}.json"))).unwrap()).unwrap();
        let ours: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(theirs, ours, "{name}");
        let header = &summary["headers"][name];
        let (suite, frame_length) = if name.starts_with("pg") {
            ("0178", 4096)
        } else {
            ("0378", 262_144)
        };
        assert_eq!(header["suite"], suite, "{name}");
        assert_eq!(header["frame_length"], frame_length, "{name}");
        // And our own decoder agrees with itself on the same record.
        let data = std::fs::read(dir.path().join(name)).unwrap();
        let decoded = record::decode(
            &Envelope::parse(&data).unwrap(),
            &RawAesKeyring::das(&KEY).unwrap(),
            &DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(decoded.json, payload);
    }
}

#[test]
fn messages_we_encrypt_in_every_suite_and_framing_decrypt_in_the_python_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = RawAesKeyring::das(&KEY).unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for suite in Suite::all() {
        for (frame_length, size) in [
            (0u32, 1000usize),
            (128, 0),
            (128, 256),
            (4096, 10_000),
            (262_144, 300_000),
        ] {
            let name = format!("{:04x}-f{frame_length}-{size}", suite.id.0);
            let plaintext = common::pseudo_random_bytes(size, u64::from(frame_length) ^ size as u64);
            let options = EncryptOptions {
                suite: suite.id,
                frame_length,
                encryption_context: vec![("tenant".into(), "das".into())],
            };
            let message = encrypt(&plaintext, &keyring, &options).unwrap();
            std::fs::write(dir.path().join(&name), &message).unwrap();
            cases.push(
                json!({"name": name, "wrapping_key_hex": key_hex(), "ciphertext": dir.path().join(&name),
                "plaintext_out": dir.path().join(format!("{name}.out"))}),
            );
            expected.push((name, suite.id, frame_length, plaintext));
        }
    }
    let summary = common::run_oracle("decrypt", &json!({ "cases": cases }), dir.path());
    assert_eq!(summary["failed"], json!({}), "{summary}");
    for (name, suite, frame_length, plaintext) in expected {
        let theirs = std::fs::read(dir.path().join(format!("{name}.out"))).unwrap();
        assert!(theirs == plaintext, "{name}: the Python SDK decrypted different bytes");
        assert_eq!(summary["headers"][&name]["suite"], format!("{:04x}", suite.0), "{name}");
        assert_eq!(summary["headers"][&name]["frame_length"], frame_length, "{name}");
        if suite == SuiteId::AES_256_GCM_HKDF_SHA384_ECDSA_P384 {
            let context = &summary["headers"][&name]["encryption_context"];
            assert_eq!(
                context["aws-crypto-public-key"].as_str().map(str::len),
                Some(68),
                "{name}"
            );
        }
    }
}
