//! `das pseudonym-key new --kms-key-id <key>`: makes the KMS-encrypted key of the keyed pseudonyms
//! (`DAS_REDACT_FIELDS`) and prints its blob, base64, on stdout: the value of `DAS_PSEUDONYM_KEY`
//! and of the template's `PseudonymKey` parameter. KMS makes the key and returns only its
//! ciphertext, so nothing secret is ever printed, and this command never sees the key.

use std::process::ExitCode;

use crate::aws::keys::KmsKeySource;

#[derive(Debug, clap::Args)]
pub(super) struct PseudonymKeyArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Make a new pseudonym key under a KMS key and print its blob (base64). A new key gives new
    /// pseudonyms: values archived before and after it no longer correlate.
    New {
        /// The KMS key to encrypt it under: key id, key ARN, alias name (alias/…) or alias ARN. The
        /// function needs kms:Decrypt on it (template parameter PseudonymKmsKeyArn).
        #[arg(long)]
        kms_key_id: String,
    },
}

pub(super) async fn pseudonym_key(args: &PseudonymKeyArgs) -> Result<ExitCode, String> {
    let Action::New { kms_key_id } = &args.action;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sealed = KmsKeySource::new(&sdk)
        .new_pseudonym_key(kms_key_id)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", sealed.to_base64());
    eprintln!(
        "das pseudonym-key: set this blob as DAS_PSEUDONYM_KEY (template parameter PseudonymKey, with \
         PseudonymKmsKeyArn set to the ARN of {kms_key_id}); it is KMS ciphertext, opened only by kms:Decrypt \
         with the encryption context das-archiver:purpose=pseudonym-key"
    );
    Ok(ExitCode::SUCCESS)
}
