//! `rnnlm train`: a new run, a run from `--init`, or a resumed run (`--resume`).

#[cfg(feature = "mpi")]
use super::distributed::{starting_digest, Member};
use super::model_commands::{check_output, open_corpus, output_layer, with_threads};
use super::presets::{settings, Settings};
use super::run_config::{self, Fingerprint, RunConfig};
use super::run_files::{self, RunFiles};
use super::{TrainArgs, DEFAULT_CHECKPOINT};
use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rnnlm::files::checkpoint::{self, Checkpoint, Meta};
use rnnlm::files::corpus::{Ids, Level, Prepared, Tokenizer, Vocab};
use rnnlm::train::{RunState, Stop, TrainOptions, TrainSummary};
use rnnlm::{train, Arch, Cell, Dims, Rnnlm, Softmax, Window};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A run to continue: its state and settings, read from its state file.
struct Resume {
    state_file: PathBuf,
    state: RunState,
    config: RunConfig,
    log_lines: usize,
}

fn read_resume(path: &Path, given: &TrainArgs) -> anyhow::Result<Resume> {
    let state_file = run_config::state_path(path);
    let what = || format!("--resume {}: the run's state {}", path.display(), state_file.display());
    let bytes = std::fs::read(&state_file).with_context(what)?;
    let (state, extra) = RunState::read(&bytes).map_err(|e| anyhow!("{}: {e}", what()))?;
    let config = RunConfig::from_json(&extra["config"]).with_context(what)?;
    run_config::check_resume_flags(given, &config.args, &state_file)?;
    let log_lines = extra["log_lines"].as_u64().unwrap_or(0) as usize;
    Ok(Resume { state_file, state, config, log_lines })
}

/// SHA-256 of the training ids as little-endian u32.
fn fingerprint(ids: Ids<'_>) -> Fingerprint {
    let bytes: Vec<u8> = (0..ids.len()).flat_map(|i| ids.get(i).to_le_bytes()).collect();
    Fingerprint { tokens: ids.len(), sha256: rnnlm::files::data::sha256_hex(&bytes) }
}

/// While it lives, SIGINT and SIGTERM set its flags (`any`: either came; `term`: SIGTERM did),
/// and a second one ends the process at once, with status 130 or 143, without writing
/// anything. Dropped, it takes its handlers away again (a process that goes on after the run,
/// as the Python package's, gets its signals back as they were).
struct Signals {
    any: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn catch() -> anyhow::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let any = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        // The conditional exits are registered first, so that they see the flag as the signal
        // before found it.
        let ids = vec![
            flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&any))?,
            flag::register_conditional_shutdown(SIGTERM, 143, Arc::clone(&any))?,
            flag::register(SIGINT, Arc::clone(&any))?,
            flag::register(SIGTERM, Arc::clone(&any))?,
            flag::register(SIGTERM, Arc::clone(&term))?,
        ];
        Ok(Signals { any, term, ids })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for &id in &self.ids {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Whether `resume` is a run that has ended and `given` asks for nothing more; if so, says so.
fn ended_with_nothing_more(resume: Option<&Resume>, given: &TrainArgs) -> bool {
    let Some(r) = resume.filter(|r| r.state.now.progress.finished) else { return false };
    if given.epochs.is_some() || given.time_budget.is_some() {
        return false;
    }
    let p = &r.state.now.progress;
    out!(
        "the run in {} has ended ({} epochs, {} windows); give --epochs or --time-budget to train it further",
        r.state_file.display(),
        p.epochs.len(),
        p.iter
    );
    true
}

/// The training ids, cut to `corpus_size` tokens if given, and the vocabulary size: with a cut
/// corpus, max id + 1 of the kept tokens (the numerical contract), else `full_vocab`.
fn training_ids(all_train: Ids<'_>, corpus_size: Option<usize>, full_vocab: usize) -> (Ids<'_>, usize) {
    match corpus_size {
        Some(n) => {
            let ids = all_train.slice(0..n.min(all_train.len()));
            (ids, ids.max().map_or(0, |m| m as usize + 1))
        }
        None => (all_train, full_vocab),
    }
}

/// Where this process trains: alone, or as one rank of an MPI job (`--distributed`).
enum Place {
    Alone,
    #[cfg(feature = "mpi")]
    Member(Member),
}

impl Place {
    /// Whether this process prints and writes: alone, or rank 0.
    fn speaks(&self) -> bool {
        match self {
            Place::Alone => true,
            #[cfg(feature = "mpi")]
            Place::Member(member) => member.is_rank0(),
        }
    }

    /// The window of this process's model: the whole one, or its rows of it.
    fn window(&self, whole: Window) -> anyhow::Result<Window> {
        match self {
            Place::Alone => Ok(whole),
            #[cfg(feature = "mpi")]
            Place::Member(member) => member.window(whole),
        }
    }

    /// Agrees with the rest of the job, if any, that every process is ready and starts from
    /// the same point; `Err` with the exit status when not.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    fn agree(&mut self, corpus_sha256: &str, model: &Rnnlm, resume: Option<&Resume>) -> Result<(), ExitCode> {
        match self {
            Place::Alone => Ok(()),
            #[cfg(feature = "mpi")]
            Place::Member(member) => {
                let at = resume.map(|r| (r.state.now.progress.iter, r.state.now.progress.time_idx));
                member.agree(Ok(starting_digest(corpus_sha256, model.params(), at)))
            }
        }
    }

    fn train(
        &mut self,
        model: &mut Rnnlm,
        (train_ids, valid_ids): (Ids<'_>, Option<Ids<'_>>),
        options: &TrainOptions,
        files: &mut RunFiles,
        state: Option<RunState>,
        threads: Option<usize>,
    ) -> anyhow::Result<TrainSummary> {
        Ok(match self {
            Place::Alone => {
                with_threads(threads, || train::train(model, train_ids, valid_ids, options, files, state))??
            }
            // MPI is called from the thread that started it (the pool was set up before).
            #[cfg(feature = "mpi")]
            Place::Member(member) => {
                train::train_shared(model, &mut member.processes, train_ids, valid_ids, options, files, state)?
            }
        })
    }
}

