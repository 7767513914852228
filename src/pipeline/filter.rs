//! Which events to archive, and which of their fields to leave out or pseudonymise.
//!
//! A [`FilterSpec`] is what the user configured; [`Filter::new`] checks and compiles it once, then
//! [`Filter::verdict`] decides per event and [`Filter::write_line`] writes a kept event as one NDJSON
//! line with the configured fields dropped or redacted.
//!
//! This module never does I/O, never allocates on the common path (a verdict on unescaped values),
//! never re-serialises a value it neither drops nor redacts, never writes a dropped field or a
//! redacted value, and never panics on an event, whatever its content.
//!
//! # Patterns
//!
//! The include and exclude lists hold patterns matched against the whole value, ignoring case (Unicode
//! simple case folding): `*` matches any run of characters (including none) and `?` exactly one
//! character; there is no escape, so a value containing `*` or `?` is matched by those wildcards too.
//! `rds*` matches `rdsadmin` and `RDSTOPMGR`; `admin` matches `Admin` but not `rdsadmin`. String and
//! number values alike are matched as text (`42` matches `"dbUserName": 42`); a field that is absent,
//! `null`, an object or an array has no value.
//!
//! - An empty include list lets every event through; a non-empty one keeps only events whose field has a
//!   value matching at least one pattern (so `*` means "the field must be there").
//! - An exclude list filters out events whose field matches any pattern; an event without a value for
//!   the field is never excluded.
//! - All lists must agree (AND).
//! - Heartbeats are not database activity, so no list applies to them: they are skipped when
//!   [`FilterSpec::skip_heartbeats`] is set ([`Verdict::Heartbeat`]), and kept otherwise.
//!
//! # Dropping and redacting fields
//!
//! Field names are top-level event keys, matched exactly but ignoring ASCII case (so a mistyped
//! `paramlist` still drops `paramList` rather than silently leaking it); they are not patterns, and
//! nested fields cannot be named. Every occurrence of a duplicated key is dropped or redacted.
//!
//! A redacted value becomes a keyed pseudonym, `"hmac-sha256:<64 lowercase hex digits>"`: the
//! HMAC-SHA-256 ([RFC 2104](https://www.rfc-editor.org/rfc/rfc2104)) under the deployment's secret
//! [`PseudonymKey`] of the unescaped UTF-8 text for a JSON string and of the JSON text as written for
//! any other value (so the string `"42"` and the number `42` give the same pseudonym, while `1.5` and
//! `1.50` do not); `null` stays `null`. Equal values give equal pseudonyms under one key, so redacted
//! values can still be correlated across events and archives; without the key nobody can compute a
//! pseudonym, so short values (card numbers, dates of birth, user names) cannot be found by trying
//! guesses. Whoever holds the key can, so the key is kept KMS-encrypted and opened only in memory.
//! A filter that redacts cannot be built without a key ([`FilterError::MissingPseudonymKey`]).
//!
//! `clusterId`, `instanceId` and `type` can be neither dropped nor redacted: the first two tell which
//! database a line comes from (the archiver adds them), and `type` tells records from heartbeats.
//!
//! A rewritten line keeps every other field byte for byte and in its original order; only the
//! whitespace between fields is removed, and a key written with escapes is written re-escaped in its
//! canonical form (`"\u0061"` becomes `"a"`).

use std::borrow::Cow;
use std::fmt;

use aws_lc_rs::hmac;
use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;
use wildmatch::WildMatch;
use zeroize::Zeroizing;

use crate::pipeline::activity::{ActivityEvent, ActivityRecord, StrSeed};
use crate::pipeline::mask::fields::{field_mask, write_masked, EventMasking};
use crate::pipeline::mask::MaskMode;
use crate::pipeline::ndjson::{self, LineContext};

/// The filter settings as the user gives them, each list already split (see [`FilterSpec::parse_list`]).
///
/// Errors from [`Filter::new`] name a list by its field name here (`include_users`, `drop_fields`, …),
/// for the configuration layer to translate into the setting the user wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Skip `heartbeat` events. The Lambda defaults this to `true`; `Default` gives `false`.
    pub skip_heartbeats: bool,
    /// Keep only events whose `dbUserName` matches one of these patterns (empty: all).
    pub include_users: Vec<String>,
    /// Filter out events whose `dbUserName` matches one of these patterns.
    pub exclude_users: Vec<String>,
    /// Keep only events whose `class` matches one of these patterns (empty: all).
    pub include_classes: Vec<String>,
    /// Filter out events whose `class` matches one of these patterns.
    pub exclude_classes: Vec<String>,
    /// Keep only events whose `command` matches one of these patterns (empty: all).
    pub include_commands: Vec<String>,
    /// Filter out events whose `command` matches one of these patterns.
    pub exclude_commands: Vec<String>,
    /// Keep only events whose `databaseName` matches one of these patterns (empty: all).
    pub include_databases: Vec<String>,
    /// Filter out events whose `databaseName` matches one of these patterns.
    pub exclude_databases: Vec<String>,
    /// Filter out events whose `clientApplication` matches one of these patterns.
    pub exclude_client_applications: Vec<String>,
    /// Top-level event fields left out of the output, e.g. `paramList`, `commandText`.
    pub drop_fields: Vec<String>,
    /// Top-level event fields whose value is replaced by `"hmac-sha256:<hex>"` in the output (needs a
    /// [`PseudonymKey`], see [`Filter::with_key`]).
    pub redact_fields: Vec<String>,
    /// Whether SQL literals and bind values are masked (`DAS_MASK_SQL`; on by default).
    pub mask_sql: MaskMode,
}

