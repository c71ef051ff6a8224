//! `rnnlm train`, `eval`, `predict` and `generate`.

use super::presets::settings;
use super::{BenchArgs, CorpusArgs, EvalArgs, GenerateArgs, PredictArgs, TrainArgs};
use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rnnlm::checkpoint::{self, Checkpoint, Meta};
use rnnlm::corpus::{Ids, Level, Prepared, Split, Tokenizer, Unknown, Vocab};
use rnnlm::train::{EpochReport, IterReport, Observer};
use rnnlm::{data, generate, plot, train, Arch, Cell, Dims, Rnnlm, Window};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

fn log_to_stderr(line: &str) {
    eprintln!("{line}");
}

/// Opens the corpus a command reads: `--text` (prepared once into the cache), `--prepared`,
/// or PTB from the data directory (downloaded and prepared when needed).
fn open_corpus(data_dir: &Path, args: &CorpusArgs, tokenizer: Tokenizer) -> anyhow::Result<(Prepared, String)> {
    if let Some(text) = &args.text {
        let dir = data::prepared_text(text, tokenizer, log_to_stderr)?;
        return Ok((Prepared::open(&dir)?, text.display().to_string()));
    }
    if let Some(dir) = &args.prepared {
        return Ok((Prepared::open(dir)?, dir.display().to_string()));
    }
    let base_url = data::ptb_base_url(args.base_url.as_deref());
    let dir = data::prepared_ptb(data_dir, &base_url, log_to_stderr)?;
    Ok((Prepared::open(&dir)?, "the Penn Treebank".to_owned()))
}

/// Runs `work` on a pool of `threads` threads, or on rayon's global pool.
fn with_threads<T: Send>(threads: Option<usize>, work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    match threads {
        Some(n) => Ok(rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(work)),
        None => Ok(work()),
    }
}

/// Prints epochs to stdout, drives the progress bar, and writes the JSON-lines log.
struct Reporter {
    progress: Option<ProgressBar>,
    log: Option<BufWriter<std::fs::File>>,
    log_error: Option<std::io::Error>,
}

impl Reporter {
    fn write_log(&mut self, line: serde_json::Value) {
        if let Some(log) = &mut self.log {
            if let Err(e) = writeln!(log, "{line}") {
                self.log_error.get_or_insert(e);
            }
        }
    }
}

impl Observer for Reporter {
    fn on_iter(&mut self, r: &IterReport) {
        if let Some(bar) = &self.progress {
            bar.inc(1);
            if r.iter.is_multiple_of(20) {
                bar.set_message(format!("epoch {} loss {:.3}", r.epoch, r.loss));
            }
        }
        self.write_log(
            serde_json::json!({"iter": r.iter, "epoch": r.epoch, "loss": shortest(r.loss), "lr": shortest(r.lr)}),
        );
    }

    fn on_epoch(&mut self, r: &EpochReport) {
        let valid = r.valid_ppl.map_or_else(|| "-".to_owned(), |p| format!("{p:.2}"));
        let line = format!(
            "epoch {:>4} | train ppl {:>9.2} | valid ppl {:>9} | {:>9.0} tok/s | {:>8.1} s",
            r.epoch, r.train_ppl, valid, r.tokens_per_sec, r.elapsed_sec
        );
        match &self.progress {
            Some(bar) => bar.println(line),
            None => out!("{line}"),
        }
        self.write_log(serde_json::json!({
            "epoch": r.epoch, "train_ppl": r.train_ppl, "valid_ppl": r.valid_ppl,
            "tokens_per_sec": r.tokens_per_sec, "elapsed_sec": r.elapsed_sec,
        }));
    }
}

/// An f32 as the f64 with the same shortest decimal form (0.1, not 0.10000000149011612).
fn shortest(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(value as f64)
}

/// A file written beside its final name and renamed into place on success, so a failed run
/// leaves an existing file untouched (the partial one stays as `<name>.partial`).
struct PendingFile {
    partial: PathBuf,
    target: PathBuf,
}

impl PendingFile {
    fn create(target: &Path) -> anyhow::Result<(PendingFile, std::fs::File)> {
        let mut name = target.file_name().ok_or_else(|| anyhow!("{} is not a file name", target.display()))?.to_owned();
        name.push(".partial");
        let partial = target.with_file_name(name);
        let file = std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
        Ok((PendingFile { partial, target: target.to_owned() }, file))
    }

    fn commit(self) -> anyhow::Result<()> {
        std::fs::rename(&self.partial, &self.target).with_context(|| format!("cannot write {}", self.target.display()))
    }
}

