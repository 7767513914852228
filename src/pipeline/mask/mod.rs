//! Masking SQL text so an archive can be handed to an analyst: every literal value becomes `?`,
//! comments become `/*?*/` (or `--?`, `-- ?` in MySQL, `#?`), and the statement's structure — keywords, identifiers,
//! operators, placeholders — stays readable: `SELECT * FROM cards WHERE pan = ? AND exp > ?`.
//!
//! Rules, in order of precedence:
//! - **Fail closed.** Text the lexer cannot close (an unterminated quote or comment, a statement cut
//!   short) is masked from that point to its end: `?`.
//! - **Credentials always.** A statement that sets a password or a key (`IDENTIFIED BY`, `PASSWORD`,
//!   `sp_addlogin`, `ENCRYPTION BY`, `SECRET`, `dblink_connect`, `pgp_sym_encrypt`, …: [`CREDENTIAL_WORDS`])
//!   has its literals masked even with [`MaskMode::Off`], and so has the unquoted or quoted name that
//!   Oracle takes as a password (`IDENTIFIED BY tiger`, `REPLACE old`).
//! - A sign directly before a number in operand position is part of the value (`> -5` → `> ?`).
//!
//! [`fingerprint`] names a statement's shape (see its documentation for the exact definition).
//!
//! What this must never do: let a literal through with [`MaskMode::Literals`], panic, allocate per
//! token, or return text longer than [`max_masked_len`] of its input.

pub mod fields;
mod fingerprint;
mod lexer;

pub use fingerprint::{fingerprint, normalized, Fingerprint};
pub use lexer::{Dialect, Kind, Lexer, Token};

/// Whether literal values are masked (`DAS_MASK_SQL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskMode {
    /// Every literal and comment masked (the default).
    #[default]
    Literals,
    /// Text passes unchanged, except in statements that set credentials.
    Off,
}

impl MaskMode {
    /// Parses `literals` or `off` (the values of `DAS_MASK_SQL` and `--mask-sql`).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "literals" | "on" | "true" => Some(Self::Literals),
            "off" | "false" | "none" => Some(Self::Off),
            _ => None,
        }
    }
}

/// Words (case-insensitive, whole words) that make a statement carry a credential. Sources: the
/// statements that take a password or key in each engine's reference (PostgreSQL `CREATE ROLE …
/// PASSWORD`, `CREATE USER MAPPING … OPTIONS (password …)`, `CREATE SUBSCRIPTION … CONNECTION`,
/// dblink, pgcrypto; MySQL `IDENTIFIED BY`, `SET PASSWORD`, `CHANGE REPLICATION SOURCE TO
/// SOURCE_PASSWORD`, `AES_ENCRYPT`; SQL Server `sp_addlogin`, `ALTER LOGIN … WITH PASSWORD`,
/// `CREATE MASTER KEY ENCRYPTION BY PASSWORD`, `CREATE CREDENTIAL … SECRET`; Oracle `IDENTIFIED BY`,
/// `CREATE DATABASE LINK … IDENTIFIED BY`, `DBMS_CRYPTO`).
pub const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "identified",
    "master_password",
    "source_password",
    "sp_addlogin",
    "sp_password",
    "sp_addlinkedsrvlogin",
    "secret",
    "credential",
    "encryption",
    "decryption",
    "subscription",
    "dblink_connect",
    "dblink_connect_u",
    "dblink",
    "pgp_sym_encrypt",
    "pgp_sym_decrypt",
    "pgp_pub_encrypt",
    "pgp_pub_decrypt",
    "crypt",
    "hmac",
    "encrypt",
    "decrypt",
    "aes_encrypt",
    "aes_decrypt",
    "des_encrypt",
    "des_decrypt",
    "encryptbypassphrase",
    "decryptbypassphrase",
    "dbms_crypto",
    // Amazon RDS procedures that take a password or an access key as an argument:
    // https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/mysql-stored-proc-replicating.html,
    // https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/mysql-stored-proc-multi-source-replication.html,
    // https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_PostgreSQL.S3Import.html.
    "rds_set_external_master",
    "rds_set_external_master_with_delay",
    "rds_set_external_master_with_auto_position",
    "rds_set_external_source",
    "rds_set_external_source_with_delay",
    "rds_set_external_source_with_auto_position",
    "rds_set_external_source_for_channel",
    "rds_set_external_source_with_delay_for_channel",
    "rds_set_external_source_with_auto_position_for_channel",
    "create_aws_credentials",
    // SQL Server's application role password.
    "sp_setapprole",
];

/// The most bytes [`mask_sql`] returns for `input_len` bytes of input: a literal or comment of one
/// byte can become a marker of at most five (`/*?*/`).
pub fn max_masked_len(input_len: usize) -> usize {
    input_len.saturating_mul(5)
}

