//! Subcommands of the `rnnlm` binary. Each one parses nothing itself (clap does) and holds no
//! logic beyond calling the library and printing.

mod corpus_commands;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Train, evaluate and benchmark recurrent-network language models on the CPU.
#[derive(Parser, Debug)]
#[command(name = "rnnlm", version, about, long_about = None)]
pub struct Cli {
    /// Data directory (PTB lives in <DATA>/ptb/) [default: $RNNLM_DATA, else ./data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Download a data set (verified against its SHA-256, written atomically)
    Download(DownloadArgs),
    /// Turn text files into a vocabulary and memory-mappable token files
    Prepare(PrepareArgs),
    /// Show a token file's header and first tokens, or why it is malformed
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// What to download
    #[arg(value_enum)]
    pub dataset: Dataset,
    /// Directory to write into [default: <DATA>/ptb]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where to fetch the files from [default: $RNNLM_PTB_URL, else the textbook's location]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Dataset {
    /// The Penn Treebank (ptb.train.txt, ptb.valid.txt, ptb.test.txt)
    Ptb,
}

#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// Prepare the Penn Treebank from the data directory (downloading it if missing)
    #[arg(long, conflicts_with_all = ["train", "valid", "test", "level", "lowercase", "unk", "corpus_size"])]
    pub ptb: bool,
    /// Training text; its tokens make the vocabulary
    #[arg(long, value_name = "FILE", required_unless_present = "ptb")]
    pub train: Option<PathBuf>,
    /// Validation text (tokens must be in the training vocabulary)
    #[arg(long, value_name = "FILE")]
    pub valid: Option<PathBuf>,
    /// Test text (tokens must be in the training vocabulary)
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// Output directory [default: <DATA>/ptb with --ptb, else required]
    #[arg(long, value_name = "DIR", required_unless_present = "ptb")]
    pub out: Option<PathBuf>,
    /// Token level: word (whitespace-separated, <eos> at line ends) or char (Unicode scalar values)
    #[arg(long, default_value = "word", value_parser = parse_level)]
    pub level: rnnlm::corpus::Level,
    /// Lower-case the text first
    #[arg(long)]
    pub lowercase: bool,
    /// Map valid/test tokens missing from the training vocabulary to <unk> instead of failing
    #[arg(long)]
    pub unk: bool,
    /// Keep only the first N tokens of each file
    #[arg(long, value_name = "N")]
    pub corpus_size: Option<usize>,
    /// Where to fetch PTB from if it is missing [default: $RNNLM_PTB_URL, else the textbook's location]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The token file
    pub file: PathBuf,
    /// Vocabulary to show tokens as text [default: vocab.txt beside the file, if present]
    #[arg(long, value_name = "FILE")]
    pub vocab: Option<PathBuf>,
    /// How many tokens to show
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub show: usize,
}

fn parse_level(s: &str) -> Result<rnnlm::corpus::Level, String> {
    s.parse()
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let data = rnnlm::data::data_dir(cli.data.as_deref());
    match cli.command {
        Command::Download(args) => corpus_commands::download(&data, args),
        Command::Prepare(args) => corpus_commands::prepare(&data, args),
        Command::Inspect(args) => corpus_commands::inspect(args),
    }
}
