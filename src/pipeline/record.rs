//! One DAS record end to end, in both directions.
//!
//! Decoding: envelope (already parsed) + the wrapping key that KMS returned for its key blob →
//! ESDK decrypt → gunzip → the payload JSON, ready for [`ActivityRecord::parse`]. Encoding does the
//! reverse exactly as the DAS producer does, for tests, the simulator and benchmarks.
//! [`render_record`] goes on to filter and format the events (the Lambda, `das tail` and the
//! benchmarks all call it), and turns a panic in all that into an error instead of a crash. Neither
//! direction does I/O: the KMS call that turns `key_blob` into a wrapping key happens at the edge.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use zeroize::Zeroize;

use crate::pipeline::activity::{ActivityError, ActivityRecord, ParseLimits};
use crate::pipeline::envelope::{Envelope, EnvelopeError};
use crate::pipeline::esdk::{self, DecryptOptions, EncryptOptions, EsdkError, KeyringError, RawAesKeyring, SuiteId};
use crate::pipeline::filter::{Filter, Verdict};
use crate::pipeline::gunzip::{self, GunzipError, DEFAULT_MAX_DECOMPRESSED_LEN};
use crate::pipeline::ndjson::LineContext;
use crate::pipeline::ocsf::{self, Provenance};

/// Why a record could not be decoded; every variant is permanent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The Kinesis data is not a DAS envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The wrapping key is unusable.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The ESDK message is malformed, tampered or refused.
    #[error(transparent)]
    Esdk(#[from] EsdkError),
    /// The plaintext is not gzip or inflates too far.
    #[error(transparent)]
    Gunzip(#[from] GunzipError),
    /// The payload is not an activity record.
    #[error(transparent)]
    Activity(#[from] ActivityError),
    /// Decoding panicked: a bug, named by the panic message. The record is kept (quarantined), the
    /// batch goes on.
    #[error("internal error while decoding (please report): {0}")]
    Panicked(String),
}

/// Limits and policy for decoding a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// ESDK limits and suite policy.
    pub esdk: DecryptOptions,
    /// Cap on decompressed payload bytes (default 64 MiB).
    pub max_decompressed_len: usize,
    /// Limits on the payload's contents.
    pub payload: ParseLimits,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            esdk: DecryptOptions::default(),
            max_decompressed_len: DEFAULT_MAX_DECOMPRESSED_LEN,
            payload: ParseLimits::default(),
        }
    }
}

/// A decrypted, decompressed payload and what its ESDK header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPayload {
    /// The payload JSON text.
    pub json: Vec<u8>,
    /// The ESDK algorithm suite the producer used.
    pub suite: SuiteId,
    /// The ESDK frame length the producer used.
    pub frame_length: u32,
}

impl DecodedPayload {
    /// Parses the payload's events, borrowing from it.
    pub fn activity(&self, options: &DecodeOptions) -> Result<ActivityRecord<'_>, RecordError> {
        Ok(ActivityRecord::parse(&self.json, options.payload)?)
    }
}

/// Decrypts and decompresses a record's payload with the raw AES keyring built on its wrapping key.
pub fn decode(
    envelope: &Envelope,
    keyring: &RawAesKeyring,
    options: &DecodeOptions,
) -> Result<DecodedPayload, RecordError> {
    let mut scratch = Scratch::default();
    let header = decode_into(envelope, keyring, options, &mut scratch)?;
    Ok(DecodedPayload {
        json: scratch.json,
        suite: header.suite,
        frame_length: header.frame_length,
    })
}

/// One record's NDJSON lines (after filtering) and what the filter did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The kept events, one line each.
    pub lines: Vec<u8>,
    /// Events kept.
    pub kept: u64,
    /// Events dropped by the include/exclude lists.
    pub filtered: u64,
    /// Heartbeats skipped.
    pub heartbeats: u64,
    /// The kept events as OCSF Datastore Activity events, in order; filled only when the record's
    /// origin asks for them ([`RecordOrigin::with_ocsf`]).
    pub ocsf: Vec<serde_json::Value>,
}

/// What the OCSF events of a batch's records share: the stream and where it lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcsfSource {
    /// The stream's resource id (`cluster-…` or `db-…`).
    pub resource_id: String,
    /// The stream's ARN.
    pub stream_arn: String,
    /// The AWS region, from the stream ARN.
    pub region: String,
    /// The AWS account id, from the stream ARN.
    pub account: String,
}

