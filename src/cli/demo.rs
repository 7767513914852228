//! `das demo`: the whole decoding core offline, with a throwaway key: encode realistic records for
//! each engine, decode them back, print a few events and the speed.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use zeroize::Zeroizing;

use super::EngineArg;
use crate::pipeline::activity::ActivityRecord;
use crate::pipeline::envelope::Envelope;
use crate::pipeline::esdk::RawAesKeyring;
use crate::pipeline::ndjson::{write_event_line, LineContext};
use crate::pipeline::record::{self, DecodeOptions, EncodeOptions};
use crate::pipeline::simulate::{Engine, Simulator};

#[derive(Debug, clap::Args)]
pub(super) struct DemoArgs {
    /// Records per engine.
    #[arg(long, default_value_t = 200)]
    records: usize,
    /// Events per record (a heartbeat is added to every tenth record).
    #[arg(long, default_value_t = 20)]
    events_per_record: usize,
    /// Engines to simulate (default: all four).
    #[arg(long, value_enum, value_delimiter = ',')]
    engine: Vec<EngineArg>,
    /// How many decoded events to print.
    #[arg(long, default_value_t = 5)]
    show: usize,
}

/// Offline there is no KMS: the envelope carries a placeholder where the KMS blob would be.
const KEY_BLOB: &[u8] = b"offline-demo: no KMS ciphertext";

/// What decoding the records found.
#[derive(Default)]
struct Tally {
    events: usize,
    heartbeats: usize,
    json_bytes: usize,
}

pub(super) fn demo(args: &DemoArgs) -> Result<ExitCode, String> {
    let engines: Vec<Engine> = if args.engine.is_empty() {
        Engine::ALL.to_vec()
    } else {
        args.engine.iter().map(|&e| e.into()).collect()
    };
    let keyring = throwaway_keyring()?;
    let started = Instant::now();
    let records = encode_all(args, &engines, &keyring)?;
    let encoded_in = started.elapsed();
    let started = Instant::now();
    let tally = decode_all(&records, &keyring, args.show)?;
    let decoded_in = started.elapsed().as_secs_f64();
    eprintln!(
        "das demo: {} records ({} engines) encoded in {:.2} s; decoded {} events + {} heartbeats \
         ({:.1} MB of JSON) in {:.3} s: {:.0} records/s, {:.0} events/s on one core",
        records.len(),
        engines.len(),
        encoded_in.as_secs_f64(),
        tally.events,
        tally.heartbeats,
        tally.json_bytes as f64 / 1e6,
        decoded_in,
        records.len() as f64 / decoded_in,
        (tally.events + tally.heartbeats) as f64 / decoded_in,
    );
    Ok(ExitCode::SUCCESS)
}

/// A DAS keyring under a random wrapping key that lives only as long as the demo.
fn throwaway_keyring() -> Result<RawAesKeyring, String> {
    let mut wrapping_key = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut wrapping_key[..]).map_err(|_| "no system randomness".to_owned())?;
    RawAesKeyring::das(&wrapping_key[..]).map_err(|e| e.to_string())
}

/// `args.records` records per engine, each engine with its own seed; every tenth has a heartbeat.
fn encode_all(args: &DemoArgs, engines: &[Engine], keyring: &RawAesKeyring) -> Result<Vec<Vec<u8>>, String> {
    let mut records = Vec::new();
    for (n, engine) in engines.iter().enumerate() {
        let mut sim = Simulator::new(
            *engine,
            "cluster-DEMO0000000000000000000001",
            "db-DEMO0000000000000000000001",
            n as u64 + 1,
        );
        let options = EncodeOptions {
            version: engine.record_version().to_owned(),
            esdk: engine.encrypt_options(),
        };
        for i in 0..args.records {
            let mut events = sim.events(args.events_per_record);
            if i % 10 == 0 {
                events.push(sim.heartbeat());
            }
            let data =
                record::encode_with(&sim.payload(&events), keyring, KEY_BLOB, &options).map_err(|e| e.to_string())?;
            records.push(data);
        }
    }
    Ok(records)
}

/// Decodes every record, printing the first `show` events as archive lines on stdout.
fn decode_all(records: &[Vec<u8>], keyring: &RawAesKeyring, show: usize) -> Result<Tally, String> {
    let options = DecodeOptions::default();
    let mut tally = Tally::default();
    let mut shown = 0usize;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut line = Vec::new();
    for data in records {
        let envelope = Envelope::parse(data).map_err(|e| e.to_string())?;
        let payload = record::decode(&envelope, keyring, &options).map_err(|e| e.to_string())?;
        tally.json_bytes += payload.json.len();
        let activity = ActivityRecord::parse(&payload.json, options.payload).map_err(|e| e.to_string())?;
        for (index, event) in activity.events.iter().enumerate() {
            if event.is_heartbeat() {
                tally.heartbeats += 1;
                continue;
            }
            tally.events += 1;
            if shown < show {
                line.clear();
                write_event_line(event, &activity, &LineContext::unknown_record(index), &mut line);
                out.write_all(&line).map_err(|e| e.to_string())?;
                shown += 1;
            }
        }
    }
    Ok(tally)
}
