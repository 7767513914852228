//! The `das` command line (feature `cli`): thin commands over the library, data on stdout, messages
//! on stderr, exit codes scripts can rely on (0 success, 1 some input failed, 2 usage error).
//!
//! This module parses arguments and formats output; it holds no decoding logic of its own.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use base64::Engine as _;
use clap::{Parser, Subcommand, ValueEnum};
use zeroize::Zeroizing;

use crate::activity::ActivityRecord;
use crate::envelope::Envelope;
use crate::esdk::RawAesKeyring;
use crate::ndjson::write_event_line;
use crate::record::{self, DecodeOptions, EncodeOptions};
use crate::simulate::{Engine, Simulator};

/// Decrypt and inspect Amazon RDS / Aurora Database Activity Streams records.
#[derive(Debug, Parser)]
#[command(name = "das", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Encode realistic DAS records with a throwaway key, decode them back, and show the events:
    /// the whole decoding core, offline.
    Demo(DemoArgs),
    /// Decode DAS Kinesis record JSON (one or more objects per file, or stdin) with a known wrapping
    /// key (the KMS plaintext of the record's `key`) and print the events as NDJSON.
    Decode(DecodeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EngineArg {
    AuroraPostgresql,
    AuroraMysql,
    Oracle,
    Sqlserver,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Self {
        match e {
            EngineArg::AuroraPostgresql => Engine::AuroraPostgresql,
            EngineArg::AuroraMysql => Engine::AuroraMysql,
            EngineArg::Oracle => Engine::Oracle,
            EngineArg::Sqlserver => Engine::SqlServer,
        }
    }
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
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

#[derive(Debug, clap::Args)]
struct DecodeArgs {
    /// The 32-byte wrapping key (KMS plaintext), hex or base64. Prefer the environment variable
    /// to keep it out of shell history.
    #[arg(long, env = "DAS_WRAPPING_KEY", hide_env_values = true)]
    wrapping_key: String,
    /// Files of record JSON (as Kinesis or Firehose store them); `-` or none reads stdin.
    files: Vec<PathBuf>,
    /// Keep heartbeat events in the output.
    #[arg(long)]
    keep_heartbeats: bool,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Demo(args) => demo(&args),
        Command::Decode(args) => decode(&args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("das: {message}");
            ExitCode::from(1)
        }
    }
}

fn demo(args: &DemoArgs) -> Result<ExitCode, String> {
    let engines: Vec<Engine> = if args.engine.is_empty() {
        Engine::ALL.to_vec()
    } else {
        args.engine.iter().map(|&e| e.into()).collect()
    };
    let mut wrapping_key = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut wrapping_key[..]).map_err(|_| "no system randomness".to_owned())?;
    let keyring = RawAesKeyring::das(&wrapping_key[..]).map_err(|e| e.to_string())?;
    // Offline there is no KMS: the envelope carries a placeholder where the KMS blob would be.
    let key_blob = b"offline-demo: no KMS ciphertext";

    let started = Instant::now();
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
                record::encode_with(&sim.payload(&events), &keyring, key_blob, &options).map_err(|e| e.to_string())?;
            records.push(data);
        }
    }
    let encoded_in = started.elapsed();

    let started = Instant::now();
    let options = DecodeOptions::default();
    let (mut events, mut heartbeats, mut json_bytes, mut shown) = (0usize, 0usize, 0usize, 0usize);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut line = Vec::new();
    for data in &records {
        let envelope = Envelope::parse(data).map_err(|e| e.to_string())?;
        let payload = record::decode(&envelope, &keyring, &options).map_err(|e| e.to_string())?;
        json_bytes += payload.json.len();
        let activity = ActivityRecord::parse(&payload.json, options.payload).map_err(|e| e.to_string())?;
        for event in &activity.events {
            if event.is_heartbeat() {
                heartbeats += 1;
                continue;
            }
            events += 1;
            if shown < args.show {
                line.clear();
                write_event_line(event, &activity, &mut line);
                out.write_all(&line).map_err(|e| e.to_string())?;
                shown += 1;
            }
        }
    }
    let decoded_in = started.elapsed().as_secs_f64();
    eprintln!(
        "das demo: {} records ({} engines) encoded in {:.2} s; decoded {} events + {} heartbeats \
         ({:.1} MB of JSON) in {:.3} s: {:.0} records/s, {:.0} events/s on one core",
        records.len(),
        engines.len(),
        encoded_in.as_secs_f64(),
        events,
        heartbeats,
        json_bytes as f64 / 1e6,
        decoded_in,
        records.len() as f64 / decoded_in,
        (events + heartbeats) as f64 / decoded_in,
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_key(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let text = text.trim();
    let key = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex_decode(text)
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    key.map(Zeroizing::new).filter(|k| k.len() == 32).ok_or_else(|| {
        "--wrapping-key must be 32 bytes as 64 hex digits or base64 (the KMS Decrypt plaintext)".to_owned()
    })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

fn decode(args: &DecodeArgs) -> Result<ExitCode, String> {
    let key = parse_key(&args.wrapping_key)?;
    let keyring = RawAesKeyring::das(&key).map_err(|e| e.to_string())?;
    let options = DecodeOptions::default();
    let inputs: Vec<PathBuf> = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut line = Vec::new();
    for path in &inputs {
        let mut bytes = Vec::new();
        let read = if path.as_os_str() == "-" {
            io::stdin().read_to_end(&mut bytes).map(|_| ())
        } else {
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map(|_| ())
        };
        read.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // Firehose concatenates records with no separator; a stream deserializer handles both.
        let stream = serde_json::Deserializer::from_slice(&bytes).into_iter::<&serde_json::value::RawValue>();
        for (index, item) in stream.enumerate() {
            let result = item
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|raw| Envelope::parse(raw.get().as_bytes()).map_err(|e| e.to_string()))
                .and_then(|env| record::decode(&env, &keyring, &options).map_err(|e| e.to_string()));
            let payload = match result {
                Ok(p) => p,
                Err(message) => {
                    eprintln!("das: {} record {index}: {message}", path.display());
                    failed += 1;
                    // A JSON syntax error leaves the stream unusable; stop reading this input.
                    continue;
                }
            };
            let activity = match ActivityRecord::parse(&payload.json, options.payload) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("das: {} record {index}: {e}", path.display());
                    failed += 1;
                    continue;
                }
            };
            ok += 1;
            for event in activity
                .events
                .iter()
                .filter(|e| args.keep_heartbeats || !e.is_heartbeat())
            {
                line.clear();
                write_event_line(event, &activity, &mut line);
                out.write_all(&line).map_err(|e| format!("cannot write output: {e}"))?;
            }
        }
    }
    out.flush().map_err(|e| format!("cannot write output: {e}"))?;
    eprintln!("das decode: {ok} record(s) decoded, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