impl FilterSpec {
    /// Splits a comma-separated setting into its items, trimmed, leaving out empty ones
    /// (`" rdsadmin, ,rdstopmgr,"` gives `["rdsadmin", "rdstopmgr"]`).
    pub fn parse_list(text: &str) -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Why a [`FilterSpec`] cannot be used. Each error names the list (a [`FilterSpec`] field name,
/// see [`FilterError::list`]) and the offending item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A pattern that cannot be what the user meant, e.g. an empty one.
    #[error("{list}: the pattern {pattern:?} {reason}")]
    InvalidPattern {
        /// The [`FilterSpec`] field holding the pattern, e.g. `include_users`.
        list: &'static str,
        /// The pattern as given.
        pattern: String,
        /// What is wrong and what to do, completing "the pattern … ".
        reason: &'static str,
    },
    /// A field name in `drop_fields` or `redact_fields` that cannot be honoured.
    #[error("{list}: the field {field:?} {reason}")]
    InvalidField {
        /// `drop_fields` or `redact_fields`.
        list: &'static str,
        /// The field name as given.
        field: String,
        /// What is wrong and what to do, completing "the field … ".
        reason: &'static str,
    },
    /// A field named in both `drop_fields` and `redact_fields`.
    #[error(
        "{list}: the field {field:?} is also in {other_list}; a field is either dropped or redacted, so remove it from one of the two"
    )]
    ConflictingField {
        /// `redact_fields`.
        list: &'static str,
        /// `drop_fields`.
        other_list: &'static str,
        /// The field name as given in `list`.
        field: String,
    },
    /// `redact_fields` is set but no [`PseudonymKey`] was given, so nothing could be pseudonymised.
    #[error(
        "redact_fields: redacting fields needs a pseudonym key; make one with `das pseudonym-key new --kms-key-id <key>` and set DAS_PSEUDONYM_KEY (the template's PseudonymKey parameter) to the blob it prints"
    )]
    MissingPseudonymKey,
}

impl FilterError {
    /// The [`FilterSpec`] field the error is about (`include_users`, `drop_fields`, …), for the
    /// configuration layer to name the setting the user wrote.
    pub fn list(&self) -> &'static str {
        match self {
            Self::InvalidPattern { list, .. }
            | Self::InvalidField { list, .. }
            | Self::ConflictingField { list, .. } => list,
            Self::MissingPseudonymKey => "redact_fields",
        }
    }
}

const EMPTY_PATTERN: &str = "is empty or only whitespace and would match only empty values; remove it from the list";
const EMPTY_FIELD: &str = "is empty or only whitespace; remove it from the list";
const SPACED_FIELD: &str = "has leading or trailing whitespace, which no event field name has; remove the whitespace";
const WILDCARD_FIELD: &str =
    "contains `*` or `?`, but field names are not patterns; list each top-level field by its exact name (e.g. paramList)";
const ID_FIELD: &str =
    "is added to every line by the archiver to tell which database it comes from, so it cannot be dropped or redacted; remove it from the list";
const TYPE_FIELD: &str =
    "tells records from heartbeats in the archive, so it cannot be dropped or redacted; remove it from the list";

/// What to do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Archive it.
    Keep,
    /// A heartbeat, skipped because [`FilterSpec::skip_heartbeats`] is set.
    Heartbeat,
    /// Left out by an include or exclude list.
    Filtered,
}

/// The event fields the include and exclude lists look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventField {
    /// `dbUserName`.
    User,
    /// `class`.
    Class,
    /// `command`.
    Command,
    /// `databaseName`.
    Database,
    /// `clientApplication`.
    ClientApplication,
}

impl EventField {
    fn read<'a>(self, event: &ActivityEvent<'a>) -> Option<Cow<'a, str>> {
        match self {
            Self::User => event.db_user_name(),
            Self::Class => event.class(),
            Self::Command => event.command(),
            Self::Database => event.database_name(),
            Self::ClientApplication => event.client_application(),
        }
    }
}

/// What a filter list does with its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Keep only events whose field matches one of the patterns (an empty list keeps all).
    Include(EventField),
    /// Filter out events whose field matches one of the patterns.
    Exclude(EventField),
    /// Leave these top-level fields out of the output.
    Drop,
    /// Replace these top-level fields' values by `"hmac-sha256:<hex>"` (keyed pseudonyms).
    Redact,
}

/// One filter list and every name it goes by: the one description that [`Filter::new`], the
/// environment settings (`aws::config`) and the `das` command-line flags (`cli::filters`) derive from.
#[derive(Debug, Clone, Copy)]
pub struct FilterList {
    /// The [`FilterSpec`] field, which also names the list in a [`FilterError`] (`include_users`).
    pub name: &'static str,
    /// The environment variable of the Lambda (`DAS_INCLUDE_USERS`): `DAS_` and the upper-case name.
    pub env: &'static str,
    /// The `das` flag without its dashes (`include-users`): the name with `-` for `_`.
    pub flag: &'static str,
    /// The flag's help line.
    pub help: &'static str,
    /// Include, exclude, drop or redact, and for the pattern lists the event field they look at.
    pub kind: ListKind,
    field: fn(&FilterSpec) -> &Vec<String>,
    field_mut: fn(&mut FilterSpec) -> &mut Vec<String>,
}

impl FilterList {
    /// This list's items in `spec`.
    pub fn get<'s>(&self, spec: &'s FilterSpec) -> &'s [String] {
        (self.field)(spec)
    }

    /// This list's items in `spec`, to fill in.
    pub fn get_mut<'s>(&self, spec: &'s mut FilterSpec) -> &'s mut Vec<String> {
        (self.field_mut)(spec)
    }
}

/// One row of [`FILTER_LISTS`]: the [`FilterSpec`] field is named once and gives both accessors.
macro_rules! filter_list {
    ($name:ident, $env:literal, $flag:literal, $kind:expr, $help:literal) => {
        FilterList {
            name: stringify!($name),
            env: $env,
            flag: $flag,
            help: $help,
            kind: $kind,
            field: |spec| &spec.$name,
            field_mut: |spec| &mut spec.$name,
        }
    };
}

