//! The `rnnlm` command line: argument parsing and dispatch; the work is in the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // clap's first line says what is wrong; its usage notes follow on later lines.
            let rendered = error.to_string();
            eprintln!("{} (see --help)", rendered.lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(status) => status,
        Err(error) => {
            // One line, with the chain of causes: "error: outer: inner".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