/// `text` with its literals masked per `mode` and `dialect`'s quoting rules.
pub fn mask_sql(text: &str, dialect: Dialect, mode: MaskMode) -> String {
    // With every literal masked, a credential statement matters only where a password can be spelled
    // as a name (Oracle's `IDENTIFIED BY tiger`): elsewhere the lexing pass that looks for one is saved.
    let names_can_be_passwords = matches!(dialect, Dialect::Oracle | Dialect::Unknown);
    let credential = (mode == MaskMode::Off || names_can_be_passwords) && is_credential_statement(text, dialect);
    if mode == MaskMode::Off && !credential {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<(Kind, &str)> = None;
    let mut after_password_word = false;
    let mut tokens = Lexer::new(text, dialect).peekable();
    while let Some(token) = tokens.next() {
        let lexeme = text.get(token.start..token.end).unwrap_or_default();
        match token.kind {
            Kind::Literal => out.push('?'),
            Kind::Unterminated => {
                out.push('?');
                break;
            }
            Kind::Comment => out.push_str(comment_marker(lexeme, dialect)),
            Kind::Punct if is_sign(lexeme) && unary(previous) && next_is_number(tokens.peek(), text) => {}
            Kind::Word | Kind::QuotedIdent if credential && after_password_word && is_password_name(lexeme) => {
                out.push('?')
            }
            _ => out.push_str(lexeme),
        }
        if !matches!(token.kind, Kind::Space | Kind::Comment) {
            after_password_word = credential && names_a_password(dialect, previous, token.kind, lexeme);
            previous = Some((token.kind, lexeme));
        }
    }
    out
}

/// Whether the statement sets or uses a credential (see [`CREDENTIAL_WORDS`]).
pub fn is_credential_statement(text: &str, dialect: Dialect) -> bool {
    Lexer::new(text, dialect).any(|token| {
        token.kind == Kind::Word
            && text
                .get(token.start..token.end)
                .is_some_and(|word| CREDENTIAL_WORDS.iter().any(|c| word.eq_ignore_ascii_case(c)))
    })
}

/// Whether the token after this one is a password spelled as a name: `IDENTIFIED BY <pw>`,
/// `REPLACE <old>` (Oracle takes unquoted and double-quoted passwords; MySQL only strings, so its
/// `IDENTIFIED BY RANDOM PASSWORD` keeps its words).
pub(super) fn names_a_password(dialect: Dialect, previous: Option<(Kind, &str)>, kind: Kind, lexeme: &str) -> bool {
    if kind != Kind::Word || !matches!(dialect, Dialect::Oracle | Dialect::Unknown) {
        return false;
    }
    let by_after_identified = lexeme.eq_ignore_ascii_case("by")
        && previous.is_some_and(|(k, w)| k == Kind::Word && w.eq_ignore_ascii_case("identified"));
    by_after_identified || lexeme.eq_ignore_ascii_case("replace")
}

/// Whether a name after `IDENTIFIED BY` or `REPLACE` is the password: not Oracle's `IDENTIFIED BY
/// VALUES '<hash>'` (a reserved word, whose hash is a literal anyway).
pub(super) fn is_password_name(lexeme: &str) -> bool {
    !lexeme.eq_ignore_ascii_case("values")
}

/// What a comment becomes. MySQL needs a space after `--` for a comment (`--?` would read as two
/// minus signs there).
fn comment_marker(comment: &str, dialect: Dialect) -> &'static str {
    if comment.starts_with('#') {
        "#?"
    } else if comment.starts_with("--") && dialect == Dialect::MySql {
        "-- ?"
    } else if comment.starts_with("--") {
        "--?"
    } else {
        "/*?*/"
    }
}

fn is_sign(lexeme: &str) -> bool {
    lexeme == "-" || lexeme == "+"
}

/// Whether the next token is a number (SQL Server's money `$45.56` included: `-$45.56` is one value).
fn next_is_number(next: Option<&Token>, text: &str) -> bool {
    next.is_some_and(|t| {
        let bytes = text.as_bytes();
        let digit_or_dot = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_digit() || *b == b'.');
        let money = bytes.get(t.start) == Some(&b'$') && digit_or_dot(t.start + 1);
        t.kind == Kind::Literal && (digit_or_dot(t.start) || money)
    })
}

/// Keywords after which a sign starts a value rather than subtracting.
const OPERAND_KEYWORDS: &[&str] = &[
    "select", "where", "and", "or", "not", "by", "then", "else", "when", "in", "values", "return", "limit", "offset",
    "between", "like", "is", "as", "on", "having", "case", "set", "default", "interval", "top", "fetch", "first",
    "next", "escape", "to", "all", "any", "some", "array", "distinct",
];

/// Whether a sign after `previous` is unary: at the start, after an operator or an opening
/// bracket, or after a keyword that expects an operand.
fn unary(previous: Option<(Kind, &str)>) -> bool {
    match previous {
        None => true,
        Some((Kind::Punct, p)) => !matches!(p, ")" | "]" | "}"),
        Some((Kind::Word, w)) => OPERAND_KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests;
