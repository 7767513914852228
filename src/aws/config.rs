//! Settings from the environment: the only place that reads environment variables.
//!
//! Every variable is optional except `DAS_ARCHIVE_BUCKET`. A bad value stops start-up with an error
//! that names the variable, the value and what is expected, so a misconfigured function fails on its
//! first invocation instead of archiving the wrong thing.

use std::time::Duration;

use crate::aws::archive::Layout;
use crate::aws::batch::{BatchSettings, GiveUpPolicy};
use crate::aws::compress::Compression;
use crate::aws::keys::{KeyCacheLimits, SealedPseudonymKey};
use crate::aws::outputs::{Outputs, SecurityLake};
use crate::pipeline::envelope::ResourceId;
use crate::pipeline::filter::{FilterError, FilterSpec, FILTER_LISTS};
use crate::pipeline::mask::MaskMode;
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
    /// `DAS_ARCHIVE_PREFIX` (default `activity/`) and `DAS_COMPRESSION` (`gzip`, default, `zstd` or `none`).
    pub layout: Layout,
    /// `DAS_RESOURCE_ID`: the one database of a single-stream deployment. A batch from a DAS stream
    /// of another id is a configuration error; a stream not named like a DAS stream gets this id.
    pub resource_id: Option<ResourceId>,
    /// `DAS_RESOURCE_IDS`: the databases this deployment may archive (comma-separated; empty: any).
    /// A batch from any other stream is a configuration error, retried, never archived.
    pub resource_ids: Vec<ResourceId>,
    /// `DAS_GIVE_UP_AFTER_SECONDS` (43200; 0 = never give up), `DAS_GIVE_UP_FAILING_SECONDS` (1800)
    /// and `DAS_STREAM_RETENTION_HOURS` (24): a record that keeps failing is quarantined instead of
    /// retried once it is older than the first and its shard has failed for the second, or once it is
    /// within an hour of the stream's retention, so one stuck record never holds a shard until Kinesis
    /// drops it ([`GiveUpPolicy`]).
    pub give_up: Option<GiveUpPolicy>,
    /// `DAS_KEY_CACHE_MAX_ENTRIES` (1000) and `DAS_KEY_CACHE_TTL_SECONDS` (900).
    pub key_cache: KeyCacheLimits,
    /// `DAS_SKIP_HEARTBEATS` (true), the include/exclude lists, `DAS_DROP_FIELDS`, `DAS_REDACT_FIELDS`.
    pub filter: FilterSpec,
    /// `DAS_PSEUDONYM_KEY`: the KMS-encrypted key of the redacted fields' pseudonyms (base64, from
    /// `das pseudonym-key new`), required with `DAS_REDACT_FIELDS`; opened by `keys::pseudonym`.
    pub pseudonym_key: Option<SealedPseudonymKey>,
    /// `DAS_S3_FORCE_PATH_STYLE` (false): path-style addressing for local S3-compatible servers.
    pub s3_force_path_style: bool,
    /// `DAS_MAX_DECOMPRESSED_BYTES` (64 MiB) and the other decoding limits.
    pub decode: DecodeOptions,
    /// `DAS_KMS_KEY_ARN`: the streams' KMS key ARNs, comma-separated (empty: not pinned). With
    /// exactly one, every `Decrypt` names it ([`crate::aws::keys::KmsKeySource::with_key_arns`]).
    pub kms_key_arns: Vec<String>,
    /// `DAS_OUTPUT` (`ndjson`, `ocsf-parquet`, or both comma-separated; default `ndjson`) and, with
    /// `ocsf-parquet`, `DAS_SECURITY_LAKE_BUCKET`, `DAS_SECURITY_LAKE_PREFIX`, `DAS_SECURITY_LAKE_SOURCE`.
    pub outputs: Outputs,
    /// `DAS_KEEP_ORIGINALS` (false): beside each archive object, the records that produced it as
    /// received, still encrypted, under `{prefix}originals/` (NDJSON output only).
    pub keep_originals: bool,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Reader { lookup: &lookup };
        let bucket = env
            .get("DAS_ARCHIVE_BUCKET")
            .ok_or_else(|| env.invalid("DAS_ARCHIVE_BUCKET", "required: the S3 bucket to archive into"))?;
        let compression = match env.get("DAS_COMPRESSION") {
            Some(v) => v
                .parse::<Compression>()
                .map_err(|e| env.invalid("DAS_COMPRESSION", &e))?,
            None => Compression::Gzip,
        };
        let give_up = give_up_policy(&env)?;
        let filter = filter_spec(&env)?;
        let pseudonym_key = pseudonym_key(&env, &filter)?;
        Ok(Self {
            bucket,
            layout: Layout {
                prefix: archive_prefix(&env)?,
                compression,
            },
            resource_id: env.resource_id("DAS_RESOURCE_ID")?,
            resource_ids: env.resource_ids("DAS_RESOURCE_IDS")?,
            give_up,
            key_cache: KeyCacheLimits {
                max_entries: usize::try_from(env.number("DAS_KEY_CACHE_MAX_ENTRIES", 1000, 1)?).unwrap_or(usize::MAX),
                ttl: Duration::from_secs(env.number("DAS_KEY_CACHE_TTL_SECONDS", 900, 1)?),
            },
            filter,
            pseudonym_key,
            s3_force_path_style: env.flag("DAS_S3_FORCE_PATH_STYLE", false)?,
            decode: decode_options(&env)?,
            kms_key_arns: kms_key_arns(env.get("DAS_KMS_KEY_ARN").as_deref())
                .map_err(|reason| env.invalid("DAS_KMS_KEY_ARN", &reason))?,
            outputs: outputs(&env)?,
            keep_originals: env.flag("DAS_KEEP_ORIGINALS", false)?,
        })
    }

    /// The batch pipeline's part of the settings.
    pub fn batch_settings(&self) -> BatchSettings {
        BatchSettings {
            resource_id: self.resource_id.clone(),
            resource_ids: self.resource_ids.clone(),
            give_up: self.give_up,
            layout: self.layout.clone(),
            decode: self.decode.clone(),
            outputs: self.outputs.clone(),
            keep_originals: self.keep_originals,
        }
    }

    /// The `DAS_*` variables among `names` that no setting reads, each with the known variable its
    /// name is closest to (a likely typo), for a start-up warning.
    pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<(String, Option<String>)> {
        let known = known_variables();
        names
            .into_iter()
            .filter(|name| name.starts_with("DAS_") && !known.contains(name))
            .map(|name| {
                let closest = known
                    .iter()
                    .map(|k| (strsim::levenshtein(&name, k), k))
                    .filter(|(distance, _)| *distance <= 4)
                    .min()
                    .map(|(_, k)| k.clone());
                (name, closest)
            })
            .collect()
    }
}

