//! `template.yaml` and `source-account.yaml` lint clean with cfn-lint, and what they deploy is checked by
//! `tests/template_check.py`: the templates after the AWS::LanguageExtensions (Fn::ForEach) and SAM
//! transforms, resolved with concrete parameters (three ids, one id, a created key, a stream in another
//! account, Security Lake, the SIEM queue), one check group per test; the created KMS keys' policies are checked
//! against a cited table of what CloudFormation does with them.

#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use crate::common;

fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .expect("the venv tool starts");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cfn_lint(template: &str) {
    let cfn_lint = common::oracle_python().with_file_name("cfn-lint");
    let (ok, output) = run(&cfn_lint, &[template]);
    assert!(ok && output.trim().is_empty(), "cfn-lint {template}:\n{output}");
}

fn template_check(group: &str) {
    let (ok, output) = run(&common::oracle_python(), &["tests/template_check.py", group]);
    assert!(ok, "{output}");
}

#[test]
fn the_template_passes_cfn_lint_with_no_errors_or_warnings() {
    cfn_lint("template.yaml");
}

#[test]
fn the_source_account_template_passes_cfn_lint_with_no_errors_or_warnings() {
    cfn_lint("source-account.yaml");
}

#[test]
fn the_template_grants_least_privilege() {
    template_check("least-privilege");
}

#[test]
fn every_stream_gets_its_own_mapping_and_read_policy_feeding_one_function() {
    template_check("streams");
}

#[test]
fn trigger_defaults_are_finite_and_parameters_refuse_what_aws_would_refuse() {
    template_check("defaults-and-rules");
}

#[test]
fn every_stream_has_quarantine_give_up_retry_age_and_silence_alarms() {
    template_check("alarms");
}

#[test]
fn each_function_has_errors_and_iterator_age_alarms_the_security_lake_one_only_with_security_lake() {
    template_check("function-alarms");
}

#[test]
fn the_security_lake_functions_quarantines_and_give_ups_are_alarmed_per_stream_like_the_archives() {
    template_check("security-lake-alarms");
}

#[test]
fn the_source_account_shares_only_its_streams_and_key_with_the_central_role() {
    template_check("source-account");
}

#[test]
fn the_created_keys_allow_every_kms_action_cloudformation_performs_and_pass_the_lockout_check() {
    template_check("kms-key-policies");
}

#[test]
fn security_lake_resources_exist_only_when_asked_and_write_only_the_custom_source_prefix() {
    template_check("security-lake");
}

#[test]
fn the_siem_queue_and_datadog_forwarder_get_new_archive_objects_as_s3_notifications_when_asked() {
    template_check("archive-object-queue");
}

#[test]
fn only_the_break_glass_role_reads_sealed_originals_and_the_archive_function_writes_them() {
    template_check("sealed-originals");
}
