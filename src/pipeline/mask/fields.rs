//! Which event fields carry statement text or values, and how each is masked in a line.
//!
//! | field | engines | masked as |
//! |---|---|---|
//! | `commandText` | all | SQL ([`mask_sql`]) with the event's dialect |
//! | `paramList` | Aurora PostgreSQL, RDS for Oracle | every element `"?"` (nulls stay null), the array keeps its length |
//! | `errorMessage` | Aurora PostgreSQL, Aurora MySQL | [`mask_message`]: quoted values, numbers, and the values of `Key (…)=(…)` / `contains (…)` |
//! | `engineNativeAuditFields` | RDS for Oracle, RDS for SQL Server | the members in [`NATIVE_TEXT_FIELDS`] as SQL or messages, [`NATIVE_VALUE_FIELDS`] as `"?"` |
//!
//! With [`MaskMode::Off`] the fields pass unchanged unless the event's statement sets a credential
//! ([`is_credential_statement`]): then all of them are masked, bind values included (`ALTER ROLE x
//! PASSWORD $1` carries the password in `paramList`).
//!
//! What this must never do: pass a value through when in doubt (a string that cannot be decoded is
//! written as `"?"`), or change a field it does not mask.

use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::Deserializer as _;
use serde_json::value::RawValue;

use super::lexer::{Dialect, Kind, Lexer};
use super::{is_credential_statement, mask_sql, MaskMode};
use crate::pipeline::activity::StrSeed;

/// How one event field is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldMask {
    /// SQL text.
    Statement,
    /// Bind values.
    Params,
    /// An error message that may quote values.
    Message,
    /// The engine's own audit record (an object).
    EngineNative,
}

/// Members of `engineNativeAuditFields` that hold SQL text (Oracle `UNIFIED_AUDIT_TRAIL.SQL_TEXT`).
pub const NATIVE_TEXT_FIELDS: &[&str] = &["SQL_TEXT", "statement"];

/// Members of `engineNativeAuditFields` that hold values or free text written by the application:
/// Oracle's `SQL_BINDS` and `ADDITIONAL_INFO`; SQL Server's `additional_information`,
/// `user_defined_information` and `data_sensitivity_information`.
pub const NATIVE_VALUE_FIELDS: &[&str] = &[
    "SQL_BINDS",
    "ADDITIONAL_INFO",
    "additional_information",
    "user_defined_information",
    "data_sensitivity_information",
];

/// How `key` is masked, if it is a field that can carry statement text or values.
pub fn field_mask(key: &str) -> Option<FieldMask> {
    match key {
        "commandText" => Some(FieldMask::Statement),
        "paramList" => Some(FieldMask::Params),
        "errorMessage" => Some(FieldMask::Message),
        "engineNativeAuditFields" => Some(FieldMask::EngineNative),
        _ => None,
    }
}

/// What masking needs to know about the event a field belongs to.
#[derive(Debug, Clone, Copy)]
pub struct EventMasking {
    /// The event's dialect (from `serverType`).
    pub dialect: Dialect,
    /// The operator's setting.
    pub mode: MaskMode,
    /// Whether the event's statement sets a credential (masked whatever the mode). Looked for only
    /// with [`MaskMode::Off`]: with [`MaskMode::Literals`] every field is masked anyway.
    pub credential: bool,
}

impl EventMasking {
    /// The masking of an event whose `commandText` is `command_text`.
    pub fn new(dialect: Dialect, mode: MaskMode, command_text: Option<&str>) -> Self {
        // One lexing pass of the statement saved per event in the default mode (`make bench`, section 8).
        let credential =
            mode == MaskMode::Off && command_text.is_some_and(|text| is_credential_statement(text, dialect));
        Self {
            dialect,
            mode,
            credential,
        }
    }

    fn masks(&self) -> bool {
        self.mode == MaskMode::Literals || self.credential
    }
}

/// Writes `raw`, the JSON value of a field masked as `mask`, to `out`.
pub fn write_masked(mask: FieldMask, raw: &RawValue, event: &EventMasking, out: &mut Vec<u8>) {
    let json = raw.get();
    if !event.masks() || json == "null" {
        out.extend_from_slice(json.as_bytes());
        return;
    }
    match mask {
        FieldMask::Statement => write_string(json, out, |text| mask_sql(text, event.dialect, MaskMode::Literals)),
        FieldMask::Message => write_string(json, out, mask_message),
        FieldMask::Params => write_params(json, out),
        FieldMask::EngineNative => write_native(json, event, out),
    }
}

/// A JSON string masked by `mask`; anything else that is not `null` becomes `"?"`.
fn write_string(json: &str, out: &mut Vec<u8>, mask: impl Fn(&str) -> String) {
    let masked = if json.starts_with('"') {
        StrSeed
            .deserialize(&mut serde_json::Deserializer::from_str(json))
            .map_or_else(|_| "?".to_owned(), |text| mask(&text))
    } else {
        "?".to_owned()
    };
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &masked);
}

/// An array with each non-null element replaced by `"?"`; anything else becomes `"?"`.
fn write_params(json: &str, out: &mut Vec<u8>) {
    let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(json) else {
        out.extend_from_slice(b"\"?\"");
        return;
    };
    out.push(b'[');
    for (index, element) in elements.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let value: &[u8] = if element.get() == "null" { b"null" } else { b"\"?\"" };
        out.extend_from_slice(value);
    }
    out.push(b']');
}