/// Give-up age of a stuck record when `DAS_GIVE_UP_AFTER_SECONDS` is not set: 12 hours, half the
/// stream's default 24-hour retention, so a redrive is still possible from the quarantine documents.
pub const DEFAULT_GIVE_UP_SECONDS: u64 = 43_200;

/// How long a record's shard must have been failing in a container before the record is given up,
/// when `DAS_GIVE_UP_FAILING_SECONDS` is not set: 30 minutes. Lambda retries a failing Kinesis batch
/// at once, again and again, each attempt bounded by the KMS and S3 timeouts (seconds), so this is
/// hundreds of attempts: an outage, not bad luck; KMS and S3 incidents of minutes ride it out.
pub const DEFAULT_GIVE_UP_FAILING_SECONDS: u64 = 1800;

/// The stream's retention when `DAS_STREAM_RETENTION_HOURS` is not set: 24 hours, the DAS default
/// (and Kinesis's minimum; its maximum is 8,760 hours,
/// <https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html>).
pub const DEFAULT_STREAM_RETENTION_HOURS: u64 = 24;

/// `DAS_GIVE_UP_AFTER_SECONDS` (0: never give up), `DAS_GIVE_UP_FAILING_SECONDS`,
/// `DAS_STREAM_RETENTION_HOURS`.
fn give_up_policy<F: Fn(&str) -> Option<String>>(env: &Reader<'_, F>) -> Result<Option<GiveUpPolicy>, ConfigError> {
    let after = env.number("DAS_GIVE_UP_AFTER_SECONDS", DEFAULT_GIVE_UP_SECONDS, 0)?;
    let failing_for = env.number("DAS_GIVE_UP_FAILING_SECONDS", DEFAULT_GIVE_UP_FAILING_SECONDS, 0)?;
    let retention = env.number("DAS_STREAM_RETENTION_HOURS", DEFAULT_STREAM_RETENTION_HOURS, 24)?;
    if retention > 8760 {
        return Err(env.invalid(
            "DAS_STREAM_RETENTION_HOURS",
            "a Kinesis stream keeps records 24 to 8760 hours",
        ));
    }
    Ok((after > 0).then(|| GiveUpPolicy {
        after: Duration::from_secs(after),
        failing_for: Duration::from_secs(failing_for),
        retention: Duration::from_secs(retention * 3600),
    }))
}

