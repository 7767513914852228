//! The `das` command line (feature `cli`): thin commands over the library, data on stdout, messages
//! on stderr, exit codes scripts can rely on (0 success, 1 some input failed, 2 usage error).
//!
//! This module parses arguments and formats output; it holds no decoding logic of its own.

mod decode;
mod demo;
mod filters;
mod fleet;
mod pseudonym_key;
mod redrive;
mod replay;
mod rules;
mod simulate;
mod stream;
mod tail;
mod unmask;

use std::process::ExitCode;

use base64::Engine as _;
use clap::{Parser, Subcommand, ValueEnum};
use zeroize::Zeroizing;

use crate::pipeline::simulate::Engine;
use decode::DecodeArgs;
use demo::DemoArgs;
use fleet::FleetArgs;
use pseudonym_key::PseudonymKeyArgs;
use redrive::RedriveArgs;
use replay::ReplayArgs;
use rules::RulesArgs;
use simulate::SimulateArgs;
use stream::StreamArgs;
use tail::TailArgs;
use unmask::UnmaskArgs;

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
    /// Act as a DAS producer: realistic records under KMS data keys, into a Kinesis stream, a Lambda
    /// test event file, or stdout.
    Simulate(SimulateArgs),
    /// Follow a live activity stream and print its decrypted events as NDJSON, after the same filters
    /// as the Lambda.
    Tail(TailArgs),
    /// Run the Lambda's batch handler on a saved Lambda Kinesis event, writing to S3 or a directory,
    /// and print the batch response.
    Replay(ReplayArgs),
    /// Run quarantined records (and the event-source mapping's failed batches in S3) through the
    /// pipeline again with the current settings; delete what is now archived. Prints a JSON summary.
    Redrive(RedriveArgs),
    /// Start, stop or show an RDS database activity stream (what the console does).
    Stream(StreamArgs),
    /// Every database of a region with its activity stream, archiver mapping and last archived
    /// object; attach or detach the archiver's event-source mapping.
    Fleet(FleetArgs),
    /// Make the KMS-encrypted key of the keyed pseudonyms (DAS_REDACT_FIELDS) and print its blob,
    /// the value of DAS_PSEUDONYM_KEY.
    PseudonymKey(PseudonymKeyArgs),
    /// Break glass: print the events of an archived line's Kinesis record as the database sent them
    /// (SQL literals unmasked), from the originals object kept beside the archive
    /// (DAS_KEEP_ORIGINALS). Needs s3:GetObject on originals/ and kms:Decrypt on the DAS key.
    Unmask(UnmaskArgs),
    /// Detection rules: check a rules file (`check FILE`), or run rules over archived NDJSON lines
    /// and print the findings as JSON lines (`test --rules FILE --events FILE.ndjson`).
    Rules(RulesArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum EngineArg {
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

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    for (name, closest) in crate::aws::config::Settings::unknown_variables(std::env::vars().map(|(n, _)| n)) {
        let hint = closest.map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
        eprintln!("das: warning: {name} is not a setting of das-archiver and is ignored{hint}");
    }
    let result = match cli.command {
        Command::Demo(args) => demo::demo(&args),
        Command::Decode(args) => decode::decode(&args),
        Command::Simulate(args) => block_on(simulate::simulate(&args)),
        Command::Tail(args) => block_on(tail::tail(&args)),
        Command::Replay(args) => block_on(replay::replay(&args)),
        Command::Redrive(args) => block_on(redrive::redrive(&args)),
        Command::Stream(args) => block_on(stream::stream(&args)),
        Command::Fleet(args) => block_on(fleet::fleet(&args)),
        Command::PseudonymKey(args) => block_on(pseudonym_key::pseudonym_key(&args)),
        Command::Unmask(args) => block_on(unmask::unmask(&args)),
        Command::Rules(args) => rules::rules(&args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("das: {message}");
            ExitCode::from(1)
        }
    }
}

/// Runs an async command on a fresh runtime.
fn block_on<F: std::future::Future<Output = Result<ExitCode, String>>>(future: F) -> Result<ExitCode, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(future)
}

/// Runs one future to its value on a fresh runtime (a synchronous command's single KMS call).
fn block_on_value<T, F: std::future::Future<Output = T>>(future: F) -> Result<T, String> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(future))
}

/// An S3 client; path-style addressing is for local S3-compatible servers.
fn s3_client(sdk: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Parses a 32-byte key given as 64 hex digits or base64.
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
