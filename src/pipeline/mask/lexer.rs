//! A lexer for SQL statements of the four DAS engines, just deep enough to tell literals, comments,
//! identifiers, placeholders and punctuation apart.
//!
//! It follows each engine's lexical rules for the tokens that can carry a value:
//! - PostgreSQL: `'…'` (`''` inside), `E'…'` (backslash escapes), `U&'…'`, `B'…'`, `X'…'`, `N'…'`,
//!   `$tag$…$tag$`, numbers with `_` separators and `0x`/`0o`/`0b` prefixes (PostgreSQL 16), nested
//!   `/* */` comments, `"identifiers"`, `$1` parameters
//!   (<https://www.postgresql.org/docs/current/sql-syntax-lexical.html>); and the rows that follow
//!   `COPY … FROM STDIN` on the next lines, up to a `\.` line, which are one value
//!   (<https://www.postgresql.org/docs/current/sql-copy.html>).
//! - MySQL: `'…'` and `"…"` strings with backslash escapes (so `"…"` is a string, as without
//!   `ANSI_QUOTES`: the choice that masks more), `_charset'…'`, `N'…'`, `X'…'`, `B'…'`, `0x…`, `0b…`,
//!   `` `identifiers` ``, `#` and `-- ` comments, `/*! … */` and `/*+ … */` (comments to us), `?`
//!   (<https://dev.mysql.com/doc/refman/8.0/en/literals.html>, `…/comments.html`).
//! - SQL Server: `'…'`, `N'…'`, `0x…` binary, `$12.50` money, `[identifiers]` (`]]` inside),
//!   `"identifiers"`, `@variables`, `#temp` tables, nested `/* */` comments
//!   (<https://learn.microsoft.com/en-us/sql/t-sql/data-types/constants-transact-sql>).
//! - Oracle: `'…'`, `q'[…]'` and the other alternative quotes, `N'…'`, `NQ'…'`, numbers with `f`/`d`
//!   suffixes, `"identifiers"`, `:name` and `:1` binds
//!   (<https://docs.oracle.com/en/database/oracle/oracle-database/19/sqlrf/Literals.html>).
//!
//! Anything it cannot close (a quote or comment that never ends) is one [`Kind::Unterminated`] token
//! running to the end of the text: the masker treats it as a value, so doubt never lets text through.
//!
//! What this must never do: allocate per token, panic on any input, or read past the end of the text.
//! It works on bytes; every token boundary it makes is an ASCII byte or the end of the text, so the
//! boundaries are always valid UTF-8 boundaries.

/// The engine whose quoting rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Aurora PostgreSQL and RDS for PostgreSQL.
    Postgres,
    /// Aurora MySQL and RDS for MySQL / MariaDB.
    MySql,
    /// RDS for SQL Server.
    SqlServer,
    /// RDS for Oracle.
    Oracle,
    /// An engine we do not know: MySQL's rules (both quote kinds are strings, backslashes escape)
    /// plus PostgreSQL's dollar quotes, which together mask the most.
    Unknown,
}

impl Dialect {
    /// The dialect of an event, from its `serverType` (or, failing that, `dbProtocol`) field.
    pub fn of_server_type(server_type: &str) -> Self {
        let lower = server_type.trim().to_ascii_lowercase();
        if lower.starts_with("postgres") {
            Self::Postgres
        } else if lower.starts_with("mysql") || lower.starts_with("mariadb") {
            Self::MySql
        } else if lower.starts_with("sqlserver") || lower.starts_with("sql server") || lower == "mssql" {
            Self::SqlServer
        } else if lower.starts_with("oracle") {
            Self::Oracle
        } else {
            Self::Unknown
        }
    }

    fn backslash_escapes(self) -> bool {
        matches!(self, Self::MySql | Self::Unknown)
    }

    fn nested_comments(self) -> bool {
        matches!(self, Self::Postgres | Self::SqlServer)
    }

    fn double_quote_is_string(self) -> bool {
        matches!(self, Self::MySql | Self::Unknown)
    }

    fn dollar_quotes(self) -> bool {
        matches!(self, Self::Postgres | Self::Unknown)
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Spaces, tabs and line breaks.
    Space,
    /// A `--`, `#` or `/* */` comment.
    Comment,
    /// A keyword or unquoted identifier (also `@var`, `#temp`).
    Word,
    /// A quoted identifier: `"x"`, `` `x` ``, `[x]`.
    QuotedIdent,
    /// A string, number, binary, bit or dollar-quoted literal.
    Literal,
    /// A bind placeholder: `?`, `$1`, `:name`, `:1`.
    Placeholder,
    /// One character of punctuation or an operator.
    Punct,
    /// A quote or comment that never ends: the rest of the text.
    Unterminated,
}

/// One token: its kind and its byte range in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Its first byte.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

/// The tokens of a statement, in order.
pub struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
    dialect: Dialect,
    copy: CopyData,
}