/// Every variable the function and the `das` command read (the filter lists come from their table).
fn known_variables() -> Vec<String> {
    const OWN: [&str; 28] = [
        "DAS_ARCHIVE_BUCKET",
        "DAS_ARCHIVE_PREFIX",
        "DAS_COMPRESSION",
        "DAS_RESOURCE_ID",
        "DAS_RESOURCE_IDS",
        "DAS_GIVE_UP_AFTER_SECONDS",
        "DAS_GIVE_UP_FAILING_SECONDS",
        "DAS_STREAM_RETENTION_HOURS",
        "DAS_KEY_CACHE_MAX_ENTRIES",
        "DAS_KEY_CACHE_TTL_SECONDS",
        "DAS_SKIP_HEARTBEATS",
        "DAS_MASK_SQL",
        "DAS_S3_FORCE_PATH_STYLE",
        "DAS_MAX_DECOMPRESSED_BYTES",
        "DAS_KMS_KEY_ARN",
        "DAS_AWS_SDK_LOG_LEVEL",
        "DAS_WRAPPING_KEY",
        "DAS_PYTHON",
        "DAS_MOTO_SERVER",
        "DAS_CARGO_LAMBDA",
        "DAS_OUTPUT",
        "DAS_SECURITY_LAKE_BUCKET",
        "DAS_SECURITY_LAKE_PREFIX",
        "DAS_SECURITY_LAKE_SOURCE",
        "DAS_SECURITY_LAKE_ROLE_ARN",
        "DAS_SECURITY_LAKE_EXTERNAL_ID",
        "DAS_PSEUDONYM_KEY",
        "DAS_KEEP_ORIGINALS",
    ];
    OWN.iter()
        .map(|v| (*v).to_owned())
        .chain(FILTER_LISTS.iter().map(|l| l.env.to_owned()))
        .collect()
}

/// Reads variables through a lookup, trimmed, with errors that name the variable and its value.
struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    /// The trimmed value, `None` when unset or blank.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn invalid(&self, variable: &str, reason: &str) -> ConfigError {
        ConfigError {
            variable: variable.to_owned(),
            value: (self.lookup)(variable).unwrap_or_default(),
            reason: reason.to_owned(),
        }
    }

    fn number(&self, name: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| self.invalid(name, &format!("expected a whole number of at least {min}"))),
        }
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_bool(&v).ok_or_else(|| self.invalid(name, "expected true or false")),
        }
    }

    fn resource_id(&self, name: &str) -> Result<Option<ResourceId>, ConfigError> {
        self.get(name)
            .map(|v| ResourceId::parse(&v).map_err(|e| self.invalid(name, &e.to_string())))
            .transpose()
    }

    fn resource_ids(&self, name: &str) -> Result<Vec<ResourceId>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| ResourceId::parse(id).map_err(|e| self.invalid(name, &e.to_string())))
            .collect()
    }
}