/// Where a record came from in Kinesis; every line of its events carries it (see [`crate::pipeline::ndjson`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOrigin {
    /// The shard, e.g. `shardId-000000000000`.
    pub shard_id: String,
    /// The record's sequence number.
    pub sequence_number: String,
    /// When set, [`render_record`] also maps the kept events to OCSF (parsing the payload once).
    pub ocsf: Option<std::sync::Arc<OcsfSource>>,
    /// The record's Kinesis arrival time, epoch milliseconds: an OCSF event's `time` when its
    /// `logTime` is unreadable.
    pub arrival_ms: i64,
}

impl RecordOrigin {
    /// The record at `sequence_number` in `shard_id`.
    pub fn new(shard_id: &str, sequence_number: &str) -> Self {
        Self {
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number.to_owned(),
            ocsf: None,
            arrival_ms: 0,
        }
    }

    /// The same record, asking for OCSF events too.
    #[must_use]
    pub fn with_ocsf(mut self, source: std::sync::Arc<OcsfSource>, arrival_ms: i64) -> Self {
        self.ocsf = Some(source);
        self.arrival_ms = arrival_ms;
        self
    }

    fn provenance<'a>(&'a self, source: &'a OcsfSource, event_index: usize) -> Provenance<'a> {
        Provenance {
            resource_id: &source.resource_id,
            stream_arn: &source.stream_arn,
            shard_id: &self.shard_id,
            sequence_number: &self.sequence_number,
            event_index,
            region: &source.region,
            account: &source.account,
            arrival_ms: self.arrival_ms,
        }
    }

    fn line(&self, event_index: usize) -> LineContext<'_> {
        LineContext::kinesis(&self.shard_id, &self.sequence_number, event_index)
    }
}

/// The pure, CPU-bound part of one record: decrypt, gunzip, parse, filter, format. Panic-proof: a
/// panic (a bug) becomes [`RecordError::Panicked`] naming it, logged at error level.
pub fn render_record(
    envelope: &Envelope,
    keyring: &RawAesKeyring,
    filter: &Filter,
    options: &DecodeOptions,
    origin: &RecordOrigin,
) -> Result<Rendered, RecordError> {
    match catch_unwind(AssertUnwindSafe(|| render(envelope, keyring, filter, options, origin))) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            tracing::error!(panic = %message, "BUG: decoding a record panicked; the record is quarantined");
            Err(RecordError::Panicked(message))
        }
    }
}

fn render(
    envelope: &Envelope,
    keyring: &RawAesKeyring,
    filter: &Filter,
    options: &DecodeOptions,
    origin: &RecordOrigin,
) -> Result<Rendered, RecordError> {
    let render = |scratch: &mut Scratch| render_with(envelope, keyring, filter, options, origin, scratch);
    // A thread renders one record at a time, so its scratch buffers are free here; were they not
    // (a re-entrant call), fresh ones do the same work.
    SCRATCH
        .try_with(|cell| cell.try_borrow_mut().ok().map(|mut scratch| render(&mut scratch)))
        .ok()
        .flatten()
        .unwrap_or_else(|| render(&mut Scratch::default()))
}