/// Makes sure an output file can be written later, before hours of training: its directory
/// exists (or is created) and the name is not a directory.
fn check_output(path: &Path, what: &str) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("{what} {} is a directory", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory of {what} {}", path.display()))?;
    }
    Ok(())
}

pub fn train(data_dir: &Path, args: TrainArgs) -> anyhow::Result<()> {
    let s = settings(&args);
    if s.tie && s.embed != s.hidden {
        bail!("--tie needs --embed equal to --hidden (D = {}, H = {})", s.embed, s.hidden);
    }
    let tokenizer = Tokenizer { level: args.level.unwrap_or(Level::Word), lowercase: args.lowercase };
    let (corpus, corpus_name) = open_corpus(data_dir, &args.corpus, tokenizer)?;
    let all_train = corpus.train.ids();
    let train_ids = match s.corpus_size {
        Some(n) => all_train.slice(0..n.min(all_train.len())),
        None => all_train,
    };
    let vocab_size = match s.corpus_size {
        // The spec: with a cut corpus the vocabulary is max id + 1 of the kept tokens.
        Some(_) => train_ids.max().map_or(0, |m| m as usize + 1),
        None => corpus.vocab.len(),
    };
    let vocab = corpus.vocab.truncated(vocab_size);
    let dims = Dims { vocab: vocab_size, embed: s.embed, hidden: s.hidden };
    let flag_arch = Arch { dims, cell: s.cell, layers: s.layers, tied: s.tie };
    if train::Batcher::new(train_ids.len(), s.window).is_none() {
        return Err(train::TrainError::CorpusTooShort { tokens: train_ids.len(), needed: s.window.tokens() + 1 }.into());
    }

    let (mut model, start_epoch, dropout) = match &args.init {
        Some(path) => {
            let ckpt = checkpoint::load(path)?;
            check_init(&ckpt, dims, (args.cell, args.layers, args.tie), &vocab, corpus.level, path)?;
            let dropout = args.dropout.unwrap_or(ckpt.meta.dropout);
            (Rnnlm::from_params(ckpt.arch, s.window, &ckpt.params)?, ckpt.meta.epoch, dropout)
        }
        None => (Rnnlm::new(flag_arch, s.window, args.seed)?, 0, s.dropout),
    };
    model.set_dropout(dropout, args.seed)?;
    let arch = model.arch();
    let chart = args.plot.clone().or_else(|| (!args.no_save).then(|| args.save.with_extension("png")));
    if !args.no_save {
        check_output(&args.save, "checkpoint")?;
    }
    if let Some(chart) = &chart {
        check_output(chart, "chart")?;
    }
    let (pending_log, log) = match &args.log {
        Some(path) => {
            check_output(path, "log")?;
            let (pending, file) = PendingFile::create(path)?;
            (Some(pending), Some(BufWriter::new(file)))
        }
        None => (None, None),
    };

    let valid_ids = corpus.valid.as_ref().map(|v| v.ids()).filter(|ids| {
        let fits = ids.max().is_some_and(|m| (m as usize) < vocab_size);
        if !fits {
            eprintln!("validation skipped: the valid split uses ids outside the {vocab_size}-token vocabulary of the kept training tokens");
        }
        fits
    });
    eprintln!(
        "training on {corpus_name}: {} tokens, vocabulary {}, {} x {}{}, D = {}, H = {}, B = {}, T = {}, lr {}{}{}",
        train_ids.len(),
        vocab_size,
        arch.layers,
        arch.cell.name(),
        if dropout > 0.0 { format!(", dropout {dropout}") } else { String::new() },
        s.embed,
        s.hidden,
        s.window.batch,
        s.window.time,
        s.options.lr,
        s.options.clip.map_or(String::new(), |c| format!(", clip {c}")),
        s.options.lr_decay.map_or(String::new(), |d| format!(", lr decay {d}")),
    );
    let total_iters = (train_ids.len().saturating_sub(1) / s.window.tokens()) * s.options.epochs;
    let total_iters = s.options.max_iters.map_or(total_iters, |m| m.min(total_iters));
    let progress = (std::io::stderr().is_terminal() && total_iters >= 200).then(|| {
        let bar = ProgressBar::with_draw_target(Some(total_iters as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} iterations, {per_sec}, eta {eta}  {msg}")
                .expect("a valid template"),
        );
        bar
    });
    let mut reporter = Reporter { progress, log, log_error: None };
    let summary =
        with_threads(args.threads, || train::train(&mut model, train_ids, valid_ids, &s.options, &mut reporter))??;
    if let Some(bar) = &reporter.progress {
        bar.finish_and_clear();
    }
    if let Some(log) = reporter.log.take() {
        log.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).context("cannot write the log")?;
    }
    if let Some(e) = reporter.log_error {
        return Err(e).context("cannot write the log");
    }
    if let Some(pending) = pending_log {
        pending.commit()?;
    }

    // The workspace (the logits above all) is freed before the checkpoint and the chart are
    // encoded, so that saving does not raise the run's peak memory.
    let params = model.into_params();
    if !args.no_save {
        let meta = Meta {
            level: Some(corpus.level),
            lowercase: args.lowercase,
            epoch: start_epoch + summary.epochs.len(),
            dropout,
            vocab: Some(vocab),
        };
        checkpoint::save(&args.save, arch, &params, &meta)?;
        out!("checkpoint: {}", args.save.display());
    }
    if let Some(chart) = chart {
        let train_ppl: Vec<f64> = summary.epochs.iter().map(|e| e.train_ppl).collect();
        let valid_ppl: Vec<Option<f64>> = summary.epochs.iter().map(|e| e.valid_ppl).collect();
        plot::perplexity_chart(&chart, &train_ppl, &valid_ppl)
            .map_err(|e| anyhow!("chart {}: {e}", chart.display()))?;
        out!("chart: {}", chart.display());
    }
    Ok(())
}