/// `DAS_ARCHIVE_PREFIX`, ending in `/` (so `audit` and `audit/` name the same folder) unless empty.
fn archive_prefix<F: Fn(&str) -> Option<String>>(env: &Reader<'_, F>) -> Result<String, ConfigError> {
    let Some(mut prefix) = (env.lookup)("DAS_ARCHIVE_PREFIX").map(|p| p.trim().to_owned()) else {
        return Ok("activity/".to_owned());
    };
    if prefix.starts_with('/') || prefix.contains("//") {
        return Err(env.invalid("DAS_ARCHIVE_PREFIX", "must not start with '/' or contain '//'"));
    }
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(prefix)
}

/// `DAS_OUTPUT` and, when it names `ocsf-parquet`, the Security Lake custom source to write to.
fn outputs<F: Fn(&str) -> Option<String>>(env: &Reader<'_, F>) -> Result<Outputs, ConfigError> {
    const EXPECTED: &str = "expected ndjson, ocsf-parquet, or both comma-separated (ndjson,ocsf-parquet)";
    let value = env.get("DAS_OUTPUT").unwrap_or_else(|| "ndjson".to_owned());
    let (mut ndjson, mut ocsf) = (false, false);
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "ndjson" => ndjson = true,
            "ocsf-parquet" => ocsf = true,
            _ => return Err(env.invalid("DAS_OUTPUT", EXPECTED)),
        }
    }
    if !ndjson && !ocsf {
        return Err(env.invalid("DAS_OUTPUT", EXPECTED));
    }
    if ocsf && !cfg!(feature = "ocsf-parquet") {
        return Err(env.invalid(
            "DAS_OUTPUT",
            "this build has no OCSF Parquet writer; build with the cargo feature ocsf-parquet (the lambda feature has it)",
        ));
    }
    let security_lake = ocsf.then(|| security_lake(env)).transpose()?;
    Ok(Outputs {
        ndjson,
        security_lake,
        // Lambda sets it in every function's environment
        // (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
        function: env.get("AWS_LAMBDA_FUNCTION_NAME"),
    })
}

/// The Security Lake custom source: bucket and source name are required with `DAS_OUTPUT=ocsf-parquet`.
fn security_lake<F: Fn(&str) -> Option<String>>(env: &Reader<'_, F>) -> Result<SecurityLake, ConfigError> {
    let required = |name: &str, what: &str| {
        env.get(name)
            .ok_or_else(|| env.invalid(name, &format!("required with DAS_OUTPUT=ocsf-parquet: {what}")))
    };
    let bucket = required(
        "DAS_SECURITY_LAKE_BUCKET",
        "the Security Lake bucket (aws-security-data-lake-<region>-…)",
    )?;
    let source = required(
        "DAS_SECURITY_LAKE_SOURCE",
        "the custom source name given to Security Lake (objects go under ext/<source>/)",
    )?;
    if source.contains('/') {
        return Err(env.invalid("DAS_SECURITY_LAKE_SOURCE", "a source name has no '/'"));
    }
    let prefix = env.get("DAS_SECURITY_LAKE_PREFIX").unwrap_or_default();
    if prefix.starts_with('/') || prefix.contains("//") {
        return Err(env.invalid("DAS_SECURITY_LAKE_PREFIX", "must not start with '/' or contain '//'"));
    }
    Ok(SecurityLake {
        bucket,
        prefix,
        source,
        role_arn: env.get("DAS_SECURITY_LAKE_ROLE_ARN"),
        external_id: env.get("DAS_SECURITY_LAKE_EXTERNAL_ID"),
    })
}

/// `DAS_SKIP_HEARTBEATS` and the filter lists, compiled once so a bad pattern is reported with its
/// variable at start-up.
fn filter_spec<F: Fn(&str) -> Option<String>>(env: &Reader<'_, F>) -> Result<FilterSpec, ConfigError> {
    let mask_sql = match env.get("DAS_MASK_SQL") {
        None => MaskMode::Literals,
        Some(value) => MaskMode::parse(&value).ok_or_else(|| {
            env.invalid(
                "DAS_MASK_SQL",
                "must be `literals` (the default: SQL literals and bind values become ?) or `off`",
            )
        })?,
    };
    let mut filter = FilterSpec {
        skip_heartbeats: env.flag("DAS_SKIP_HEARTBEATS", true)?,
        mask_sql,
        ..FilterSpec::default()
    };
    for list in &FILTER_LISTS {
        *list.get_mut(&mut filter) = (env.lookup)(list.env)
            .map(|v| FilterSpec::parse_list(&v))
            .unwrap_or_default();
    }
    crate::pipeline::filter::Filter::check(&filter).map_err(|e| filter_error(&e, env.lookup))?;
    Ok(filter)
}

