//! Property tests: whatever the encoder produces, the decoder gives back exactly, and rejects every
//! truncation, extension and single-byte change of it.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use das_archiver::activity::{payload_json, ActivityRecord, ParseLimits};
use das_archiver::envelope::Envelope;
use das_archiver::esdk::{decrypt, encrypt, DecryptOptions, EncryptOptions, EsdkError, RawAesKeyring, Suite, SuiteId};
use das_archiver::record::{self, DecodeOptions, EncodeOptions};
use proptest::prelude::*;

fn suite_strategy() -> impl Strategy<Value = SuiteId> {
    prop::sample::select(Suite::all().map(|s| s.id).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_plaintext_in_any_suite_and_framing_round_trips(
        plaintext in prop::collection::vec(any::<u8>(), 0..3000),
        suite in suite_strategy(),
        frame_length in prop::sample::select(vec![0u32, 1, 7, 128, 512, 4096]),
        key in prop::sample::select(vec![16usize, 24, 32]),
        context in prop::collection::btree_map("[a-z]{1,8}", "[ -~]{0,12}", 0..3),
    ) {
        let keyring = RawAesKeyring::new("ns", "name", &vec![9u8; key]).unwrap();
        let options = EncryptOptions { suite, frame_length, encryption_context: context.clone().into_iter().collect() };
        let message = encrypt(&plaintext, &keyring, &options).unwrap();
        let out = decrypt(&message, &keyring, &DecryptOptions::default()).unwrap();
        prop_assert_eq!(&out.plaintext, &plaintext);
        prop_assert_eq!(out.suite, suite);
        prop_assert_eq!(out.frame_length, frame_length);
    }

    #[test]
    fn any_single_byte_change_is_rejected(
        suite in prop::sample::select(vec![SuiteId(0x0178), SuiteId(0x0378), SuiteId(0x0578)]),
        plaintext in prop::collection::vec(any::<u8>(), 1..600),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let keyring = RawAesKeyring::das(&[1u8; 32]).unwrap();
        let options = EncryptOptions { suite, frame_length: 128, encryption_context: vec![] };
        let mut message = encrypt(&plaintext, &keyring, &options).unwrap();
        let i = position.index(message.len());
        message[i] ^= flip;
        prop_assert!(decrypt(&message, &keyring, &DecryptOptions::default()).is_err(), "byte {} accepted", i);
    }

    #[test]
    fn any_event_list_survives_a_record_round_trip(
        users in prop::collection::vec("[a-zA-Z0-9_\\-\"\\\\é]{0,10}", 0..40),
        mysql in any::<bool>(),
    ) {
        let events: Vec<serde_json::Value> = users.iter().enumerate()
            .map(|(i, u)| serde_json::json!({"type": "record", "dbUserName": u, "statementId": i, "exitCode": "0"}))
            .collect();
        let payload = payload_json("cluster-A1", "db-B2", &events);
        let esdk = if mysql { EncryptOptions::aurora_mysql() } else { EncryptOptions::aurora_postgresql() };
        let data = record::encode(&payload, &[5u8; 32], b"blob", &EncodeOptions { version: "1.2".into(), esdk }).unwrap();
        let decoded = record::decode(&Envelope::parse(&data).unwrap(), &RawAesKeyring::das(&[5u8; 32]).unwrap(),
            &DecodeOptions::default()).unwrap();
        let activity = ActivityRecord::parse(&decoded.json, ParseLimits::default()).unwrap();
        prop_assert_eq!(activity.events.len(), users.len());
        for (event, user) in activity.events.iter().zip(&users) {
            let name = event.db_user_name();
            prop_assert_eq!(name.as_deref(), Some(user.as_str()));
            let raw: serde_json::Value = serde_json::from_str(event.raw_json()).unwrap();
            prop_assert_eq!(&raw["dbUserName"], &serde_json::json!(user));
        }
    }
}

#[test]
fn every_prefix_and_an_extension_of_encoded_das_messages_are_rejected() {
    let keyring = RawAesKeyring::das(&[8u8; 32]).unwrap();
    for options in [EncryptOptions::aurora_postgresql(), EncryptOptions::aurora_mysql()] {
        let message = encrypt(
            &vec![7u8; 9000],
            &keyring,
            &EncryptOptions {
                frame_length: 4096,
                ..options
            },
        )
        .unwrap();
        for len in 0..message.len() {
            assert!(
                decrypt(&message[..len], &keyring, &DecryptOptions::default()).is_err(),
                "prefix {len}"
            );
        }
        let mut longer = message.clone();
        longer.push(0);
        assert!(matches!(
            decrypt(&longer, &keyring, &DecryptOptions::default()),
            Err(EsdkError::TrailingBytes { .. })
        ));
    }
}

#[test]
fn signed_messages_carry_the_fixed_length_signature_real_producers_write() {
    let keyring = RawAesKeyring::das(&[8u8; 32]).unwrap();
    for _ in 0..20 {
        let message = encrypt(b"x", &keyring, &EncryptOptions::aurora_mysql()).unwrap();
        let parsed = das_archiver::esdk::Message::parse(&message, &Default::default()).unwrap();
        assert_eq!(parsed.signature.map(<[u8]>::len), Some(103));
        assert_eq!(
            parsed.header.context_value("aws-crypto-public-key").map(str::len),
            Some(68)
        );
    }
}

#[test]
fn a_whole_number_of_frames_ends_with_an_empty_final_frame_like_the_official_sdks() {
    let keyring = RawAesKeyring::das(&[8u8; 32]).unwrap();
    let options = EncryptOptions {
        frame_length: 128,
        ..EncryptOptions::default()
    };
    let message = encrypt(&[1u8; 256], &keyring, &options).unwrap();
    let parsed = das_archiver::esdk::Message::parse(&message, &Default::default()).unwrap();
    let lens: Vec<usize> = parsed.frames.iter().map(|f| f.ciphertext.len()).collect();
    assert_eq!(lens, [128, 128, 0]);
}

#[test]
fn limits_reject_oversized_messages_frames_and_edk_counts() {
    use das_archiver::esdk::Limits;
    let keyring = RawAesKeyring::das(&[8u8; 32]).unwrap();
    let message = encrypt(&[0u8; 5000], &keyring, &EncryptOptions::default()).unwrap();
    let tight = |limits: Limits| DecryptOptions {
        limits,
        ..Default::default()
    };
    let small_message = tight(Limits {
        max_message_len: 1000,
        ..Limits::default()
    });
    assert!(matches!(
        decrypt(&message, &keyring, &small_message),
        Err(EsdkError::LimitExceeded {
            what: "message length",
            ..
        })
    ));
    let small_frames = tight(Limits {
        max_frame_length: 1024,
        ..Limits::default()
    });
    assert!(matches!(
        decrypt(&message, &keyring, &small_frames),
        Err(EsdkError::LimitExceeded {
            what: "frame length",
            ..
        })
    ));
    let no_edks = tight(Limits {
        max_encrypted_data_keys: 0,
        ..Limits::default()
    });
    assert!(matches!(
        decrypt(&message, &keyring, &no_edks),
        Err(EsdkError::LimitExceeded {
            what: "encrypted data key count",
            ..
        })
    ));
}