/// Checks that a checkpoint given to `--init` fits the corpus and the flags; `--cell` and
/// `--layers`, when given, must be the checkpoint's.
fn check_init(
    ckpt: &Checkpoint,
    dims: Dims,
    (cell, layers, tie): (Option<Cell>, Option<usize>, bool),
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

/// The ids a command evaluates or predicts on: the whole `--text` (tokenized with the
/// checkpoint's vocabulary) or one split of a prepared corpus, checked against the checkpoint.
/// `--text` is read up to its first `limit` tokens only, when given.
fn checkpoint_corpus(
    data_dir: &Path,
    ckpt: &Checkpoint,
    corpus: &CorpusArgs,
    split: Split,
    limit: Option<usize>,
) -> anyhow::Result<Vec<u32>> {
    let level = ckpt.meta.level.unwrap_or(Level::Word);
    let tokenizer = Tokenizer { level, lowercase: ckpt.meta.lowercase };
    let ids = if let Some(text_path) = &corpus.text {
        let vocab =
            ckpt.meta.vocab.as_ref().ok_or_else(|| anyhow!("the checkpoint has no vocabulary to read --text with"))?;
        let text = rnnlm::corpus::read_text(text_path)?;
        tokenizer
            .tokenize_fixed(&text, vocab, Unknown::Reject, limit)
            .with_context(|| format!("{}", text_path.display()))?
    } else {
        let (prepared, name) = open_corpus(data_dir, corpus, tokenizer)?;
        match &ckpt.meta.vocab {
            Some(vocab) => checkpoint::check_vocab_compatible(vocab, &prepared.vocab, &name).map_err(|e| anyhow!(e))?,
            None => eprintln!("the checkpoint has no vocabulary; assuming it was trained on the ids of {name}"),
        }
        let file = prepared.split(split).ok_or_else(|| anyhow!("{name} has no {} split", split.name()))?;
        file.ids().to_vec()
    };
    Ok(ids)
}

/// Fails unless every id of `ids` (which start at corpus position `start`) is below
/// `vocab_size`.
fn check_ids_fit(ids: &[u32], start: usize, vocab_size: usize) -> anyhow::Result<()> {
    if let Some(position) = ids.iter().position(|&id| id as usize >= vocab_size) {
        bail!(
            "token {} of the corpus is outside the checkpoint's {vocab_size}-token vocabulary \
             (the model was trained on the first tokens of its corpus only)",
            start + position
        );
    }
    Ok(())
}

pub fn eval(data_dir: &Path, args: EvalArgs) -> anyhow::Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let ids = checkpoint_corpus(data_dir, &ckpt, &args.corpus, args.split.split(), None)?;
    check_ids_fit(&ids, 0, ckpt.arch.dims.vocab)?;
    let window = Window { batch: args.batch, time: args.time };
    let mut model = Rnnlm::from_params(ckpt.arch, window, &ckpt.params)?;
    let ppl = with_threads(args.threads, || train::evaluate(&mut model, Ids::U32(&ids)))??.ok_or_else(|| {
        anyhow!("the corpus has {} tokens, fewer than one {} x {} window plus one", ids.len(), args.batch, args.time)
    })?;
    let what = if args.corpus.text.is_some() { "text".to_owned() } else { args.split.split().name().to_owned() };
    out!("{what} perplexity: {ppl:.2} ({} tokens, {} x {} windows)", ids.len(), args.batch, args.time);
    Ok(())
}

