//! `das`: the command-line front door. All logic lives in `das_archiver::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    das_archiver::cli::run(das_archiver::cli::Cli::parse())
}