pub fn train(data_dir: &Path, given: TrainArgs) -> anyhow::Result<ExitCode> {
    if !given.distributed {
        return train_at(data_dir, given, &mut Place::Alone);
    }
    train_distributed(data_dir, given)
}

#[cfg(feature = "mpi")]
fn train_distributed(data_dir: &Path, given: TrainArgs) -> anyhow::Result<ExitCode> {
    let member = Member::join(given.threads)?;
    let mut place = Place::Member(member);
    let outcome = train_at(data_dir, given, &mut place);
    match place {
        Place::Member(mut member) => member.finish(outcome),
        Place::Alone => outcome,
    }
}

#[cfg(not(feature = "mpi"))]
fn train_distributed(_: &Path, _: TrainArgs) -> anyhow::Result<ExitCode> {
    Err(super::without_mpi())
}

fn train_at(data_dir: &Path, given: TrainArgs, place: &mut Place) -> anyhow::Result<ExitCode> {
    let resume = given.resume.as_deref().map(|path| read_resume(path, &given)).transpose()?;
    if ended_with_nothing_more(resume.as_ref(), &given) {
        return Ok(ExitCode::SUCCESS);
    }
    let args = match &resume {
        Some(r) => run_config::resumed_args(r.config.args.clone(), &given),
        None => given,
    };
    let s = settings(&args);
    check_settings(&args, &s)?;
    let tokenizer = Tokenizer { level: args.level.unwrap_or(Level::Word), lowercase: args.lowercase };
    let (corpus, corpus_name) = open_corpus(data_dir, &args.corpus, tokenizer)?;
    let (train_ids, vocab_size) = training_ids(corpus.train.ids(), s.corpus_size, corpus.vocab.len());
    let vocab = corpus.vocab.truncated(vocab_size);
    let dims = Dims { vocab: vocab_size, embed: s.embed, hidden: s.hidden };
    let output = output_layer(s.output, s.cutoffs.as_deref(), s.div_value, dims, s.tie)?;
    let flag_arch = Arch { dims, cell: s.cell, layers: s.layers, tied: s.tie, output };
    if train::Batcher::new(train_ids.len(), s.window).is_none() {
        return Err(train::TrainError::CorpusTooShort { tokens: train_ids.len(), needed: s.window.tokens() + 1 }.into());
    }
    let fingerprint = fingerprint(train_ids);
    check_same_corpus(resume.as_ref(), &fingerprint, &corpus_name)?;

    let window = place.window(s.window)?;
    let (mut model, start_epoch, dropout) =
        starting_model(resume.as_ref(), &args, &s, (flag_arch, window), train_ids, &vocab, corpus.level)?;
    model.set_dropout(dropout, s.seed)?;
    let arch = model.arch();
    let speaks = place.speaks();
    let OutputPaths { save, checkpoint, chart, log } = output_paths(&args, speaks)?;
    let config = match &resume {
        Some(r) => RunConfig { args: args.clone(), start_epoch: r.config.start_epoch, fingerprint },
        None => RunConfig { args: run_config::resolved(&args, &s, arch, dropout), start_epoch, fingerprint },
    };
    let log_lines = match (&resume, &log) {
        (Some(r), Some(log)) => run_files::resumed_log(log, r.log_lines)?,
        _ => Vec::new(),
    };

    let valid_ids = validation_ids(&corpus, vocab_size);
    if let Err(status) = place.agree(&config.fingerprint.sha256, &model, resume.as_ref()) {
        return Ok(status);
    }
    announce(&corpus_name, train_ids.len(), vocab_size, arch, dropout, &s, resume.as_ref());
    let signals = Signals::catch()?;
    let meta = Meta {
        level: Some(corpus.level),
        lowercase: args.lowercase,
        epoch: 0,
        dropout,
        vocab: Some(vocab),
        word_order: model.word_order().map(<[u32]>::to_vec),
    };
    let done = resume.as_ref().map_or(0, |r| r.state.now.progress.iter);
    let mut files = RunFiles {
        progress: progress_bar(train_ids.len(), &s, done).filter(|_| speaks),
        checkpoint,
        chart: chart.clone(),
        log,
        log_lines,
        arch,
        meta,
        start_epoch,
        config: config.to_json(),
        stop: Arc::clone(&signals.any),
        save_error: None,
    };
    let state = resume.map(|r| r.state);
    let summary = place.train(&mut model, (train_ids, valid_ids), &s.options, &mut files, state, args.threads)?;
    if let Some(bar) = &files.progress {
        bar.finish_and_clear();
    }
    if let Some(e) = files.save_error.take() {
        return Err(e);
    }
    Ok(report_end(&summary, &args, &save, chart.as_deref(), &signals))
}

