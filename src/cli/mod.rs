//! Subcommands of the `rnnlm` binary. Each one parses nothing itself (clap does) and holds no
//! logic beyond calling the library and printing.

/// `println!` that ignores a closed stdout (`rnnlm ... | head`) instead of panicking: the
/// command carries on (a training run still saves its checkpoint). Silent in a process that
/// another speaks for ([`quiet`]). For the subcommands' modules (`super` is this one, which the
/// Python binding mounts elsewhere).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !super::quiet() {
            let _ = writeln!(std::io::stdout().lock(), $($arg)*);
        }
    }};
}

/// `eprintln!` for what a command tells along the way (not its errors); silent in a process
/// that another speaks for ([`quiet`]).
macro_rules! note {
    ($($arg:tt)*) => {{
        if !super::quiet() {
            eprintln!($($arg)*);
        }
    }};
}

#[cfg(feature = "mpi")]
mod distributed;
mod corpus_commands;
mod model_commands;
mod parsers;
mod presets;
mod run_config;
mod run_files;
mod score_command;
mod train_command;

use clap::{Args, Parser, Subcommand};
use parsers::*;
use std::path::PathBuf;
use std::process::ExitCode;

/// Set in the processes of a distributed run other than rank 0, which speaks for the job.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The error of `--distributed` in an rnnlm built without MPI.
#[cfg(not(feature = "mpi"))]
fn without_mpi() -> anyhow::Error {
    anyhow::anyhow!("--distributed needs an rnnlm built with MPI: cargo install rnnlm --features mpi (with Open MPI or MPICH, and libclang, installed)")
}

/// Whether this process leaves the telling to another (a distributed run's rank 0).
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sentences side by side when scoring ([`ScoreArgs::batch`], and `bench`'s scoring rounds).
pub const SCORE_BATCH: usize = 256;
/// Time steps per window when scoring sentences: one, so that a row whose sentence ends takes
/// the next at once and no step is wasted on padding.
pub const SCORE_TIME: usize = 1;
/// Time steps per window when scoring one stream (`--carry-state`).
pub const STREAM_TIME: usize = 32;

/// Where `train` writes its checkpoint unless `--save` says otherwise.
pub const DEFAULT_CHECKPOINT: &str = "rnnlm.safetensors";

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
    /// Train a model (with no arguments: the chapter's experiment on the first 1,000 PTB words)
    Train(Box<TrainArgs>),
    /// Perplexity of a checkpoint on a split, with the spec's evaluation batching
    Eval(EvalArgs),
    /// Next-token guesses on a B x T block of the corpus, side by side with the truth
    Predict(PredictArgs),
    /// Sample text from a checkpoint
    Generate(GenerateArgs),
    /// Log10 probability of every line of a text, of every word, or of n-best hypotheses
    Score(ScoreArgs),
    /// Training throughput (tokens/s, GFLOP/s) next to the GEMM ceiling measured in the same run
    Bench(BenchArgs),
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
    pub level: rnnlm::files::corpus::Level,
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

/// Which corpus a command reads: PTB from the data directory unless `--text` or `--prepared`.
#[derive(Args, Debug, Clone)]
pub struct CorpusArgs {
    /// Train on (or read) this UTF-8 text file instead of PTB; prepared once into the cache
    #[arg(long, value_name = "FILE", conflicts_with = "prepared")]
    pub text: Option<PathBuf>,
    /// Read a directory made by `rnnlm prepare` instead of PTB
    #[arg(long, value_name = "DIR")]
    pub prepared: Option<PathBuf>,
    /// Where to fetch PTB from if it is missing [default: $RNNLM_PTB_URL, else the textbook's location]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The chapter: first 1,000 PTB words, D = H = 100, B = 10, T = 5, SGD lr 0.1, 100 epochs
    Chapter,
    /// Full PTB in ten minutes with the chapter's tanh cell: D = H = 200, dropout 0.2, an
    /// adaptive softmax (cutoffs 2000,6000), B = 10, T = 35, lr 4, clip 0.25, newbob, a 570 s
    /// time budget
    Ptb,
    /// The next chapter's Rnnlm: one LSTM of 100, B = 20, T = 35, lr 20, clip 0.25, 4 epochs
    Ch06,
    /// Its BetterRnnlm: two LSTMs of 650, dropout 0.5, tied, lr 20 (÷4 when validation
    /// worsens), clip 0.25, 40 epochs
    Ch06Better,
    /// Full PTB in ten minutes with an LSTM: D = H = 200, dropout 0.25, an adaptive softmax
    /// (cutoffs 2000,6000), B = 20, T = 35, lr 20 (÷4 when validation worsens), clip 0.25, a
    /// 570 s time budget
    PtbLstm,
}

/// The output layer: `--output`, `--cutoffs`, `--div-value` (train and bench).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A softmax over every word (the affine layer)
    Full,
    /// An adaptive softmax: a head over the most frequent words and tail clusters (--cutoffs)
    Adaptive,
}

