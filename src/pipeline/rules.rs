//! Detection rules: which decoded events deserve a finding (a privilege change, a dropped table, a
//! burst of failed logins…), evaluated on every event **before** the archive's filters and masking.
//!
//! This module is pure: it parses a rules file, matches events and counts them in memory. It never
//! does I/O, never reads the clock (an event's time is its `logTime`), never logs, and never puts an
//! event's SQL text or bind parameters into an error message. Delivering findings (EventBridge,
//! Security Hub) and counting across containers are not built yet.
//!
//! # The rules format (JSON, one file)
//!
//! ```json
//! {"rules": [
//!   {"id": "auth-failure-burst", "title": "Burst of failed logins", "severity": "HIGH",
//!    "description": "why the rule exists (optional)",
//!    "match": {"any": [{"command": "AUTH FAILURE"}, {"command": "LOGIN FAILED"}]},
//!    "count": [{"atLeast": 5, "within": 300, "by": ["dbUserName"]},
//!              {"atLeast": 5, "within": 300, "by": ["remoteHost"]}],
//!    "except": {"users": ["rdsadmin"], "clientApplications": [], "remoteHosts": []}}
//! ]}
//! ```
//!
//! - `id` (letters, digits, `-`, `_`; unique), `title`, `severity` (`INFORMATIONAL`, `LOW`, `MEDIUM`,
//!   `HIGH`, `CRITICAL`) and `match` are required; `description`, `count` and `except` are optional.
//! - `match` is an object whose keys all must hold (an empty object matches every event):
//!   - a field name (`class`, `command`, `dbUserName`, `databaseName`, `remoteHost`,
//!     `clientApplication`, `objectName`, `exitCode`, `serverType`) with a glob or a list of globs
//!     (any of them): the filters' globs, `*` and `?`, case-insensitive, whole value. A missing or
//!     `null` field matches no glob; numbers are matched as written (`"exitCode": "0"`);
//!   - `regex`: a regular expression (Rust `regex` syntax, case-insensitive, unanchored) searched in
//!     `commandText`; it is tried after the cheap field checks of the same object;
//!   - `all` (a list: every one), `any` (a list: at least one), `not` (one expression).
//! - `count` (an object or a list of them, each counted on its own): the rule fires once the events it
//!   matched reach `atLeast` within a tumbling window of `within` seconds (windows start at multiples
//!   of `within` since the epoch, by `logTime`), per value of the `by` fields; with `distinct` (a
//!   field name) it counts distinct values of that field instead. It fires exactly once per key and
//!   window, whatever the order or batching of the events. Without `count`, every matching event is
//!   a finding.
//! - `except`: globs on `dbUserName` (`users`), `clientApplication` and `remoteHost`; an event that
//!   matches any of them is ignored by the rule.
//!
//! Every mistake is reported with its line and column ([`RulesError`]), one per rule.

mod counter;
mod format;

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use wildmatch::WildMatch;

use crate::pipeline::activity::ActivityEvent;

pub use counter::{Detector, EventOrigin, Finding, MAX_FINDING_EVENTS};

/// The default pack (`DAS_RULES=default`), as JSON.
pub const DEFAULT_PACK: &str = include_str!("rules/default.json");

/// An event field a rule can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `class`.
    Class,
    /// `command`.
    Command,
    /// `dbUserName`.
    DbUserName,
    /// `databaseName`.
    DatabaseName,
    /// `remoteHost`.
    RemoteHost,
    /// `clientApplication`.
    ClientApplication,
    /// `objectName`.
    ObjectName,
    /// `exitCode`.
    ExitCode,
    /// `serverType`.
    ServerType,
    /// `commandText` (regular expressions only).
    CommandText,
    /// `logTime` (the event's time for counting).
    LogTime,
}

impl Field {
    /// The fields a glob may name, in the order of the format's documentation.
    pub const GLOB_FIELDS: [Field; 9] = [
        Self::Class,
        Self::Command,
        Self::DbUserName,
        Self::DatabaseName,
        Self::RemoteHost,
        Self::ClientApplication,
        Self::ObjectName,
        Self::ExitCode,
        Self::ServerType,
    ];
    const COUNT: usize = 11;

    /// The field's JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Class => "class",
            Self::Command => "command",
            Self::DbUserName => "dbUserName",
            Self::DatabaseName => "databaseName",
            Self::RemoteHost => "remoteHost",
            Self::ClientApplication => "clientApplication",
            Self::ObjectName => "objectName",
            Self::ExitCode => "exitCode",
            Self::ServerType => "serverType",
            Self::CommandText => "commandText",
            Self::LogTime => "logTime",
        }
    }

    /// The glob field named `name`.
    pub fn glob_field(name: &str) -> Option<Self> {
        Self::GLOB_FIELDS.into_iter().find(|f| f.name() == name)
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// An event as rules see it: one scalar field at a time, as text.
pub trait RuleEvent {
    /// The field's value as text (strings unescaped, numbers as written); `None` when absent or `null`.
    fn field(&self, field: Field) -> Option<Cow<'_, str>>;
}

impl RuleEvent for ActivityEvent<'_> {
    fn field(&self, field: Field) -> Option<Cow<'_, str>> {
        match field {
            Field::Class => self.class(),
            Field::Command => self.command(),
            Field::DbUserName => self.db_user_name(),
            Field::DatabaseName => self.database_name(),
            Field::RemoteHost => self.remote_host(),
            Field::ClientApplication => self.client_application(),
            Field::ObjectName => self.object_name(),
            Field::ExitCode => self.exit_code(),
            Field::ServerType => self.server_type(),
            Field::CommandText => self.command_text(),
            Field::LogTime => self.log_time(),
        }
    }
}

