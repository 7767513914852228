//! JSON errors that never quote the input.
//!
//! serde_json's messages quote the offending value (`invalid type: string "SELECT secret FROM …",
//! expected …`). In a DAS payload that value can be SQL text or a bind parameter, and error messages
//! travel into logs and quarantine documents, so every JSON error of the core is reduced to this
//! summary: the category, the line and column, and only the parts of the message that came from our
//! own code (what was expected, which field was missing). It must never carry input bytes.

use std::fmt;

/// What kind of JSON failure, without the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonErrorSummary {
    /// `syntax`, `truncated`, `data` or `io`.
    pub category: &'static str,
    /// What went wrong, in words that name no input value.
    pub detail: String,
    /// 1-based line of the error in the input.
    pub line: usize,
    /// 1-based column of the error in the input.
    pub column: usize,
}

impl JsonErrorSummary {
    /// Summarises `err`, keeping only text that did not come from the input.
    pub fn of(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let (category, detail) = match err.classify() {
            Category::Syntax => ("syntax", "malformed JSON".to_owned()),
            Category::Eof => ("truncated", "the JSON ends too early".to_owned()),
            Category::Io => ("io", "the JSON could not be read".to_owned()),
            Category::Data => ("data", data_detail(&err.to_string())),
        };
        Self {
            category,
            detail,
            line: err.line(),
            column: err.column(),
        }
    }
}

/// Messages of our own visitors (see `activity`), safe to show whole.
const OWN_MESSAGES: [&str; 3] = ["more than ", "event ", "missing field `databaseActivityEventList`"];

/// The safe part of a serde data error: serde formats `invalid type: {value}, expected {what}`,
/// where only `what` (written by our visitors) is ours; the value is dropped.
fn data_detail(message: &str) -> String {
    // serde_json appends " at line L column C"; the position is reported separately.
    let message = message.rfind(" at line ").map_or(message, |at| &message[..at]);
    if OWN_MESSAGES.iter().any(|own| message.starts_with(own)) {
        return message.to_owned();
    }
    let kind = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
    ]
    .into_iter()
    .find(|kind| message.starts_with(kind))
    .unwrap_or("unexpected value");
    match message.rfind(", expected ") {
        Some(at) => format!("{kind} (value not shown), expected {}", &message[at + 11..]),
        None => format!("{kind} (value not shown)"),
    }
}

impl fmt::Display for JsonErrorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error: {} at line {} column {}",
            self.category, self.detail, self.line, self.column
        )
    }
}

impl std::error::Error for JsonErrorSummary {}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(json: &str) -> String {
        let err = serde_json::from_str::<Vec<u64>>(json).unwrap_err();
        JsonErrorSummary::of(&err).to_string()
    }

    #[test]
    fn a_wrong_typed_string_is_described_without_its_value() {
        let text = summary(r#"["SELECT card FROM secrets WHERE pin = '1234'"]"#);
        assert!(!text.contains("SELECT") && !text.contains("1234"), "{text}");
        assert!(
            text.starts_with("data error: invalid type (value not shown), expected u64 at line 1 column"),
            "{text}"
        );
    }

    #[test]
    fn a_value_that_imitates_the_expected_clause_is_still_dropped() {
        let text = summary(r#"["x\", expected DROP TABLE"]"#);
        assert!(!text.contains("DROP"), "{text}");
    }

    #[test]
    fn syntax_and_truncation_errors_give_only_their_position() {
        assert_eq!(summary("[1,,"), "syntax error: malformed JSON at line 1 column 4");
        assert_eq!(
            summary("[1,"),
            "truncated error: the JSON ends too early at line 1 column 3"
        );
    }
}
