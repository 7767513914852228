//! The Lambda's filter settings as command-line flags. A flag wins over the `DAS_*` environment
//! variable of the same setting, so `das` and the function share one configuration.
//!
//! The flags are built from the core's [`FILTER_LISTS`] table (name, help, environment variable), so a
//! list added there is a flag here without another edit; this module never spells out a list itself.

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::aws::config::{ConfigError, Settings};
use crate::pipeline::filter::FILTER_LISTS;

/// The argument id of `--keep-heartbeats`.
const KEEP_HEARTBEATS: &str = "keep_heartbeats";

/// The argument id of `--mask-sql`.
const MASK_SQL: &str = "mask_sql";

/// `--include-users`, `--exclude-classes`, … (comma-separated, case-insensitive, `*` globs).
#[derive(Debug, Clone, Default)]
pub(super) struct FilterArgs {
    /// Each list's flag value, in [`FILTER_LISTS`] order.
    lists: [Option<String>; FILTER_LISTS.len()],
    /// Keep heartbeat events.
    keep_heartbeats: bool,
    /// `literals` or `off` (over `DAS_MASK_SQL`).
    mask_sql: Option<String>,
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
            let filter = settings(&[&flag, "alpha, beta"]).filter;
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
    fn a_bad_flag_value_is_reported_with_its_variable() {
        let cli = Cli::try_parse_from(["das", "--drop-fields", "type"]).unwrap();
        let err = cli
            .filters
            .settings(&[("DAS_ARCHIVE_BUCKET", "b".to_owned())])
            .unwrap_err();
        assert_eq!(err.variable, "DAS_DROP_FIELDS");
    }
}
