//! `template.yaml` lints clean with cfn-lint and grants least privilege (checked by
//! `tests/template_check.py` on the parsed template).

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

#[test]
fn the_template_passes_cfn_lint_with_no_errors_or_warnings() {
    let python = common::oracle_python();
    let cfn_lint = python.with_file_name("cfn-lint");
    let (ok, output) = run(&cfn_lint, &["template.yaml"]);
    assert!(ok && output.trim().is_empty(), "cfn-lint template.yaml:\n{output}");
}

#[test]
fn the_template_grants_least_privilege() {
    let (ok, output) = run(&common::oracle_python(), &["tests/template_check.py", "template.yaml"]);
    assert!(ok, "{output}");
}
