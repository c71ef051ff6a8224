//! `rnnlm score`: the log10 probability of every line of a text (or of every hypothesis of an
//! n-best list), optionally of every word, as the classic toolkits print them.
//!
//! The input is read in blocks of lines; each block is tokenized with the checkpoint's
//! vocabulary, scored by the library's [`SentenceScorer`] (independent sentences, batched by
//! length) or [`StreamScorer`] (`--carry-state`), and printed in input order.

use super::{ScoreArgs, SCORE_TIME, STREAM_TIME};
use anyhow::{anyhow, bail, Context};
use rnnlm::files::checkpoint::{self, Meta};
use rnnlm::files::corpus::{Level, Tokenizer, Vocab, UNK};
use rnnlm::inference::score::{log10_prob, SentenceReader, SentenceScorer, StreamScorer};
use rnnlm::Window;
use std::io::{BufRead, BufWriter, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Lines scored together: enough to fill many batches, few enough to print results as a long
/// input streams in.
const BLOCK_LINES: usize = 16_384;

/// How the model of checkpoint `path` (`classes` classes) reads text: at its own level, which
/// `asked` (`--level`) must match if given, ending sentences with its end-of-line token, which
/// the vocabulary must hold.
fn reader<'a>(
    path: &str,
    meta: &Meta,
    vocab: &'a Vocab,
    classes: usize,
    asked: Option<Level>,
) -> anyhow::Result<SentenceReader<'a>> {
    let level = meta.level.unwrap_or(Level::Word);
    if let Some(asked) = asked.filter(|&asked| asked != level) {
        bail!("{path} is a {level}-level model; --level {asked} does not match (leave --level out to read the text at the model's level)");
    }
    let tokenizer = Tokenizer { level, lowercase: meta.lowercase };
    SentenceReader::new(tokenizer, vocab, classes).ok_or_else(|| {
        let end_token = SentenceReader::end_token(level);
        anyhow!(
            "{path}'s vocabulary has no end-of-line token {end_token:?}, which scoring starts and ends sentences with"
        )
    })
}

/// A token as printed per word: invisible characters made visible.
fn shown(reader: &SentenceReader<'_>, id: u32) -> String {
    super::model_commands::shown(reader.token(id))
}

/// What comes before the words of an n-best line.
struct NbestFields {
    utterance: String,
    acoustic: Option<f64>,
}

/// One input line: what comes before its text (n-best) and where its tokens are.
struct Line {
    nbest: Option<NbestFields>,
    /// Its tokens in the block's `ids` (end token included); or, if it holds a word outside
    /// the vocabulary and there is no `<unk>`, how many tokens it has (for its per-word output).
    tokens: Result<Range<usize>, usize>,
}

/// One block of lines, tokenized.
#[derive(Default)]
struct Block {
    lines: Vec<Line>,
    ids: Vec<u32>,
    lengths: Vec<usize>,
    losses: Vec<f32>,
}

/// The totals the summary prints.
#[derive(Default)]
struct Totals {
    log10: f64,
    sentences: usize,
    tokens: usize,
    unknown: usize,
    oov_lines: usize,
    model_time: Duration,
}

enum Scorer {
    Sentences(SentenceScorer),
    Stream(StreamScorer),
}

pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint)?;
    let (arch, meta) = (ckpt.arch, &ckpt.meta);
    let path = args.checkpoint.display().to_string();
    let vocab = meta.vocab.as_ref().ok_or_else(|| anyhow!("{path} has no vocabulary to read text with"))?;
    let reader = reader(&path, meta, vocab, arch.dims.vocab, args.level)?;
    let mut scorer = if args.carry_state {
        let model = ckpt.model(Window { batch: 1, time: args.time.unwrap_or(STREAM_TIME) })?;
        Scorer::Stream(StreamScorer::new(model, reader.end())?)
    } else {
        let window = Window { batch: args.batch, time: args.time.unwrap_or(SCORE_TIME) };
        let model = ckpt.model(window)?;
        Scorer::Sentences(SentenceScorer::new(model, reader.end())?)
    };
    let (mut input, name) = open_input(args.file.as_deref())?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut totals = Totals::default();
    let mut block = Block::default();
    let mut line_number = 0;
    // Write errors mean a closed stdout (`| head`): the scores stop, the summary still comes.
    let mut writing = !args.per_word || writeln!(out, "Index   P(NET)          Word\n{}", "-".repeat(34)).is_ok();
    loop {
        read_block(&mut input, &name, &mut line_number, &args, &reader, &mut block, &mut totals)?;
        if block.lines.is_empty() {
            break;
        }
        let start = Instant::now();
        super::model_commands::with_threads(args.threads, || run(&mut scorer, &mut block))??;
        totals.model_time += start.elapsed();
        add_to_totals(&block, &mut totals);
        writing = writing && print_block(&mut out, &args, &reader, &block).is_ok();
    }
    let perplexity = 10f64.powf(-totals.log10 / totals.tokens.max(1) as f64);
    if args.per_word && writing {
        let _ = write!(out, "\ntest log probability: {:.6}\n\nPPL net: {perplexity:.6}\n", totals.log10);
    }
    let _ = out.flush();
    eprintln!(
        "{} sentences, {} tokens ({} mapped to {UNK}), {} lines left out for words outside the vocabulary; \
         log10 probability {:.4}, perplexity {perplexity:.3}; {:.0} tokens/s in the model",
        totals.sentences,
        totals.tokens,
        totals.unknown,
        totals.oov_lines,
        totals.log10,
        totals.tokens as f64 / totals.model_time.as_secs_f64().max(1e-9),
    );
    Ok(())
}