impl OutputKind {
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Full => "full",
            OutputKind::Adaptive => "adaptive",
        }
    }
}

/// `--cutoffs`: ascending word ranks, comma-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cutoffs(pub Vec<usize>);

impl std::fmt::Display for Cutoffs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: Vec<String> = self.0.iter().map(usize::to_string).collect();
        write!(f, "{}", values.join(","))
    }
}

/// The output layer's flags, of `train` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output layer: full (a softmax over every word) or adaptive (a head over the most
    /// frequent words and tail clusters; needs --cutoffs; not with --tie) [full, or the
    /// preset's, the configuration's or the --init checkpoint's]
    #[arg(long, value_enum)]
    pub output: Option<OutputKind>,
    /// With --output adaptive: where the head's shortlist and each tail cluster end, as word
    /// ranks by training-corpus frequency, ascending and below the vocabulary size (2000,6000
    /// for PTB)
    #[arg(long, value_parser = parse_cutoffs)]
    pub cutoffs: Option<Cutoffs>,
    /// With --output adaptive: tail cluster k projects H to H / DIV^(k+1) values [4]
    #[arg(long, value_name = "DIV", allow_negative_numbers = true, value_parser = positive_f32)]
    pub div_value: Option<f32>,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Default hyper-parameters; every flag below overrides its preset value [chapter]
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Token level of --text
    #[arg(long, value_parser = parse_level, requires = "text")]
    pub level: Option<rnnlm::files::corpus::Level>,
    /// Lower-case --text first
    #[arg(long, requires = "text")]
    pub lowercase: bool,
    /// Train on the first N tokens only; the vocabulary is then the ids they use
    /// [chapter preset on PTB: 1000]
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub corpus_size: Option<usize>,
    /// Train on the whole corpus even where the preset cuts it
    #[arg(long, conflicts_with = "corpus_size")]
    pub full_corpus: bool,
    /// Epochs [chapter: 100]
    #[arg(long, value_parser = positive_usize)]
    pub epochs: Option<usize>,
    /// Stop after N iterations in total
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub max_iters: Option<usize>,
    /// Batch rows B [chapter: 10, ptb: 20]
    #[arg(long, value_parser = positive_usize)]
    pub batch: Option<usize>,
    /// Time steps per window T [chapter: 5, ptb: 35]
    #[arg(long, value_parser = positive_usize)]
    pub time: Option<usize>,
    /// Recurrent cell of every layer: rnn (the chapter's tanh RNN), lstm or gru [rnn; with
    /// --init: the checkpoint's]
    #[arg(long, value_parser = parse_cell)]
    pub cell: Option<rnnlm::Cell>,
    /// Stacked recurrent layers [1; with --init: the checkpoint's]
    #[arg(long, value_parser = positive_usize)]
    pub layers: Option<usize>,
    /// Tie the affine layer's weights to the embedding (embed.W^T); needs --embed equal to
    /// --hidden [with --init: the checkpoint's]
    #[arg(long)]
    pub tie: bool,
    /// Dropout ratio P of training (0 <= P < 1), on the word vectors, between layers and
    /// before the affine layer [0; with --init: the checkpoint's]
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = dropout_ratio)]
    pub dropout: Option<f32>,
    /// Word-vector size D [100]
    #[arg(long, value_parser = positive_usize)]
    pub embed: Option<usize>,
    /// Hidden size H [100]
    #[arg(long, value_parser = positive_usize)]
    pub hidden: Option<usize>,
    #[command(flatten)]
    pub softmax: OutputArgs,
    /// SGD learning rate [chapter: 0.1]
    #[arg(long, allow_negative_numbers = true, value_parser = positive_f32)]
    pub lr: Option<f32>,
    /// Clip gradients to this global L2 norm
    #[arg(long, value_name = "MAX_NORM", allow_negative_numbers = true, value_parser = positive_f32)]
    pub clip: Option<f32>,
    /// Divide the learning rate by F whenever validation perplexity is worse than the best so
    /// far (the same as --lr-schedule plateau:F)
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = decay_factor, conflicts_with = "lr_schedule")]
    pub lr_decay: Option<f32>,
    /// How the rate changes after each epoch: constant, plateau:F (divide by F when validation
    /// worsens), newbob[:THRESHOLD] (once validation entropy improves by less than THRESHOLD,
    /// default 0.003, halve the rate every epoch; stop when it does so again), step:E:F (divide
    /// by F every epoch from epoch E on) [preset's]
    #[arg(long, value_name = "SCHEDULE", value_parser = parse_schedule)]
    pub lr_schedule: Option<rnnlm::train::Schedule>,
    /// When an epoch makes validation worse, go back to the best epoch's weights and state
    /// before going on; the checkpoint holds the best [on with newbob]
    #[arg(long, conflicts_with = "no_keep_best")]
    pub keep_best: bool,
    /// Keep going from the latest weights even when validation worsens
    #[arg(long)]
    pub no_keep_best: bool,
    /// Stop after the window that crosses this much wall time (training and evaluation, over
    /// all sessions of a resumed run), evaluate, and save
    #[arg(long, value_name = "SECONDS", value_parser = positive_f64)]
    pub time_budget: Option<f64>,
    /// Besides every epoch's end, save the checkpoint and its resumable state every N windows
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub checkpoint_every: Option<usize>,
    /// Stop after N windows in all, as an interrupt does: save a resumable state and exit
    /// with status 130
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub stop_after: Option<usize>,
    /// Continue the run whose checkpoint (or state file, CHECKPOINT.state) this is, exactly as
    /// it would have gone on; its settings come from the state file, and flags may only
    /// repeat them (but --epochs, --time-budget, --checkpoint-every, --stop-after, --threads
    /// and --data)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["init", "preset"])]
    pub resume: Option<PathBuf>,
    /// Seed of the initial weights and of the dropout masks [1]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads [default: one per core]
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// Start from this checkpoint instead of a random initialisation
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Train as one process of an MPI job: `mpirun -n N rnnlm train --distributed ...`. Each
    /// process takes its share of every window's rows and the gradients are summed over all
    /// of them before each update; rank 0 prints and writes. Every host must see the same
    /// corpus (and --init or --resume files) at the same paths. Needs an rnnlm built with the
    /// `mpi` feature
    #[arg(long)]
    pub distributed: bool,
    /// Where to write the weights (atomically, after every epoch and at the end), with the
    /// run's resumable state beside it as FILE.state and the chart as .png
    /// [rnnlm.safetensors]
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Write neither checkpoint nor chart
    #[arg(long)]
    pub no_save: bool,
    /// Write the chart here instead of beside the checkpoint
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write JSON lines (one per iteration, one per epoch) to FILE
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    Train,
    Valid,
    Test,
}

