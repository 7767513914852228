//! Log setup for the binaries: JSON lines for Lambda, plain text on stderr for the CLI.
//!
//! Our own level comes from `AWS_LAMBDA_LOG_LEVEL` (what Lambda's advanced logging controls set),
//! then `RUST_LOG`, then `info` (the Lambda) or `warn` (the `das` command). The AWS SDK and the HTTP stack under it are capped at `info`
//! whatever those say: at `debug`/`trace` they log request and response bodies, which are our archive
//! objects (plain NDJSON when compression is off) and KMS plaintext responses. Only
//! `DAS_AWS_SDK_LOG_LEVEL` lifts that cap, for someone debugging the wire who accepts that exposure.
//!
//! Nothing in this crate logs event contents, SQL text, bind parameters or key material; log fields
//! are identifiers (sequence numbers, shards, resource ids), counts and error messages.

use tracing_subscriber::EnvFilter;

/// Crates whose debug and trace output can carry request or response bodies.
const WIRE_TARGETS: [&str; 12] = [
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_config",
    "aws_runtime",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "lambda_runtime",
];

/// The variable that lifts the cap on the AWS SDK's and HTTP stack's logs.
pub const SDK_LEVEL_VARIABLE: &str = "DAS_AWS_SDK_LOG_LEVEL";

/// The filter directive for the user's level and the SDK cap, from a variable lookup.
pub fn directive(lookup: impl Fn(&str) -> Option<String>, default: &str) -> String {
    let user = lookup("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| lookup("RUST_LOG"))
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned());
    // The user's own directives for the wire crates are dropped: only the separate variable lifts them.
    let mut parts: Vec<String> = user
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !WIRE_TARGETS.iter().any(|t| d.starts_with(&format!("{t}=")) || d == t))
        .map(normalise_level)
        .collect();
    let sdk = lookup(SDK_LEVEL_VARIABLE)
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| capped(&parts));
    parts.extend(WIRE_TARGETS.iter().map(|t| format!("{t}={sdk}")));
    parts.join(",")
}

/// Lambda's level names that `tracing` spells differently.
fn normalise_level(directive: &str) -> String {
    match directive {
        "fatal" => "error".to_owned(),
        other => other.to_owned(),
    }
}

/// `info`, or the user's default level when it is quieter than `info`.
fn capped(parts: &[String]) -> String {
    let default = parts.iter().find(|d| !d.contains('='));
    match default.map(String::as_str) {
        Some(quiet @ ("warn" | "error" | "off")) => quiet.to_owned(),
        _ => "info".to_owned(),
    }
}

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_new(directive(|name| std::env::var(name).ok(), default)).unwrap_or_else(|_| EnvFilter::new(default))
}

/// JSON logs on stdout, one object per line, as CloudWatch Logs expects from Lambda.
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter("info"))
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .try_init();
}

/// Human-readable logs on stderr for the `das` command (its data goes to stdout): warnings and errors
/// of the shared pipeline (a record to retry, a configuration error) unless `RUST_LOG` asks for more.
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("warn"))
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directive_for(vars: &[(&str, &str)]) -> String {
        directive(
            |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()),
            "info",
        )
    }

    #[test]
    fn trace_for_us_keeps_the_sdk_and_http_stack_at_info() {
        let d = directive_for(&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")]);
        assert!(d.starts_with("trace,"), "{d}");
        for target in WIRE_TARGETS {
            assert!(d.contains(&format!("{target}=info")), "{d}");
        }
    }

    #[test]
    fn a_rust_log_that_names_the_sdk_is_capped_too() {
        let d = directive_for(&[("RUST_LOG", "debug,aws_smithy_runtime=trace,hyper=trace")]);
        assert!(!d.contains("=trace"), "{d}");
        assert!(d.contains("aws_smithy_runtime=info"), "{d}");
    }

    #[test]
    fn only_the_separate_variable_lifts_the_cap() {
        let d = directive_for(&[("AWS_LAMBDA_LOG_LEVEL", "debug"), (SDK_LEVEL_VARIABLE, "trace")]);
        assert!(d.contains("aws_smithy_runtime=trace"), "{d}");
    }

    #[test]
    fn a_quiet_level_keeps_the_sdk_quiet_and_every_directive_parses() {
        let d = directive_for(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]);
        assert!(d.starts_with("error,") && d.contains("hyper=error"), "{d}");
        assert!(EnvFilter::try_new(&d).is_ok());
        assert!(EnvFilter::try_new(directive_for(&[])).is_ok());
    }
}
