//! The real captured Aurora PostgreSQL record (`tests/data/das-sample`, structure only: its KMS key is
//! not ours) parses with exactly the values its README lists, and fails cleanly at the key unwrap.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use das_archiver::envelope::Envelope;
use das_archiver::esdk::{decrypt, ContentType, DecryptOptions, EsdkError, FrameKind, Message, RawAesKeyring, SuiteId};
use das_archiver::record::{self, DecodeOptions, RecordError};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/das-sample");

fn record_json() -> Vec<u8> {
    std::fs::read(format!("{DIR}/aurora-postgresql-v1.1-record.json")).unwrap()
}

#[test]
fn the_envelope_parses_to_the_captured_message_and_key_blob() {
    let envelope = Envelope::parse(&record_json()).unwrap();
    assert_eq!(envelope.version, "1.1");
    let bin = std::fs::read(format!("{DIR}/aurora-postgresql-v1.1-databaseActivityEvents.bin")).unwrap();
    assert_eq!(envelope.message, bin);
    assert_eq!(envelope.key_blob.len(), 184);
    assert_eq!(envelope.key_blob[..5], [0x01, 0x02, 0x03, 0x00, 0x78]);
}

#[test]
fn the_esdk_header_and_body_have_the_documented_layout() {
    let envelope = Envelope::parse(&record_json()).unwrap();
    let message = Message::parse(&envelope.message, &Default::default()).unwrap();
    let h = &message.header;
    assert_eq!((h.version, h.suite.id), (1, SuiteId::AES_256_GCM_HKDF_SHA256));
    assert_eq!(hex::encode(h.message_id), "2f9a950c856c14308e2b195969cc6123");
    assert!(h.encryption_context.is_empty() && h.encryption_context_bytes.is_empty());
    assert_eq!(h.encrypted_data_keys.len(), 1);
    let edk = &h.encrypted_data_keys[0];
    assert_eq!(edk.provider_id, b"BC");
    assert_eq!(edk.provider_info.len(), 27);
    assert_eq!(&edk.provider_info[..7], b"DataKey");
    assert_eq!(hex::encode(&edk.provider_info[7..15]), "000000800000000c");
    assert_eq!(hex::encode(&edk.provider_info[15..]), "5aeb9d2a8c8eb34c921f3fff");
    assert_eq!(edk.ciphertext.len(), 48);
    assert_eq!((h.content_type, h.frame_length), (ContentType::Framed, 4096));
    assert_eq!(h.header_iv, [0; 12]);
    assert_eq!(hex::encode(h.auth_tag), "1249000b454279980e8cc4ddb31da40e");
    assert_eq!(h.len, 145);

    assert_eq!(message.frames.len(), 1);
    let frame = &message.frames[0];
    assert_eq!(
        (frame.kind, frame.sequence, frame.ciphertext.len()),
        (FrameKind::Final, 1, 172)
    );
    assert_eq!(frame.iv, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(hex::encode(frame.tag), "6b75b2ddcbc3d8b02d338754962ed1b8");
    assert_eq!(message.signature, None);
    assert_eq!(message.signed_bytes.len(), 357);
}

#[test]
fn a_made_up_wrapping_key_fails_at_the_key_unwrap_with_no_plaintext() {
    let envelope = Envelope::parse(&record_json()).unwrap();
    let keyring = RawAesKeyring::das(&[0x42; 32]).unwrap();
    assert_eq!(
        decrypt(&envelope.message, &keyring, &DecryptOptions::default()).unwrap_err(),
        EsdkError::NoDataKey { count: 1 }
    );
    let err = record::decode(&envelope, &keyring, &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, RecordError::Esdk(EsdkError::NoDataKey { .. })));
    assert!(err.to_string().contains("wrong wrapping key"), "{err}");
}
