//! Settings from the environment: the only place that reads environment variables.
//!
//! Every variable is optional except `DAS_ARCHIVE_BUCKET`. A bad value stops start-up with an error
//! that names the variable, the value and what is expected, so a misconfigured function fails on its
//! first invocation instead of archiving the wrong thing.

use std::time::Duration;

use crate::aws::archive::{Compression, Layout};
use crate::aws::batch::BatchSettings;
use crate::aws::keys::KeyCacheLimits;
use crate::pipeline::envelope::ResourceId;
use crate::pipeline::filter::{FilterError, FilterSpec, FILTER_LISTS};
use crate::pipeline::record::DecodeOptions;

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {variable}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: String,
    /// Its value (empty when missing).
    pub value: String,
    /// What is expected.
    pub reason: String,
}

/// Everything the archiver needs to know, read once at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DAS_ARCHIVE_BUCKET`: the bucket objects are written to (required).
    pub bucket: String,
    /// `DAS_ARCHIVE_PREFIX` (default `activity/`) and `DAS_COMPRESSION` (`gzip`, default, or `none`).
    pub layout: Layout,
    /// `DAS_RESOURCE_ID`: overrides the resource id taken from the stream name.
    pub resource_id: Option<ResourceId>,
    /// `DAS_KEY_CACHE_MAX_ENTRIES` (1000) and `DAS_KEY_CACHE_TTL_SECONDS` (900).
    pub key_cache: KeyCacheLimits,
    /// `DAS_SKIP_HEARTBEATS` (true), the include/exclude lists, `DAS_DROP_FIELDS`, `DAS_REDACT_FIELDS`.
    pub filter: FilterSpec,
    /// `DAS_S3_FORCE_PATH_STYLE` (false): path-style addressing for local S3-compatible servers.
    pub s3_force_path_style: bool,
    /// `DAS_MAX_DECOMPRESSED_BYTES` (64 MiB) and the other decoding limits.
    pub decode: DecodeOptions,
    /// `DAS_KMS_KEY_ARN`: the streams' KMS key ARNs, comma-separated (empty: not pinned). With
    /// exactly one, every `Decrypt` names it ([`crate::aws::keys::KmsKeySource::with_key_arns`]).
    pub kms_key_arns: Vec<String>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let invalid = |variable: &str, value: &str, reason: &str| ConfigError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };

        let bucket = get("DAS_ARCHIVE_BUCKET")
            .ok_or_else(|| invalid("DAS_ARCHIVE_BUCKET", "", "required: the S3 bucket to archive into"))?;
        let prefix = lookup("DAS_ARCHIVE_PREFIX").unwrap_or_else(|| "activity/".to_owned());
        if prefix.starts_with('/') || prefix.contains("//") {
            return Err(invalid(
                "DAS_ARCHIVE_PREFIX",
                &prefix,
                "must not start with '/' or contain '//'",
            ));
        }
        let compression = match get("DAS_COMPRESSION") {
            Some(v) => v
                .parse::<Compression>()
                .map_err(|e| invalid("DAS_COMPRESSION", &v, &e))?,
            None => Compression::Gzip,
        };
        let resource_id = get("DAS_RESOURCE_ID")
            .map(|v| ResourceId::parse(&v).map_err(|e| invalid("DAS_RESOURCE_ID", &v, &e.to_string())))
            .transpose()?;
        let number = |name: &str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or_else(|| invalid(name, &v, &format!("expected a whole number of at least {min}"))),
            }
        };
        let key_cache = KeyCacheLimits {
            max_entries: usize::try_from(number("DAS_KEY_CACHE_MAX_ENTRIES", 1000, 1)?).unwrap_or(usize::MAX),
            ttl: Duration::from_secs(number("DAS_KEY_CACHE_TTL_SECONDS", 900, 1)?),
        };
        let skip_heartbeats = match get("DAS_SKIP_HEARTBEATS") {
            None => true,
            Some(v) => parse_bool(&v).ok_or_else(|| invalid("DAS_SKIP_HEARTBEATS", &v, "expected true or false"))?,
        };
        let s3_force_path_style = match get("DAS_S3_FORCE_PATH_STYLE") {
            None => false,
            Some(v) => {
                parse_bool(&v).ok_or_else(|| invalid("DAS_S3_FORCE_PATH_STYLE", &v, "expected true or false"))?
            }
        };
        let mut decode = DecodeOptions::default();
        decode.max_decompressed_len = usize::try_from(number(
            "DAS_MAX_DECOMPRESSED_BYTES",
            decode.max_decompressed_len as u64,
            1024,
        )?)
        .unwrap_or(usize::MAX);

        let mut filter = FilterSpec {
            skip_heartbeats,
            ..FilterSpec::default()
        };
        for list in &FILTER_LISTS {
            *list.get_mut(&mut filter) = lookup(list.env).map(|v| FilterSpec::parse_list(&v)).unwrap_or_default();
        }
        // Compile once here so a bad pattern is reported with its variable at start-up.
        crate::pipeline::filter::Filter::new(&filter).map_err(|e| filter_error(&e, &lookup))?;

        let kms_key_arns = kms_key_arns(get("DAS_KMS_KEY_ARN").as_deref()).map_err(|reason| {
            invalid(
                "DAS_KMS_KEY_ARN",
                &lookup("DAS_KMS_KEY_ARN").unwrap_or_default(),
                &reason,
            )
        })?;

        Ok(Self {
            bucket,
            layout: Layout { prefix, compression },
            resource_id,
            key_cache,
            filter,
            s3_force_path_style,
            decode,
            kms_key_arns,
        })
    }

    /// The batch pipeline's part of the settings.
    pub fn batch_settings(&self) -> BatchSettings {
        BatchSettings {
            resource_id: self.resource_id.clone(),
            layout: self.layout.clone(),
            decode: self.decode.clone(),
        }
    }
}

