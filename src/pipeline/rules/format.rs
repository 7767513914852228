//! Reads the rules JSON into compiled rules. Each rule is parsed on its own, so one bad rule does not
//! hide the mistakes of the next; every error, from serde_json or from our own checks (raised with
//! `de::Error::custom` inside the visitors, where serde_json attaches its position), carries the line
//! and column in the whole file. Never panics.

use std::fmt;
use std::num::NonZeroU64;

use regex::RegexBuilder;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use wildmatch::WildMatch;

use super::{CountSpec, Except, Expr, Field, Rule, RuleMistake, RulesError, Severity};

/// Largest compiled regular expression accepted (the `regex` crate's default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File<'a> {
    #[serde(borrow)]
    rules: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: RuleId,
    title: String,
    severity: Severity,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "match")]
    matcher: Expr,
    #[serde(default)]
    count: Option<Counts>,
    #[serde(default)]
    except: Option<RawExcept>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExcept {
    #[serde(default)]
    users: Globs,
    #[serde(default)]
    client_applications: Globs,
    #[serde(default)]
    remote_hosts: Globs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCount {
    at_least: NonZeroU64,
    within: NonZeroU64,
    #[serde(default)]
    by: Vec<GlobField>,
    #[serde(default)]
    distinct: Option<GlobField>,
}

/// Parses the whole file.
pub(super) fn parse(text: &str) -> Result<Vec<Rule>, RulesError> {
    let file: File<'_> = serde_json::from_str(text).map_err(|e| RulesError {
        errors: vec![mistake(&e, text, 0)],
    })?;
    let mut rules = Vec::with_capacity(file.rules.len());
    let mut errors = Vec::new();
    for raw in &file.rules {
        let base = offset_in(text, raw.get());
        match serde_json::from_str::<RawRule>(raw.get()) {
            Ok(rule) if rules.iter().any(|r: &Rule| r.id == rule.id.0) => {
                let (line, column) = line_column(text, base);
                errors.push(RuleMistake {
                    line,
                    column,
                    message: format!("a second rule with the id `{}`: give each rule its own id", rule.id.0),
                });
            }
            Ok(rule) => rules.push(compile(rule)),
            Err(e) => errors.push(mistake(&e, text, base)),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(RulesError { errors })
    }
}

fn compile(raw: RawRule) -> Rule {
    let counts = match raw.count {
        None => Vec::new(),
        Some(Counts(counts)) => counts
            .into_iter()
            .map(|c| CountSpec {
                at_least: c.at_least.get(),
                within_seconds: c.within.get(),
                by: c.by.into_iter().map(|f| f.0).collect(),
                distinct: c.distinct.map(|f| f.0),
            })
            .collect(),
    };
    let except = raw.except.map_or_else(Except::default, |e| Except {
        users: e.users.0,
        client_applications: e.client_applications.0,
        remote_hosts: e.remote_hosts.0,
    });
    Rule {
        id: raw.id.0,
        title: raw.title,
        severity: raw.severity,
        description: raw.description,
        counts,
        matcher: raw.matcher,
        except,
    }
}

/// Where `part` (a slice of `whole`) starts in `whole`, in bytes.
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .filter(|o| *o <= whole.len())
        .unwrap_or(0)
}

/// 1-based line and column (in bytes) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.as_bytes().get(..offset).unwrap_or_default();
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let column = 1 + before.iter().rev().take_while(|b| **b != b'\n').count();
    (line, column)
}

/// A serde_json error in the text starting at byte `base` of `whole`, placed in the whole file.
fn mistake(e: &serde_json::Error, whole: &str, base: usize) -> RuleMistake {
    let (base_line, base_column) = line_column(whole, base);
    let (line, column) = if e.line() <= 1 {
        (base_line, base_column + e.column().saturating_sub(1))
    } else {
        (base_line + e.line() - 1, e.column())
    };
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    RuleMistake { line, column, message }
}

