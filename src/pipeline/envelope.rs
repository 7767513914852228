//! The DAS Kinesis record envelope, and which KMS encryption context belongs to a stream.
//!
//! A record's data is JSON `{"type", "version", "databaseActivityEvents", "key"}`: the ESDK message
//! and the KMS-encrypted data key, both base64. The data key must be decrypted with the encryption
//! context `{"aws:rds:dbc-id": "cluster-…"}` (Aurora) or `{"aws:rds:db-id": "db-…"}` (RDS for Oracle
//! and SQL Server), and the resource id comes from the stream name `aws-rds-das-<resource id>`.
//! This module never calls KMS; it only says what to ask for.

use std::borrow::Cow;
use std::fmt;
use std::sync::Once;

use base64::Engine as _;
use serde::Deserialize;

use crate::pipeline::json_error::JsonErrorSummary;

/// The `type` of every DAS Kinesis record.
pub const RECORD_TYPE: &str = "DatabaseActivityMonitoringRecords";
/// Record versions documented by AWS; others are accepted and logged once.
pub const KNOWN_VERSIONS: [&str; 5] = ["1.0", "1.1", "1.2", "1.3", "1.4"];
/// The prefix of every DAS stream name.
pub const STREAM_PREFIX: &str = "aws-rds-das-";

/// Why a Kinesis record is not a DAS envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The data is not a JSON object with the two string fields.
    #[error("DAS record: the Kinesis data is not a DAS record JSON object ({0}); expected {{\"type\",\"version\",\"databaseActivityEvents\",\"key\"}}")]
    Json(JsonErrorSummary),
    /// The `type` field names another kind of record.
    #[error(
        "DAS record: type is {0:?}, expected \"DatabaseActivityMonitoringRecords\"; is this stream an activity stream?"
    )]
    WrongType(String),
    /// A base64 field does not decode.
    #[error("DAS record: the {field} field is not valid base64 ({source})")]
    Base64 {
        /// `databaseActivityEvents` or `key`.
        field: &'static str,
        /// The decoder's complaint.
        #[source]
        source: base64_simd::Error,
    },
    /// A required field is empty.
    #[error("DAS record: the {0} field is empty")]
    Empty(&'static str),
}

#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(rename = "type", borrow, default)]
    record_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(rename = "databaseActivityEvents", borrow)]
    database_activity_events: Cow<'a, str>,
    #[serde(borrow)]
    key: Cow<'a, str>,
}

/// A parsed DAS record: the ESDK message and the KMS key blob, base64-decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The record version (`1.0` … `1.4`, or newer), empty when absent.
    pub version: String,
    /// The ESDK message holding the gzip'ed activity payload.
    pub message: Vec<u8>,
    /// The KMS ciphertext blob of the data key.
    pub key_blob: Vec<u8>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("version", &self.version)
            .field("message_len", &self.message.len())
            .field("key_blob_len", &self.key_blob.len())
            .finish()
    }
}

impl Envelope {
    /// Parses the Kinesis record data. Unknown fields are ignored; unknown versions are accepted.
    pub fn parse(data: &[u8]) -> Result<Self, EnvelopeError> {
        let wire: WireEnvelope<'_> =
            serde_json::from_slice(data).map_err(|e| EnvelopeError::Json(JsonErrorSummary::of(&e)))?;
        if let Some(t) = wire.record_type.as_deref() {
            if t != RECORD_TYPE {
                return Err(EnvelopeError::WrongType(t.chars().take(100).collect()));
            }
        }
        let version = wire.version.map(Cow::into_owned).unwrap_or_default();
        if !KNOWN_VERSIONS.contains(&version.as_str()) {
            static ONCE: Once = Once::new();
            ONCE.call_once(
                || tracing::warn!(version = %version, "DAS record version not documented; decoding it anyway"),
            );
        }
        let message = decode_base64("databaseActivityEvents", &wire.database_activity_events)?;
        let key_blob = decode_base64("key", &wire.key)?;
        Ok(Self {
            version,
            message,
            key_blob,
        })
    }

