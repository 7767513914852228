//! The one rule the source tree shows: the pure core (`src/pipeline/`) never touches AWS, I/O,
//! `async`, the environment or the clock. Written down in `src/pipeline/mod.rs`, checked here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

/// What a file under `src/pipeline/` may not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("crate::aws", "the AWS edges"),
    ("crate::lambda", "a front door"),
    ("crate::cli", "a front door"),
    ("crate::logging", "a front door"),
    ("das_archiver::aws", "the AWS edges"),
    ("tokio", "an async runtime"),
    ("async ", "async code"),
    (".await", "async code"),
    ("aws_sdk_", "an AWS SDK client"),
    ("aws_config", "AWS configuration"),
    ("std::fs", "file I/O"),
    ("std::net", "network I/O"),
    ("std::env", "the environment"),
    ("SystemTime", "the clock"),
    ("Instant::now", "the clock"),
    ("feature = \"aws\"", "a feature-gated edge"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code, without its `#[cfg(test)]` module (tests may use tokio or files freely) and
/// without comments (which may name anything).
fn code_outside_tests(text: &str) -> String {
    let code = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_pure_core_names_nothing_from_the_edges_io_async_or_the_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipeline");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 10, "src/pipeline/ should hold the core: {files:?}");
    let mut breaches = Vec::new();
    for file in &files {
        let code = code_outside_tests(&std::fs::read_to_string(file).unwrap());
        for (pattern, what) in FORBIDDEN {
            for (n, line) in code.lines().enumerate() {
                if line.contains(pattern) {
                    breaches.push(format!("{}:{}: names {what} ({pattern})", file.display(), n + 1));
                }
            }
        }
    }
    assert!(breaches.is_empty(), "the core must stay pure:\n{}", breaches.join("\n"));
}

#[test]
fn every_module_of_the_crate_is_on_the_crate_map() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let map: String = lib.lines().filter(|l| l.starts_with("//!")).collect();
    for folder in ["", "pipeline", "aws"] {
        for entry in std::fs::read_dir(src.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let module = path.file_stem().unwrap().to_string_lossy().to_string();
            let is_module = path.extension().is_some_and(|e| e == "rs") || path.join("mod.rs").exists();
            if !is_module || ["lib", "mod", "bin"].contains(&module.as_str()) {
                continue;
            }
            assert!(
                map.contains(&format!("`{module}`")),
                "src/lib.rs's crate map does not name the module `{module}` ({})",
                path.display()
            );
        }
    }
}

/// The AWS edges in the order imports may go: each names only the modules after it.
const AWS_LAYERS: &[&str] = &["config", "batch", "archive", "compress", "keys", "outputs"];

#[test]
fn the_aws_edge_modules_import_each_other_one_way() {
    let aws = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws");
    let mut breaches = Vec::new();
    for (rank, module) in AWS_LAYERS.iter().enumerate() {
        let mut files = vec![aws.join(format!("{module}.rs"))];
        if aws.join(module).is_dir() {
            rust_files(&aws.join(module), &mut files);
        }
        for file in files {
            let code = code_outside_tests(&std::fs::read_to_string(&file).unwrap());
            for earlier in &AWS_LAYERS[..rank] {
                for pattern in [format!("aws::{earlier}"), format!("super::{earlier}::")] {
                    if code.contains(&pattern) {
                        breaches.push(format!("{} names `{earlier}` ({pattern})", file.display()));
                    }
                }
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "the aws layer must read one way ({}):\n{}",
        AWS_LAYERS.join(" → "),
        breaches.join("\n")
    );
}