/// Every filter list, in the order [`Filter::new`] checks them (so the first problem reported is the
/// same whichever way the settings came in).
pub const FILTER_LISTS: [FilterList; 11] = {
    use EventField::*;
    use ListKind::*;
    [
        filter_list!(
            include_users,
            "DAS_INCLUDE_USERS",
            "include-users",
            Include(User),
            "Keep only these users (dbUserName patterns)"
        ),
        filter_list!(
            exclude_users,
            "DAS_EXCLUDE_USERS",
            "exclude-users",
            Exclude(User),
            "Drop these users"
        ),
        filter_list!(
            include_classes,
            "DAS_INCLUDE_CLASSES",
            "include-classes",
            Include(Class),
            "Keep only these classes (READ, WRITE, DDL, MAIN, …)"
        ),
        filter_list!(
            exclude_classes,
            "DAS_EXCLUDE_CLASSES",
            "exclude-classes",
            Exclude(Class),
            "Drop these classes"
        ),
        filter_list!(
            include_commands,
            "DAS_INCLUDE_COMMANDS",
            "include-commands",
            Include(Command),
            "Keep only these commands"
        ),
        filter_list!(
            exclude_commands,
            "DAS_EXCLUDE_COMMANDS",
            "exclude-commands",
            Exclude(Command),
            "Drop these commands"
        ),
        filter_list!(
            include_databases,
            "DAS_INCLUDE_DATABASES",
            "include-databases",
            Include(Database),
            "Keep only these databases"
        ),
        filter_list!(
            exclude_databases,
            "DAS_EXCLUDE_DATABASES",
            "exclude-databases",
            Exclude(Database),
            "Drop these databases"
        ),
        filter_list!(
            exclude_client_applications,
            "DAS_EXCLUDE_CLIENT_APPLICATIONS",
            "exclude-client-applications",
            Exclude(ClientApplication),
            "Drop these client applications"
        ),
        filter_list!(
            drop_fields,
            "DAS_DROP_FIELDS",
            "drop-fields",
            Drop,
            "Remove these event fields, e.g. paramList"
        ),
        filter_list!(
            redact_fields,
            "DAS_REDACT_FIELDS",
            "redact-fields",
            Redact,
            "Replace these event fields by keyed pseudonyms hmac-sha256:<hex> (needs --pseudonym-key), e.g. dbUserName"
        ),
    ]
};

/// One non-empty include or exclude list, compiled.
#[derive(Debug, Clone)]
struct Rule {
    field: EventField,
    include: bool,
    patterns: Vec<WildMatch>,
}

impl Rule {
    fn passes(&self, event: &ActivityEvent<'_>) -> bool {
        let value = self.field.read(event);
        let matched = value
            .as_deref()
            .is_some_and(|value| self.patterns.iter().any(|pattern| pattern.matches(value)));
        matched == self.include
    }
}

/// What [`Filter::write_line`] does with one top-level field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Copy,
    Drop,
    Redact,
}

/// The secret 32-byte key of the keyed pseudonyms (`DAS_REDACT_FIELDS`): whoever holds it can
/// compute the pseudonym of any guess, so it lives only in memory, is wiped on drop, and its `Debug`
/// shows nothing of it. The AWS edge opens it from its KMS-encrypted blob (`DAS_PSEUDONYM_KEY`).
pub struct PseudonymKey(Zeroizing<[u8; PseudonymKey::LEN]>);

impl PseudonymKey {
    /// The key length in bytes: 256 bits, the size of HMAC-SHA-256's output (RFC 2104 section 3
    /// recommends a key no shorter than that).
    pub const LEN: usize = 32;

    /// The key in `bytes`, or `None` unless they are exactly [`PseudonymKey::LEN`] long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let bytes = <&[u8; Self::LEN]>::try_from(bytes).ok()?;
        let mut key = Zeroizing::new([0u8; Self::LEN]);
        key.copy_from_slice(bytes);
        Some(Self(key))
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

/// The prepared HMAC-SHA-256 key of a [`PseudonymKey`] (the padded key blocks; aws-lc's
/// `HMAC_CTX_cleanup`, run on drop, zeroes them: `crypto/fipsmodule/hmac/hmac.c`); its `Debug` shows
/// nothing of it.
#[derive(Clone)]
struct Pseudonyms(hmac::Key);

impl Pseudonyms {
    fn new(key: &PseudonymKey) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key.0.as_ref()))
    }

    /// The pseudonym of `value`'s bytes: `hmac-sha256:` and the tag in lowercase hex.
    fn write(&self, value: &[u8], out: &mut Vec<u8>) {
        let tag = hmac::sign(&self.0, value);
        out.extend_from_slice(b"hmac-sha256:");
        for byte in tag.as_ref() {
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        }
    }
}

impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonyms(<secret>)")
    }
}

/// A checked and compiled [`FilterSpec`].
#[derive(Debug, Clone)]
pub struct Filter {
    skip_heartbeats: bool,
    rules: Vec<Rule>,
    drop_fields: Vec<String>,
    redact_fields: Vec<String>,
    mask_sql: MaskMode,
    /// Present whenever `redact_fields` is not empty ([`Filter::with_key`] makes sure).
    pseudonyms: Option<Pseudonyms>,
}

impl Filter {
    /// Checks and compiles `spec`, which must redact nothing: [`Filter::with_key`] without a key.
    pub fn new(spec: &FilterSpec) -> Result<Self, FilterError> {
        Self::with_key(spec, None)
    }

    /// Checks and compiles `spec`; redacted values become pseudonyms under `key`.
    ///
    /// Fails as [`Filter::check`] does, and with [`FilterError::MissingPseudonymKey`] when `spec`
    /// redacts fields and `key` is `None`: a filter never writes an unkeyed value.
    pub fn with_key(spec: &FilterSpec, key: Option<&PseudonymKey>) -> Result<Self, FilterError> {
        let mut filter = Self::compile(spec)?;
        if !filter.redact_fields.is_empty() {
            filter.pseudonyms = Some(Pseudonyms::new(key.ok_or(FilterError::MissingPseudonymKey)?));
        }
        Ok(filter)
    }

    /// Checks `spec` without a key (the configuration layer, before the key is opened).
    ///
    /// Fails on an empty (or only whitespace) pattern or field name, a field name with surrounding
    /// whitespace or a wildcard, a field both dropped and redacted, and on dropping or redacting
    /// `clusterId`, `instanceId` or `type` (ignoring ASCII case). The first problem found is reported.
    pub fn check(spec: &FilterSpec) -> Result<(), FilterError> {
        Self::compile(spec).map(|_| ())
    }

