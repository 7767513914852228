//! `das-archiver-lambda`: the Kinesis-triggered archiver. Start-up builds everything once; each
//! invocation borrows it. All logic lives in the library (`das_archiver::lambda`, `batch`).

use das_archiver::archive::S3Sink;

// glibc's allocator fragments badly under the per-record pattern of large short-lived (de)compressor
// state interleaved with small long-lived buffers: 10,000 records grew its heap to ~3 GB in our
// measurement, against ~20 MB with mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use das_archiver::batch::Archiver;
use das_archiver::config::Settings;
use das_archiver::filter::Filter;
use das_archiver::keys::{KeyCache, KmsKeySource};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    das_archiver::logging::init_json();
    let settings = Settings::from_env()?;
    for (name, closest) in Settings::unknown_variables(std::env::vars().map(|(name, _)| name)) {
        let hint = closest.map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
        tracing::warn!(variable = %name, "{name} is not a setting of das-archiver and is ignored{hint}");
    }
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let kms = KmsKeySource::new(&sdk).with_key_arns(&settings.kms_key_arns);
    // A key that cannot be opened fails the cold start: the batch is retried, nothing unkeyed is archived.
    let pseudonym_key = match &settings.pseudonym_key {
        Some(sealed) => Some(kms.open_pseudonym_key(sealed).await.inspect_err(|e| {
            tracing::error!(error = %e, "cannot open the pseudonym key; nothing is archived until this is fixed");
        })?),
        None => None,
    };
    let filter = Filter::with_key(&settings.filter, pseudonym_key.as_ref())?;
    let archiver = Archiver::new(
        settings.batch_settings(),
        KeyCache::new(kms, settings.key_cache),
        filter,
        S3Sink::for_outputs(
            &sdk,
            &settings.bucket,
            settings.s3_force_path_style,
            settings.outputs.security_lake.as_ref(),
        )
        .await,
    );
    lambda_runtime::run(service_fn(|event| das_archiver::lambda::handle(&archiver, event))).await
}
