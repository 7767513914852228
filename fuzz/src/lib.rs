//! The code paths the fuzz targets drive, shared with `tests/it/fuzz_regressions.rs`.
//!
//! Each function takes one fuzz input and must never panic, whatever the bytes. It uses only
//! `das_archiver` and `std`, so the main crate's regression test can include this file as a module
//! (`#[path = "../fuzz/src/lib.rs"]`) and replay saved inputs through exactly the same calls.
//!
//! Input layout, chosen so that the real messages and records in `fuzz/seeds/` are valid inputs as-is:
//!
//! - [`esdk_decrypt`]: a first byte `0xF0..=0xFF` selects *mutation mode*: the low nibble picks one of
//!   the valid messages in [`base_messages`], and the rest is a list of 4-byte edits
//!   `[op, offset_hi, offset_lo, value]` applied to it (a shorter tail is appended). Any other first byte
//!   is *raw mode*: the whole input is an ESDK message.
//! - [`record_decode`]: a first byte `0xFF` is *payload mode* (the rest is the payload JSON, wrapped into
//!   a valid record with `record::encode`), `0xFE` is *gzip mode* (the rest is the decrypted plaintext,
//!   i.e. the gzip stream, encrypted into a valid record), anything else is *raw mode*: the whole input
//!   is the Kinesis record data.
//! - [`mask_sql`]: the first byte picks the dialect (its value modulo 5), the rest is the statement,
//!   lossily made UTF-8 (events reach the masker as JSON strings, always UTF-8).

use std::sync::OnceLock;

use das_archiver::activity::{ActivityRecord, ParseLimits};
use das_archiver::envelope::{Envelope, ResourceId};
use das_archiver::esdk::{
    self, CommitmentPolicy, DecryptOptions, DecryptPolicy, EncryptOptions, Limits, Message, RawAesKeyring, SuiteId,
};
use das_archiver::gunzip;
use das_archiver::mask::{self, Dialect, MaskMode};
use das_archiver::record::{self, DecodeOptions, EncodeOptions};

/// The wrapping key of the fixed DAS keyring every target decrypts with.
pub const WRAPPING_KEY: [u8; 32] = [0x11; 32];

/// The KMS key blob the encoded records carry (opaque to the decoder).
pub const KEY_BLOB: &[u8] = b"fuzz-kms-ciphertext-blob";

/// Decompression cap for the record target: small, so that bombs are cheap to reject.
pub const MAX_DECOMPRESSED_LEN: usize = 1 << 20;

/// First bytes at or above this select mutation mode in [`esdk_decrypt`].
pub const ESDK_MUTATE: u8 = 0xF0;

/// First byte of a [`record_decode`] input in payload mode.
pub const RECORD_PAYLOAD: u8 = 0xFF;

/// First byte of a [`record_decode`] input in gzip mode.
pub const RECORD_GZIP: u8 = 0xFE;

/// The fixed DAS keyring (`BC`/`DataKey` on [`WRAPPING_KEY`]), built once.
pub fn keyring() -> &'static RawAesKeyring {
    static KEYRING: OnceLock<RawAesKeyring> = OnceLock::new();
    KEYRING.get_or_init(|| RawAesKeyring::das(&WRAPPING_KEY).expect("a 32-byte key is a valid AES key"))
}

/// A valid message and the plaintext it decrypts to.
#[derive(Debug)]
pub struct BaseMessage {
    /// What the message is, for humans.
    pub name: &'static str,
    /// The encrypted message.
    pub message: Vec<u8>,
    /// Its plaintext.
    pub plaintext: Vec<u8>,
}

/// The valid messages that mutation mode starts from, encrypted once per process with [`keyring`]:
/// the two DAS shapes (0x0178 with 4 KiB frames, 0x0378 with 256 KiB frames), then multi-frame,
/// exact-multiple (empty final frame), non-framed, encryption-context and committing variants.
pub fn base_messages() -> &'static [BaseMessage] {
    static BASES: OnceLock<Vec<BaseMessage>> = OnceLock::new();
    BASES.get_or_init(|| {
        let plaintext: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let pg = SuiteId::AES_256_GCM_HKDF_SHA256;
        let my = SuiteId::AES_256_GCM_HKDF_SHA384_ECDSA_P384;
        vec![
            base(
                "0x0178, 4096-byte frames (Aurora PostgreSQL)",
                pg,
                4096,
                vec![],
                &plaintext,
            ),
            base("0x0378, 256 KiB frames (Aurora MySQL)", my, 262_144, vec![], &plaintext),
            base("0x0178, 64-byte frames", pg, 64, vec![], &plaintext),
            base("0x0378, 64-byte frames", my, 64, vec![], &plaintext),
            base(
                "0x0178, 100-byte frames, empty final frame",
                pg,
                100,
                vec![],
                &plaintext,
            ),
            base("0x0178, non-framed", pg, 0, vec![], &plaintext),
            base(
                "0x0378, encryption context, empty plaintext",
                my,
                128,
                vec![("aws:rds:dbc-id".to_owned(), "cluster-FUZZ".to_owned())],
                &[],
            ),
            base(
                "0x0478 (committing), 64-byte frames",
                SuiteId::AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
                64,
                vec![],
                &plaintext,
            ),
        ]
    })
}