    /// Serializes an envelope exactly as the DAS producer does.
    pub fn to_json(&self) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = serde_json::json!({
            "type": RECORD_TYPE,
            "version": self.version,
            "databaseActivityEvents": b64.encode(&self.message),
            "key": b64.encode(&self.key_blob),
        });
        body.to_string().into_bytes()
    }
}

fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>, EnvelopeError> {
    if text.is_empty() {
        return Err(EnvelopeError::Empty(field));
    }
    base64_simd::STANDARD
        .decode_to_vec(text)
        .map_err(|source| EnvelopeError::Base64 { field, source })
}

/// Why a name is not a DAS resource id or stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceIdError {
    /// Not `cluster-…` or `db-…`.
    #[error("{0:?} is not a DAS resource id: expected \"cluster-<id>\" (Aurora DbClusterResourceId) or \"db-<id>\" (RDS DbiResourceId), letters and digits after the dash")]
    NotAResourceId(String),
    /// Not a stream named `aws-rds-das-…`, or an ARN of one.
    #[error("{0:?} is not a DAS stream: expected a Kinesis stream named \"aws-rds-das-cluster-<id>\" or \"aws-rds-das-db-<id>\", or its ARN")]
    NotADasStream(String),
}

/// The RDS resource an activity stream belongs to; it selects the KMS encryption context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceId {
    /// An Aurora cluster: `cluster-…`, context key `aws:rds:dbc-id`.
    Cluster(String),
    /// An RDS instance (Oracle, SQL Server): `db-…`, context key `aws:rds:db-id`.
    Instance(String),
}

impl ResourceId {
    /// Parses `cluster-…` or `db-…`.
    pub fn parse(id: &str) -> Result<Self, ResourceIdError> {
        let valid_suffix = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        match id {
            _ if id.strip_prefix("cluster-").is_some_and(valid_suffix) => Ok(Self::Cluster(id.to_owned())),
            _ if id.strip_prefix("db-").is_some_and(valid_suffix) => Ok(Self::Instance(id.to_owned())),
            _ => Err(ResourceIdError::NotAResourceId(truncate(id))),
        }
    }

    /// The resource id of a DAS stream, from its name (`aws-rds-das-cluster-…`) or its ARN
    /// (`arn:aws:kinesis:<region>:<account>:stream/aws-rds-das-…`, also with a `/consumer/…` suffix).
    pub fn from_stream(name_or_arn: &str) -> Result<Self, ResourceIdError> {
        let name = if name_or_arn.starts_with("arn:") {
            let mut parts = name_or_arn.splitn(6, ':');
            let service = parts.nth(2);
            let resource = parts.nth(2).unwrap_or_default();
            match (service, resource.strip_prefix("stream/")) {
                (Some("kinesis"), Some(rest)) => rest.split('/').next().unwrap_or_default(),
                _ => return Err(ResourceIdError::NotADasStream(truncate(name_or_arn))),
            }
        } else {
            name_or_arn
        };
        name.strip_prefix(STREAM_PREFIX)
            .and_then(|id| Self::parse(id).ok())
            .ok_or_else(|| ResourceIdError::NotADasStream(truncate(name_or_arn)))
    }

