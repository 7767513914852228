//! The one question every failure must answer: does retrying help?
//!
//! *Permanent* failures are properties of the record (bad JSON, a tampered message, a gzip bomb): the
//! record is quarantined with its reason and the batch goes on. *Transient* failures are properties of
//! the moment (KMS throttling, an S3 outage): the batch stops there and Kinesis retries from that record.
//! The pure core only ever fails permanently; the edges (KMS, S3) add transient failures, and the batch
//! layer is the one place that acts on the answer.
//!
//! A *configuration* failure (KMS or S3 access denied, a missing key or bucket, bad credentials) is
//! transient here on purpose: retrying after the deployment is fixed succeeds, and quarantining would
//! turn a permission mistake into a pile of records to redrive. The edge error types say so with their
//! own `is_configuration()` (`KeyError`, `SinkError`), so the batch can log those at ERROR.

/// Whether retrying the same input can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The input itself is bad; quarantine it.
    Permanent,
    /// The environment failed; retry later.
    Transient,
}

/// Implemented by every error type that can stop a record.
pub trait Classify {
    /// Permanent or transient.
    fn failure_kind(&self) -> FailureKind;
}

macro_rules! permanent {
    ($($t:ty),* $(,)?) => {
        $(impl Classify for $t {
            fn failure_kind(&self) -> FailureKind {
                FailureKind::Permanent
            }
        })*
    };
}

permanent!(
    crate::pipeline::envelope::EnvelopeError,
    crate::pipeline::envelope::ResourceIdError,
    crate::pipeline::esdk::EsdkError,
    crate::pipeline::esdk::KeyringError,
    crate::pipeline::gunzip::GunzipError,
    crate::pipeline::activity::ActivityError,
    crate::pipeline::record::RecordError,
);