impl SplitArg {
    pub fn split(self) -> rnnlm::files::corpus::Split {
        match self {
            SplitArg::Train => rnnlm::files::corpus::Split::Train,
            SplitArg::Valid => rnnlm::files::corpus::Split::Valid,
            SplitArg::Test => rnnlm::files::corpus::Split::Test,
        }
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The checkpoint
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Which split of the corpus (ignored with --text, which is evaluated whole)
    #[arg(long, value_enum, default_value = "valid")]
    pub split: SplitArg,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Batch rows B of the evaluation windows
    #[arg(long, default_value_t = 20, value_parser = positive_usize)]
    pub batch: usize,
    /// Time steps T of the evaluation windows
    #[arg(long, default_value_t = 35, value_parser = positive_usize)]
    pub time: usize,
    /// Worker threads [default: one per core]
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The checkpoint
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Which split to take the block from (ignored with --text)
    #[arg(long, value_enum, default_value = "train")]
    pub split: SplitArg,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Position of the block's first token
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Rows B of the block
    #[arg(long, default_value_t = 10, value_parser = positive_usize)]
    pub batch: usize,
    /// Columns T of the block
    #[arg(long, default_value_t = 5, value_parser = positive_usize)]
    pub time: usize,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The checkpoint
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The text to start from: one or more words (word level) or characters (char level)
    #[arg(long)]
    pub start: String,
    /// Tokens to generate
    #[arg(long, default_value_t = 100)]
    pub len: usize,
    /// Softmax temperature; 0 always takes the most likely token
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = non_negative_f32)]
    pub temperature: f32,
    /// Seed of the sampler
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The checkpoint
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The text, one sentence per line [default: standard input; `-` is standard input too]
    pub file: Option<PathBuf>,
    /// Print every token's probability (with the end of each sentence) in the layout of Mikolov's
    /// `rnnlm -debug 2`: `index<TAB>probability<TAB>word`
    #[arg(long, conflicts_with = "nbest")]
    pub per_word: bool,
    /// Score the text as one stream, each line's state carried into the next (as `eval` does),
    /// instead of every line from a zero state
    #[arg(long, conflicts_with = "nbest")]
    pub carry_state: bool,
    /// Read an n-best list: lines `UTTID word word ...`, printed as `UTTID score`
    #[arg(long)]
    pub nbest: bool,
    /// With --nbest: the field after UTTID is an acoustic score, added to the scaled LM score
    #[arg(long, requires = "nbest")]
    pub acoustic: bool,
    /// With --nbest: the factor on the log10 LM probability in `acoustic + scale * log10 P`
    #[arg(long, default_value_t = 1.0, requires = "nbest", allow_negative_numbers = true, value_parser = finite_f64)]
    pub lm_scale: f64,
    /// Check that the checkpoint reads text at this level (word or char); it always reads at its own
    #[arg(long, value_parser = parse_level)]
    pub level: Option<rnnlm::files::corpus::Level>,
    /// Sentences scored side by side (one batch row each)
    #[arg(long, default_value_t = SCORE_BATCH, value_parser = positive_usize)]
    pub batch: usize,
    /// Time steps per window [default: 1; with --carry-state, 32]
    #[arg(long, value_parser = positive_usize)]
    pub time: Option<usize>,
    /// Worker threads [default: one per core]
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A configuration of the performance table: c1 (the chapter), c2, c3, c4, c5 (LSTM), c6
    /// (two LSTMs of 650, dropout 0.5, tied), c7 (an LSTM of 512 over 267,735 Zipf-distributed
    /// words, adaptive softmax)
    #[arg(long, value_parser = ["c1", "c2", "c3", "c4", "c5", "c6", "c7"], required_unless_present = "vocab")]
    pub config: Option<String>,
    /// Explicit sizes instead of --config: vocabulary V (random ids), with --embed, --hidden, --batch, --time
    #[arg(long, value_parser = positive_usize, conflicts_with = "config", requires_all = ["embed", "hidden", "batch", "time"])]
    pub vocab: Option<usize>,
    /// Word-vector size D (with --vocab)
    #[arg(long, value_parser = positive_usize)]
    pub embed: Option<usize>,
    /// Hidden size H (with --vocab)
    #[arg(long, value_parser = positive_usize)]
    pub hidden: Option<usize>,
    /// Batch rows B (with --vocab)
    #[arg(long, value_parser = positive_usize)]
    pub batch: Option<usize>,
    /// Time steps T (with --vocab)
    #[arg(long, value_parser = positive_usize)]
    pub time: Option<usize>,
    /// Recurrent cell (with --vocab): rnn, lstm or gru [rnn]
    #[arg(long, value_parser = parse_cell, requires = "vocab")]
    pub cell: Option<rnnlm::Cell>,
    /// Stacked recurrent layers (with --vocab) [1]
    #[arg(long, value_parser = positive_usize, requires = "vocab")]
    pub layers: Option<usize>,
    /// Tied weights (with --vocab; needs --embed equal to --hidden)
    #[arg(long, requires = "vocab")]
    pub tie: bool,
    /// Dropout ratio of training (with --vocab) [0]
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = dropout_ratio, requires = "vocab")]
    pub dropout: Option<f32>,
    #[command(flatten)]
    pub softmax: OutputArgs,
    /// Worker threads [default: one per core]
    #[arg(long, value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// Timed rounds; the median is reported
    #[arg(long, default_value_t = 5, value_parser = positive_usize)]
    pub repeats: usize,
    /// Training steps per round [default: as many as fit in --seconds]
    #[arg(long, value_parser = positive_usize, conflicts_with = "seconds")]
    pub iters: Option<usize>,
    /// Seconds of training steps in all rounds together (the ceiling takes about as long again)
    #[arg(long, default_value_t = 10.0, value_parser = positive_f64)]
    pub seconds: f64,
    /// Also follow every round with a round of the same steps taking turns between --threads
    /// and one thread, a tenth of the round at a time, and report the speed-up round by round
    /// (both then see about the same machine load)
    #[arg(long)]
    pub scaling: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// Measure data-parallel training in an MPI job (`mpirun -n N rnnlm bench --distributed
    /// ...`): each process trains its share of every window's rows, the gradient summed over
    /// them at every step; reports the job's speed and the time and bytes of the sums. Needs an
    /// rnnlm built with the `mpi` feature
    #[arg(long, conflicts_with = "scaling")]
    pub distributed: bool,
    #[command(flatten)]
    pub corpus: CorpusArgs,
}

/// Runs one parsed command line; its exit status on success (a training run stopped by a
/// signal ends with 130 or 143).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data = rnnlm::files::data::data_dir(cli.data.as_deref());
    let done = match cli.command {
        Command::Train(args) => return train_command::train(&data, *args),
        Command::Eval(args) => model_commands::eval(&data, args),
        Command::Predict(args) => model_commands::predict(&data, args),
        Command::Generate(args) => model_commands::generate(args),
        Command::Score(args) => score_command::score(args),
        Command::Bench(args) => model_commands::bench(&data, args),
        Command::Download(args) => corpus_commands::download(&data, args),
        Command::Prepare(args) => corpus_commands::prepare(&data, args),
        Command::Inspect(args) => corpus_commands::inspect(args),
    };
    done.map(|()| ExitCode::SUCCESS)
}
