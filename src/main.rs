//! The `rnnlm` command line: a thin layer over the library.

use clap::Parser;

/// Train, evaluate and benchmark recurrent-network language models on the CPU.
#[derive(Parser, Debug)]
#[command(name = "rnnlm", version, about, long_about = None)]
struct Cli {}

fn main() {
    Cli::parse();
}