/// How a token looks in a side-by-side listing: invisible characters made visible.
fn shown(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            '\n' => '↵',
            ' ' => '␣',
            '\t' => '⇥',
            c => c,
        })
        .collect()
}

pub fn predict(data_dir: &Path, args: PredictArgs) -> anyhow::Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let vocab =
        ckpt.meta.vocab.clone().ok_or_else(|| anyhow!("the checkpoint has no vocabulary to show tokens with"))?;
    let window = Window { batch: args.batch, time: args.time };
    let needed = window.tokens() + 1;
    let limit = args.offset.saturating_add(needed);
    let ids = checkpoint_corpus(data_dir, &ckpt, &args.corpus, args.split.split(), Some(limit))?;
    let block = ids.get(args.offset..args.offset.saturating_add(needed)).ok_or_else(|| {
        anyhow!(
            "a {} x {} block at offset {} needs {needed} tokens; the corpus has {}",
            args.batch,
            args.time,
            args.offset,
            ids.len()
        )
    })?;
    check_ids_fit(block, args.offset, ckpt.arch.dims.vocab)?;
    let xs = &block[..window.tokens()];
    let ts: Vec<i32> = block[1..].iter().map(|&id| id as i32).collect();
    let mut model = Rnnlm::from_params(ckpt.arch, window, &ckpt.params)?;
    let mut guesses = vec![0u32; window.tokens()];
    model.predict(xs, &mut guesses)?;

    let token = |id: u32| shown(vocab.token(id).unwrap_or("?"));
    let mut correct = 0;
    for b in 0..args.batch {
        let row = b * args.time..(b + 1) * args.time;
        let columns: Vec<[String; 3]> =
            row.clone().map(|i| [token(xs[i]), token(ts[i] as u32), token(guesses[i])]).collect();
        let widths: Vec<usize> =
            columns.iter().map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(1)).collect();
        out!("row {}", b + 1);
        for (label, k) in [("input ", 0), ("target", 1), ("guess ", 2)] {
            let cells: Vec<String> = columns.iter().zip(&widths).map(|(c, &w)| format!("{:<w$}", c[k])).collect();
            out!("  {label} {}", cells.join(" "));
        }
        correct += row.filter(|&i| guesses[i] as i32 == ts[i]).count();
    }
    out!("accuracy: {correct}/{} = {:.1}%", window.tokens(), 100.0 * correct as f64 / window.tokens() as f64);
    Ok(())
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let vocab = ckpt.meta.vocab.as_ref().ok_or_else(|| anyhow!("the checkpoint has no vocabulary to generate with"))?;
    let tokenizer = Tokenizer { level: ckpt.meta.level.unwrap_or(Level::Word), lowercase: ckpt.meta.lowercase };
    let start = tokenizer.tokenize_fixed(&args.start, vocab, Unknown::Reject, None).context("--start")?;
    if start.is_empty() {
        bail!("--start holds no tokens");
    }
    let mut model = Rnnlm::from_params(ckpt.arch, Window { batch: 1, time: 1 }, &ckpt.params)?;
    let sampled = generate::generate(&mut model, &start, args.len, args.temperature, args.seed)?;
    out!("{}", tokenizer.detokenize(start.iter().chain(&sampled).copied(), vocab));
    Ok(())
}

