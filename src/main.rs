//! The `rnnlm` command line: argument parsing and dispatch; the work is in the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, with the chain of causes: "error: outer: inner".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