/// The text to score and its name in messages: a file, or standard input (`-` or none).
fn open_input(file: Option<&std::path::Path>) -> anyhow::Result<(Box<dyn BufRead>, String)> {
    Ok(match file {
        Some(path) if path.as_os_str() != "-" => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            (Box::new(std::io::BufReader::new(file)), path.display().to_string())
        }
        _ => (Box::new(std::io::stdin().lock()), "standard input".to_owned()),
    })
}

/// Reads and tokenizes up to [`BLOCK_LINES`] lines into `block` (none at the end of the input).
fn read_block(
    input: &mut dyn BufRead,
    name: &str,
    line_number: &mut usize,
    args: &ScoreArgs,
    reader: &SentenceReader<'_>,
    block: &mut Block,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    block.lines.clear();
    block.ids.clear();
    block.lengths.clear();
    let mut bytes = Vec::new();
    while block.lines.len() < BLOCK_LINES {
        bytes.clear();
        if input.read_until(b'\n', &mut bytes).with_context(|| format!("cannot read {name}"))? == 0 {
            break;
        }
        *line_number += 1;
        let text = line_text(&bytes).map_err(|e| {
            anyhow!("{name}, line {line_number}: not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1)
        })?;
        let (nbest, text) =
            if args.nbest { split_nbest(text, args.acoustic, name, *line_number)? } else { (None, text) };
        let tokens = reader.tokenize(text, &mut block.ids, &mut totals.unknown);
        if let Ok(range) = &tokens {
            block.lengths.push(range.len());
        }
        block.lines.push(Line { nbest, tokens });
    }
    Ok(())
}

/// A line's text without its line break (`\n` or `\r\n`).
fn line_text(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    std::str::from_utf8(bytes)
}

/// An n-best line `UTTID [ACOUSTIC] word word ...`: the id, the acoustic score if asked for, and
/// the hypothesis.
fn split_nbest<'t>(
    text: &'t str,
    acoustic: bool,
    name: &str,
    line: usize,
) -> anyhow::Result<(Option<NbestFields>, &'t str)> {
    let mut rest = text.trim_start();
    let mut field = || {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (field, after) = rest.split_at(end);
        rest = after.trim_start();
        field
    };
    let id = field();
    if id.is_empty() {
        bail!("{name}, line {line}: no utterance id (an n-best line is `UTTID word word ...`)");
    }
    let score = if acoustic {
        let field = field();
        let score = field.parse::<f64>().ok().filter(|s| s.is_finite()).ok_or_else(|| {
            anyhow!("{name}, line {line}: the acoustic score {field:?} after {id} is not a finite number (--acoustic)")
        })?;
        Some(score)
    } else {
        None
    };
    Ok((Some(NbestFields { utterance: id.to_owned(), acoustic: score }), rest))
}

/// Scores every scorable line of `block` into `block.losses`.
fn run(scorer: &mut Scorer, block: &mut Block) -> anyhow::Result<()> {
    block.losses.clear();
    block.losses.resize(block.ids.len(), 0.0);
    match scorer {
        Scorer::Sentences(scorer) => scorer.score(&block.ids, &block.lengths, &mut block.losses)?,
        Scorer::Stream(scorer) => scorer.score(&block.ids, &mut block.losses)?,
    }
    Ok(())
}

/// A probability as `-debug 2` prints it, with ten decimals; below `1e-4`, where that would keep
/// too few digits (or none), with seven significant digits in exponent notation.
fn probability_text(p: f64) -> String {
    if p >= 1e-4 {
        format!("{p:.10}")
    } else {
        format!("{p:.6e}")
    }
}

/// Adds the block's lines to the totals.
fn add_to_totals(block: &Block, totals: &mut Totals) {
    for line in &block.lines {
        match &line.tokens {
            Ok(tokens) => {
                totals.log10 += line_log10(block, tokens);
                totals.sentences += 1;
                totals.tokens += tokens.len();
            }
            Err(_) => totals.oov_lines += 1,
        }
    }
}

/// The log10 probability of the line whose tokens are `tokens` of the block.
fn line_log10(block: &Block, tokens: &std::ops::Range<usize>) -> f64 {
    block.losses[tokens.clone()].iter().map(|&l| log10_prob(l as f64)).sum()
}

/// Prints a line left out for a word outside the vocabulary, of `count` tokens.
fn print_oov_line(out: &mut impl Write, args: &ScoreArgs, line: &Line, count: usize) -> std::io::Result<()> {
    if args.per_word {
        for _ in 0..count {
            writeln!(out, "-1\t0\t\tOOV")?;
        }
        Ok(())
    } else if let Some(fields) = &line.nbest {
        writeln!(out, "{} OOV", fields.utterance)
    } else {
        writeln!(out, "OOV")
    }
}

/// Prints the block's lines in input order.
fn print_block(
    out: &mut impl Write,
    args: &ScoreArgs,
    reader: &SentenceReader<'_>,
    block: &Block,
) -> std::io::Result<()> {
    for line in &block.lines {
        let tokens = match &line.tokens {
            Ok(tokens) => tokens,
            Err(count) => {
                print_oov_line(out, args, line, *count)?;
                continue;
            }
        };
        let log10 = line_log10(block, tokens);
        if args.per_word {
            for (&id, &loss) in block.ids[tokens.clone()].iter().zip(&block.losses[tokens.clone()]) {
                writeln!(out, "{id}\t{}\t{}", probability_text((-(loss as f64)).exp()), shown(reader, id))?;
            }
        } else if let Some(fields) = &line.nbest {
            writeln!(out, "{} {:.6}", fields.utterance, fields.acoustic.unwrap_or(0.0) + args.lm_scale * log10)?;
        } else {
            writeln!(out, "{log10:.6}")?;
        }
    }
    Ok(())
}