pub fn bench(data_dir: &Path, args: BenchArgs) -> anyhow::Result<()> {
    // Sizes and corpus: a configuration trains on PTB (its first 1,000 words for c1, whose
    // vocabulary is then max id + 1 as in the spec); explicit sizes on random ids.
    let (name, arch, window, corpus_ids) = match &args.config {
        Some(name) => {
            let config = rnnlm::bench::CONFIGS.iter().find(|c| c.name == name).expect("clap checks the name");
            let tokenizer = Tokenizer { level: Level::Word, lowercase: false };
            let (corpus, _) = open_corpus(data_dir, &args.corpus, tokenizer)?;
            let ids = corpus.train.ids();
            let (ids, vocab) = match config.corpus_tokens {
                Some(n) => {
                    let kept = ids.slice(0..n.min(ids.len()));
                    (kept, kept.max().map_or(1, |m| m as usize + 1))
                }
                None => (ids, corpus.vocab.len()),
            };
            let dims = Dims { vocab, embed: config.embed, hidden: config.hidden };
            let arch = Arch { dims, cell: config.cell, layers: config.layers, tied: config.tied };
            (name.clone(), arch, config.window, ids.to_vec())
        }
        None => {
            let vocab = args.vocab.expect("clap requires --config or --vocab");
            let mut rng = rnnlm::rng::Rng::new(7);
            let ids = (0..1_000_000).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
            let window = Window { batch: args.batch.expect("required"), time: args.time.expect("required") };
            let dims = Dims { vocab, embed: args.embed.expect("required"), hidden: args.hidden.expect("required") };
            let (cell, layers) = (args.cell.unwrap_or(Cell::Tanh), args.layers.unwrap_or(1));
            let arch = Arch { dims, cell, layers, tied: args.tie };
            ("custom".to_owned(), arch, window, ids)
        }
    };
    let mut model = Rnnlm::new(arch, window, 1)?;
    let dropout = match &args.config {
        Some(name) => rnnlm::bench::CONFIGS.iter().find(|c| c.name == name).map_or(0.0, |c| c.dropout),
        None => args.dropout.unwrap_or(0.0),
    };
    model.set_dropout(dropout, 1)?;
    let dims = arch.dims;
    let one_thread = if args.scaling { Some(rayon::ThreadPoolBuilder::new().num_threads(1).build()?) } else { None };
    let result = with_threads(args.threads, || -> anyhow::Result<rnnlm::bench::BenchResult> {
        let iters = match args.iters {
            Some(iters) => iters,
            None => {
                // Time a few steps to size the rounds.
                let probe = rnnlm::bench::run(&mut model, Ids::U32(&corpus_ids), 1, 3, None)?;
                let per_round = args.seconds / args.repeats as f64;
                ((per_round * probe.tokens_per_sec.median / window.tokens() as f64) as usize).max(1)
            }
        };
        Ok(rnnlm::bench::run(&mut model, Ids::U32(&corpus_ids), args.repeats, iters, one_thread.as_ref())?)
    })??;
    if args.json {
        let mut json = serde_json::json!({
                "config": name, "threads": result.threads,
                "tokens_per_sec": result.tokens_per_sec.median,
                "tokens_per_sec_min": result.tokens_per_sec.min,
                "tokens_per_sec_max": result.tokens_per_sec.max,
                "gflops": result.gflops, "ceiling_gflops": result.ceiling_gflops,
                "ceiling_tokens_per_sec": result.ceiling_tokens_per_sec(),
                "rnn_fraction": result.rnn_fraction, "affine_fraction": result.affine_fraction,
                "update_fraction": result.update_fraction,
                "vocab": dims.vocab, "embed": dims.embed, "hidden": dims.hidden,
                "cell": arch.cell.name(), "layers": arch.layers,
                "batch": window.batch, "time": window.time,
                "repeats": result.repeats, "iters_per_repeat": result.iters_per_repeat,
        });
        if let Some(scaling) = result.one_thread {
            json["one_thread_tokens_per_sec"] = scaling.tokens_per_sec.median.into();
            json["speedup"] = scaling.speedup.median.into();
            json["speedup_min"] = scaling.speedup.min.into();
            json["speedup_max"] = scaling.speedup.max.into();
        }
        out!("{json}");
    } else {
        let t = result.tokens_per_sec;
        out!(
            "{name}: {} x {}, V = {}, D = {}, H = {}, B = {}, T = {}, {} threads, {} rounds of {} steps",
            arch.layers,
            arch.cell.name(),
            dims.vocab,
            dims.embed,
            dims.hidden,
            window.batch,
            window.time,
            result.threads,
            result.repeats,
            result.iters_per_repeat
        );
        out!(
            "training:  {:.0} tokens/s (median; range {:.0} - {:.0}), {:.1} GFLOP/s",
            t.median,
            t.min,
            t.max,
            result.gflops
        );
        out!(
            "ceiling:   {:.1} GFLOP/s for the step's GEMMs alone = {:.0} tokens/s; training reaches {:.0}% of it",
            result.ceiling_gflops,
            result.ceiling_tokens_per_sec(),
            100.0 * result.gflops / result.ceiling_gflops
        );
        out!(
            "time split: RNN {:.0}%, affine + softmax {:.0}%, update {:.0}%",
            100.0 * result.rnn_fraction,
            100.0 * result.affine_fraction,
            100.0 * result.update_fraction
        );
        if let Some(scaling) = result.one_thread {
            let (one, speedup) = (scaling.tokens_per_sec, scaling.speedup);
            out!(
                "1 thread:  {:.0} tokens/s (median; range {:.0} - {:.0}); {} threads are {:.2}x faster (median over rounds of alternating turns; range {:.2} - {:.2})",
                one.median,
                one.min,
                one.max,
                result.threads,
                speedup.median,
                speedup.min,
                speedup.max
            );
        }
    }
    Ok(())
}
