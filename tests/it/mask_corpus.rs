//! The masking corpus: for each engine, hundreds of real statement shapes with the masked text a
//! careful reader expects and a fingerprint group, in `tests/data/mask-corpus/<engine>*.txt`.
//!
//! File format (one record after another; `#` lines and blank lines between records are ignored):
//!
//! ```text
//! = select-user-by-email          the record's fingerprint group (a label)
//! < SELECT * FROM users           the statement, one `< ` line per line of text
//! < WHERE email = 'bob@x.org'
//! > SELECT * FROM users           the expected text with `MaskMode::Literals`
//! > WHERE email = ?
//! ! …                             optional: the expected text with `MaskMode::Off` (a statement
//!                                 that sets a credential); without it, `Off` must change nothing
//! ```
//!
//! Checks: every masked text; `MaskMode::Off`; statements of one group share a fingerprint and
//! different groups of a file do not; a masked text keeps its statement's fingerprint (an analyst
//! can group the archive's masked texts the same way). A failing run lists every record that failed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use das_archiver::mask::{fingerprint, mask_sql, max_masked_len, Dialect, MaskMode};

/// One statement of the corpus.
#[derive(Debug, Clone, Default)]
struct Record {
    /// `file:line` of its `=` line.
    at: String,
    /// Its fingerprint group.
    group: String,
    /// The statement.
    input: String,
    /// The expected text with [`MaskMode::Literals`].
    masked: String,
    /// The expected text with [`MaskMode::Off`], when it differs from the input.
    off: Option<String>,
}

/// The engines, the prefix of their corpus files, and their dialects.
const ENGINES: [(&str, Dialect); 4] = [
    ("postgres", Dialect::Postgres),
    ("mysql", Dialect::MySql),
    ("sqlserver", Dialect::SqlServer),
    ("oracle", Dialect::Oracle),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mask-corpus")
}

/// The corpus files of `engine`: `<engine>.txt` and `<engine>-*.txt`, sorted by name.
fn files(engine: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name == format!("{engine}.txt") || (name.starts_with(&format!("{engine}-")) && name.ends_with(".txt"))
        })
        .collect();
    files.sort();
    files
}

/// Every record of `engine`'s corpus files.
fn records(engine: &str) -> Vec<Record> {
    let mut out = Vec::new();
    for file in files(engine) {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(parse(&name, &text));
    }
    out
}

/// The records of one file (panics, naming the line, on a malformed one).
fn parse(name: &str, text: &str) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut current: Option<(Record, [usize; 3])> = None;
    for (index, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", index + 1);
        let (tag, rest) = match line.char_indices().nth(1) {
            Some((i, _)) => (&line[..1], line[i..].strip_prefix(' ').unwrap_or(&line[i..])),
            None => (line, ""),
        };
        match tag {
            "=" => {
                out.extend(current.take().map(|(r, _)| finish(r)));
                let group = rest.trim().to_owned();
                assert!(!group.is_empty(), "{at}: a record needs a group label");
                current = Some((
                    Record {
                        at,
                        group,
                        ..Record::default()
                    },
                    [0; 3],
                ));
            }
            "<" | ">" | "!" => {
                let (record, counts) = current
                    .as_mut()
                    .unwrap_or_else(|| panic!("{at}: line outside a record"));
                let slot = ["<", ">", "!"].iter().position(|t| *t == tag).unwrap();
                let field = match slot {
                    0 => &mut record.input,
                    1 => &mut record.masked,
                    _ => record.off.get_or_insert_with(String::new),
                };
                if counts[slot] > 0 {
                    field.push('\n');
                }
                field.push_str(rest);
                counts[slot] += 1;
            }
            "" | "#" => {}
            _ => panic!("{at}: a line starts with =, <, >, ! or #"),
        }
    }
    out.extend(current.take().map(|(r, _)| finish(r)));
    out
}

fn finish(record: Record) -> Record {
    assert!(!record.input.is_empty(), "{}: no `<` line", record.at);
    assert!(!record.masked.is_empty(), "{}: no `>` line", record.at);
    record
}

