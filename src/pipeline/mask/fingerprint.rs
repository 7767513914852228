//! Query fingerprints: one name for every statement of the same shape.
//!
//! Definition (version 1; changing any step changes every fingerprint, so it must not change without
//! a new version name in the README):
//! 1. Lex the statement with its engine's rules ([`Lexer`]).
//! 2. Drop spaces and comments.
//! 3. Every literal, placeholder and unterminated rest becomes `?`; a sign in operand position
//!    before a number is dropped (`-5` is one value); so is a password that Oracle takes as a name
//!    (`IDENTIFIED BY tiger`, the masker's rule), which becomes `?`: no password reaches the hash.
//! 4. Unquoted words are ASCII-lowercased (keyword case never matters, and unquoted identifiers
//!    fold case in every engine); quoted identifiers and punctuation stay as written.
//! 5. Lists of values collapse: after `IN` or `ARRAY`, a bracketed list of only `?` becomes `( ?+ )`
//!    (or `[ ?+ ]`); after `VALUES`, a run of identical rows becomes its first row.
//! 6. The tokens are joined by single spaces; the fingerprint is the first 8 bytes of the SHA-256 of
//!    that text, as 16 lowercase hex digits.
//!
//! So statements that differ only in literal values, whitespace, comments, keyword case and the
//! length of `IN (…)` or `VALUES (…), (…)` lists share a fingerprint, and statements that differ in
//! tables, columns, operators or clauses do not.
//!
//! What this must never do: depend on anything but the statement text and its dialect (no
//! process state, no version of a dependency's hash), or panic.

use std::fmt;

use aws_lc_rs::digest;

use super::lexer::{Dialect, Kind, Lexer};
use super::unary;

/// A statement's fingerprint: 8 bytes, shown as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// The fingerprint of `text` (see the module documentation for the definition).
pub fn fingerprint(text: &str, dialect: Dialect) -> Fingerprint {
    let normal = normalized(text, dialect);
    let hash = digest::digest(&digest::SHA256, normal.as_bytes());
    let mut bytes = [0u8; 8];
    for (to, from) in bytes.iter_mut().zip(hash.as_ref()) {
        *to = *from;
    }
    Fingerprint(bytes)
}

/// The text a fingerprint hashes: steps 1 to 5 of the definition, joined by spaces.
pub fn normalized(text: &str, dialect: Dialect) -> String {
    let tokens = normal_tokens(text, dialect);
    let tokens = collapse_value_lists(tokens);
    let tokens = collapse_values_rows(tokens);
    tokens.join(" ")
}

fn normal_tokens(text: &str, dialect: Dialect) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut previous: Option<(Kind, &str)> = None;
    let credential = super::is_credential_statement(text, dialect);
    let mut after_password_word = false;
    let mut lexer = Lexer::new(text, dialect).peekable();
    while let Some(token) = lexer.next() {
        let lexeme = text.get(token.start..token.end).unwrap_or_default();
        match token.kind {
            Kind::Space | Kind::Comment => continue,
            Kind::Literal | Kind::Placeholder | Kind::Unterminated => out.push("?".to_owned()),
            Kind::Punct if super::is_sign(lexeme) && unary(previous) && super::next_is_number(lexer.peek(), text) => {
                continue
            }
            Kind::Word | Kind::QuotedIdent if after_password_word && super::is_password_name(lexeme) => {
                out.push("?".to_owned())
            }
            Kind::Word => out.push(lexeme.to_ascii_lowercase()),
            Kind::QuotedIdent | Kind::Punct => out.push(lexeme.to_owned()),
        }
        after_password_word = credential && super::names_a_password(dialect, previous, token.kind, lexeme);
        previous = Some((token.kind, lexeme));
    }
    out
}

/// `IN ( ? , ? )` → `IN ( ?+ )`, `ARRAY [ ? , ? ]` → `ARRAY [ ?+ ]`.
fn collapse_value_lists(tokens: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        out.push(token.clone());
        i += 1;
        let (open, close) = match token.as_str() {
            "in" => ("(", ")"),
            "array" => ("[", "]"),
            _ => continue,
        };
        if tokens.get(i).map(String::as_str) != Some(open) {
            continue;
        }
        let Some(len) = all_values_until(tokens.get(i + 1..).unwrap_or_default(), close) else {
            continue;
        };
        out.extend([open.to_owned(), "?+".to_owned(), close.to_owned()]);
        i += len + 2;
    }
    out
}

/// The number of tokens before `close` when they are only `?` and `,` (at least one `?`).
fn all_values_until(tokens: &[String], close: &str) -> Option<usize> {
    let len = tokens.iter().position(|t| t == close)?;
    let inner = tokens.get(..len)?;
    let only_values = inner.iter().all(|t| t == "?" || t == ",");
    (only_values && inner.iter().any(|t| t == "?")).then_some(len)
}

/// `VALUES ( a ) , ( a ) , ( a )` → `VALUES ( a )`.
fn collapse_values_rows(tokens: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        out.push(token.clone());
        i += 1;
        if token != "values" {
            continue;
        }
        let Some(first_len) = group_len(tokens.get(i..).unwrap_or_default()) else {
            continue;
        };
        let first = tokens.get(i..i + first_len).unwrap_or_default();
        out.extend(first.iter().cloned());
        i += first_len;
        while tokens.get(i).map(String::as_str) == Some(",") {
            let rest = tokens.get(i + 1..).unwrap_or_default();
            match group_len(rest) {
                Some(len) if rest.get(..len) == Some(first) => i += 1 + len,
                _ => break,
            }
        }
    }
    out
}

/// The length of the bracketed group `( … )` that `tokens` starts with, brackets included.
fn group_len(tokens: &[String]) -> Option<usize> {
    if tokens.first().map(String::as_str) != Some("(") {
        return None;
    }
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "(" => depth += 1,
            ")" => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(index + 1);
                }
            }
            _ => {}
        }
    }
    None
}
