//! What a deployment writes, and where: the NDJSON archive, OCSF Parquet for an Amazon Security Lake
//! custom source, or both (`DAS_OUTPUT`), and the names a quarantine document uses to say which of
//! them a record still owes.
//!
//! Plain data, shared by [`crate::aws::config`] (which reads it), [`crate::aws::batch`] (which writes
//! to it) and [`crate::aws::archive`] (which names what a quarantined record owes); it imports none of
//! them, so the layer reads one way. It must never grow behaviour that needs AWS.

/// What the archiver writes (`DAS_OUTPUT`). Quarantine objects go to the archive bucket either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// The NDJSON archive (`ndjson`).
    pub ndjson: bool,
    /// OCSF Parquet objects for an Amazon Security Lake custom source (`ocsf-parquet`).
    pub security_lake: Option<SecurityLake>,
    /// The Lambda function that owes these outputs (`AWS_LAMBDA_FUNCTION_NAME`), named in its
    /// quarantine documents so that `das redrive` writes them with its settings; `None` outside Lambda.
    pub function: Option<String>,
}

impl Default for Outputs {
    fn default() -> Self {
        Self {
            ndjson: true,
            security_lake: None,
            function: None,
        }
    }
}

/// An Amazon Security Lake custom source: objects go to
/// `s3://{bucket}/{prefix}ext/{source}/region=…/accountId=…/eventDay=…/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityLake {
    /// `DAS_SECURITY_LAKE_BUCKET`.
    pub bucket: String,
    /// `DAS_SECURITY_LAKE_PREFIX` (usually empty).
    pub prefix: String,
    /// `DAS_SECURITY_LAKE_SOURCE`: the custom source's name.
    pub source: String,
    /// `DAS_SECURITY_LAKE_ROLE_ARN`: the role Security Lake made for the custom source, assumed to
    /// write its objects; `None`: the function's own role writes them.
    pub role_arn: Option<String>,
    /// `DAS_SECURITY_LAKE_EXTERNAL_ID`: the external id the custom source's role requires.
    pub external_id: Option<String>,
}

/// The `DAS_OUTPUT` name of the NDJSON archive.
pub const OUTPUT_NDJSON: &str = "ndjson";
/// The `DAS_OUTPUT` name of the Security Lake OCSF Parquet output.
pub const OUTPUT_OCSF_PARQUET: &str = "ocsf-parquet";

/// The outputs a function writes, by their `DAS_OUTPUT` names, in a fixed order: what a record it
/// quarantines still owes.
pub fn owed_outputs(outputs: &Outputs) -> Vec<&'static str> {
    let mut owed = Vec::with_capacity(2);
    if outputs.ndjson {
        owed.push(OUTPUT_NDJSON);
    }
    if outputs.security_lake.is_some() {
        owed.push(OUTPUT_OCSF_PARQUET);
    }
    owed
}
