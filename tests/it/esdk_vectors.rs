//! The ESDK decoder against the official test vectors (copied from `shared/esdk-vectors` into
//! `tests/data/esdk-vectors`): 55 positive messages must decrypt to their plaintext byte for byte, 90
//! negative ones must be rejected at the stage their manifest names, and no truncated prefix or
//! extended message may be accepted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use das_archiver::esdk::{decrypt, DecryptOptions, EsdkError, Message, RawAesKeyring, Stage, SuiteId};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/esdk-vectors");
const SET1: &str = "aws-encryption-sdk-c/tests/TestVectors/from-dafny";
const NET: &str = "aws-encryption-sdk-dafny/AwsEncryptionSDK/runtimes/net/TestVectorsNative/TestVectors/resources";

struct Vector {
    name: String,
    ciphertext: Vec<u8>,
    keyring: RawAesKeyring,
    /// Expected plaintext for positive vectors.
    plaintext: Option<Vec<u8>>,
    suite: Option<SuiteId>,
    encryption_context: Vec<(String, String)>,
    /// Acceptable failure stages for negative vectors (empty = any).
    stages: HashSet<Stage>,
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn resolve(dir: &Path, uri: &str) -> PathBuf {
    dir.join(uri.strip_prefix("file://").unwrap_or(uri))
}

/// The raw AES keyring a manifest entry describes: namespace = provider-id, name = the key's key-id.
fn keyring(keys: &Value, description: &Value) -> RawAesKeyring {
    let key = &keys["keys"][description["key"].as_str().unwrap()];
    let material = base64::engine::general_purpose::STANDARD
        .decode(key["material"].as_str().unwrap())
        .unwrap();
    RawAesKeyring::new(
        description["provider-id"].as_str().unwrap(),
        key["key-id"].as_str().unwrap(),
        &material,
    )
    .unwrap()
}

fn suite_of(test: &Value) -> Option<SuiteId> {
    test["algorithmSuiteId"]
        .as_str()
        .map(|s| SuiteId(u16::from_str_radix(s, 16).unwrap()))
}

fn set1() -> Vec<Vector> {
    let dir = Path::new(ROOT).join(SET1);
    let manifest = read_json(&dir.join("decrypt-manifest.json"));
    let keys = read_json(&resolve(&dir, manifest["keys"].as_str().unwrap()));
    let tests = manifest["tests"].as_object().unwrap();
    tests
        .iter()
        .map(|(name, test)| {
            let scenario = &test["decryption-scenario"];
            Vector {
                name: format!("from-dafny/{name}"),
                ciphertext: std::fs::read(resolve(&dir, scenario["ciphertext"].as_str().unwrap())).unwrap(),
                keyring: keyring(&keys, &scenario["decryptKeyDescription"]),
                plaintext: Some(std::fs::read(resolve(&dir, scenario["result"].as_str().unwrap())).unwrap()),
                suite: suite_of(scenario),
                encryption_context: vec![],
                stages: HashSet::new(),
            }
        })
        .collect()
}

fn net_set(folder: &str, positive: bool) -> Vec<Vector> {
    let dir = Path::new(ROOT).join(NET).join(folder);
    let manifest = read_json(&dir.join("manifest.json"));
    let keys = read_json(&resolve(&dir, manifest["keys"].as_str().unwrap()));
    let tests = manifest["tests"].as_object().unwrap();
    tests
        .iter()
        .map(|(name, test)| {
            let master_keys = test["master-keys"].as_array().unwrap();
            assert_eq!(master_keys.len(), 1, "{name}");
            let plaintext = test["result"]["output"]["plaintext"].as_str().unwrap();
            Vector {
                name: format!("{folder}/{name}"),
                ciphertext: std::fs::read(resolve(&dir, test["ciphertext"].as_str().unwrap())).unwrap(),
                keyring: keyring(&keys, &master_keys[0]),
                plaintext: positive.then(|| std::fs::read(resolve(&dir, plaintext)).unwrap()),
                suite: Some(SuiteId(u16::from_str_radix(&name[..4], 16).unwrap())),
                encryption_context: test["encryption-context"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
                // ESDK-NET 4.0.0 wrote a wrong header tag; that is the only acceptable failure.
                stages: [Stage::HeaderAuth].into(),
            }
        })
        .collect()
}

/// Maps the manifest's free-text `expected-failure-stage` onto our stages; any named stage is fine.
fn stages_named(text: &str) -> HashSet<Stage> {
    let mut stages = HashSet::new();
    let rules: [(&str, &[Stage]); 9] = [
        ("header-auth", &[Stage::HeaderAuth]),
        ("edk", &[Stage::KeyUnwrap]),
        ("commitment", &[Stage::Commitment]),
        ("parse", &[Stage::Parse, Stage::Truncated, Stage::Trailing]),
        ("body", &[Stage::BodyAuth]),
        ("truncated", &[Stage::Truncated]),
        ("missing footer", &[Stage::Truncated]),
        ("trailing", &[Stage::Trailing]),
        ("signature", &[Stage::Signature]),
    ];
    for (word, named) in rules {
        if text.to_lowercase().contains(word) {
            stages.extend(named.iter().copied());
        }
    }
    assert!(!stages.is_empty(), "unmapped failure stage {text:?}");
    stages
}

fn derived_negative() -> Vec<Vector> {
    let dir = Path::new(ROOT).join("derived-negative");
    let manifest = read_json(&dir.join("manifest.json"));
    let keys = read_json(&resolve(&dir, manifest["keys"].as_str().unwrap()));
    let tests = manifest["tests"].as_object().unwrap();
    tests
        .iter()
        .map(|(name, test)| Vector {
            name: format!("derived-negative/{name}"),
            ciphertext: std::fs::read(resolve(&dir, test["ciphertext"].as_str().unwrap())).unwrap(),
            keyring: keyring(&keys, &test["decryptKeyDescription"]),
            plaintext: None,
            suite: suite_of(test),
            encryption_context: vec![],
            stages: stages_named(test["expected-failure-stage"].as_str().unwrap()),
        })
        .collect()
}

fn positives() -> Vec<Vector> {
    let mut all = set1();
    all.extend(net_set("v4-Net-4.0.1", true));
    all
}

#[test]
fn every_official_positive_vector_decrypts_to_its_plaintext() {
    let vectors = positives();
    assert_eq!(vectors.len(), 55);
    let mut suites = HashSet::new();
    for v in &vectors {
        let out = decrypt(&v.ciphertext, &v.keyring, &DecryptOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert!(
            out.plaintext == *v.plaintext.as_ref().unwrap(),
            "{}: plaintext differs",
            v.name
        );
        assert_eq!(Some(out.suite), v.suite, "{}", v.name);
        suites.insert(out.suite);
        let message = Message::parse(&v.ciphertext, &Default::default()).unwrap();
        for (k, val) in &v.encryption_context {
            assert_eq!(
                message.header.context_value(k),
                Some(val.as_str()),
                "{}: context {k}",
                v.name
            );
        }
    }
    assert_eq!(suites.len(), 11, "all eleven suites are covered");
}

#[test]
fn every_invalid_net_vector_is_rejected_at_the_header_tag() {
    let vectors = net_set("invalid-Net-4.0.0", false);
    assert_eq!(vectors.len(), 22);
    for v in &vectors {
        let err = decrypt(&v.ciphertext, &v.keyring, &DecryptOptions::default()).unwrap_err();
        assert!(
            v.stages.contains(&err.stage()),
            "{}: rejected at {:?} ({err})",
            v.name,
            err.stage()
        );
    }
}

#[test]
fn every_derived_negative_vector_is_rejected_at_an_expected_stage() {
    let vectors = derived_negative();
    assert_eq!(vectors.len(), 68);
    for v in &vectors {
        let err = decrypt(&v.ciphertext, &v.keyring, &DecryptOptions::default())
            .map(|_| ())
            .expect_err(&v.name);
        assert!(
            v.stages.contains(&err.stage()),
            "{}: rejected at {:?} ({err}), expected one of {:?}",
            v.name,
            err.stage(),
            v.stages
        );
    }
}

#[test]
fn every_truncated_prefix_of_every_positive_vector_is_rejected_as_truncated() {
    for v in positives() {
        for len in 0..v.ciphertext.len() {
            let err = Message::parse(&v.ciphertext[..len], &Default::default()).unwrap_err();
            assert!(
                matches!(err, EsdkError::Truncated { .. }),
                "{} prefix {len}: {err}",
                v.name
            );
        }
    }
}

#[test]
fn a_trailing_byte_after_any_positive_vector_is_rejected() {
    for v in positives() {
        let mut longer = v.ciphertext.clone();
        longer.push(0);
        let err = decrypt(&longer, &v.keyring, &DecryptOptions::default()).unwrap_err();
        assert_eq!(err.stage(), Stage::Trailing, "{}: {err}", v.name);
    }
}

#[test]
fn a_wrong_wrapping_key_is_rejected_at_the_key_unwrap_for_every_vector() {
    for v in positives() {
        let message = Message::parse(&v.ciphertext, &Default::default()).unwrap();
        let namespace = std::str::from_utf8(message.header.encrypted_data_keys[0].provider_id).unwrap();
        let info = message.header.encrypted_data_keys[0].provider_info;
        let name = std::str::from_utf8(&info[..info.len() - 20]).unwrap();
        let wrong = RawAesKeyring::new(namespace, name, &[0x5a; 32]).unwrap();
        let err = decrypt(&v.ciphertext, &wrong, &DecryptOptions::default()).unwrap_err();
        assert_eq!(err, EsdkError::NoDataKey { count: 1 }, "{}", v.name);
    }
}

#[test]
fn the_strict_commitment_policy_accepts_only_committing_suites() {
    use das_archiver::esdk::{CommitmentPolicy, DecryptPolicy};
    let strict = DecryptOptions {
        policy: DecryptPolicy {
            commitment: CommitmentPolicy::RequireCommitting,
            allowed_suites: None,
        },
        ..Default::default()
    };
    for v in positives() {
        let committing = matches!(v.suite.unwrap().0, 0x0478 | 0x0578);
        let result = decrypt(&v.ciphertext, &v.keyring, &strict);
        match result {
            Ok(_) => assert!(committing, "{}", v.name),
            Err(err) => {
                assert!(!committing, "{}: {err}", v.name);
                assert_eq!(err, EsdkError::SuiteNotAllowed(v.suite.unwrap()));
            }
        }
    }
}

#[test]
fn an_allow_list_of_das_suites_refuses_the_others_before_touching_keys() {
    use das_archiver::esdk::DecryptPolicy;
    let das_only = DecryptOptions {
        policy: DecryptPolicy {
            allowed_suites: Some(vec![SuiteId(0x0178), SuiteId(0x0378)]),
            ..Default::default()
        },
        ..Default::default()
    };
    for v in positives() {
        let allowed = matches!(v.suite.unwrap().0, 0x0178 | 0x0378);
        assert_eq!(
            decrypt(&v.ciphertext, &v.keyring, &das_only).is_ok(),
            allowed,
            "{}",
            v.name
        );
    }
}