/// Refuses settings that do not go together; notes those that do little.
fn check_settings(args: &TrainArgs, s: &Settings) -> anyhow::Result<()> {
    if s.tie && s.embed != s.hidden {
        bail!("--tie needs --embed equal to --hidden (D = {}, H = {})", s.embed, s.hidden);
    }
    if s.options.schedule.needs_validation() && args.corpus.text.is_some() {
        note!("note: --text has no validation split, so the {} schedule keeps the rate", s.options.schedule);
    }
    Ok(())
}

/// Where a run writes.
struct OutputPaths {
    /// The `--save` path (or the default).
    save: PathBuf,
    /// The checkpoint and the chart written there, unless `--no-save`; the log.
    checkpoint: Option<PathBuf>,
    chart: Option<PathBuf>,
    log: Option<PathBuf>,
}

/// Where the run writes, each file checked to be writable before any training; nothing but
/// the `--save` path when this process does not speak for the run (`speaks` false).
fn output_paths(args: &TrainArgs, speaks: bool) -> anyhow::Result<OutputPaths> {
    let save = args.save.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CHECKPOINT));
    let writes = speaks && !args.no_save;
    let chart = args.plot.clone().filter(|_| speaks).or_else(|| writes.then(|| save.with_extension("png")));
    let checkpoint = writes.then(|| save.clone());
    let log = args.log.clone().filter(|_| speaks);
    for (path, what) in [(&checkpoint, "checkpoint"), (&chart, "chart"), (&log, "log")] {
        if let Some(path) = path {
            check_output(path, what)?;
        }
    }
    Ok(OutputPaths { save, checkpoint, chart, log })
}