fn filter_error(err: &FilterError, lookup: &impl Fn(&str) -> Option<String>) -> ConfigError {
    let variable = FILTER_LISTS
        .iter()
        .find(|list| list.name == err.list())
        .map_or("DAS_FILTERS", |list| list.env);
    ConfigError {
        variable: variable.to_owned(),
        value: lookup(variable).unwrap_or_default(),
        reason: err.to_string(),
    }
}

/// `DAS_KMS_KEY_ARN`: a comma-separated list of KMS key (or alias) ARNs, as `Decrypt`'s `KeyId`
/// takes them (<https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html>).
fn kms_key_arns(value: Option<&str>) -> Result<Vec<String>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|arn| !arn.is_empty())
        .map(|arn| {
            let fields: Vec<&str> = arn.splitn(6, ':').collect();
            match fields.as_slice() {
                ["arn", _, "kms", region, account, resource]
                    if !region.is_empty()
                        && !account.is_empty()
                        && (resource.starts_with("key/") || resource.starts_with("alias/")) =>
                {
                    Ok(arn.to_owned())
                }
                _ => Err(format!(
                    "{arn:?} is not a KMS key ARN; expected arn:aws:kms:<region>:<account>:key/<key id>, comma-separated"
                )),
            }
        })
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_archive_everything_but_heartbeats_as_gzip_under_activity() {
        let s = settings(&[("DAS_ARCHIVE_BUCKET", "audit")]).unwrap();
        assert_eq!(s.bucket, "audit");
        assert_eq!(
            s.layout,
            Layout {
                prefix: "activity/".into(),
                compression: Compression::Gzip
            }
        );
        assert!(s.filter.skip_heartbeats && s.filter.include_users.is_empty() && s.filter.drop_fields.is_empty());
        assert_eq!(s.key_cache, KeyCacheLimits::default());
        assert_eq!((s.resource_id, s.s3_force_path_style), (None, false));
        assert!(
            s.kms_key_arns.is_empty(),
            "the key is not pinned unless DAS_KMS_KEY_ARN is set"
        );
    }

    #[test]
    fn several_kms_key_arns_are_read_as_a_list() {
        let s = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            (
                "DAS_KMS_KEY_ARN",
                " arn:aws:kms:us-east-1:123456789012:key/a ,arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/das,",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.kms_key_arns,
            [
                "arn:aws:kms:us-east-1:123456789012:key/a",
                "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/das"
            ]
        );
    }

    #[test]
    fn every_variable_is_read() {
        let s = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_ARCHIVE_PREFIX", "das/"),
            ("DAS_COMPRESSION", "none"),
            ("DAS_RESOURCE_ID", "db-ORACLE1"),
            ("DAS_KEY_CACHE_MAX_ENTRIES", "10"),
            ("DAS_KEY_CACHE_TTL_SECONDS", "60"),
            ("DAS_SKIP_HEARTBEATS", "false"),
            ("DAS_INCLUDE_USERS", "app, admin*"),
            ("DAS_EXCLUDE_CLASSES", "MISC"),
            ("DAS_DROP_FIELDS", "paramList"),
            ("DAS_REDACT_FIELDS", "commandText"),
            ("DAS_S3_FORCE_PATH_STYLE", "true"),
            ("DAS_MAX_DECOMPRESSED_BYTES", "1048576"),
            (
                "DAS_KMS_KEY_ARN",
                "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.kms_key_arns,
            ["arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
        );
        assert_eq!(
            s.layout,
            Layout {
                prefix: "das/".into(),
                compression: Compression::None
            }
        );
        assert_eq!(s.resource_id, Some(ResourceId::Instance("db-ORACLE1".into())));
        assert_eq!(
            s.key_cache,
            KeyCacheLimits {
                max_entries: 10,
                ttl: Duration::from_secs(60)
            }
        );
        assert!(!s.filter.skip_heartbeats);
        assert_eq!(s.filter.include_users, ["app", "admin*"]);
        assert_eq!(s.filter.exclude_classes, ["MISC"]);
        assert_eq!((s.filter.drop_fields.len(), s.filter.redact_fields.len()), (1, 1));
        assert!(s.s3_force_path_style);
        assert_eq!(s.decode.max_decompressed_len, 1 << 20);
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let cases = [
            (vec![], "DAS_ARCHIVE_BUCKET"),
            (vec![("DAS_COMPRESSION", "zstd")], "DAS_COMPRESSION=\"zstd\""),
            (vec![("DAS_RESOURCE_ID", "mydb")], "DAS_RESOURCE_ID=\"mydb\""),
            (
                vec![("DAS_KEY_CACHE_TTL_SECONDS", "ten")],
                "DAS_KEY_CACHE_TTL_SECONDS=\"ten\"",
            ),
            (vec![("DAS_KEY_CACHE_MAX_ENTRIES", "0")], "DAS_KEY_CACHE_MAX_ENTRIES"),
            (vec![("DAS_SKIP_HEARTBEATS", "maybe")], "DAS_SKIP_HEARTBEATS"),
            (vec![("DAS_DROP_FIELDS", "clusterId")], "DAS_DROP_FIELDS=\"clusterId\""),
            (
                vec![("DAS_DROP_FIELDS", "a"), ("DAS_REDACT_FIELDS", "a")],
                "DAS_REDACT_FIELDS",
            ),
            (vec![("DAS_ARCHIVE_PREFIX", "/abs/")], "DAS_ARCHIVE_PREFIX"),
            (vec![("DAS_KMS_KEY_ARN", "1234abcd")], "DAS_KMS_KEY_ARN=\"1234abcd\""),
            (
                vec![(
                    "DAS_KMS_KEY_ARN",
                    "arn:aws:kms:eu-west-1:123:key/a, arn:aws:s3:::bucket",
                )],
                "DAS_KMS_KEY_ARN",
            ),
        ];
        for (vars, want) in cases {
            let mut all = vars.clone();
            if !vars.is_empty() {
                all.push(("DAS_ARCHIVE_BUCKET", "b"));
            }
            let err = settings(&all).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }
}