/// Encrypts one base message with [`keyring`].
fn base(
    name: &'static str,
    suite: SuiteId,
    frame_length: u32,
    encryption_context: Vec<(String, String)>,
    plaintext: &[u8],
) -> BaseMessage {
    let options = EncryptOptions {
        suite,
        frame_length,
        encryption_context,
    };
    let message = esdk::encrypt(plaintext, keyring(), &options).expect("the base messages encrypt");
    BaseMessage {
        name,
        message,
        plaintext: plaintext.to_vec(),
    }
}

/// Fuzz target `esdk_decrypt`: ESDK parsing and decryption. See the module docs for the layout.
pub fn esdk_decrypt(data: &[u8]) {
    match data.split_first() {
        Some((&mode, edits)) if mode >= ESDK_MUTATE => {
            let bases = base_messages();
            let Some(base) = bases.get(usize::from(mode - ESDK_MUTATE) % bases.len()) else {
                return;
            };
            let message = mutate(&base.message, edits);
            if let Some(plaintext) = decrypt_raw(&message) {
                // Authentication: whatever was edited, a message that decrypts gives the original plaintext.
                assert!(
                    plaintext == base.plaintext,
                    "an edited {} decrypted to a different plaintext",
                    base.name
                );
            }
        }
        _ => {
            decrypt_raw(data);
        }
    }
}

/// Parses and decrypts `bytes` every way the library offers; returns the plaintext if it decrypted.
fn decrypt_raw(bytes: &[u8]) -> Option<Vec<u8>> {
    // Tight limits, to reach the limit checks.
    let tight = Limits {
        max_message_len: 4096,
        max_frame_length: 128,
        max_encrypted_data_keys: 1,
    };
    let _ = Message::parse(bytes, &tight);

    let message = Message::parse(bytes, &Limits::default()).ok()?;
    let _ = message.plaintext_len();
    let _ = message.header.context_value(esdk::PUBLIC_KEY_CONTEXT_KEY);
    let strict = DecryptPolicy {
        commitment: CommitmentPolicy::RequireCommitting,
        allowed_suites: None,
    };
    let _ = message.decrypt(keyring(), &strict);
    let plaintext = message.decrypt(keyring(), &DecryptPolicy::default()).ok();

    // The one-call API must agree with parse + decrypt.
    let decrypted = esdk::decrypt(bytes, keyring(), &DecryptOptions::default()).ok();
    assert_eq!(
        decrypted.as_ref().map(|d| d.plaintext.as_slice()),
        plaintext.as_deref(),
        "esdk::decrypt and Message::decrypt disagree"
    );
    plaintext
}

/// Applies 4-byte edits `[op, offset_hi, offset_lo, value]` to a copy of `base`; a tail shorter than
/// four bytes is appended. Offsets wrap around the current length.
fn mutate(base: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let mut chunks = edits.chunks_exact(4);
    for chunk in chunks.by_ref() {
        let &[op, hi, lo, value] = chunk else { continue };
        let at = usize::from(u16::from_be_bytes([hi, lo])) % (out.len() + 1);
        match op % 8 {
            0 => {
                if let Some(b) = out.get_mut(at) {
                    *b ^= value;
                }
            }
            1 => {
                if let Some(b) = out.get_mut(at) {
                    *b = value;
                }
            }
            2 => out.truncate(at),
            3 => out.insert(at, value),
            4 => {
                if at < out.len() {
                    out.remove(at);
                }
            }
            // Length fields are big-endian u16, u32 and u64: write small and all-ones values over them.
            5 => overwrite(&mut out, at, &[0, 0, 0, value]),
            6 => overwrite(&mut out, at, &[0, value]),
            _ => overwrite(&mut out, at, &[0xFF, 0xFF, 0xFF, value]),
        }
    }
    out.extend_from_slice(chunks.remainder());
    out
}

fn overwrite(out: &mut [u8], at: usize, bytes: &[u8]) {
    for (dst, src) in out.iter_mut().skip(at).zip(bytes) {
        *dst = *src;
    }
}

