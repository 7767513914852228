//! Whose settings a redriven record runs with: by default the deployed function's that quarantined it
//! (`lambda:GetFunctionConfiguration`, its `DAS_*` environment), so an operator's shell — a
//! `DAS_INCLUDE_USERS` left from `das tail`, another `DAS_OUTPUT` — never changes what is written.
//! Explicit flags (`--bucket`, `--prefix`, the filter flags) override it; `--use-env` takes the
//! shell's variables instead.
//!
//! This module only reads settings; it never writes or deletes anything.

use std::collections::HashMap;

use crate::aws::config::Settings;
use crate::aws::outputs::{OUTPUT_NDJSON, OUTPUT_OCSF_PARQUET};
use crate::cli::filters::FilterArgs;

/// Variables about how this process reaches AWS, not about what the pipeline writes: always taken
/// from the shell.
const CLIENT_VARIABLES: [&str; 6] = [
    "DAS_S3_FORCE_PATH_STYLE",
    "DAS_WRAPPING_KEY",
    "DAS_AWS_SDK_LOG_LEVEL",
    "DAS_PYTHON",
    "DAS_MOTO_SERVER",
    "DAS_CARGO_LAMBDA",
];

/// Where a record's settings come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Source {
    /// The deployed function of this name.
    Function(String),
    /// This shell's `DAS_*` variables (`--use-env`).
    Shell,
    /// Only the flags (the command's own `--bucket`/`--prefix`, before any document is read).
    Flags,
}

/// The function name in a function ARN (`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`,
/// as an on-failure record's `requestContext.functionArn` has it), or the name itself.
pub(super) fn function_name(name_or_arn: &str) -> &str {
    match name_or_arn.strip_prefix("arn:") {
        Some(_) => name_or_arn.split(':').nth(6).unwrap_or(name_or_arn),
        None => name_or_arn,
    }
}

