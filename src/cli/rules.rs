//! `das rules`: check a detection rules file, or run rules over archived NDJSON lines offline and
//! print the findings as JSON lines, to tune rules on an existing archive before deploying them.
//! Reading files and printing are all it does; matching and counting are `pipeline::rules`'.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::pipeline::rules::{Detector, EventOrigin, RuleSet, DEFAULT_PACK};

#[derive(Debug, clap::Args)]
pub(super) struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Check a rules file (JSON): print every mistake with its line and column and exit 1, or a
    /// one-line summary and exit 0. `default` checks the embedded default pack.
    Check {
        /// The rules file, or `default`.
        file: String,
    },
    /// Run rules over archived NDJSON lines (`.ndjson` or `.ndjson.gz`, in file order) and print the
    /// findings as JSON lines. Archived lines are masked (DAS_MASK_SQL=literals): a regex on a
    /// literal value (a name in quotes, a number) will not match them, though it would match the
    /// function's events, which rules see before masking.
    Test {
        /// The rules file, or `default`.
        #[arg(long)]
        rules: String,
        /// The archived lines.
        #[arg(long)]
        events: PathBuf,
    },
}

pub(super) fn rules(args: &RulesArgs) -> Result<ExitCode, String> {
    match &args.command {
        RulesCommand::Check { file } => check(file),
        RulesCommand::Test { rules, events } => test(rules, events),
    }
}

/// The rules text and the name to report it by.
fn read_rules(file: &str) -> Result<(String, String), String> {
    if file == "default" {
        return Ok((DEFAULT_PACK.to_owned(), "default".to_owned()));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read the rules file {file}: {e}"))?;
    Ok((text, file.to_owned()))
}

fn load(file: &str) -> Result<RuleSet, String> {
    let (text, name) = read_rules(file)?;
    RuleSet::parse(&text).map_err(|e| {
        let lines: Vec<_> = e
            .errors
            .iter()
            .map(|m| format!("{name}:{}:{}: {}", m.line, m.column, m.message))
            .collect();
        format!("invalid rules file:\n{}", lines.join("\n"))
    })
}

fn check(file: &str) -> Result<ExitCode, String> {
    let (text, name) = read_rules(file)?;
    match RuleSet::parse(&text) {
        Ok(rules) => {
            let ids: Vec<_> = rules.rules().iter().map(|r| r.id.as_str()).collect();
            println!("{name}: {} rules, valid: {}", ids.len(), ids.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for m in &e.errors {
                eprintln!("{name}:{}:{}: {}", m.line, m.column, m.message);
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn open_events(path: &Path) -> Result<Box<dyn BufRead>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::new(reader)))
}

fn test(rules: &str, events: &Path) -> Result<ExitCode, String> {
    let mut detector = Detector::new(load(rules)?);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut lines, mut bad, mut findings) = (0usize, 0usize, 0usize);
    for (n, line) in open_events(events)?.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", events.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(&line) else {
            // The line is not quoted: it may hold SQL text.
            eprintln!("das: {}:{}: not a JSON object, skipped", events.display(), n + 1);
            bad += 1;
            continue;
        };
        for finding in detector.observe(&event, &origin(&event), &|| Value::Object(event.clone())) {
            let json = serde_json::to_string(&finding).map_err(|e| format!("cannot encode a finding: {e}"))?;
            writeln!(out, "{json}").map_err(|e| format!("cannot write output: {e}"))?;
            findings += 1;
        }
    }
    out.flush().map_err(|e| format!("cannot write output: {e}"))?;
    eprintln!(
        "das: {lines} lines, {findings} findings, {bad} unreadable lines, {} events without a readable logTime",
        detector.untimed()
    );
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The line's database (`clusterId`, else `instanceId`) and Kinesis provenance.
fn origin(event: &Map<String, Value>) -> EventOrigin<'_> {
    let text = |name: &str| event.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    EventOrigin {
        resource_id: text("clusterId").or_else(|| text("instanceId")).unwrap_or("unknown"),
        shard: text("kinesisShardId"),
        sequence: text("kinesisSequenceNumber"),
        index: event.get("eventIndex").and_then(Value::as_u64),
    }
}