/// One thread's buffers for a record's plaintext (the gzip'ed payload) and its JSON, reused from
/// record to record instead of allocated, zeroed and freed each time.
#[derive(Default)]
struct Scratch {
    plaintext: Vec<u8>,
    json: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Buffers larger than this (a record of thousands of events) are not kept for the next record.
const KEPT_SCRATCH_LEN: usize = 1 << 20;

fn render_with(
    envelope: &Envelope,
    keyring: &RawAesKeyring,
    filter: &Filter,
    options: &DecodeOptions,
    origin: &RecordOrigin,
    scratch: &mut Scratch,
) -> Result<Rendered, RecordError> {
    let decoded = decode_into(envelope, keyring, options, scratch);
    let rendered = decoded.and_then(|_| render_events(&scratch.json, filter, options, origin));
    // The plaintext is the gzip'ed audit payload: wiped rather than left in a long-lived buffer
    // (only what this record wrote: the rest of the capacity was wiped by earlier records).
    scratch.plaintext.as_mut_slice().zeroize();
    scratch.plaintext.clear();
    for buffer in [&mut scratch.plaintext, &mut scratch.json] {
        if buffer.capacity() > KEPT_SCRATCH_LEN {
            *buffer = Vec::new();
        }
    }
    rendered
}

/// Decrypts and decompresses a record's payload into the scratch buffers ([`decode`] and the
/// renderer both decode here).
fn decode_into(
    envelope: &Envelope,
    keyring: &RawAesKeyring,
    options: &DecodeOptions,
    scratch: &mut Scratch,
) -> Result<esdk::DecryptedHeader, RecordError> {
    let header = esdk::decrypt_into(&envelope.message, keyring, &options.esdk, &mut scratch.plaintext)?;
    gunzip::gunzip_into(&scratch.plaintext, options.max_decompressed_len, &mut scratch.json)?;
    Ok(header)
}

/// The payload's events, filtered and formatted.
fn render_events(
    json: &[u8],
    filter: &Filter,
    options: &DecodeOptions,
    origin: &RecordOrigin,
) -> Result<Rendered, RecordError> {
    let activity = ActivityRecord::parse(json, options.payload)?;
    let mut rendered = Rendered {
        lines: Vec::with_capacity(json.len() + activity.events.len() * 96),
        ..Rendered::default()
    };
    for (index, event) in activity.events.iter().enumerate() {
        match filter.verdict(event) {
            Verdict::Keep => {
                let start = rendered.lines.len();
                filter.write_line(event, &activity, &origin.line(index), &mut rendered.lines);
                rendered.kept += 1;
                if let Some(source) = origin.ocsf.as_deref() {
                    let line = rendered.lines.get(start..).unwrap_or_default();
                    let provenance = origin.provenance(source, index);
                    rendered.ocsf.extend(ocsf::map_written_line(line, &provenance));
                }
            }
            Verdict::Filtered => rendered.filtered += 1,
            Verdict::Heartbeat => rendered.heartbeats += 1,
        }
    }
    Ok(rendered)
}

/// The text of a panic payload: `panic!` carries a `&str` or a `String`; anything else is unnamed.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// What the encoder needs besides the payload.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Record version to write (`1.1` for Aurora PostgreSQL, `1.2` Aurora MySQL, `1.3` Oracle, `1.4` SQL Server).
    pub version: String,
    /// ESDK suite and framing.
    pub esdk: EncryptOptions,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            version: "1.1".to_owned(),
            esdk: EncryptOptions::default(),
        }
    }
}

/// Builds a DAS Kinesis record from a payload JSON, as the producer does: gzip → ESDK message with
/// the raw AES keyring `BC`/`DataKey` on `wrapping_key` → envelope carrying `key_blob`, the KMS
/// ciphertext of `wrapping_key`. Returns the record's JSON bytes (the Kinesis record data).
pub fn encode(
    payload_json: &[u8],
    wrapping_key: &[u8],
    key_blob: &[u8],
    options: &EncodeOptions,
) -> Result<Vec<u8>, RecordError> {
    let keyring = RawAesKeyring::das(wrapping_key)?;
    encode_with(payload_json, &keyring, key_blob, options)
}

