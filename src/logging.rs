//! Log setup for the binaries: JSON lines for Lambda, plain text on stderr for the CLI. The level
//! comes from `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`, then `info`.
//!
//! Nothing in this crate logs event contents, SQL text, bind parameters or key material; log fields
//! are identifiers (sequence numbers, shards, resource ids), counts and error messages.

use tracing_subscriber::EnvFilter;

fn level() -> EnvFilter {
    let directive = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON logs on stdout, one object per line, as CloudWatch Logs expects from Lambda.
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(level())
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .try_init();
}

/// Human-readable logs on stderr (the CLI: data goes to stdout).
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(level())
        .with_writer(std::io::stderr)
        .try_init();
}
