//! The Lambda's filter settings as command-line flags. A flag wins over the `DAS_*` environment
//! variable of the same setting, so `das` and the function share one configuration.
//!
//! The flags are built from the core's [`FILTER_LISTS`] table (name, help, environment variable), so a
//! list added there is a flag here without another edit; this module never spells out a list itself.
//!
//! `--pseudonym-key` (over `DAS_PSEUDONYM_KEY`) is the KMS-encrypted key of the redacted fields'
//! pseudonyms; [`open_filter`] opens it through KMS, so `das` pseudonymises exactly like the function.

use aws_config::SdkConfig;
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::aws::config::{ConfigError, Settings};
use crate::aws::keys::KmsKeySource;
use crate::pipeline::filter::{Filter, FILTER_LISTS};

/// The argument id of `--keep-heartbeats`.
const KEEP_HEARTBEATS: &str = "keep_heartbeats";

/// The argument id of `--mask-sql`.
const MASK_SQL: &str = "mask_sql";

/// The argument id of `--pseudonym-key`.
const PSEUDONYM_KEY: &str = "pseudonym_key";

/// `--include-users`, `--exclude-classes`, … (comma-separated, case-insensitive, `*` globs).
#[derive(Debug, Clone, Default)]
pub(super) struct FilterArgs {
    /// Each list's flag value, in [`FILTER_LISTS`] order.
    lists: [Option<String>; FILTER_LISTS.len()],
    /// Keep heartbeat events.
    keep_heartbeats: bool,
    /// `literals` or `off` (over `DAS_MASK_SQL`).
    mask_sql: Option<String>,
    /// The pseudonym key blob (over `DAS_PSEUDONYM_KEY`).
    pseudonym_key: Option<String>,
}

impl clap::Args for FilterArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = FILTER_LISTS.iter().fold(cmd, |cmd, list| {
            // `DAS_INCLUDE_USERS` less `DAS_` is `INCLUDE_USERS`, the value name clap's derive gave.
            let value_name = list.env.strip_prefix("DAS_").unwrap_or(list.env);
            cmd.arg(
                Arg::new(list.name)
                    .long(list.flag)
                    .value_name(value_name)
                    .help(list.help)
                    .action(ArgAction::Set),
            )
        });
        cmd.arg(
            Arg::new(KEEP_HEARTBEATS)
                .long("keep-heartbeats")
                .help("Keep heartbeat events")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new(MASK_SQL)
                .long("mask-sql")
                .value_name("MASK_SQL")
                .value_parser(["literals", "off"])
                .help("Mask SQL literals and bind values as ? (literals, the default) or show them (off); over DAS_MASK_SQL")
                .action(ArgAction::Set),
        )
        .arg(
            Arg::new(PSEUDONYM_KEY)
                .long("pseudonym-key")
                .value_name("PSEUDONYM_KEY")
                .help(
                    "The KMS-encrypted pseudonym key (base64, from `das pseudonym-key new`) for --redact-fields; \
                     opened with KMS Decrypt; over DAS_PSEUDONYM_KEY",
                )
                .action(ArgAction::Set),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for FilterArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            lists: FILTER_LISTS.map(|list| matches.remove_one::<String>(list.name)),
            keep_heartbeats: matches.get_flag(KEEP_HEARTBEATS),
            mask_sql: matches.remove_one::<String>(MASK_SQL),
            pseudonym_key: matches.remove_one::<String>(PSEUDONYM_KEY),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl FilterArgs {
    /// Settings from these flags over the environment; `extra` supplies values of its own (e.g. a
    /// bucket placeholder when writing to a directory).
    pub(super) fn settings(&self, extra: &[(&str, String)]) -> Result<Settings, ConfigError> {
        self.settings_over(extra, |name| std::env::var(name).ok())
    }

    /// Settings from `extra`, then these flags, then `base` (instead of the environment: `das redrive`
    /// reads a deployed function's variables).
    pub(super) fn settings_over(
        &self,
        extra: &[(&str, String)],
        base: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| {
            if name == "DAS_SKIP_HEARTBEATS" && self.keep_heartbeats {
                return Some("false".to_owned());
            }
            if name == "DAS_MASK_SQL" && self.mask_sql.is_some() {
                return self.mask_sql.clone();
            }
            if name == "DAS_PSEUDONYM_KEY" && self.pseudonym_key.is_some() {
                return self.pseudonym_key.clone();
            }
            let flag = || {
                let index = FILTER_LISTS.iter().position(|list| list.env == name)?;
                self.lists.get(index)?.clone()
            };
            extra
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or_else(flag)
                .or_else(|| base(name))
        })
    }
}

/// The filter of `settings`, its pseudonym key (if any) opened with KMS `Decrypt` through the SDK
/// configuration `sdk` yields (awaited only then, so a command without one never loads it).
pub(super) async fn open_filter<'a>(
    settings: &Settings,
    sdk: impl std::future::Future<Output = &'a SdkConfig>,
) -> Result<Filter, String> {
    let key = match &settings.pseudonym_key {
        Some(sealed) => Some(
            KmsKeySource::new(sdk.await)
                .open_pseudonym_key(sealed)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    Filter::with_key(&settings.filter, key.as_ref()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        filters: FilterArgs,
    }

    fn settings(args: &[&str]) -> Settings {
        let cli = Cli::try_parse_from(std::iter::once("das").chain(args.iter().copied())).unwrap();
        cli.filters.settings(&[("DAS_ARCHIVE_BUCKET", "b".to_owned())]).unwrap()
    }

    #[test]
    fn every_list_flag_fills_its_own_filter_list() {
        for list in &FILTER_LISTS {
            let flag = format!("--{}", list.flag);
            // A redacting list needs its pseudonym key (tested below).
            let filter = settings(&[&flag, "alpha, beta", "--pseudonym-key", "AQIDBA=="]).filter;
            assert_eq!(list.get(&filter), ["alpha", "beta"], "{flag}");
            let others = FILTER_LISTS.iter().filter(|other| other.name != list.name);
            assert!(others.clone().all(|other| other.get(&filter).is_empty()), "{flag}");
        }
    }

    #[test]
    fn keep_heartbeats_turns_skipping_off_and_no_flag_leaves_it_on() {
        assert!(!settings(&["--keep-heartbeats"]).filter.skip_heartbeats);
        assert!(settings(&[]).filter.skip_heartbeats);
    }

    #[test]
    fn the_pseudonym_key_flag_fills_the_setting_and_redacting_without_it_is_refused() {
        let with_key = settings(&["--redact-fields", "dbUserName", "--pseudonym-key", "AQIDBA=="]);
        assert_eq!(
            with_key.pseudonym_key.map(|k| k.to_base64()).as_deref(),
            Some("AQIDBA==")
        );
        let cli = Cli::try_parse_from(["das", "--redact-fields", "dbUserName"]).unwrap();
        let err = cli
            .filters
            .settings_over(&[("DAS_ARCHIVE_BUCKET", "b".to_owned())], |_| None)
            .unwrap_err();
        assert_eq!(err.variable, "DAS_PSEUDONYM_KEY");
    }

    #[test]
    fn a_bad_flag_value_is_reported_with_its_variable() {
        let cli = Cli::try_parse_from(["das", "--drop-fields", "type"]).unwrap();
        let err = cli
            .filters
            .settings(&[("DAS_ARCHIVE_BUCKET", "b".to_owned())])
            .unwrap_err();
        assert_eq!(err.variable, "DAS_DROP_FIELDS");
    }
}