    /// [`Filter::check`], keeping the compiled filter (without pseudonyms yet).
    fn compile(spec: &FilterSpec) -> Result<Self, FilterError> {
        let mut rules = Vec::new();
        for list in &FILTER_LISTS {
            let items = list.get(spec);
            let (field, include) = match list.kind {
                ListKind::Include(field) => (field, true),
                ListKind::Exclude(field) => (field, false),
                ListKind::Drop | ListKind::Redact => {
                    check_fields(list.name, items)?;
                    continue;
                }
            };
            if items.is_empty() {
                continue;
            }
            let patterns = items
                .iter()
                .map(|pattern| compile(list.name, pattern))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule {
                field,
                include,
                patterns,
            });
        }
        if let Some(field) = spec.redact_fields.iter().find(|field| {
            spec.drop_fields
                .iter()
                .any(|dropped| dropped.eq_ignore_ascii_case(field))
        }) {
            return Err(FilterError::ConflictingField {
                list: "redact_fields",
                other_list: "drop_fields",
                field: field.clone(),
            });
        }

        Ok(Self {
            skip_heartbeats: spec.skip_heartbeats,
            rules,
            drop_fields: spec.drop_fields.clone(),
            redact_fields: spec.redact_fields.clone(),
            mask_sql: spec.mask_sql,
            pseudonyms: None,
        })
    }

    /// Decides what to do with `event`: heartbeats first (skipped or kept whatever the lists say),
    /// then every non-empty include and exclude list must let the event through.
    pub fn verdict(&self, event: &ActivityEvent<'_>) -> Verdict {
        if event.is_heartbeat() {
            return if self.skip_heartbeats {
                Verdict::Heartbeat
            } else {
                Verdict::Keep
            };
        }
        if self.rules.iter().all(|rule| rule.passes(event)) {
            Verdict::Keep
        } else {
            Verdict::Filtered
        }
    }

    /// Whether [`Filter::write_line`] drops or redacts anything. When it does not, lines are written
    /// by [`ndjson::write_masked_event_line`] without parsing the event again.
    pub fn rewrites_fields(&self) -> bool {
        !self.drop_fields.is_empty() || !self.redact_fields.is_empty()
    }

    /// Appends a kept `event` to `out` as one NDJSON line (with `\n`): its fields in their original
    /// order and JSON text, minus dropped fields, with redacted values replaced, plus the record's
    /// `clusterId` and `instanceId` exactly as [`ndjson::write_event_line`] adds them.
    ///
    /// An event from [`ActivityRecord::parse`] is always a well-formed JSON object, so rewriting it
    /// cannot fail; if it ever did, the line would hold only the resource ids, never an unfiltered
    /// field.
    pub fn write_line(
        &self,
        event: &ActivityEvent<'_>,
        record: &ActivityRecord<'_>,
        at: &LineContext<'_>,
        out: &mut Vec<u8>,
    ) {
        if !self.rewrites_fields() && !event.repeats_sensitive_field() {
            ndjson::write_masked_event_line(event, record, at, self.mask_sql, out);
            return;
        }
        let start = out.len();
        out.push(b'{');
        let masking = ndjson::event_masking(event, self.mask_sql);
        let mut de = serde_json::Deserializer::from_str(event.raw_json());
        let rewrite = Rewrite {
            filter: self,
            masking: &masking,
            out: &mut *out,
        };
        let empty = match de.deserialize_map(rewrite) {
            Ok(empty) => empty,
            Err(_) => {
                out.truncate(start);
                out.push(b'{');
                true
            }
        };
        let empty = !ndjson::write_fingerprint(event, masking.dialect, empty, out) && empty;
        ndjson::finish_line(event, record, at, empty, start, out);
    }

    fn action(&self, key: &str) -> Action {
        if self.drop_fields.iter().any(|field| field.eq_ignore_ascii_case(key)) {
            Action::Drop
        } else if self.redact_fields.iter().any(|field| field.eq_ignore_ascii_case(key)) {
            Action::Redact
        } else {
            Action::Copy
        }
    }
}

fn compile(list: &'static str, pattern: &str) -> Result<WildMatch, FilterError> {
    if pattern.trim().is_empty() {
        return Err(FilterError::InvalidPattern {
            list,
            pattern: pattern.to_owned(),
            reason: EMPTY_PATTERN,
        });
    }
    Ok(WildMatch::new_case_insensitive(pattern))
}

fn check_fields(list: &'static str, fields: &[String]) -> Result<(), FilterError> {
    for field in fields {
        let reason = if field.trim().is_empty() {
            EMPTY_FIELD
        } else if field.trim() != field {
            SPACED_FIELD
        } else if field.contains(['*', '?']) {
            WILDCARD_FIELD
        } else if field.eq_ignore_ascii_case("clusterId") || field.eq_ignore_ascii_case("instanceId") {
            ID_FIELD
        } else if field.eq_ignore_ascii_case("type") {
            TYPE_FIELD
        } else {
            continue;
        };
        return Err(FilterError::InvalidField {
            list,
            field: field.clone(),
            reason,
        });
    }
    Ok(())
}

/// Copies an event object's members into `out` (after its `{`), dropping and redacting as the
/// filter says. Returns whether no member was written.
struct Rewrite<'f> {
    filter: &'f Filter,
    masking: &'f EventMasking,
    out: &'f mut Vec<u8>,
}

impl<'de> Visitor<'de> for Rewrite<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut empty = true;
        while let Some(key) = map.next_key_seed(StrSeed)? {
            let value: &'de RawValue = map.next_value()?;
            let action = self.filter.action(&key);
            if action == Action::Drop {
                continue;
            }
            if !empty {
                self.out.push(b',');
            }
            empty = false;
            // Serialising a &str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.out, key.as_ref());
            self.out.push(b':');
            if let (Action::Redact, Some(pseudonyms)) = (action, &self.filter.pseudonyms) {
                write_redacted(value, pseudonyms, self.out);
            } else if action == Action::Redact {
                // Unreachable: `with_key` gives every redacting filter its pseudonyms. Never the value.
                self.out.extend_from_slice(b"null");
            } else if let Some(mask) = field_mask(&key) {
                write_masked(mask, value, self.masking, self.out);
            } else {
                self.out.extend_from_slice(value.get().as_bytes());
            }
        }
        Ok(empty)
    }
}

