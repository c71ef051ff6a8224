//! `rnnlm eval`, `predict`, `generate` and `bench`, and what `train` shares with them.

use super::{BenchArgs, CorpusArgs, EvalArgs, GenerateArgs, OutputKind, PredictArgs};
use anyhow::{anyhow, bail, Context};
use rnnlm::bench::{BenchResult, GenerationLatency};
use rnnlm::files::checkpoint::{self, Checkpoint};
use rnnlm::files::corpus::{Ids, Level, Prepared, Split, Tokenizer, Unknown};
use rnnlm::files::data;
use rnnlm::inference::generate;
use rnnlm::kernels::AdaptiveShape;
use rnnlm::{train, Arch, Cell, Dims, Phase, Rnnlm, Softmax, Window};
use std::path::Path;

/// Progress of downloading and preparing a corpus, on stderr (quiet in a distributed run's
/// ranks other than 0).
fn log_to_stderr(line: &str) {
    note!("{line}");
}

/// Opens the corpus a command reads: `--text` (prepared once into the cache), `--prepared`,
/// or PTB from the data directory (downloaded and prepared when needed).
pub(super) fn open_corpus(
    data_dir: &Path,
    args: &CorpusArgs,
    tokenizer: Tokenizer,
) -> anyhow::Result<(Prepared, String)> {
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
pub(super) fn with_threads<T: Send>(threads: Option<usize>, work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    match threads {
        Some(n) => Ok(rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(work)),
        None => Ok(work()),
    }
}

/// The output layer that `--output`, `--cutoffs` and `--div-value` ask for, for a model of
/// `dims` (tied or not): a one-line error naming the flag when they do not go together.
pub(super) fn output_layer(
    kind: OutputKind,
    cutoffs: Option<&[usize]>,
    div_value: Option<f32>,
    dims: Dims,
    tie: bool,
) -> anyhow::Result<Softmax> {
    let Some(cutoffs) = cutoffs.filter(|_| kind == OutputKind::Adaptive) else {
        match kind {
            OutputKind::Adaptive => bail!("--output adaptive needs --cutoffs (for PTB, say 2000,6000)"),
            OutputKind::Full if cutoffs.is_some() || div_value.is_some() => {
                bail!("--cutoffs and --div-value need --output adaptive")
            }
            OutputKind::Full => return Ok(Softmax::Full),
        }
    };
    if tie {
        bail!("--tie needs the full softmax: the adaptive softmax has no H x V matrix to share with the embedding");
    }
    let list = cutoffs.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let shape = AdaptiveShape::new(dims.vocab, dims.hidden, cutoffs, div_value.unwrap_or(4.0), true)
        .map_err(|e| anyhow!("--cutoffs {list}: {e}"))?;
    Ok(Softmax::Adaptive(shape))
}

/// Makes sure an output file can be written later, before hours of training: its directory
/// exists (or is created) and the name is not a directory.
pub(super) fn check_output(path: &Path, what: &str) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("{what} {} is a directory", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory of {what} {}", path.display()))?;
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
        let text = rnnlm::files::corpus::read_text(text_path)?;
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
    let mut model = ckpt.model(window)?;
    let ppl = with_threads(args.threads, || train::evaluate(&mut model, Ids::U32(&ids)))??.ok_or_else(|| {
        anyhow!("the corpus has {} tokens, fewer than one {} x {} window plus one", ids.len(), args.batch, args.time)
    })?;
    let what = if args.corpus.text.is_some() { "text".to_owned() } else { args.split.split().name().to_owned() };
    out!("{what} perplexity: {ppl:.2} ({} tokens, {} x {} windows)", ids.len(), args.batch, args.time);
    Ok(())
}

/// How a token looks in a side-by-side listing: invisible characters made visible.
pub(super) fn shown(token: &str) -> String {
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
    let mut model = ckpt.model(window)?;
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
    let mut model = ckpt.model(Window { batch: 1, time: 1 })?;
    let sampled = generate::generate(&mut model, &start, args.len, args.temperature, args.seed)?;
    out!("{}", tokenizer.detokenize(start.iter().chain(&sampled).copied(), vocab));
    Ok(())
}

/// Sentences for the scoring rounds: the first 60,000 tokens of `corpus` cut after each `end`
/// token, or into 22-token pieces when there is none (random ids).
fn scoring_sentences(corpus: &[u32], end: Option<u32>) -> (Vec<u32>, Vec<usize>) {
    let ids = &corpus[..corpus.len().min(60_000)];
    let lengths = match end {
        Some(end) => ids.split_inclusive(|&id| id == end).map(<[u32]>::len).collect(),
        None => ids.chunks(22).map(<[u32]>::len).collect(),
    };
    (ids.to_vec(), lengths)
}

pub fn bench(data_dir: &Path, args: BenchArgs) -> anyhow::Result<()> {
    let subject = match &args.config {
        Some(name) => configured_bench(data_dir, &args, name)?,
        None => custom_bench(&args)?,
    };
    if args.distributed {
        #[cfg(feature = "mpi")]
        return super::distributed::bench(&args, subject);
        #[cfg(not(feature = "mpi"))]
        return Err(super::without_mpi());
    }
    let (name, arch, window, corpus_ids, end) = subject;
    let mut model = bench_model(&args, arch, window, &corpus_ids)?;
    let (ids, lengths) = scoring_sentences(&corpus_ids, end);
    let scoring_window = Window { batch: super::SCORE_BATCH, time: super::SCORE_TIME };
    // Generation first: its model copy is gone before the scorer's is made, so that at most
    // two copies of the weights are alive at once.
    let generation = rnnlm::bench::generation_latency(&model, 0.5)?;
    let config = args.config.as_ref().and_then(|name| rnnlm::bench::CONFIGS.iter().find(|c| c.name == name));
    let mut scoring = match config {
        Some(config) if !config.scoring => None,
        _ => Some(rnnlm::bench::ScoringRounds::new(&model, scoring_window, end.unwrap_or(0), ids, lengths)?),
    };
    let one_thread = if args.scaling { Some(rayon::ThreadPoolBuilder::new().num_threads(1).build()?) } else { None };
    let result = with_threads(args.threads, || -> anyhow::Result<rnnlm::bench::BenchResult> {
        let iters = match args.iters {
            Some(iters) => iters,
            None => {
                // Time a few steps to size the rounds.
                let probe = rnnlm::bench::run(&mut model, Ids::U32(&corpus_ids), 1, 3, None, None)?;
                let per_round = args.seconds / args.repeats as f64;
                ((per_round * probe.tokens_per_sec.median / window.tokens() as f64) as usize).max(1)
            }
        };
        let scoring = scoring.as_mut();
        Ok(rnnlm::bench::run(&mut model, Ids::U32(&corpus_ids), args.repeats, iters, scoring, one_thread.as_ref())?)
    })??;
    if args.json {
        print_bench_json(&name, arch, window, &result, &generation);
    } else {
        print_bench_text(&name, arch, window, &result, &generation, scoring_window);
    }
    Ok(())
}

/// The model a bench run trains, with the window given: seed 1, the configuration's dropout
/// (or `--dropout`), an adaptive softmax's words ranked by their counts in the corpus.
pub(super) fn bench_model(args: &BenchArgs, arch: Arch, window: Window, corpus_ids: &[u32]) -> anyhow::Result<Rnnlm> {
    let mut model = Rnnlm::new(arch, window, 1)?;
    if arch.adaptive().is_some() {
        model.set_word_order(&rnnlm::files::corpus::frequency_order(Ids::U32(corpus_ids), arch.dims.vocab))?;
    }
    let dropout = match &args.config {
        Some(name) => rnnlm::bench::CONFIGS.iter().find(|c| c.name == name).map_or(0.0, |c| c.dropout),
        None => args.dropout.unwrap_or(0.0),
    };
    model.set_dropout(dropout, 1)?;
    Ok(model)
}

/// What a bench run trains: its name, the model's architecture and window, the corpus and its
/// end-of-line id (for the scoring rounds' sentences).
pub(super) type BenchSubject = (String, Arch, Window, Vec<u32>, Option<u32>);

/// A bench configuration's model and corpus: PTB (its first 1,000 words for c1, whose
/// vocabulary is then max id + 1 of those) or Zipf-distributed ids (c7); the output layer is
/// the configuration's unless `--output` says.
fn configured_bench(data_dir: &Path, args: &BenchArgs, name: &str) -> anyhow::Result<BenchSubject> {
    let config = rnnlm::bench::CONFIGS.iter().find(|c| c.name == name).expect("clap checks the name");
    let (ids, vocab, end) = match config.zipf_vocab {
        Some(vocab) => (rnnlm::bench::zipf_corpus(vocab, rnnlm::bench::ZIPF_TOKENS, 1), vocab, None),
        None => {
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
            let end = corpus.vocab.id(rnnlm::files::corpus::EOS).filter(|&id| (id as usize) < vocab);
            (ids.to_vec(), vocab, end)
        }
    };
    let dims = Dims { vocab, embed: config.embed, hidden: config.hidden };
    let kind =
        args.softmax.output.unwrap_or(if config.adaptive.is_some() { OutputKind::Adaptive } else { OutputKind::Full });
    let own = config.adaptive.filter(|_| kind == OutputKind::Adaptive);
    let cutoffs = args.softmax.cutoffs.as_ref().map(|c| &c.0[..]).or(own.map(|(cutoffs, _)| cutoffs));
    let div_value = args.softmax.div_value.or(own.map(|(_, div)| div));
    let output = output_layer(kind, cutoffs, div_value, dims, config.tied)?;
    let arch = Arch { dims, cell: config.cell, layers: config.layers, tied: config.tied, output };
    Ok((name.to_owned(), arch, config.window, ids, end))
}

/// The model of explicit sizes (`--vocab`, `--embed`, ...), on random ids.
fn custom_bench(args: &BenchArgs) -> anyhow::Result<BenchSubject> {
    let vocab = args.vocab.expect("clap requires --config or --vocab");
    let mut rng = rnnlm::rng::Rng::new(7);
    let ids = (0..1_000_000).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
    let window = Window { batch: args.batch.expect("required"), time: args.time.expect("required") };
    let dims = Dims { vocab, embed: args.embed.expect("required"), hidden: args.hidden.expect("required") };
    let (cell, layers) = (args.cell.unwrap_or(Cell::Rnn), args.layers.unwrap_or(1));
    let cutoffs = args.softmax.cutoffs.as_ref().map(|c| &c.0[..]);
    let output =
        output_layer(args.softmax.output.unwrap_or(OutputKind::Full), cutoffs, args.softmax.div_value, dims, args.tie)?;
    let arch = Arch { dims, cell, layers, tied: args.tie, output };
    Ok(("custom".to_owned(), arch, window, ids, None))
}

/// `bench --json`: one object.
fn print_bench_json(name: &str, arch: Arch, window: Window, result: &BenchResult, generation: &GenerationLatency) {
    let dims = arch.dims;
    let mut json = serde_json::json!({
            "config": name, "threads": result.threads,
            "simd": rnnlm::kernels::simd_level().name(),
            "tokens_per_sec": result.tokens_per_sec.median,
            "tokens_per_sec_min": result.tokens_per_sec.min,
            "tokens_per_sec_max": result.tokens_per_sec.max,
            "gflops": result.gflops, "ceiling_gflops": result.ceiling_gflops,
            "ceiling_tokens_per_sec": result.ceiling_tokens_per_sec(),
            "peak_gflops": result.peak_gflops, "peak_fraction": result.peak_fraction(),
            "ceiling_peak_fraction": result.ceiling_gflops / result.peak_gflops,
            "rnn_fraction": result.share_of(&[Phase::Embedding, Phase::RecurrentForward, Phase::RecurrentBackward]),
            "affine_fraction": result.share_of(&[Phase::OutputForward, Phase::OutputBackward]),
            "update_fraction": result.share_of(&[Phase::Update]),
            "phases": result.phases.iter().map(|p| serde_json::json!({
                "name": p.phase.name(), "share": p.share, "tasks": p.tasks, "gflops": p.gflops,
            })).collect::<Vec<_>>(),
            "vocab": dims.vocab, "embed": dims.embed, "hidden": dims.hidden,
            "cell": arch.cell.name(), "layers": arch.layers,
            "output": if arch.adaptive().is_some() { "adaptive" } else { "full" },
            "flops_per_token": result.flops_per_token,
            "batch": window.batch, "time": window.time,
            "repeats": result.repeats, "iters_per_repeat": result.iters_per_repeat,
    });
    if let Some(scoring) = result.scoring_tokens_per_sec {
        json["scoring_tokens_per_sec"] = scoring.median.into();
        json["scoring_tokens_per_sec_min"] = scoring.min.into();
        json["scoring_tokens_per_sec_max"] = scoring.max.into();
    }
    json["generate_us_per_token"] = generation.median_us.into();
    json["generate_us_per_token_p99"] = generation.p99_us.into();
    if let Some(scaling) = result.one_thread {
        json["one_thread_tokens_per_sec"] = scaling.tokens_per_sec.median.into();
        json["speedup"] = scaling.speedup.median.into();
        json["speedup_min"] = scaling.speedup.min.into();
        json["speedup_max"] = scaling.speedup.max.into();
    }
    out!("{json}");
}

/// `bench`'s report for people.
fn print_bench_text(
    name: &str,
    arch: Arch,
    window: Window,
    result: &BenchResult,
    generation: &GenerationLatency,
    scoring_window: Window,
) {
    let dims = arch.dims;
    out!(
        "{name}: {} x {}, V = {}, D = {}, H = {}, B = {}, T = {}, {} threads, {} rounds of {} steps, {} kernels",
        arch.layers,
        arch.cell.name(),
        dims.vocab,
        dims.embed,
        dims.hidden,
        window.batch,
        window.time,
        result.threads,
        result.repeats,
        result.iters_per_repeat,
        rnnlm::kernels::simd_level()
    );
    print_bench_speed(result);
    print_bench_other_speeds(result, generation, scoring_window);
}

/// `bench`'s lines on training: its speed, the ceiling, the peak and the step's time split.
fn print_bench_speed(result: &BenchResult) {
    let t = result.tokens_per_sec;
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
        "peak:      {:.1} GFLOP/s of multiply-adds in registers on {} threads; training reaches {:.0}% of it, the GEMMs alone {:.0}%",
        result.peak_gflops,
        result.threads,
        100.0 * result.peak_fraction(),
        100.0 * result.ceiling_gflops / result.peak_gflops
    );
    let phases: Vec<String> = result
        .phases
        .iter()
        .map(|p| {
            let plural = if p.tasks == 1 { "" } else { "s" };
            format!("{} {:.0}% ({} task{plural})", p.phase.name(), 100.0 * p.share, p.tasks)
        })
        .collect();
    out!("time split: {}", phases.join(", "));
}

/// `bench`'s lines on scoring, generating and (with `--scaling`) one thread against the pool.
fn print_bench_other_speeds(result: &BenchResult, generation: &GenerationLatency, scoring_window: Window) {
    let t = result.tokens_per_sec;
    if let Some(scoring) = result.scoring_tokens_per_sec {
        out!(
            "scoring:   {:.0} tokens/s (median; range {:.0} - {:.0}; sentences independent, {} x {} windows), {:.2}x training",
            scoring.median,
            scoring.min,
            scoring.max,
            scoring_window.batch,
            scoring_window.time,
            scoring.median / t.median
        );
    }
    out!(
        "generating: {:.1} us per token (median of {}; 99th percentile {:.1}), batch 1, temperature 1",
        generation.median_us,
        generation.tokens,
        generation.p99_us
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
