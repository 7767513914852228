//! `das decode`: records as Kinesis or Firehose store them, plus the wrapping key the user already
//! has (the KMS plaintext of their `key`), to NDJSON events on stdout, after the same filters as the
//! function. Offline, except that a pseudonym key (`--pseudonym-key`, for `--redact-fields`) is
//! opened with KMS `Decrypt`: the pseudonym key exists in clear nowhere else.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::filters::{open_filter, FilterArgs};
use super::{block_on_value, parse_key};
use crate::pipeline::activity::ActivityRecord;
use crate::pipeline::envelope::Envelope;
use crate::pipeline::esdk::RawAesKeyring;
use crate::pipeline::filter::{Filter, Verdict};
use crate::pipeline::ndjson::LineContext;
use crate::pipeline::record::{self, DecodeOptions};

#[derive(Debug, clap::Args)]
pub(super) struct DecodeArgs {
    /// The 32-byte wrapping key (KMS plaintext), hex or base64. Prefer the environment variable
    /// to keep it out of shell history.
    #[arg(long, env = "DAS_WRAPPING_KEY", hide_env_values = true)]
    wrapping_key: String,
    /// Files of record JSON (as Kinesis or Firehose store them); `-` or none reads stdin.
    files: Vec<PathBuf>,
    #[command(flatten)]
    filters: FilterArgs,
}

pub(super) fn decode(args: &DecodeArgs) -> Result<ExitCode, String> {
    let key = parse_key(&args.wrapping_key)?;
    let keyring = RawAesKeyring::das(&key).map_err(|e| e.to_string())?;
    let settings = args
        .filters
        .settings(&[("DAS_ARCHIVE_BUCKET", "stdout".to_owned())])
        .map_err(|e| e.to_string())?;
    let filter = if settings.pseudonym_key.is_some() {
        block_on_value(async {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            open_filter(&settings, std::future::ready(&sdk)).await
        })??
    } else {
        Filter::new(&settings.filter).map_err(|e| e.to_string())?
    };
    let inputs: Vec<PathBuf> = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut ok, mut failed) = (0usize, 0usize);
    for path in &inputs {
        let bytes = read_input(path)?;
        let (input_ok, input_failed) = decode_input(&bytes, path, &keyring, &filter, &mut out)?;
        ok += input_ok;
        failed += input_failed;
    }
    out.flush().map_err(|e| format!("cannot write output: {e}"))?;
    eprintln!("das decode: {ok} record(s) decoded, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The whole of one input: a file, or stdin for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map(|_| ())
    };
    read.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(bytes)
}

/// Decodes the records of one input to event lines on `out`; a record that fails is reported on
/// stderr and skipped. Returns how many records decoded and how many failed.
fn decode_input(
    bytes: &[u8],
    path: &Path,
    keyring: &RawAesKeyring,
    filter: &Filter,
    out: &mut impl Write,
) -> Result<(usize, usize), String> {
    let options = DecodeOptions::default();
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut line = Vec::new();
    // Firehose concatenates records with no separator; a stream deserializer handles both.
    let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<&serde_json::value::RawValue>();
    for (index, item) in stream.enumerate() {
        let payload = item
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|raw| Envelope::parse(raw.get().as_bytes()).map_err(|e| e.to_string()))
            .and_then(|env| record::decode(&env, keyring, &options).map_err(|e| e.to_string()));
        // After a JSON syntax error the stream deserializer yields nothing more: the rest of this
        // input is not read.
        let parsed = payload.and_then(|p| {
            let activity = ActivityRecord::parse(&p.json, options.payload).map_err(|e| e.to_string());
            activity.map(|a| write_events(&a, filter, &mut line, out))
        });
        match parsed {
            Ok(written) => {
                written?;
                ok += 1;
            }
            Err(message) => {
                eprintln!("das: {} record {index}: {message}", path.display());
                failed += 1;
            }
        }
    }
    Ok((ok, failed))
}

/// The record's events that `filter` keeps, as archive lines (dropped, redacted and masked as it says).
fn write_events(
    activity: &ActivityRecord<'_>,
    filter: &Filter,
    line: &mut Vec<u8>,
    out: &mut impl Write,
) -> Result<(), String> {
    for (index, event) in activity
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| filter.verdict(e) == Verdict::Keep)
    {
        line.clear();
        filter.write_line(event, activity, &LineContext::unknown_record(index), line);
        out.write_all(line).map_err(|e| format!("cannot write output: {e}"))?;
    }
    Ok(())
}