/// The validation split, when it fits the vocabulary of the kept training tokens (a cut corpus
/// may not hold every word it uses: then it is skipped, and said so).
fn validation_ids(corpus: &Prepared, vocab_size: usize) -> Option<Ids<'_>> {
    corpus.valid.as_ref().map(|v| v.ids()).filter(|ids| {
        let fits = ids.max().is_some_and(|m| (m as usize) < vocab_size);
        if !fits {
            note!("validation skipped: the valid split uses ids outside the {vocab_size}-token vocabulary of the kept training tokens");
        }
        fits
    })
}

/// A resumed run must train on the tokens it trained on: the same count and SHA-256.
fn check_same_corpus(resume: Option<&Resume>, fingerprint: &Fingerprint, corpus_name: &str) -> anyhow::Result<()> {
    let Some(r) = resume else { return Ok(()) };
    let saved = &r.config.fingerprint;
    if saved != fingerprint {
        bail!(
            "--resume: the run in {} trained on {} tokens with SHA-256 {}, but {corpus_name} gives {} tokens with SHA-256 {}",
            r.state_file.display(),
            saved.tokens,
            saved.sha256,
            fingerprint.tokens,
            fingerprint.sha256
        );
    }
    Ok(())
}

/// The model a run starts from, the epochs it has behind it and its dropout ratio: the resumed
/// run's parameters, `--init`'s checkpoint, or new weights from the seed.
fn starting_model(
    resume: Option<&Resume>,
    args: &TrainArgs,
    s: &Settings,
    (flag_arch, window): (Arch, Window),
    train_ids: Ids<'_>,
    vocab: &Vocab,
    level: Level,
) -> anyhow::Result<(Rnnlm, usize, f32)> {
    // An adaptive softmax ranks the words by their count in the training tokens (a run from
    // --init keeps its checkpoint's ranking, which its weights were trained with).
    let frequency_order = || rnnlm::files::corpus::frequency_order(train_ids, flag_arch.dims.vocab);
    Ok(match (resume, &args.init) {
        (Some(r), _) => {
            let mut model = Rnnlm::from_params(flag_arch, window, &r.state.now.model.params)
                .map_err(|e| anyhow!("--resume {}: {e}", r.state_file.display()))?;
            if flag_arch.adaptive().is_some() {
                model.set_word_order(&frequency_order())?;
            }
            (model, r.config.start_epoch, s.dropout)
        }
        (None, Some(path)) => {
            let ckpt = checkpoint::load(path)?;
            let output = args.softmax.output.map(|_| flag_arch.output);
            check_init(&ckpt, flag_arch.dims, (args.cell, args.layers, args.tie, output), vocab, level, path)?;
            let dropout = args.dropout.unwrap_or(ckpt.meta.dropout);
            (ckpt.model(window)?, ckpt.meta.epoch, dropout)
        }
        (None, None) => {
            let mut model = Rnnlm::new(flag_arch, window, s.seed)?;
            if flag_arch.adaptive().is_some() {
                model.set_word_order(&frequency_order())?;
            }
            (model, 0, s.dropout)
        }
    })
}

/// Says how the run ended and where its files are; the exit status (130 or 143 after a signal).
fn report_end(
    summary: &TrainSummary,
    args: &TrainArgs,
    save: &Path,
    chart: Option<&Path>,
    signals: &Signals,
) -> ExitCode {
    let status = match summary.stop {
        Stop::Interrupted => {
            let signal = if signals.term.load(Ordering::Relaxed) { 143 } else { 130 };
            let after = format!("stopped after window {} (epoch {})", summary.iters, summary.epochs.len() + 1);
            if args.no_save {
                note!("{after}; nothing saved (--no-save)");
            } else {
                note!("{after}; resume with: rnnlm train --resume {}", save.display());
            }
            return ExitCode::from(signal);
        }
        Stop::ScheduleDone => "the schedule stopped improving",
        Stop::TimeBudget => "the time budget is spent",
        Stop::Completed => "",
    };
    if !status.is_empty() {
        note!("stopped: {status}");
    }
    if !args.no_save {
        out!("checkpoint: {}", save.display());
    }
    if let Some(chart) = chart.filter(|_| !summary.epochs.is_empty()) {
        out!("chart: {}", chart.display());
    }
    ExitCode::SUCCESS
}