/// Like [`encode`], with a keyring the caller keeps across records (as the producer reuses its key).
pub fn encode_with(
    payload_json: &[u8],
    keyring: &RawAesKeyring,
    key_blob: &[u8],
    options: &EncodeOptions,
) -> Result<Vec<u8>, RecordError> {
    let compressed = gunzip::gzip(payload_json);
    let message = esdk::encrypt(&compressed, keyring, &options.esdk)?;
    let envelope = Envelope {
        version: options.version.clone(),
        message,
        key_blob: key_blob.to_vec(),
    };
    Ok(envelope.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::activity::payload_json;
    use serde_json::json;

    #[test]
    fn an_encoded_record_decodes_to_the_same_events() {
        let events = vec![
            json!({"type":"record","command":"SELECT","commandText":"select 1"}),
            json!({"type":"heartbeat"}),
        ];
        let payload = payload_json("cluster-ABC", "db-DEF", &events);
        for esdk in [EncryptOptions::aurora_postgresql(), EncryptOptions::aurora_mysql()] {
            let data = encode(
                &payload,
                &[3u8; 32],
                b"kms-blob",
                &EncodeOptions {
                    version: "1.2".into(),
                    esdk,
                },
            )
            .unwrap();
            let envelope = Envelope::parse(&data).unwrap();
            assert_eq!(
                (envelope.version.as_str(), envelope.key_blob.as_slice()),
                ("1.2", &b"kms-blob"[..])
            );
            let keyring = RawAesKeyring::das(&[3u8; 32]).unwrap();
            let decoded = decode(&envelope, &keyring, &DecodeOptions::default()).unwrap();
            assert_eq!(decoded.json, payload);
            let activity = decoded.activity(&DecodeOptions::default()).unwrap();
            assert_eq!(activity.events.len(), 2);
            assert_eq!(activity.events[0].command().as_deref(), Some("SELECT"));
        }
    }

    #[test]
    fn the_wrong_wrapping_key_fails_at_the_key_unwrap() {
        let data = encode(b"{}", &[1u8; 32], b"blob", &EncodeOptions::default()).unwrap();
        let keyring = RawAesKeyring::das(&[2u8; 32]).unwrap();
        let err = decode(&Envelope::parse(&data).unwrap(), &keyring, &DecodeOptions::default()).unwrap_err();
        assert!(
            matches!(err, RecordError::Esdk(EsdkError::NoDataKey { count: 1 })),
            "{err}"
        );
    }

    #[test]
    fn a_failed_decryption_leaves_the_reused_plaintext_buffer_empty_and_the_next_record_decodes() {
        let keyring = RawAesKeyring::das(&[6u8; 32]).unwrap();
        let good =
            Envelope::parse(&encode(b"{\"a\":1}", &[6u8; 32], b"blob", &EncodeOptions::default()).unwrap()).unwrap();
        let mut tampered = good.clone();
        let last = tampered.message.len() - 20;
        tampered.message[last] ^= 1;
        let options = DecodeOptions::default();
        let mut plaintext = b"left over from an earlier record".to_vec();
        assert!(esdk::decrypt_into(&tampered.message, &keyring, &options.esdk, &mut plaintext).is_err());
        assert!(plaintext.is_empty(), "no unauthenticated bytes stay in the buffer");
        esdk::decrypt_into(&good.message, &keyring, &options.esdk, &mut plaintext).unwrap();
        let mut json = b"stale".repeat(1000);
        gunzip::gunzip_into(&plaintext, 1 << 20, &mut json).unwrap();
        assert_eq!(json, b"{\"a\":1}");
    }

    #[test]
    fn records_rendered_one_after_another_on_a_thread_come_out_as_if_each_were_alone() {
        use crate::pipeline::filter::FilterSpec;
        let keyring = RawAesKeyring::das(&[7u8; 32]).unwrap();
        let filter = Filter::new(&FilterSpec::default()).unwrap();
        let record = |n: usize| {
            let events: Vec<_> = (0..n)
                .map(|i| json!({"type":"record","commandText": format!("select {i}")}))
                .collect();
            let data = encode(
                &payload_json("cluster-A", "db-B", &events),
                &[7u8; 32],
                b"blob",
                &EncodeOptions::default(),
            );
            Envelope::parse(&data.unwrap()).unwrap()
        };
        let (large, small) = (record(40), record(1));
        let origin = RecordOrigin::new("shardId-1", "49");
        let alone = render_record(&small, &keyring, &filter, &DecodeOptions::default(), &origin).unwrap();
        let after_large = {
            render_record(&large, &keyring, &filter, &DecodeOptions::default(), &origin).unwrap();
            render_record(&small, &keyring, &filter, &DecodeOptions::default(), &origin).unwrap()
        };
        assert_eq!(after_large, alone);
        assert_eq!(alone.kept, 1);
    }

    #[test]
    fn a_panic_message_is_read_from_a_str_or_a_string_payload() {
        let named = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
        assert_eq!(panic_message(named.as_ref()), "at 3");
        let literal: Box<dyn Any + Send> = Box::new("plain");
        assert_eq!(panic_message(literal.as_ref()), "plain");
        let other: Box<dyn Any + Send> = Box::new(7u8);
        assert_eq!(panic_message(other.as_ref()), "unknown panic");
    }

    #[test]
    fn a_rendered_record_counts_kept_filtered_and_heartbeat_events() {
        use crate::pipeline::filter::FilterSpec;
        let events = vec![
            json!({"type":"record","command":"SELECT","dbUserName":"app","commandText":"select 1"}),
            json!({"type":"record","command":"SELECT","dbUserName":"other","commandText":"select 2"}),
            json!({"type":"heartbeat"}),
        ];
        let data = encode(
            &payload_json("cluster-A", "db-B", &events),
            &[4u8; 32],
            b"blob",
            &EncodeOptions::default(),
        )
        .unwrap();
        let filter = Filter::new(&FilterSpec {
            skip_heartbeats: true,
            include_users: vec!["app".into()],
            ..FilterSpec::default()
        })
        .unwrap();
        let keyring = RawAesKeyring::das(&[4u8; 32]).unwrap();
        let envelope = Envelope::parse(&data).unwrap();
        let rendered = render_record(
            &envelope,
            &keyring,
            &filter,
            &DecodeOptions::default(),
            &RecordOrigin::default(),
        )
        .unwrap();
        assert_eq!((rendered.kept, rendered.filtered, rendered.heartbeats), (1, 1, 1));
        assert_eq!(rendered.lines.iter().filter(|b| **b == b'\n').count(), 1);
    }
}