/// `DAS_PSEUDONYM_KEY`, required when `filter` redacts fields. Its value is never put into an error.
fn pseudonym_key<F: Fn(&str) -> Option<String>>(
    env: &Reader<'_, F>,
    filter: &FilterSpec,
) -> Result<Option<SealedPseudonymKey>, ConfigError> {
    const NAME: &str = "DAS_PSEUDONYM_KEY";
    let invalid = |value: &str, reason: &str| ConfigError {
        variable: NAME.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(text) = env.get(NAME) else {
        if filter.redact_fields.is_empty() {
            return Ok(None);
        }
        return Err(invalid(
            "",
            "required with DAS_REDACT_FIELDS: redacted values are keyed pseudonyms (HMAC-SHA-256) under a secret key \
             kept KMS-encrypted; make one with `das pseudonym-key new --kms-key-id <key>` and set DAS_PSEUDONYM_KEY \
             (the template's PseudonymKey parameter) to the blob it prints",
        ));
    };
    SealedPseudonymKey::from_base64(&text)
        .map(Some)
        .map_err(|reason| invalid("(not shown)", reason))
}

fn decode_options<F: Fn(&str) -> Option<String>>(env: &Reader<'_, F>) -> Result<DecodeOptions, ConfigError> {
    let mut decode = DecodeOptions::default();
    let max = env.number("DAS_MAX_DECOMPRESSED_BYTES", decode.max_decompressed_len as u64, 1024)?;
    decode.max_decompressed_len = usize::try_from(max).unwrap_or(usize::MAX);
    Ok(decode)
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
    fn originals_are_kept_only_when_das_keep_originals_says_true() {
        let keep = |value: Option<&str>| {
            let mut vars = vec![("DAS_ARCHIVE_BUCKET", "b")];
            vars.extend(value.map(|v| ("DAS_KEEP_ORIGINALS", v)));
            settings(&vars).map(|s| (s.keep_originals, s.batch_settings().keep_originals))
        };
        assert_eq!(keep(None), Ok((false, false)));
        assert_eq!(keep(Some("true")), Ok((true, true)));
        assert_eq!(keep(Some("false")), Ok((false, false)));
        assert_eq!(keep(Some("sure")).unwrap_err().variable, "DAS_KEEP_ORIGINALS");
    }

    #[test]
    fn the_archive_prefix_always_ends_in_a_slash() {
        for (given, used) in [("audit", "audit/"), ("audit/", "audit/"), (" a/b ", "a/b/"), ("", "")] {
            let s = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_ARCHIVE_PREFIX", given)]).unwrap();
            assert_eq!(s.layout.prefix, used, "{given:?}");
        }
        assert!(settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_ARCHIVE_PREFIX", "/x")]).is_err());
    }

    #[test]
    fn the_give_up_policy_defaults_to_twelve_hours_thirty_minutes_failing_a_day_of_retention_and_zero_means_never() {
        let default = settings(&[("DAS_ARCHIVE_BUCKET", "b")]).unwrap();
        assert_eq!(
            default.give_up,
            Some(GiveUpPolicy {
                after: Duration::from_secs(43_200),
                failing_for: Duration::from_secs(1800),
                retention: Duration::from_secs(24 * 3600),
            })
        );
        let never = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_GIVE_UP_AFTER_SECONDS", "0")]).unwrap();
        assert_eq!(never.give_up, None);
        let week = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_GIVE_UP_FAILING_SECONDS", "600"),
            ("DAS_STREAM_RETENTION_HOURS", "168"),
        ])
        .unwrap()
        .give_up
        .unwrap();
        assert_eq!(
            (week.failing_for, week.retention),
            (Duration::from_secs(600), Duration::from_secs(168 * 3600))
        );
        for (variable, value) in [
            ("DAS_GIVE_UP_AFTER_SECONDS", "soon"),
            ("DAS_GIVE_UP_FAILING_SECONDS", "-1"),
            ("DAS_STREAM_RETENTION_HOURS", "12"),
            ("DAS_STREAM_RETENTION_HOURS", "9000"),
        ] {
            let err = settings(&[("DAS_ARCHIVE_BUCKET", "b"), (variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }

    #[test]
    fn the_allowed_resource_ids_are_a_list_of_valid_ids() {
        let s = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_RESOURCE_IDS", "cluster-A1, db-B2,")]).unwrap();
        assert_eq!(
            s.resource_ids,
            [
                ResourceId::Cluster("cluster-A1".into()),
                ResourceId::Instance("db-B2".into())
            ]
        );
        let err = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_RESOURCE_IDS", "cluster-A1,orders")]).unwrap_err();
        assert_eq!(err.variable, "DAS_RESOURCE_IDS");
        assert!(err.to_string().contains("\"orders\" is not a DAS resource id"), "{err}");
    }

    #[test]
    fn unknown_das_variables_are_named_with_the_closest_known_one() {
        let names = [
            "DAS_ARCHIVE_BUCKET",
            "DAS_ARCHIVE_BUKET",
            "DAS_INCLUDE_USER",
            "DAS_SOMETHING_ELSE_ENTIRELY",
            "PATH",
        ];
        let unknown = Settings::unknown_variables(names.iter().map(|n| (*n).to_owned()));
        assert_eq!(
            unknown,
            [
                ("DAS_ARCHIVE_BUKET".to_owned(), Some("DAS_ARCHIVE_BUCKET".to_owned())),
                ("DAS_INCLUDE_USER".to_owned(), Some("DAS_INCLUDE_USERS".to_owned())),
                ("DAS_SOMETHING_ELSE_ENTIRELY".to_owned(), None),
            ]
        );
    }

    #[test]
    #[cfg(feature = "ocsf-parquet")]
    fn the_output_is_ndjson_unless_das_output_names_ocsf_parquet() {
        let default = settings(&[("DAS_ARCHIVE_BUCKET", "b")]).unwrap();
        assert_eq!(default.outputs, Outputs::default());
        assert!(default.outputs.ndjson && default.outputs.security_lake.is_none());
        let both = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_OUTPUT", "ndjson, ocsf-parquet"),
            ("DAS_SECURITY_LAKE_BUCKET", "aws-security-data-lake-us-east-1-x"),
            ("DAS_SECURITY_LAKE_SOURCE", "das"),
        ])
        .unwrap();
        assert!(both.outputs.ndjson);
        assert_eq!(
            both.outputs.security_lake,
            Some(SecurityLake {
                bucket: "aws-security-data-lake-us-east-1-x".into(),
                prefix: String::new(),
                source: "das".into(),
                role_arn: None,
                external_id: None,
            })
        );
        let with_role = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_OUTPUT", "ocsf-parquet"),
            ("DAS_SECURITY_LAKE_BUCKET", "lake"),
            ("DAS_SECURITY_LAKE_SOURCE", "das"),
            (
                "DAS_SECURITY_LAKE_ROLE_ARN",
                "arn:aws:iam::123456789012:role/SecurityLakeDas",
            ),
            ("DAS_SECURITY_LAKE_EXTERNAL_ID", "ext-1"),
        ])
        .unwrap();
        assert!(!with_role.outputs.ndjson, "ocsf-parquet alone writes no NDJSON");
        let lake = with_role.outputs.security_lake.unwrap();
        assert_eq!(
            (lake.role_arn.as_deref(), lake.external_id.as_deref()),
            (Some("arn:aws:iam::123456789012:role/SecurityLakeDas"), Some("ext-1"))
        );
        let err = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_OUTPUT", "parquet")]).unwrap_err();
        assert_eq!(err.variable, "DAS_OUTPUT");
    }

    #[test]
    #[cfg(feature = "ocsf-parquet")]
    fn ocsf_parquet_without_its_bucket_or_source_is_a_start_up_error_naming_the_variable() {
        let no_bucket = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_OUTPUT", "ocsf-parquet"),
            ("DAS_SECURITY_LAKE_SOURCE", "das"),
        ])
        .unwrap_err();
        assert_eq!(no_bucket.variable, "DAS_SECURITY_LAKE_BUCKET");
        let no_source = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_OUTPUT", "ocsf-parquet"),
            ("DAS_SECURITY_LAKE_BUCKET", "lake"),
        ])
        .unwrap_err();
        assert_eq!(no_source.variable, "DAS_SECURITY_LAKE_SOURCE");
        assert!(
            no_source.to_string().contains("required with DAS_OUTPUT=ocsf-parquet"),
            "{no_source}"
        );
    }

    #[test]
    fn the_function_that_owes_the_outputs_is_the_one_lambda_names() {
        let s = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("AWS_LAMBDA_FUNCTION_NAME", "das-archiver"),
        ]);
        assert_eq!(s.unwrap().outputs.function.as_deref(), Some("das-archiver"));
        assert_eq!(settings(&[("DAS_ARCHIVE_BUCKET", "b")]).unwrap().outputs.function, None);
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
            ("DAS_PSEUDONYM_KEY", "AQIDBA=="),
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
    fn redacting_without_a_pseudonym_key_is_refused_with_how_to_make_one() {
        let err = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_REDACT_FIELDS", "dbUserName")]).unwrap_err();
        assert_eq!(err.variable, "DAS_PSEUDONYM_KEY");
        assert!(
            err.to_string().contains("das pseudonym-key new --kms-key-id <key>"),
            "{err}"
        );
        let s = settings(&[
            ("DAS_ARCHIVE_BUCKET", "b"),
            ("DAS_REDACT_FIELDS", "dbUserName"),
            ("DAS_PSEUDONYM_KEY", "AQIDBA=="),
        ])
        .unwrap();
        assert_eq!(s.pseudonym_key.map(|k| k.to_base64()).as_deref(), Some("AQIDBA=="));
        assert!(settings(&[("DAS_ARCHIVE_BUCKET", "b")])
            .unwrap()
            .pseudonym_key
            .is_none());
    }

    #[test]
    fn a_bad_pseudonym_key_is_refused_without_showing_it() {
        let err = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_PSEUDONYM_KEY", "secret-looking!")]).unwrap_err();
        assert_eq!(err.variable, "DAS_PSEUDONYM_KEY");
        assert!(!err.to_string().contains("secret-looking"), "{err}");
        let s = settings(&[("DAS_ARCHIVE_BUCKET", "b"), ("DAS_PSEUDONYM_KEY", "AQIDBA==")]).unwrap();
        assert!(!format!("{s:?}").contains("AQIDBA=="));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let cases = [
            (vec![], "DAS_ARCHIVE_BUCKET"),
            (vec![("DAS_COMPRESSION", "brotli")], "DAS_COMPRESSION=\"brotli\""),
            (vec![("DAS_RESOURCE_ID", "mydb")], "DAS_RESOURCE_ID=\"mydb\""),
            (
                vec![("DAS_KEY_CACHE_TTL_SECONDS", "ten")],
                "DAS_KEY_CACHE_TTL_SECONDS=\"ten\"",
            ),
            (vec![("DAS_KEY_CACHE_MAX_ENTRIES", "0")], "DAS_KEY_CACHE_MAX_ENTRIES"),
            (vec![("DAS_SKIP_HEARTBEATS", "maybe")], "DAS_SKIP_HEARTBEATS"),
            (vec![("DAS_DROP_FIELDS", "clusterId")], "DAS_DROP_FIELDS=\"clusterId\""),
            (
                vec![
                    ("DAS_DROP_FIELDS", "a"),
                    ("DAS_REDACT_FIELDS", "a"),
                    ("DAS_PSEUDONYM_KEY", "AQIDBA=="),
                ],
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