fn dialect_of(engine: &str) -> Dialect {
    ENGINES.iter().find(|(e, _)| *e == engine).unwrap().1
}

/// What is wrong with each record's masked text (both modes), one line per problem.
fn masking_failures(engine: &str) -> Vec<String> {
    let dialect = dialect_of(engine);
    let mut failures = Vec::new();
    for r in records(engine) {
        let got = mask_sql(&r.input, dialect, MaskMode::Literals);
        if got != r.masked {
            failures.push(format!(
                "{}: {:?}\n   want {:?}\n   got  {:?}",
                r.at, r.input, r.masked, got
            ));
        }
        if got.len() > max_masked_len(r.input.len()) {
            failures.push(format!("{}: longer than its bound", r.at));
        }
        let want_off = r.off.clone().unwrap_or_else(|| r.input.clone());
        let got_off = mask_sql(&r.input, dialect, MaskMode::Off);
        if got_off != want_off {
            failures.push(format!(
                "{}: (off) {:?}\n   want {:?}\n   got  {:?}",
                r.at, r.input, want_off, got_off
            ));
        }
    }
    failures
}

/// Records of one group with different fingerprints, groups sharing one, and masked texts whose
/// fingerprint differs from their statement's.
fn fingerprint_failures(engine: &str) -> Vec<String> {
    let dialect = dialect_of(engine);
    let mut failures = Vec::new();
    let mut by_group: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut by_print: BTreeMap<String, String> = BTreeMap::new();
    for r in records(engine) {
        let print = fingerprint(&r.input, dialect).to_string();
        match by_group.get(&r.group) {
            Some((first, at)) if *first != print => {
                failures.push(format!(
                    "{}: group {} has two fingerprints (first at {at})",
                    r.at, r.group
                ));
            }
            Some(_) => {}
            None => {
                by_group.insert(r.group.clone(), (print.clone(), r.at.clone()));
            }
        }
        match by_print.get(&print) {
            Some(group) if *group != r.group => {
                failures.push(format!(
                    "{}: groups {} and {} share a fingerprint",
                    r.at, r.group, group
                ));
            }
            Some(_) => {}
            None => {
                by_print.insert(print.clone(), r.group.clone());
            }
        }
        if fingerprint(&r.masked, dialect).to_string() != print {
            failures.push(format!(
                "{}: the masked text has another fingerprint than the statement",
                r.at
            ));
        }
    }
    failures
}

fn assert_none(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_engine_has_at_least_300_statements_in_its_corpus() {
    for (engine, _) in ENGINES {
        let count = records(engine).len();
        assert!(count >= 300, "{engine}: {count} statements");
    }
}

#[test]
fn postgres_statements_mask_as_expected_in_both_modes() {
    assert_none("failures", &masking_failures("postgres"));
}

#[test]
fn mysql_statements_mask_as_expected_in_both_modes() {
    assert_none("failures", &masking_failures("mysql"));
}

#[test]
fn sql_server_statements_mask_as_expected_in_both_modes() {
    assert_none("failures", &masking_failures("sqlserver"));
}

#[test]
fn oracle_statements_mask_as_expected_in_both_modes() {
    assert_none("failures", &masking_failures("oracle"));
}

#[test]
fn fingerprints_are_shared_within_a_group_and_only_there_for_every_engine() {
    for (engine, _) in ENGINES {
        assert_none(&format!("{engine} fingerprint failures"), &fingerprint_failures(engine));
    }
}

#[test]
fn the_record_format_reads_multi_line_statements_and_the_off_text() {
    let records = parse(
        "x.txt",
        "# c\n= g\n< COPY t FROM stdin;\n< 1\tx\n> COPY t FROM stdin;\n> ?\n\n= h\n< a\n> b\n! c\n",
    );
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].input, "COPY t FROM stdin;\n1\tx");
    assert_eq!(records[0].masked, "COPY t FROM stdin;\n?");
    assert_eq!(records[0].off, None);
    assert_eq!(records[1].off.as_deref(), Some("c"));
}