impl RuleEvent for serde_json::Map<String, serde_json::Value> {
    fn field(&self, field: Field) -> Option<Cow<'_, str>> {
        match self.get(field.name())? {
            serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
            serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
            serde_json::Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }
}

/// How serious a finding is (the ASFF severity labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// `INFORMATIONAL`.
    Informational,
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `CRITICAL`.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [Self::Informational, Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The label, as written in rules and findings.
    pub fn label(self) -> &'static str {
        match self {
            Self::Informational => "INFORMATIONAL",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A rules file that cannot be used: every mistake found, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct RulesError {
    /// The mistakes, in file order (at most one per rule, plus one for the file itself).
    pub errors: Vec<RuleMistake>,
}

/// One mistake in a rules file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct RuleMistake {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// A condition on an event, compiled.
#[derive(Debug)]
pub(crate) enum Expr {
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
    Glob(Field, Vec<WildMatch>),
    Regex(Regex),
}

impl Expr {
    /// Whether evaluating it may run a regular expression (such parts go last).
    fn costly(&self) -> bool {
        match self {
            Self::All(v) | Self::Any(v) => v.iter().any(Expr::costly),
            Self::Not(e) => e.costly(),
            Self::Glob(..) => false,
            Self::Regex(_) => true,
        }
    }

    fn matches<E: RuleEvent + ?Sized>(&self, view: &mut View<'_, E>) -> bool {
        match self {
            Self::All(v) => v.iter().all(|e| e.matches(view)),
            Self::Any(v) => v.iter().any(|e| e.matches(view)),
            Self::Not(e) => !e.matches(view),
            Self::Glob(field, globs) => view
                .get(*field)
                .is_some_and(|value| globs.iter().any(|g| g.matches(value))),
            Self::Regex(re) => view.get(Field::CommandText).is_some_and(|text| re.is_match(text)),
        }
    }
}

/// Per-rule exceptions.
#[derive(Debug, Default)]
pub(crate) struct Except {
    users: Vec<WildMatch>,
    client_applications: Vec<WildMatch>,
    remote_hosts: Vec<WildMatch>,
}

impl Except {
    fn excludes<E: RuleEvent + ?Sized>(&self, view: &mut View<'_, E>) -> bool {
        [
            (Field::DbUserName, &self.users),
            (Field::ClientApplication, &self.client_applications),
            (Field::RemoteHost, &self.remote_hosts),
        ]
        .into_iter()
        .any(|(field, globs)| !globs.is_empty() && view.get(field).is_some_and(|v| globs.iter().any(|g| g.matches(v))))
    }
}

/// A counting condition: `atLeast` events (or distinct values) within `within` seconds, per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountSpec {
    /// The threshold.
    pub at_least: u64,
    /// The tumbling window's length, in seconds.
    pub within_seconds: u64,
    /// The fields whose values make the key.
    pub by: Vec<Field>,
    /// Count distinct values of this field instead of events.
    pub distinct: Option<Field>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// The rule's id.
    pub id: String,
    /// Its title, for findings.
    pub title: String,
    /// Its severity.
    pub severity: Severity,
    /// What it is for (optional).
    pub description: Option<String>,
    /// Its counting conditions; empty: every matching event is a finding.
    pub counts: Vec<CountSpec>,
    matcher: Expr,
    except: Except,
}

/// A parsed, compiled rules file.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Parses and compiles a rules file, reporting every mistake with its line and column.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        format::parse(text).map(|rules| Self { rules })
    }

    /// The default pack ([`DEFAULT_PACK`]).
    pub fn default_pack() -> Result<Self, RulesError> {
        Self::parse(DEFAULT_PACK)
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The indexes (into [`RuleSet::rules`]) of the rules whose `match` holds for `event` and whose
    /// `except` does not; counting is [`Detector`]'s job. Allocates nothing when nothing matches.
    pub fn evaluate<E: RuleEvent + ?Sized>(&self, event: &E) -> Vec<usize> {
        let mut view = View::new(event);
        let mut matched = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matcher.matches(&mut view) && !rule.except.excludes(&mut view) {
                matched.push(i);
            }
        }
        matched
    }
}

/// An event with the fields read so far kept, so that six rules read `command` once.
struct View<'e, E: ?Sized> {
    event: &'e E,
    cache: [Option<Option<Cow<'e, str>>>; Field::COUNT],
}

impl<'e, E: RuleEvent + ?Sized> View<'e, E> {
    fn new(event: &'e E) -> Self {
        Self {
            event,
            cache: Default::default(),
        }
    }

    fn get(&mut self, field: Field) -> Option<&str> {
        let event = self.event;
        let slot = self.cache.get_mut(field.slot())?;
        slot.get_or_insert_with(|| event.field(field)).as_deref()
    }
}

#[cfg(test)]
mod tests;