/// An object with the members that carry text or values masked; anything else becomes `"?"`.
fn write_native(json: &str, event: &EventMasking, out: &mut Vec<u8>) {
    let Some(members) = object_members(json) else {
        out.extend_from_slice(b"\"?\"");
        return;
    };
    out.push(b'{');
    for (index, (key, value)) in members.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        let raw = value.get();
        if raw == "null" {
            out.extend_from_slice(b"null");
        } else if NATIVE_TEXT_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(key)) {
            write_string(raw, out, |text| mask_sql(text, event.dialect, MaskMode::Literals));
        } else if NATIVE_VALUE_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(key)) {
            out.extend_from_slice(b"\"?\"");
        } else {
            out.extend_from_slice(raw.as_bytes());
        }
    }
    out.push(b'}');
}

/// The members of a JSON object in order, duplicates kept, values as written; `None` when `json`
/// is not an object.
fn object_members(json: &str) -> Option<Vec<(String, &RawValue)>> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some(key) = map.next_key_seed(StrSeed)? {
                members.push((key.into_owned(), map.next_value()?));
            }
            Ok(members)
        }
    }
    serde_json::Deserializer::from_str(json).deserialize_map(Members).ok()
}

/// An error message with the values it quotes masked: quoted strings, numbers, and what follows
/// `)=(` or `contains (` up to its closing bracket (PostgreSQL's `Key (email)=(bob@example.com)`
/// and `Failing row contains (…)`). Words and punctuation stay, so the message still reads.
pub fn mask_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut tokens = Lexer::new(text, Dialect::Unknown).peekable();
    let mut previous: [&str; 2] = ["", ""];
    while let Some(token) = tokens.next() {
        let lexeme = text.get(token.start..token.end).unwrap_or_default();
        let opens_values = lexeme == "(" && (previous == [")", "="] || previous[1].eq_ignore_ascii_case("contains"));
        match token.kind {
            Kind::Literal | Kind::Placeholder | Kind::Comment => out.push('?'),
            Kind::Unterminated => {
                out.push('?');
                break;
            }
            _ if opens_values => {
                out.push_str("(?)");
                let mut depth = 1usize;
                for inner in tokens.by_ref() {
                    match text.get(inner.start..inner.end) {
                        Some("(") => depth += 1,
                        Some(")") => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => out.push_str(lexeme),
        }
        if token.kind != Kind::Space {
            previous = [previous[1], lexeme];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(mask: FieldMask, json: &str, event: &EventMasking) -> String {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let mut out = Vec::new();
        write_masked(mask, &raw, event, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn pg(mode: MaskMode, command: Option<&str>) -> EventMasking {
        EventMasking::new(Dialect::Postgres, mode, command)
    }

    #[test]
    fn a_statement_field_is_masked_and_stays_a_json_string() {
        let event = pg(MaskMode::Literals, None);
        let got = masked(
            FieldMask::Statement,
            r#""select * from t where email = 'bob@example.com'""#,
            &event,
        );
        assert_eq!(got, r#""select * from t where email = ?""#);
        assert_eq!(masked(FieldMask::Statement, "null", &event), "null");
    }

    #[test]
    fn bind_values_become_question_marks_and_keep_their_count() {
        let event = pg(MaskMode::Literals, None);
        assert_eq!(
            masked(FieldMask::Params, r#"["4111111111111111", null, "x"]"#, &event),
            r#"["?",null,"?"]"#
        );
        assert_eq!(masked(FieldMask::Params, "[]", &event), "[]");
        assert_eq!(masked(FieldMask::Params, r#""odd""#, &event), r#""?""#);
    }

    #[test]
    fn error_messages_keep_their_words_and_lose_their_values() {
        let cases = [
            (
                "duplicate key value violates unique constraint \"users_email_key\" Key (email)=(bob@example.com) already exists.",
                "duplicate key value violates unique constraint ? Key (email)=(?) already exists.",
            ),
            ("invalid input syntax for type integer: \"abc\"", "invalid input syntax for type integer: ?"),
            ("Duplicate entry 'bob@example.com' for key 'users.email'", "Duplicate entry ? for key ?"),
            ("Failing row contains (1, bob, null).", "Failing row contains (?)."),
        ];
        for (message, want) in cases {
            assert_eq!(mask_message(message), want, "{message}");
        }
    }

    #[test]
    fn engine_native_fields_mask_only_the_members_that_carry_text_or_values() {
        let event = EventMasking::new(Dialect::Oracle, MaskMode::Literals, None);
        let native = r#"{"OS_USERNAME":"rdsdb","SQL_BINDS":" #1(4):1234","SQL_TEXT":"select 1 from dual where a = 'x'","UNIFIED_AUDIT_POLICIES":"TEST_POL"}"#;
        assert_eq!(
            masked(FieldMask::EngineNative, native, &event),
            r#"{"OS_USERNAME":"rdsdb","SQL_BINDS":"?","SQL_TEXT":"select ? from dual where a = ?","UNIFIED_AUDIT_POLICIES":"TEST_POL"}"#
        );
    }

    #[test]
    fn with_masking_off_fields_pass_unless_the_statement_sets_a_credential() {
        let plain = pg(MaskMode::Off, Some("select * from t where a = $1"));
        assert_eq!(masked(FieldMask::Params, r#"["42"]"#, &plain), r#"["42"]"#);
        let secret = pg(MaskMode::Off, Some("ALTER ROLE bob PASSWORD $1"));
        assert_eq!(masked(FieldMask::Params, r#"["hunter2"]"#, &secret), r#"["?"]"#);
    }

    #[test]
    fn only_the_four_fields_are_masked() {
        assert_eq!(field_mask("commandText"), Some(FieldMask::Statement));
        assert_eq!(field_mask("paramList"), Some(FieldMask::Params));
        assert_eq!(field_mask("errorMessage"), Some(FieldMask::Message));
        assert_eq!(field_mask("engineNativeAuditFields"), Some(FieldMask::EngineNative));
        assert_eq!(field_mask("dbUserName"), None);
    }
}