/// Fuzz target `record_decode`: envelope → decrypt → gunzip → events. See the module docs for the layout.
pub fn record_decode(data: &[u8]) {
    match data.split_first() {
        Some((&RECORD_PAYLOAD, payload)) => {
            let encoded = record::encode(payload, &WRAPPING_KEY, KEY_BLOB, &EncodeOptions::default())
                .expect("encoding a record cannot fail");
            let decoded = decode_raw(&encoded).expect("an encoded record decodes");
            assert!(
                decoded == payload,
                "a record did not decode to the payload it was encoded from"
            );
        }
        Some((&RECORD_GZIP, plaintext)) => {
            let message = esdk::encrypt(plaintext, keyring(), &EncryptOptions::default())
                .expect("encrypting a plaintext cannot fail");
            let envelope = Envelope {
                version: "1.1".to_owned(),
                message,
                key_blob: KEY_BLOB.to_vec(),
            };
            decode_raw(&envelope.to_json());
            // The bounded gunzip and the event parser directly, as the decoder would call them.
            if let Ok(json) = gunzip::gunzip(plaintext, MAX_DECOMPRESSED_LEN) {
                assert!(json.len() <= MAX_DECOMPRESSED_LEN, "gunzip exceeded its cap");
                parse_events(&json);
            }
        }
        _ => {
            decode_raw(data);
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = ResourceId::parse(text);
                let _ = ResourceId::from_stream(text);
            }
        }
    }
}

/// Decodes Kinesis record data end to end; returns the payload JSON if it decrypted and inflated.
fn decode_raw(data: &[u8]) -> Option<Vec<u8>> {
    let envelope = Envelope::parse(data).ok()?;
    let _ = format!("{envelope:?}");
    let again = Envelope::parse(&envelope.to_json()).expect("a serialized envelope parses");
    assert!(again == envelope, "an envelope did not survive to_json and parse");

    let options = DecodeOptions {
        max_decompressed_len: MAX_DECOMPRESSED_LEN,
        ..DecodeOptions::default()
    };
    let decoded = record::decode(&envelope, keyring(), &options).ok()?;
    assert!(
        decoded.json.len() <= MAX_DECOMPRESSED_LEN,
        "a decoded payload exceeded the cap"
    );
    if let Ok(activity) = decoded.activity(&options) {
        visit(&activity);
    }
    check_event_limit(&decoded.json);
    Some(decoded.json)
}

/// Parses a payload with default and tight event limits and reads every event.
fn parse_events(json: &[u8]) {
    if let Ok(activity) = ActivityRecord::parse(json, ParseLimits::default()) {
        visit(&activity);
    }
    check_event_limit(json);
}

/// A payload parsed with a limit of two events holds at most two.
fn check_event_limit(json: &[u8]) {
    if let Ok(activity) = ActivityRecord::parse(json, ParseLimits { max_events: 2 }) {
        assert!(activity.events.len() <= 2, "the event limit was not enforced");
    }
}

/// Calls every accessor of a parsed payload and of each of its events.
fn visit(activity: &ActivityRecord<'_>) {
    let _ = (&activity.payload_type, &activity.cluster_id, &activity.instance_id);
    for event in &activity.events {
        let _ = format!("{event:?}");
        let raw = event.raw_json();
        assert!(
            raw.starts_with('{') && raw.ends_with('}'),
            "an event's raw JSON is not an object"
        );
        let _ = event.event_type();
        let _ = event.is_heartbeat();
        let _ = event.db_user_name();
        let _ = event.class();
        let _ = event.command();
        let _ = event.database_name();
        let _ = event.object_name();
        let _ = event.client_application();
        let _ = event.remote_host();
        let _ = event.log_time();
    }
}

/// Masks and fingerprints one statement in every mode: never panics, never returns more than
/// [`mask::max_masked_len`] of its input, and masking twice changes nothing more.
pub fn mask_sql(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let dialect = match selector % 5 {
        0 => Dialect::Postgres,
        1 => Dialect::MySql,
        2 => Dialect::SqlServer,
        3 => Dialect::Oracle,
        _ => Dialect::Unknown,
    };
    let text = String::from_utf8_lossy(rest);
    let masked = mask::mask_sql(&text, dialect, MaskMode::Literals);
    assert!(
        masked.len() <= mask::max_masked_len(text.len()),
        "masked text longer than its bound"
    );
    let _ = mask::mask_sql(&text, dialect, MaskMode::Off);
    let _ = mask::fingerprint(&text, dialect);
    let _ = mask::fields::mask_message(&text);
}