    /// The id itself, e.g. `cluster-ABCD123456`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Cluster(id) | Self::Instance(id) => id,
        }
    }

    /// The KMS encryption context key for this kind of resource.
    pub fn context_key(&self) -> &'static str {
        match self {
            Self::Cluster(_) => "aws:rds:dbc-id",
            Self::Instance(_) => "aws:rds:db-id",
        }
    }

    /// The KMS encryption context for the stream's data keys: one pair.
    pub fn encryption_context(&self) -> (&'static str, &str) {
        (self.context_key(), self.as_str())
    }

    /// The name of this resource's activity stream.
    pub fn stream_name(&self) -> String {
        format!("{STREAM_PREFIX}{}", self.as_str())
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ResourceId {
    type Err = ResourceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Error messages quote the input, but never more than 200 characters of it.
fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simd_base64_decoder_accepts_exactly_what_the_base64_crate_accepts() {
        use base64::Engine as _;
        // Every 4- and 5-character string over characters that probe the edges: padding in and out
        // of place, non-zero trailing bits (`R`, `B`), the two last alphabet characters, and
        // characters outside the alphabet (URL-safe `-`, space).
        let alphabet = b"AQRB/+=- ";
        let mut cases = Vec::new();
        for len in [4, 5, 8] {
            let total = alphabet.len().pow(len.min(5) as u32);
            for mut n in 0..total {
                let mut text = Vec::new();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                cases.push(text);
            }
        }
        for text in cases {
            let simd = base64_simd::STANDARD.decode_to_vec(&text).ok();
            let reference = base64::engine::general_purpose::STANDARD.decode(&text).ok();
            assert_eq!(simd, reference, "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn cluster_and_instance_ids_select_their_context_keys() {
        let c = ResourceId::parse("cluster-ABCD123456").unwrap();
        assert_eq!(c.encryption_context(), ("aws:rds:dbc-id", "cluster-ABCD123456"));
        let d = ResourceId::parse("db-ABCD123456").unwrap();
        assert_eq!(d.encryption_context(), ("aws:rds:db-id", "db-ABCD123456"));
    }

    #[test]
    fn ids_that_fit_neither_form_are_rejected_with_the_expected_forms() {
        for bad in ["", "cluster-", "db-", "dbc-ABC", "mydb", "cluster-AB/C", "clusterABC"] {
            let err = ResourceId::parse(bad).unwrap_err();
            assert!(err.to_string().contains("cluster-<id>"), "{err}");
        }
    }

    #[test]
    fn stream_names_and_arns_give_the_resource_id() {
        let want = ResourceId::Cluster("cluster-XYZ9".into());
        assert_eq!(ResourceId::from_stream("aws-rds-das-cluster-XYZ9").unwrap(), want);
        assert_eq!(
            ResourceId::from_stream("arn:aws:kinesis:eu-west-1:123456789012:stream/aws-rds-das-cluster-XYZ9").unwrap(),
            want
        );
        assert_eq!(
            ResourceId::from_stream("arn:aws-cn:kinesis:cn-north-1:1:stream/aws-rds-das-db-AB12/consumer/c:1").unwrap(),
            ResourceId::Instance("db-AB12".into())
        );
        assert_eq!(want.stream_name(), "aws-rds-das-cluster-XYZ9");
    }

    #[test]
    fn other_streams_are_rejected_naming_the_expected_name() {
        for bad in [
            "my-stream",
            "aws-rds-das-",
            "aws-rds-das-foo-1",
            "arn:aws:sqs:us-east-1:1:aws-rds-das-cluster-A",
            "arn:aws:kinesis:us-east-1:1:stream/other",
        ] {
            let err = ResourceId::from_stream(bad).unwrap_err();
            assert!(err.to_string().contains("aws-rds-das-cluster-<id>"), "{err}");
        }
    }

    #[test]
    fn an_envelope_round_trips_and_ignores_unknown_fields() {
        let env = Envelope {
            version: "1.2".into(),
            message: vec![1, 2, 3],
            key_blob: vec![9; 184],
        };
        let mut json: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        json["extra"] = serde_json::json!({"future": true});
        let back = Envelope::parse(json.to_string().as_bytes()).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn unknown_versions_are_accepted() {
        let data = br#"{"type":"DatabaseActivityMonitoringRecords","version":"9.9","databaseActivityEvents":"AQID","key":"AQ=="}"#;
        assert_eq!(Envelope::parse(data).unwrap().version, "9.9");
    }

    #[test]
    fn malformed_envelopes_say_what_is_wrong() {
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "not a DAS record JSON object"),
            (
                br#"{"type":"DatabaseActivityMonitoringRecords","version":"1.1","key":"AQ=="}"#,
                "databaseActivityEvents",
            ),
            (
                br#"{"type":"Other","databaseActivityEvents":"AQ==","key":"AQ=="}"#,
                "type is \"Other\"",
            ),
            (
                br#"{"databaseActivityEvents":"!!!","key":"AQ=="}"#,
                "databaseActivityEvents field is not valid base64",
            ),
            (br#"{"databaseActivityEvents":"AQ==","key":""}"#, "key field is empty"),
        ];
        for (data, want) in cases {
            let err = Envelope::parse(data).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }
}