/// Settings per source, each read once.
pub(super) struct Deployed {
    lambda: aws_sdk_lambda::Client,
    /// The explicit overrides: `--bucket`, `--prefix`, the filter flags, and the forced ones.
    extra: Vec<(&'static str, String)>,
    filters: FilterArgs,
    cache: HashMap<Source, Result<Settings, String>>,
}

impl Deployed {
    pub(super) fn new(sdk: &aws_config::SdkConfig, extra: Vec<(&'static str, String)>, filters: FilterArgs) -> Self {
        Self {
            lambda: aws_sdk_lambda::Client::new(sdk),
            extra,
            filters,
            cache: HashMap::new(),
        }
    }

    /// The settings of `source`, with the explicit overrides on top.
    pub(super) async fn settings(&mut self, source: &Source) -> Result<Settings, String> {
        if let Some(known) = self.cache.get(source) {
            return known.clone();
        }
        let settings = match source {
            Source::Function(name) => match self.environment(name).await {
                Ok(vars) => self.over(Some(name), |n| vars.get(n).cloned()),
                Err(err) => Err(err),
            },
            Source::Shell => self.over(None, |n| std::env::var(n).ok()),
            Source::Flags => self.over(None, |_| None),
        };
        self.cache.insert(source.clone(), settings.clone());
        settings
    }

    /// Settings from `base` under the overrides; the client variables always come from the shell, and
    /// a function's name is the `AWS_LAMBDA_FUNCTION_NAME` that Lambda would have set.
    fn over(&self, function: Option<&str>, base: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let mut extra = self.extra.clone();
        if let Some(name) = function {
            extra.push(("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()));
        }
        let lookup = |name: &str| {
            if CLIENT_VARIABLES.contains(&name) {
                return std::env::var(name).ok();
            }
            base(name)
        };
        let settings = self.filters.settings_over(&extra, lookup);
        settings.map_err(|e| match function {
            Some(name) => format!("the settings of function {name} cannot be used: {e}"),
            None => e.to_string(),
        })
    }

    /// The function's environment variables (`GetFunctionConfiguration`,
    /// <https://docs.aws.amazon.com/lambda/latest/api/API_GetFunctionConfiguration.html>).
    async fn environment(&self, name: &str) -> Result<HashMap<String, String>, String> {
        let out = self
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read the settings of function {name} (needs lambda:GetFunctionConfiguration; or pass \
                     --use-env to redrive with this shell's DAS_* variables): {}",
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(out
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default())
    }
}

/// Warns once about each pipeline `DAS_*` variable of the shell, which `das redrive` ignores unless
/// `--use-env`.
pub(super) fn warn_ignored_shell_variables(names: impl IntoIterator<Item = String>) {
    for name in names {
        if name.starts_with("DAS_") && !CLIENT_VARIABLES.contains(&name.as_str()) {
            eprintln!(
                "das redrive: warning: {name} is set in this shell and ignored: records are redriven with the settings \
                 of the function that quarantined them (a flag such as --include-users overrides one; --use-env uses \
                 this shell's DAS_* variables instead)"
            );
        }
    }
}

/// The settings with exactly the `owed` outputs on: the NDJSON archive, the Security Lake output
/// (which the settings must configure), or both.
pub(super) fn owing(settings: &Settings, owed: &[String], whose: &str) -> Result<Settings, String> {
    let mut restricted = settings.clone();
    restricted.outputs.ndjson = false;
    restricted.outputs.security_lake = None;
    for output in owed {
        match output.as_str() {
            OUTPUT_NDJSON => restricted.outputs.ndjson = true,
            OUTPUT_OCSF_PARQUET => {
                let lake = settings.outputs.security_lake.clone().ok_or_else(|| {
                    format!(
                        "it owes {OUTPUT_OCSF_PARQUET}, but {whose} names no Security Lake destination (DAS_OUTPUT with \
                         ocsf-parquet, DAS_SECURITY_LAKE_BUCKET, DAS_SECURITY_LAKE_SOURCE)"
                    )
                })?;
                restricted.outputs.security_lake = Some(lake);
            }
            other => {
                return Err(format!(
                    "it owes {other:?}, an output this das does not know; upgrade das"
                ))
            }
        }
    }
    if owed.is_empty() {
        return Err("it owes no output".to_owned());
    }
    Ok(restricted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_arn_gives_its_name_with_or_without_a_qualifier() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:das-lake"),
            "das-lake"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:das-lake:$LATEST"),
            "das-lake"
        );
        assert_eq!(function_name("das-archiver"), "das-archiver");
    }

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_lookup(|n| map.get(n).cloned()).unwrap()
    }

    #[test]
    #[cfg(feature = "ocsf-parquet")]
    fn a_record_is_written_to_exactly_the_outputs_it_owes() {
        let both = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_OUTPUT", "ndjson,ocsf-parquet"),
            ("DAS_SECURITY_LAKE_BUCKET", "lake"),
            ("DAS_SECURITY_LAKE_SOURCE", "das"),
        ]);
        let lake_only = owing(&both, &[OUTPUT_OCSF_PARQUET.to_owned()], "f").unwrap();
        assert!(!lake_only.outputs.ndjson && lake_only.outputs.security_lake.is_some());
        let archive_only = owing(&both, &[OUTPUT_NDJSON.to_owned()], "f").unwrap();
        assert!(archive_only.outputs.ndjson && archive_only.outputs.security_lake.is_none());
        let plain = settings(&[("DAS_ARCHIVE_BUCKET", "b")]);
        let err = owing(&plain, &[OUTPUT_OCSF_PARQUET.to_owned()], "function das-archiver").unwrap_err();
        assert!(
            err.contains("function das-archiver names no Security Lake destination"),
            "{err}"
        );
        assert!(owing(&plain, &["csv".to_owned()], "f").unwrap_err().contains("\"csv\""));
        assert!(owing(&plain, &[], "f").is_err());
    }
}