struct RuleId(String);

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        let valid =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(de::Error::custom(format_args!(
                "invalid rule id `{id}`: use 1 to 64 letters, digits, `-` or `_`"
            )));
        }
        Ok(Self(id))
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let label = String::deserialize(d)?;
        Severity::ALL.into_iter().find(|s| s.label() == label).ok_or_else(|| {
            de::Error::custom(format_args!(
                "unknown severity `{label}`: expected one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL"
            ))
        })
    }
}

/// A glob-field name (`by`, `distinct`).
struct GlobField(Field);

impl<'de> Deserialize<'de> for GlobField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Field::glob_field(&name).map(Self).ok_or_else(|| {
            de::Error::custom(format_args!(
                "unknown field `{name}`: expected one of {}",
                field_names()
            ))
        })
    }
}

fn field_names() -> String {
    Field::GLOB_FIELDS.map(Field::name).join(", ")
}

/// One glob or a list of globs.
#[derive(Default)]
struct Globs(Vec<WildMatch>);

impl<'de> Deserialize<'de> for Globs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(GlobsVisitor)
    }
}

struct GlobsVisitor;

impl<'de> Visitor<'de> for GlobsVisitor {
    type Value = Globs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a glob string or a list of glob strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Globs, E> {
        Ok(Globs(vec![WildMatch::new_case_insensitive(v)]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Globs, A::Error> {
        let mut globs = Vec::new();
        while let Some(glob) = seq.next_element::<String>()? {
            globs.push(WildMatch::new_case_insensitive(&glob));
        }
        Ok(Globs(globs))
    }
}

/// `count`: one object or a list of them.
struct Counts(Vec<RawCount>);

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountsVisitor)
    }
}

struct CountsVisitor;

impl<'de> Visitor<'de> for CountsVisitor {
    type Value = Counts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a count object {\"atLeast\", \"within\", \"by\"} or a list of them")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Counts, A::Error> {
        let count = RawCount::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Counts(vec![count]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Counts, A::Error> {
        let counts = Vec::<RawCount>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        if counts.is_empty() {
            return Err(de::Error::custom(
                "an empty `count` list: remove it, or give at least one count",
            ));
        }
        Ok(Counts(counts))
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ExprVisitor)
    }
}

struct ExprVisitor;

impl<'de> Visitor<'de> for ExprVisitor {
    type Value = Expr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a match object (field globs, `regex`, `all`, `any`, `not`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Expr, A::Error> {
        let mut parts = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let part = match key.as_str() {
                "all" | "any" => {
                    let list: Vec<Expr> = map.next_value()?;
                    if list.is_empty() {
                        return Err(de::Error::custom(format_args!(
                            "an empty `{key}` list: give it at least one expression"
                        )));
                    }
                    if key == "all" {
                        Expr::All(ordered(list))
                    } else {
                        Expr::Any(ordered(list))
                    }
                }
                "not" => Expr::Not(Box::new(map.next_value()?)),
                "regex" => Expr::Regex(compile_regex(&map.next_value::<String>()?)?),
                name => match Field::glob_field(name) {
                    Some(field) => Expr::Glob(field, map.next_value::<Globs>()?.0),
                    None => {
                        return Err(de::Error::custom(format_args!(
                            "unknown field or operator `{name}` in `match`: expected all, any, not, regex or one of {}",
                            field_names()
                        )))
                    }
                },
            };
            parts.push(part);
        }
        Ok(match parts.len() {
            1 => parts.pop().unwrap_or(Expr::All(Vec::new())),
            _ => Expr::All(ordered(parts)),
        })
    }
}

/// Cheap conditions first, regular expressions last (a stable sort keeps the author's order otherwise).
fn ordered(mut parts: Vec<Expr>) -> Vec<Expr> {
    parts.sort_by_key(Expr::costly);
    parts
}

fn compile_regex<E: de::Error>(pattern: &str) -> Result<regex::Regex, E> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let detail = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            E::custom(format_args!("invalid regex: {detail}"))
        })
}