/// Where the lexer is in a PostgreSQL `COPY … FROM STDIN` statement, whose data rows follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyData {
    /// No word seen yet.
    Start,
    /// The first word is not `COPY` (or the data is behind us).
    No,
    /// In a `COPY` statement, before `STDIN`.
    Statement,
    /// After `STDIN`: the next line starts the data.
    DataNext,
}

impl<'a> Lexer<'a> {
    /// A lexer over `text` with `dialect`'s rules.
    pub fn new(text: &'a str, dialect: Dialect) -> Self {
        Self {
            text: text.as_bytes(),
            pos: 0,
            dialect,
            copy: if dialect.dollar_quotes() {
                CopyData::Start
            } else {
                CopyData::No
            },
        }
    }

    fn at(&self, offset: usize) -> u8 {
        self.text.get(self.pos + offset).copied().unwrap_or(0)
    }

    fn lexeme(&self) -> (Kind, usize) {
        let c = self.at(0);
        let next = self.at(1);
        if self.copy == CopyData::DataNext {
            if self.pos > 0 && self.text.get(self.pos - 1) == Some(&b'\n') {
                return (Kind::Literal, self.copy_data_end());
            }
            if is_space(c) {
                let line_break = self.run(|b| is_space(b) && b != b'\n');
                let through = usize::from(self.text.get(line_break) == Some(&b'\n'));
                return (Kind::Space, line_break + through);
            }
        }
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' => (Kind::Space, self.run(is_space)),
            b'-' if next == b'-' && self.line_comment_dash() => (Kind::Comment, self.line_end()),
            b'#' if matches!(self.dialect, Dialect::MySql | Dialect::Unknown) => (Kind::Comment, self.line_end()),
            b'/' if next == b'*' => self.block_comment(),
            b'\'' => self.quoted(self.pos, b'\'', self.dialect.backslash_escapes()),
            b'"' if self.dialect.double_quote_is_string() => self.quoted(self.pos, b'"', true),
            b'"' => self.quoted_ident(b'"'),
            b'`' if self.dialect == Dialect::MySql || self.dialect == Dialect::Unknown => self.quoted_ident(b'`'),
            b'[' if self.dialect == Dialect::SqlServer => self.quoted_ident(b']'),
            b'$' => self.dollar(),
            b'0'..=b'9' => (Kind::Literal, self.number(self.pos)),
            b'.' if next.is_ascii_digit() => (Kind::Literal, self.number(self.pos)),
            b'?' => (Kind::Placeholder, self.pos + 1),
            b':' if matches!(self.dialect, Dialect::Oracle | Dialect::Unknown)
                && next != b':'
                && self.at_word_or_digit(1) =>
            {
                let prev_colon = self.pos > 0 && self.text.get(self.pos - 1) == Some(&b':');
                if prev_colon {
                    (Kind::Punct, self.pos + 1)
                } else {
                    (Kind::Placeholder, self.word_end(self.pos + 1))
                }
            }
            b'@' if self.dialect == Dialect::SqlServer || self.dialect == Dialect::MySql => {
                (Kind::Word, self.word_end(self.pos + 1))
            }
            b'#' if self.dialect == Dialect::SqlServer => (Kind::Word, self.word_end(self.pos + 1)),
            c if is_word_start(c) => self.word_or_prefixed_literal(),
            _ => (
                Kind::Punct,
                self.pos + char_len(c).min(self.text.len() - self.pos).max(1),
            ),
        }
    }

    /// PostgreSQL, SQL Server and Oracle take `--` anywhere; MySQL only before a space, a control
    /// character or the end (`5--3` is five minus minus three there).
    fn line_comment_dash(&self) -> bool {
        if self.dialect != Dialect::MySql {
            return true;
        }
        let after = self.at(2);
        after == 0 || after <= b' '
    }

    /// The end of `COPY` data starting here: after its `\.` line, or the end of the text.
    fn copy_data_end(&self) -> usize {
        let mut line = self.pos;
        while line < self.text.len() {
            if self.text.get(line..line + 2) == Some(b"\\.") {
                return line + 2;
            }
            let rest = self.text.get(line..).unwrap_or_default();
            line = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.text.len(), |i| line + i + 1);
        }
        self.text.len()
    }

    /// Follows a `COPY … FROM STDIN` statement through its words.
    fn track_copy(&mut self, token: &Token) {
        let word = |w: &str| {
            token.kind == Kind::Word
                && self
                    .text
                    .get(token.start..token.end)
                    .is_some_and(|t| t.eq_ignore_ascii_case(w.as_bytes()))
        };
        self.copy = match self.copy {
            CopyData::Start if word("copy") => CopyData::Statement,
            CopyData::Start if token.kind == Kind::Word || token.kind == Kind::Literal => CopyData::No,
            CopyData::Statement if word("stdin") => CopyData::DataNext,
            CopyData::DataNext
                if token.kind == Kind::Literal && self.text.get(token.start.wrapping_sub(1)) == Some(&b'\n') =>
            {
                CopyData::No
            }
            other => other,
        };
    }

    fn run(&self, keep: fn(u8) -> bool) -> usize {
        let mut end = self.pos;
        while self.text.get(end).is_some_and(|&b| keep(b)) {
            end += 1;
        }
        end
    }

    fn line_end(&self) -> usize {
        let rest = self.text.get(self.pos..).unwrap_or_default();
        rest.iter()
            .position(|&b| b == b'\n')
            .map_or(self.text.len(), |i| self.pos + i)
    }

    fn block_comment(&self) -> (Kind, usize) {
        let mut depth = 0usize;
        let mut i = self.pos;
        while i + 1 < self.text.len() {
            match (self.text.get(i), self.text.get(i + 1)) {
                (Some(b'/'), Some(b'*')) if depth == 0 || self.dialect.nested_comments() => {
                    depth += 1;
                    i += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        return (Kind::Comment, i);
                    }
                }
                _ => i += 1,
            }
        }
        (Kind::Unterminated, self.text.len())
    }

    /// A string opened by `quote` at `open` (which may follow a prefix such as `E` or `N`): a doubled
    /// quote stays inside, and with `backslash` so does any escaped character.
    fn quoted(&self, open: usize, quote: u8, backslash: bool) -> (Kind, usize) {
        let mut i = open + 1;
        while let Some(&b) = self.text.get(i) {
            if backslash && b == b'\\' {
                i += 2;
            } else if b == quote {
                if self.text.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return (Kind::Literal, i + 1);
                }
            } else {
                i += 1;
            }
        }
        (Kind::Unterminated, self.text.len())
    }

    fn quoted_ident(&self, close: u8) -> (Kind, usize) {
        match self.quoted(self.pos, close, false) {
            (Kind::Literal, end) => (Kind::QuotedIdent, end),
            other => other,
        }
    }

    /// `$1` (a placeholder), `$tag$…$tag$` (a literal), SQL Server's `$12.50` money, or a lone `$`.
    fn dollar(&self) -> (Kind, usize) {
        let next = self.at(1);
        if next.is_ascii_digit() && self.dialect != Dialect::SqlServer {
            return (Kind::Placeholder, self.run_from(self.pos + 1, |b| b.is_ascii_digit()));
        }
        if self.dialect == Dialect::SqlServer && (next.is_ascii_digit() || next == b'.') {
            return (Kind::Literal, self.number(self.pos + 1));
        }
        if self.dialect.dollar_quotes() {
            let tag_end = self.run_from(self.pos + 1, |b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80);
            let starts_well = next == b'$' || is_word_start(next);
            if starts_well && self.text.get(tag_end) == Some(&b'$') {
                let tag = self.text.get(self.pos..=tag_end).unwrap_or_default();
                let body = self.text.get(tag_end + 1..).unwrap_or_default();
                return match find(body, tag) {
                    Some(at) => (Kind::Literal, tag_end + 1 + at + tag.len()),
                    None => (Kind::Unterminated, self.text.len()),
                };
            }
        }
        (Kind::Punct, self.pos + 1)
    }

    fn run_from(&self, from: usize, keep: fn(u8) -> bool) -> usize {
        let mut end = from;
        while self.text.get(end).is_some_and(|&b| keep(b)) {
            end += 1;
        }
        end
    }

    /// A number from `from`: digits, a fraction, an exponent, and (for safety) any letters, digits
    /// or underscores glued to it, so `0x1F`, `1_000`, `1.5e-3`, `2.5f` and `12abc` are each one value.
    fn number(&self, from: usize) -> usize {
        let mut i = self.run_from(from, |b| b.is_ascii_alphanumeric() || b == b'_');
        let exponent_sign = |i: usize| {
            let before = self.text.get(i.wrapping_sub(1)).copied().unwrap_or(0);
            let hex = self.text.get(from + 1).is_some_and(|b| matches!(b, b'x' | b'X'));
            matches!(before, b'e' | b'E') && !hex && matches!(self.text.get(i), Some(b'+' | b'-'))
        };
        if exponent_sign(i) {
            i = self.run_from(i + 1, |b| b.is_ascii_alphanumeric() || b == b'_');
        }
        if self.text.get(i) == Some(&b'.') && self.text.get(i + 1) != Some(&b'.') {
            i = self.run_from(i + 1, |b| b.is_ascii_alphanumeric() || b == b'_');
            if exponent_sign(i) {
                i = self.run_from(i + 1, |b| b.is_ascii_alphanumeric() || b == b'_');
            }
        }
        i
    }

    fn at_word_or_digit(&self, offset: usize) -> bool {
        let c = self.at(offset);
        is_word_start(c) || c.is_ascii_digit()
    }

    /// The end of a word: letters, digits, `_` and `$` everywhere; `#` in Oracle and SQL Server
    /// names, `@` in SQL Server's (`#` is a comment in MySQL and an operator in PostgreSQL).
    fn word_end(&self, from: usize) -> usize {
        let keep: fn(u8) -> bool = match self.dialect {
            Dialect::SqlServer => |b| is_word_part(b) || b == b'#' || b == b'@',
            Dialect::Oracle => |b| is_word_part(b) || b == b'#',
            _ => is_word_part,
        };
        self.run_from(from, keep)
    }

    /// A word, unless it is a literal's prefix glued to its quote: `E'…'`, `N'…'`, `X'…'`, `B'…'`,
    /// `U&'…'`, `_utf8mb4'…'`, `q'[…]'`, `NQ'…'`.
    fn word_or_prefixed_literal(&self) -> (Kind, usize) {
        let end = self.word_end(self.pos);
        let word = self.text.get(self.pos..end).unwrap_or_default();
        let quote = self.text.get(end).copied();
        let lower: [u8; 2] = [
            word.first().map_or(0, u8::to_ascii_lowercase),
            word.get(1).map_or(0, u8::to_ascii_lowercase),
        ];
        match (quote, word.len(), lower) {
            (Some(b'\''), 1, [b'e', _]) if self.dialect == Dialect::Postgres => self.quoted(end, b'\'', true),
            (Some(b'\''), 1, [b'n' | b'x' | b'b', _]) => self.quoted(end, b'\'', self.dialect.backslash_escapes()),
            (Some(b'\''), 1, [b'q', _]) if self.dialect == Dialect::Oracle => self.alternative_quote(end),
            (Some(b'\''), 2, [b'n', b'q']) if self.dialect == Dialect::Oracle => self.alternative_quote(end),
            (Some(b'&'), 1, [b'u', _])
                if self.dialect == Dialect::Postgres && self.text.get(end + 1) == Some(&b'\'') =>
            {
                self.quoted(end + 1, b'\'', false)
            }
            (Some(b'\'' | b'"'), _, [b'_', _]) if self.dialect.backslash_escapes() => {
                let quote = self.text.get(end).copied().unwrap_or(b'\'');
                self.quoted(end, quote, true)
            }
            _ => (Kind::Word, end),
        }
    }

    /// Oracle's `q'<c>…<c>'`, where `[`, `{`, `<` and `(` close with their partner and any other
    /// character with itself.
    fn alternative_quote(&self, quote: usize) -> (Kind, usize) {
        let Some(&open) = self.text.get(quote + 1) else {
            return (Kind::Unterminated, self.text.len());
        };
        let close = match open {
            b'[' => b']',
            b'{' => b'}',
            b'<' => b'>',
            b'(' => b')',
            other => other,
        };
        let body = self.text.get(quote + 2..).unwrap_or_default();
        match find(body, &[close, b'\'']) {
            Some(at) => (Kind::Literal, quote + 2 + at + 2),
            None => (Kind::Unterminated, self.text.len()),
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if self.pos >= self.text.len() {
            return None;
        }
        let (kind, end) = self.lexeme();
        // Every arm moves forward; this guard keeps a mistake from looping forever.
        let end = end.clamp(self.pos + 1, self.text.len());
        let end = self.char_boundary(end);
        let token = Token {
            kind,
            start: self.pos,
            end,
        };
        if self.copy != CopyData::No {
            self.track_copy(&token);
        }
        self.pos = end;
        Some(token)
    }
}

impl Lexer<'_> {
    /// `end`, moved forward to the next UTF-8 character boundary (a backslash escape may step onto
    /// the middle of a multi-byte character).
    fn char_boundary(&self, mut end: usize) -> usize {
        while self.text.get(end).is_some_and(|&b| (0x80..0xC0).contains(&b)) {
            end += 1;
        }
        end
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The length of the UTF-8 character starting with byte `b` (1 for anything else).
fn char_len(b: u8) -> usize {
    match b {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