fn announce(
    corpus_name: &str,
    tokens: usize,
    vocab_size: usize,
    arch: Arch,
    dropout: f32,
    s: &Settings,
    resume: Option<&Resume>,
) {
    let o = &s.options;
    if let Some(r) = resume {
        let p = &r.state.now.progress;
        note!(
            "resuming the run of {} after window {} (epoch {}, {} windows into it), learning rate {}",
            r.state_file.display(),
            p.iter,
            p.epoch + 1,
            p.epoch_iters,
            p.lr
        );
    }
    note!(
        "training on {corpus_name}: {tokens} tokens, vocabulary {vocab_size}, {} x {}{}{}, D = {}, H = {}, B = {}, T = {}, lr {}{}, schedule {}{}{}",
        arch.layers,
        arch.cell.name(),
        if dropout > 0.0 { format!(", dropout {dropout}") } else { String::new() },
        match arch.adaptive() {
            Some(shape) => format!(", adaptive softmax (cutoffs {:?}, div value {})", shape.cutoffs(), shape.div_value()),
            None if arch.tied => ", tied".to_owned(),
            None => String::new(),
        },
        s.embed,
        s.hidden,
        s.window.batch,
        s.window.time,
        o.lr,
        o.clip.map_or(String::new(), |c| format!(", clip {c}")),
        o.schedule,
        if o.keep_best { ", keep best" } else { "" },
        o.time_budget.map_or(String::new(), |b| format!(", time budget {b} s")),
    );
}

fn progress_bar(tokens: usize, s: &Settings, done: usize) -> Option<ProgressBar> {
    let total = (tokens.saturating_sub(1) / s.window.tokens()) * s.options.epochs;
    let total = s.options.max_iters.map_or(total, |m| m.min(total));
    (std::io::stderr().is_terminal() && total >= 200).then(|| {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} iterations, {per_sec}, eta {eta}  {msg}")
                .expect("a valid template"),
        );
        bar.set_position(done as u64);
        bar
    })
}

/// Checks that a checkpoint given to `--init` fits the corpus and the flags; `--cell` and
/// `--layers`, when given, must be the checkpoint's.
fn check_init(
    ckpt: &Checkpoint,
    dims: Dims,
    (cell, layers, tie, output): (Option<Cell>, Option<usize>, bool, Option<Softmax>),
    vocab: &Vocab,
    level: Level,
    path: &Path,
) -> anyhow::Result<()> {
    let have = ckpt.arch.dims;
    if have != dims {
        bail!(
            "checkpoint {} has vocabulary {}, embed {}, hidden {}, but the corpus and flags give vocabulary {}, embed {}, hidden {}",
            path.display(),
            have.vocab,
            have.embed,
            have.hidden,
            dims.vocab,
            dims.embed,
            dims.hidden
        );
    }
    if let Some(cell) = cell.filter(|&c| c != ckpt.arch.cell) {
        bail!("checkpoint {} has {} layers, but --cell says {}", path.display(), ckpt.arch.cell.name(), cell.name());
    }
    if let Some(layers) = layers.filter(|&l| l != ckpt.arch.layers) {
        bail!("checkpoint {} has {} layers, but --layers says {layers}", path.display(), ckpt.arch.layers);
    }
    if tie && !ckpt.arch.tied {
        bail!("checkpoint {} has an affine.W of its own, but --tie asks for tied weights", path.display());
    }
    if let Some(output) = output.filter(|&o| o != ckpt.arch.output) {
        let describe = |o: Softmax| match o.adaptive_shape() {
            None => "a full softmax".to_owned(),
            Some(shape) => {
                format!("an adaptive softmax with cutoffs {:?} and div value {}", shape.cutoffs(), shape.div_value())
            }
        };
        bail!(
            "checkpoint {} has {}, but the flags ask for {}",
            path.display(),
            describe(ckpt.arch.output),
            describe(output)
        );
    }
    if let Some(ckpt_level) = ckpt.meta.level {
        if ckpt_level != level {
            bail!("checkpoint {} is {ckpt_level}-level, the corpus is {level}-level", path.display());
        }
    }
    if let Some(ckpt_vocab) = &ckpt.meta.vocab {
        checkpoint::check_vocab_compatible(ckpt_vocab, vocab, "the corpus")
            .map_err(|e| anyhow!("checkpoint {}: {e}", path.display()))?;
    }
    Ok(())
}