/// Writes `"hmac-sha256:<hex>"` for a redacted value, or `null` for `null`. The HMAC's input is the
/// unescaped UTF-8 text of a JSON string, and the JSON text as written of any other value.
fn write_redacted(value: &RawValue, pseudonyms: &Pseudonyms, out: &mut Vec<u8>) {
    let raw = value.get();
    if raw == "null" {
        out.extend_from_slice(b"null");
        return;
    }
    let text = if raw.starts_with('"') {
        // A string escaping a lone surrogate (`"\ud800"`) has no UTF-8 content: key its JSON text.
        StrSeed
            .deserialize(&mut serde_json::Deserializer::from_str(raw))
            .unwrap_or(Cow::Borrowed(raw))
    } else {
        Cow::Borrowed(raw)
    };
    out.push(b'"');
    pseudonyms.write(text.as_bytes(), out);
    out.push(b'"');
}

fn hex_digit(nibble: u8) -> u8 {
    match nibble {
        0..=9 => b'0' + nibble,
        _ => b'a' + (nibble - 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pipeline::activity::ParseLimits;
    use crate::pipeline::mask::{fingerprint, Dialect};

    const CLUSTER: &str = "cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ";
    const INSTANCE: &str = "db-FZJTMYKCXQBUUZ6VLU7NW3ITCM";
    const IDS: &str =
        r#""clusterId":"cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ","instanceId":"db-FZJTMYKCXQBUUZ6VLU7NW3ITCM""#;

    const PG_SELECT: &str = r#"{"logTime":"2019-10-30 00:39:49.990579+00","statementId":1,"substatementId":1,"objectType":"TABLE","command":"SELECT","objectName":"persons","databaseName":"postgres","dbUserName":"app_user","remoteHost":"172.31.3.195","remotePort":"49804","sessionId":"5ce5f7f0.474b","rowCount":1,"commandText":"select * from persons where id = $1","paramList":["42"],"pid":18251,"clientApplication":"psql","exitCode":null,"class":"READ","serverVersion":"2.3.1","serverType":"PostgreSQL","serviceName":"Amazon Aurora PostgreSQL-Compatible edition","serverHost":"172.31.3.192","netProtocol":"TCP","dbProtocol":"Postgres 3.0","type":"record","errorMessage":null}"#;
    const PG_CONNECT: &str = r#"{"logTime":"2019-10-30 00:40:01.101010+00","command":"CONNECT","databaseName":"rdsadmin","dbUserName":"rdsadmin","remoteHost":"[local]","commandText":null,"paramList":[],"clientApplication":null,"class":"MISC","type":"record"}"#;
    const MY_QUERY: &str = r#"{"logTime":"2020-01-01 10:00:00.000000+00","statementId":7,"substatementId":1,"command":"QUERY","databaseName":"Sales","dbUserName":42,"remoteHost":"10.0.0.5","commandText":"SELECT 1","paramList":null,"clientApplication":"mysql","class":"MAIN","type":"record"}"#;
    const ORA_LOGON: &str = r#"{"class":"Standard","clientApplication":"sqlplus@ip-10-0-0-1 (TNS V1-V3)","command":"LOGON","dbUserName":"ADMIN","databaseName":"ORCL","engineNativeAuditFields":{"CLIENT_ID":"x","OS_USER":"rdsdb"},"exitCode":0,"type":"record"}"#;
    const HEARTBEAT: &str = r#"{"type":"heartbeat"}"#;

    fn payload(events: &[&str]) -> String {
        format!(
            r#"{{"type":"DatabaseActivityMonitoringRecord","clusterId":"{CLUSTER}","instanceId":"{INSTANCE}","databaseActivityEventList":[{}]}}"#,
            events.join(",")
        )
    }

    fn parse(json: &str) -> ActivityRecord<'_> {
        ActivityRecord::parse(json.as_bytes(), ParseLimits::default()).unwrap()
    }

    fn with(edit: impl FnOnce(&mut FilterSpec)) -> FilterSpec {
        let mut spec = FilterSpec::default();
        edit(&mut spec);
        spec
    }

    fn list(items: &str) -> Vec<String> {
        FilterSpec::parse_list(items)
    }

    fn verdicts(spec: &FilterSpec, events: &[&str]) -> Vec<Verdict> {
        let json = payload(events);
        let record = parse(&json);
        let filter = Filter::new(spec).unwrap();
        record.events.iter().map(|event| filter.verdict(event)).collect()
    }

    fn kept(spec: &FilterSpec, events: &[&str]) -> Vec<bool> {
        verdicts(spec, events).into_iter().map(|v| v == Verdict::Keep).collect()
    }

    /// The test key: bytes 0 to 31. The pseudonyms below are Python's
    /// `hmac.new(bytes(range(32)), value, hashlib.sha256).hexdigest()`.
    fn test_key() -> PseudonymKey {
        let bytes: Vec<u8> = (0..32).collect();
        PseudonymKey::from_slice(&bytes).unwrap()
    }

    fn lines(spec: &FilterSpec, events: &[&str]) -> String {
        let json = payload(events);
        let record = parse(&json);
        let filter = Filter::with_key(spec, Some(&test_key())).unwrap();
        let mut out = Vec::new();
        for (i, event) in record.events.iter().enumerate() {
            filter.write_line(event, &record, &LineContext::unknown_record(i), &mut out);
        }
        without_provenance(&String::from_utf8(out).unwrap())
    }

    /// The lines without the provenance fields `ndjson` appends last (tested there), so the expected
    /// lines here show only what the filter does.
    fn without_provenance(lines: &str) -> String {
        const MARK: &str = ",\"kinesisShardId\":null,\"kinesisSequenceNumber\":null,\"eventIndex\":";
        lines
            .lines()
            .map(|line| match line.find(MARK) {
                Some(at) => format!("{}}}\n", &line[..at]),
                None => format!("{line}\n"),
            })
            .collect()
    }

    fn sha(hex: &str) -> String {
        format!("\"hmac-sha256:{hex}\"")
    }

    const SHA_APP_USER: &str = "1e698ae856b398b379c0574fd5e331ccff01078bfb20f58273d5f9efd4ddad24";
    const SHA_42: &str = "7df989924b2ebf8832c80802d1213a8a21a062a23877f0718effe501daee1703";
    const SHA_ABC: &str = "f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47";
    const SHA_EMPTY: &str = "d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb";
    const SHA_NATIVE: &str = "7c6764e7afc092caa1c002662a9f5d2135821a24a3dfd8308cf7e15b4fc49048";

    /// The pseudonym `Pseudonyms` writes for `value` under a key of any length.
    fn pseudonym(key: &[u8], value: &[u8]) -> String {
        let mut out = Vec::new();
        Pseudonyms(hmac::Key::new(hmac::HMAC_SHA256, key)).write(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pseudonyms_are_hmac_sha256_as_in_the_rfc_4231_test_vectors() {
        // RFC 4231 section 4.2 (test case 1) and 4.3 (test case 2).
        assert_eq!(
            pseudonym(&[0x0b; 20], b"Hi There"),
            "hmac-sha256:b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            pseudonym(b"Jefe", b"what do ya want for nothing?"),
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pseudonyms_agree_with_pythons_hmac_module_and_depend_on_the_key() {
        let key: Vec<u8> = (0..32).collect();
        assert_eq!(pseudonym(&key, b"app_user"), format!("hmac-sha256:{SHA_APP_USER}"));
        let other = [0u8; 32];
        assert_ne!(pseudonym(&other, b"app_user"), pseudonym(&key, b"app_user"));
    }

    #[test]
    fn a_pseudonym_key_is_exactly_32_bytes_and_its_debug_shows_nothing_of_it() {
        assert!(PseudonymKey::from_slice(&[7; 31]).is_none());
        assert!(PseudonymKey::from_slice(&[7; 33]).is_none());
        let key = PseudonymKey::from_slice(&[0xab; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "PseudonymKey(<secret>)");
        let filter = Filter::with_key(&with(|s| s.redact_fields = list("dbUserName")), Some(&key)).unwrap();
        let debug = format!("{filter:?}");
        assert!(
            debug.contains("<secret>") && !debug.to_lowercase().contains("ab, ab"),
            "{debug}"
        );
    }

    #[test]
    fn a_filter_that_redacts_cannot_be_built_without_a_key_and_the_error_says_how_to_make_one() {
        let spec = with(|s| s.redact_fields = list("dbUserName"));
        let err = Filter::new(&spec).unwrap_err();
        assert_eq!(err, FilterError::MissingPseudonymKey);
        assert_eq!(err.list(), "redact_fields");
        assert!(
            err.to_string().contains("das pseudonym-key new --kms-key-id <key>"),
            "{err}"
        );
        assert!(Filter::check(&spec).is_ok());
        assert!(Filter::new(&with(|s| s.drop_fields = list("paramList"))).is_ok());
    }

    #[test]
    fn every_filter_list_names_its_spec_field_its_variable_and_its_flag_alike() {
        for list in &FILTER_LISTS {
            assert_eq!(list.env, format!("DAS_{}", list.name.to_uppercase()));
            assert_eq!(list.flag, list.name.replace('_', "-"));
            let mut spec = FilterSpec::default();
            list.get_mut(&mut spec).push("x".to_owned());
            assert_eq!(list.get(&spec), ["x"]);
            let debug = format!("{spec:?}");
            assert!(debug.contains(&format!("{}: [\"x\"]", list.name)), "{debug}");
        }
        let kinds = FILTER_LISTS.map(|list| list.kind);
        assert_eq!(kinds.iter().filter(|k| matches!(k, ListKind::Include(_))).count(), 4);
        assert_eq!(kinds.iter().filter(|k| matches!(k, ListKind::Exclude(_))).count(), 5);
        assert_eq!(kinds[9..], [ListKind::Drop, ListKind::Redact]);
    }

    #[test]
    fn parse_list_splits_on_commas_trims_and_drops_empty_items() {
        assert_eq!(list(" rdsadmin, ,RDSTOPMGR,app_*,"), ["rdsadmin", "RDSTOPMGR", "app_*"]);
        assert_eq!(list("CREATE TABLE"), ["CREATE TABLE"]);
        assert!(list("").is_empty());
        assert!(list(" , ,").is_empty());
    }

    #[test]
    fn an_empty_spec_keeps_every_event_including_heartbeats() {
        let all = [PG_SELECT, PG_CONNECT, MY_QUERY, ORA_LOGON, HEARTBEAT];
        assert_eq!(verdicts(&FilterSpec::default(), &all), [Verdict::Keep; 5]);
    }

    #[test]
    fn heartbeats_are_skipped_when_asked_and_otherwise_kept_whatever_the_lists_say() {
        let skipping = with(|s| s.skip_heartbeats = true);
        assert_eq!(
            verdicts(&skipping, &[PG_SELECT, HEARTBEAT]),
            [Verdict::Keep, Verdict::Heartbeat]
        );
        let strict = with(|s| {
            s.include_users = list("app_user");
            s.include_classes = list("READ");
            s.exclude_commands = list("*");
        });
        assert_eq!(
            verdicts(&strict, &[PG_SELECT, HEARTBEAT]),
            [Verdict::Filtered, Verdict::Keep]
        );
        let strict_skipping = FilterSpec {
            skip_heartbeats: true,
            ..strict
        };
        assert_eq!(verdicts(&strict_skipping, &[HEARTBEAT]), [Verdict::Heartbeat]);
    }

    /// Picks one list out of a spec.
    type ListOf = fn(&mut FilterSpec) -> &mut Vec<String>;

    #[test]
    fn each_list_filters_on_its_own_field_with_case_insensitive_globs() {
        let events = [PG_SELECT, PG_CONNECT, MY_QUERY, ORA_LOGON];
        let cases: [(ListOf, &str, [bool; 4]); 9] = [
            (|s| &mut s.include_users, "RDS*,admin", [false, true, false, true]),
            (|s| &mut s.exclude_users, "rds*,admin", [true, false, true, false]),
            (|s| &mut s.include_classes, "read,main", [true, false, true, false]),
            (|s| &mut s.exclude_classes, "MISC,standard", [true, false, true, false]),
            (|s| &mut s.include_commands, "sel*", [true, false, false, false]),
            (|s| &mut s.exclude_commands, "CONNECT,logon", [true, false, true, false]),
            (|s| &mut s.include_databases, "POST*,sales", [true, false, true, false]),
            (|s| &mut s.exclude_databases, "rdsadmin,*cl", [true, false, true, false]),
            (
                |s| &mut s.exclude_client_applications,
                "PSQL,sqlplus*",
                [false, true, true, false],
            ),
        ];
        for (field, patterns, expected) in cases {
            let spec = with(|s| *field(s) = list(patterns));
            assert_eq!(kept(&spec, &events), expected, "{spec:?}");
        }
    }

    #[test]
    fn a_pattern_without_a_star_must_match_the_whole_value() {
        let spec = with(|s| s.include_users = list("admin"));
        assert_eq!(kept(&spec, &[PG_CONNECT, ORA_LOGON]), [false, true]);
        let spec = with(|s| s.include_commands = list("CREATE"));
        let create_table = r#"{"command":"CREATE TABLE","type":"record"}"#;
        assert_eq!(kept(&spec, &[create_table]), [false]);
    }

    #[test]
    fn a_question_mark_matches_exactly_one_character() {
        let spec = with(|s| s.include_users = list("app?user"));
        let other = r#"{"dbUserName":"app__user","type":"record"}"#;
        assert_eq!(kept(&spec, &[PG_SELECT, other]), [true, false]);
    }

    #[test]
    fn include_lists_filter_out_events_without_a_value_for_the_field() {
        let spec = with(|s| s.include_users = list("*"));
        let missing = r#"{"command":"SELECT","type":"record"}"#;
        let null = r#"{"dbUserName":null,"type":"record"}"#;
        let object = r#"{"dbUserName":{"name":"app_user"},"type":"record"}"#;
        assert_eq!(
            kept(&spec, &[PG_SELECT, missing, null, object]),
            [true, false, false, false]
        );
    }

    #[test]
    fn exclude_lists_never_filter_out_events_without_a_value_for_the_field() {
        let spec = with(|s| s.exclude_client_applications = list("*"));
        let missing = r#"{"command":"SELECT","type":"record"}"#;
        // PG_CONNECT has "clientApplication": null.
        assert_eq!(kept(&spec, &[PG_SELECT, PG_CONNECT, missing]), [false, true, true]);
    }

    #[test]
    fn number_valued_fields_match_as_their_json_text() {
        let spec = with(|s| s.include_users = list("42"));
        assert_eq!(kept(&spec, &[MY_QUERY, PG_SELECT]), [true, false]);
        let spec = with(|s| s.exclude_users = list("4*"));
        assert_eq!(kept(&spec, &[MY_QUERY, PG_SELECT]), [false, true]);
    }

    #[test]
    fn escaped_values_are_matched_unescaped() {
        let spec = with(|s| s.include_commands = list("select"));
        let escaped = r#"{"command":"SEL\u0045CT","type":"record"}"#;
        assert_eq!(kept(&spec, &[escaped]), [true]);
    }

    #[test]
    fn all_lists_must_let_an_event_through() {
        let spec = with(|s| {
            s.include_users = list("app_user,rdsadmin,42");
            s.exclude_classes = list("misc");
            s.include_databases = list("postgres,rdsadmin");
        });
        assert_eq!(kept(&spec, &[PG_SELECT, PG_CONNECT, MY_QUERY]), [true, false, false]);
    }

    #[test]
    fn rewrites_fields_is_false_by_default_and_the_fast_path_writes_what_ndjson_writes_masked() {
        let filter = Filter::new(&FilterSpec::default()).unwrap();
        assert!(!filter.rewrites_fields());
        let events = [PG_SELECT, PG_CONNECT, MY_QUERY, ORA_LOGON, HEARTBEAT, r#"{ "a" : 1 }"#];
        let json = payload(&events);
        let record = parse(&json);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for (i, event) in record.events.iter().enumerate() {
            let at = LineContext::kinesis("shardId-000000000001", "49", i);
            filter.write_line(event, &record, &at, &mut ours);
            ndjson::write_masked_event_line(event, &record, &at, MaskMode::Literals, &mut theirs);
        }
        assert_eq!(ours, theirs);
        assert!(Filter::new(&with(|s| s.drop_fields = list("paramList")))
            .unwrap()
            .rewrites_fields());
        assert!(
            Filter::with_key(&with(|s| s.redact_fields = list("dbUserName")), Some(&test_key()))
                .unwrap()
                .rewrites_fields()
        );
    }

    #[test]
    fn dropping_and_redacting_keeps_every_other_field_byte_for_byte_in_order() {
        let spec = with(|s| {
            s.drop_fields = list("commandText,paramList,notThere");
            s.redact_fields = list("dbUserName,remoteHost,pid,exitCode,engineNativeAuditFields");
        });
        let event = r#"{"logTime":"2019-10-30 00:39:49.990579+00","statementId":1,"command":"SELECT","dbUserName":"app_user","remoteHost":"","commandText":"select * from persons where id = $1","paramList":["42"],"pid":42,"rowCount":1.50,"exitCode":null,"engineNativeAuditFields":{"CLIENT_ID":"x","OS_USER":"rdsdb"},"class":"READ","type":"record"}"#;
        let expected = format!(
            r#"{{"logTime":"2019-10-30 00:39:49.990579+00","statementId":1,"command":"SELECT","dbUserName":{},"remoteHost":{},"pid":{},"rowCount":1.50,"exitCode":null,"engineNativeAuditFields":{},"class":"READ","type":"record","commandFingerprint":"{}",{IDS}}}"#,
            sha(SHA_APP_USER),
            sha(SHA_EMPTY),
            sha(SHA_42),
            sha(SHA_NATIVE),
            fingerprint("select * from persons where id = $1", Dialect::Unknown),
        ) + "\n";
        assert_eq!(lines(&spec, &[event]), expected);
    }

    #[test]
    fn rewritten_lines_drop_the_whitespace_between_fields_only() {
        let spec = with(|s| s.drop_fields = list("paramList"));
        let event = "{ \"commandText\" : \"a ,  b\" ,\n \"paramList\" : [ 1 ], \"rowCount\" : 1.0e3 }";
        let print = fingerprint("a ,  b", Dialect::Unknown);
        let expected =
            format!("{{\"commandText\":\"a ,  b\",\"rowCount\":1.0e3,\"commandFingerprint\":\"{print}\",{IDS}}}\n");
        assert_eq!(lines(&spec, &[event]), expected);
    }

    #[test]
    fn escaped_keys_are_matched_unescaped_and_re_emitted_as_valid_json() {
        let spec = with(|s| {
            s.drop_fields = list("paramList");
            s.redact_fields = list("dbUserName");
        });
        let event = r#"{"param\u004cist":["42"],"db\u0055serName":"app_user","odd\"key\\\u0001":1,"caf\u00e9":"ok"}"#;
        let expected = format!(
            "{{\"dbUserName\":{},\"odd\\\"key\\\\\\u0001\":1,\"café\":\"ok\",{IDS}}}\n",
            sha(SHA_APP_USER)
        );
        let out = lines(&spec, &[event]);
        assert_eq!(out, expected);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["odd\"key\\\u{1}"], 1);
    }

    #[test]
    fn equal_values_get_equal_pseudonyms_whatever_their_escapes_or_json_type() {
        let spec = with(|s| s.redact_fields = list("dbUserName"));
        let events = [
            r#"{"dbUserName":"abc"}"#,
            r#"{"dbUserName":"\u0061b\u0063"}"#,
            r#"{"dbUserName":"42"}"#,
            r#"{"dbUserName":42}"#,
            r#"{"dbUserName":"ABC"}"#,
        ];
        let out = lines(&spec, &events);
        let hashes: Vec<serde_json::Value> = out
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["dbUserName"].clone())
            .collect();
        assert_eq!(hashes[0], format!("hmac-sha256:{SHA_ABC}"));
        assert_eq!(hashes[1], hashes[0]);
        assert_eq!(hashes[2], format!("hmac-sha256:{SHA_42}"));
        assert_eq!(hashes[3], hashes[2]);
        assert_ne!(hashes[4], hashes[0]);
    }

    #[test]
    fn field_names_match_ignoring_ascii_case_and_every_duplicate_is_dropped() {
        let spec = with(|s| s.drop_fields = list("PARAMLIST,commandtext"));
        let event = r#"{"paramList":[1],"a":1,"commandText":"x","paramList":[2],"ParamList":3}"#;
        let print = fingerprint("x", Dialect::Unknown);
        assert_eq!(
            lines(&spec, &[event]),
            format!("{{\"a\":1,\"commandFingerprint\":\"{print}\",{IDS}}}\n")
        );
    }

    #[test]
    fn a_lone_surrogate_is_redacted_by_its_json_text_without_panicking() {
        let spec = with(|s| s.redact_fields = list("dbUserName"));
        // The parser accepts `"\ud800"`, but it has no UTF-8 content to key.
        let out = lines(&spec, &[r#"{"dbUserName":"\ud800"}"#]);
        let expected = sha("9a2127dd98e8364ee57d11d20cd9962305fbd4c898ebb70375f4e14525b7f881");
        assert_eq!(out, format!("{{\"dbUserName\":{expected},{IDS}}}\n"));
    }

    #[test]
    fn every_rewritten_line_is_valid_json_with_the_resource_ids() {
        let spec = with(|s| {
            s.drop_fields = list("paramList,commandText,a");
            s.redact_fields = list("dbUserName,engineNativeAuditFields,remoteHost");
        });
        let events = [
            PG_SELECT,
            PG_CONNECT,
            MY_QUERY,
            ORA_LOGON,
            HEARTBEAT,
            "{}",
            "{ }",
            r#"{"a":1}"#,
            r#"{ "a" : {"}":"{"} }"#,
            r#"{"clusterId":"own","a":[1],"dbUserName":"x"}"#,
        ];
        let out = lines(&spec, &events);
        assert_eq!(out.lines().count(), events.len());
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.get("paramList").is_none() && v.get("commandText").is_none() && v.get("a").is_none());
            assert_eq!(v["instanceId"], INSTANCE, "{line}");
            assert!(v["clusterId"] == CLUSTER || v["clusterId"] == "own", "{line}");
        }
        assert!(out.contains(&format!("\n{{{IDS}}}\n")));
    }

    #[test]
    fn new_rejects_empty_patterns_naming_the_list() {
        for pattern in ["", "  "] {
            let err =
                Filter::new(&with(|s| s.exclude_databases = vec!["rdsadmin".into(), pattern.into()])).unwrap_err();
            assert_eq!(
                err,
                FilterError::InvalidPattern {
                    list: "exclude_databases",
                    pattern: pattern.into(),
                    reason: EMPTY_PATTERN
                }
            );
            assert_eq!(err.list(), "exclude_databases");
            assert!(err.to_string().starts_with("exclude_databases: the pattern"), "{err}");
        }
    }

    #[test]
    fn new_rejects_a_field_both_dropped_and_redacted() {
        let err = Filter::new(&with(|s| {
            s.drop_fields = list("paramList,commandText");
            s.redact_fields = list("dbUserName,CommandText");
        }))
        .unwrap_err();
        assert_eq!(
            err,
            FilterError::ConflictingField {
                list: "redact_fields",
                other_list: "drop_fields",
                field: "CommandText".into()
            }
        );
        assert!(err.to_string().contains("remove it from one of the two"), "{err}");
    }

    #[test]
    fn new_rejects_dropping_or_redacting_the_fields_that_identify_a_line() {
        for (field, reason) in [("clusterId", ID_FIELD), ("INSTANCEID", ID_FIELD), ("type", TYPE_FIELD)] {
            for drop in [true, false] {
                let err = Filter::new(&with(|s| {
                    let list = if drop { &mut s.drop_fields } else { &mut s.redact_fields };
                    *list = vec![field.into()];
                }))
                .unwrap_err();
                let list = if drop { "drop_fields" } else { "redact_fields" };
                assert_eq!(
                    err,
                    FilterError::InvalidField {
                        list,
                        field: field.into(),
                        reason
                    }
                );
            }
        }
    }

    #[test]
    fn new_rejects_empty_spaced_and_wildcard_field_names() {
        for (field, reason) in [
            ("", EMPTY_FIELD),
            (" ", EMPTY_FIELD),
            (" paramList", SPACED_FIELD),
            ("param*", WILDCARD_FIELD),
            ("param?ist", WILDCARD_FIELD),
        ] {
            let err = Filter::new(&with(|s| s.drop_fields = vec![field.into()])).unwrap_err();
            assert_eq!(
                err,
                FilterError::InvalidField {
                    list: "drop_fields",
                    field: field.into(),
                    reason
                }
            );
        }
    }
}
