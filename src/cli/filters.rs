//! The Lambda's filter settings as command-line flags. A flag wins over the `DAS_*` environment
//! variable of the same setting, so `das` and the function share one configuration.

use crate::aws::config::{ConfigError, Settings};

/// `--include-users`, `--exclude-classes`, … (comma-separated, case-insensitive, `*` globs).
#[derive(Debug, Clone, Default, clap::Args)]
pub(super) struct FilterArgs {
    /// Keep only these users (dbUserName patterns).
    #[arg(long)]
    include_users: Option<String>,
    /// Drop these users.
    #[arg(long)]
    exclude_users: Option<String>,
    /// Keep only these classes (READ, WRITE, DDL, MAIN, …).
    #[arg(long)]
    include_classes: Option<String>,
    /// Drop these classes.
    #[arg(long)]
    exclude_classes: Option<String>,
    /// Keep only these commands.
    #[arg(long)]
    include_commands: Option<String>,
    /// Drop these commands.
    #[arg(long)]
    exclude_commands: Option<String>,
    /// Keep only these databases.
    #[arg(long)]
    include_databases: Option<String>,
    /// Drop these databases.
    #[arg(long)]
    exclude_databases: Option<String>,
    /// Drop these client applications.
    #[arg(long)]
    exclude_client_applications: Option<String>,
    /// Remove these event fields, e.g. paramList.
    #[arg(long)]
    drop_fields: Option<String>,
    /// Replace these event fields by sha256:<hex> of their value, e.g. commandText.
    #[arg(long)]
    redact_fields: Option<String>,
    /// Keep heartbeat events.
    #[arg(long)]
    keep_heartbeats: bool,
}

impl FilterArgs {
    /// Settings from these flags over the environment; `extra` supplies values of its own (e.g. a
    /// bucket placeholder when writing to a directory).
    pub(super) fn settings(&self, extra: &[(&str, String)]) -> Result<Settings, ConfigError> {
        let flags: [(&str, &Option<String>); 11] = [
            ("DAS_INCLUDE_USERS", &self.include_users),
            ("DAS_EXCLUDE_USERS", &self.exclude_users),
            ("DAS_INCLUDE_CLASSES", &self.include_classes),
            ("DAS_EXCLUDE_CLASSES", &self.exclude_classes),
            ("DAS_INCLUDE_COMMANDS", &self.include_commands),
            ("DAS_EXCLUDE_COMMANDS", &self.exclude_commands),
            ("DAS_INCLUDE_DATABASES", &self.include_databases),
            ("DAS_EXCLUDE_DATABASES", &self.exclude_databases),
            ("DAS_EXCLUDE_CLIENT_APPLICATIONS", &self.exclude_client_applications),
            ("DAS_DROP_FIELDS", &self.drop_fields),
            ("DAS_REDACT_FIELDS", &self.redact_fields),
        ];
        Settings::from_lookup(|name| {
            if name == "DAS_SKIP_HEARTBEATS" && self.keep_heartbeats {
                return Some("false".to_owned());
            }
            extra
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| flags.iter().find(|(n, _)| *n == name).and_then(|(_, v)| (*v).clone()))
                .or_else(|| std::env::var(name).ok())
        })
    }
}
