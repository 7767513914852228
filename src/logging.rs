//! Log setup for the Lambda binary: JSON lines on stdout. The level comes from `AWS_LAMBDA_LOG_LEVEL`,
//! then `RUST_LOG`, then `info`. (The `das` command installs no subscriber: it prints its results.)
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
