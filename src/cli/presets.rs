//! The training presets: every value a preset sets, each overridden by its flag.

use super::{Cutoffs, OutputKind, Preset, TrainArgs};
use rnnlm::train::schedule::NEWBOB_THRESHOLD;
use rnnlm::train::{Schedule, TrainOptions};
use rnnlm::{Cell, Window};

/// What a preset sets.
struct PresetValues {
    window: Window,
    lr: f32,
    clip: Option<f32>,
    schedule: Schedule,
    epochs: usize,
    /// Keep only the first N tokens, when the corpus is PTB.
    ptb_tokens: Option<usize>,
    cell: Cell,
    layers: usize,
    /// `D = H`.
    size: usize,
    dropout: f32,
    tie: bool,
    /// Stop after this much wall time.
    time_budget: Option<f64>,
    /// An adaptive softmax's cutoffs and div value, or the full softmax.
    adaptive: Option<(&'static [usize], f32)>,
}

/// The `ptb` preset's wall time for training and validation, leaving room in ten minutes for
/// the last evaluation and the save.
const PTB_TIME_BUDGET: f64 = 570.0;

/// The textbook's window.
const LONG: Window = Window { batch: 20, time: 35 };

/// The chapter's SimpleRnnlm on the first 1,000 PTB words (the default).
const CHAPTER: PresetValues = PresetValues {
    window: Window { batch: 10, time: 5 },
    lr: 0.1,
    clip: None,
    schedule: Schedule::Constant,
    epochs: 100,
    ptb_tokens: Some(1000),
    cell: Cell::Rnn,
    layers: 1,
    size: 100,
    dropout: 0.0,
    tie: false,
    time_budget: None,
    adaptive: None,
};

/// The best test perplexity found for the chapter's tanh family in ten minutes of wall time
/// (docs/training.md, "Presets and what they give", has the runs that chose it). B = 10 learns
/// faster per epoch than B = 20 at nearly the same speed; the adaptive softmax makes an epoch of
/// H = 200 cheaper than one of H = 100 with the full softmax, and dropout keeps the larger model
/// from overfitting over the epochs that `newbob`'s annealing then runs.
const PTB: PresetValues = PresetValues {
    window: Window { batch: 10, time: 35 },
    lr: 4.0,
    clip: Some(0.25),
    schedule: Schedule::Newbob { threshold: NEWBOB_THRESHOLD },
    epochs: 40,
    ptb_tokens: None,
    time_budget: Some(PTB_TIME_BUDGET),
    size: 200,
    dropout: 0.2,
    adaptive: Some((&[2000, 6000], 4.0)),
    ..CHAPTER
};

/// The next chapter's Rnnlm: one LSTM of 100, lr 20, clip 0.25, 4 epochs.
const CH06: PresetValues =
    PresetValues { window: LONG, lr: 20.0, clip: Some(0.25), epochs: 4, ptb_tokens: None, cell: Cell::Lstm, ..CHAPTER };

/// Its BetterRnnlm: two LSTMs of 650, dropout 0.5, tied weights, the rate divided by 4 whenever
/// validation perplexity worsens, 40 epochs.
const CH06_BETTER: PresetValues = PresetValues {
    schedule: Schedule::Plateau { factor: 4.0 },
    epochs: 40,
    layers: 2,
    size: 650,
    dropout: 0.5,
    tie: true,
    ..CH06
};

/// The best test perplexity found for ten minutes of wall time (docs/training.md and
/// docs/adaptive-softmax.md have the runs that chose it): with the adaptive softmax an epoch of
/// the LSTM of 200 takes about a quarter of the full softmax's time, so the budget holds enough
/// epochs for the rate to be divided twice; div value 2 is closer to the full softmax at equal
/// epochs but overfits sooner. Epochs are capped by the time budget.
const PTB_LSTM: PresetValues = PresetValues {
    schedule: Schedule::Plateau { factor: 4.0 },
    epochs: 40,
    size: 200,
    dropout: 0.25,
    time_budget: Some(PTB_TIME_BUDGET),
    adaptive: Some((&[2000, 6000], 4.0)),
    ..CH06
};

fn preset_values(preset: Preset) -> PresetValues {
    match preset {
        Preset::Chapter => CHAPTER,
        Preset::Ptb => PTB,
        Preset::Ch06 => CH06,
        Preset::Ch06Better => CH06_BETTER,
        Preset::PtbLstm => PTB_LSTM,
    }
}

/// Hyper-parameters after the preset and the flags are combined. The architecture is the
/// flags' or the preset's; with `--init` the checkpoint's instead (and its dropout, unless
/// `--dropout` says otherwise).
pub struct Settings {
    pub window: Window,
    pub embed: usize,
    pub hidden: usize,
    pub cell: Cell,
    pub layers: usize,
    pub tie: bool,
    pub dropout: f32,
    /// The output layer: full, or adaptive with its cutoffs and div value.
    pub output: OutputKind,
    pub cutoffs: Option<Vec<usize>>,
    pub div_value: Option<f32>,
    pub options: TrainOptions,
    pub corpus_size: Option<usize>,
    pub seed: u64,
}

pub fn settings(args: &TrainArgs) -> Settings {
    let is_ptb = args.corpus.text.is_none() && args.corpus.prepared.is_none();
    let p = preset_values(args.preset.unwrap_or(Preset::Chapter));
    let schedule = args.lr_schedule.or(args.lr_decay.map(|factor| Schedule::Plateau { factor })).unwrap_or(p.schedule);
    let output =
        args.softmax.output.unwrap_or(if p.adaptive.is_some() { OutputKind::Adaptive } else { OutputKind::Full });
    // The preset's cutoffs go with its adaptive softmax, not with a full one asked for by flag.
    let adaptive = p.adaptive.filter(|_| output == OutputKind::Adaptive);
    let keep_best = match (args.keep_best, args.no_keep_best) {
        (true, _) => true,
        (_, true) => false,
        _ => schedule.keeps_best_by_default(),
    };
    Settings {
        window: Window { batch: args.batch.unwrap_or(p.window.batch), time: args.time.unwrap_or(p.window.time) },
        embed: args.embed.unwrap_or(p.size),
        hidden: args.hidden.unwrap_or(p.size),
        cell: args.cell.unwrap_or(p.cell),
        layers: args.layers.unwrap_or(p.layers),
        tie: args.tie || (p.tie && args.softmax.output != Some(OutputKind::Adaptive)),
        dropout: args.dropout.unwrap_or(p.dropout),
        output,
        cutoffs: args.softmax.cutoffs.clone().map(|Cutoffs(c)| c).or(adaptive.map(|(c, _)| c.to_vec())),
        div_value: args.softmax.div_value.or(adaptive.map(|(_, div)| div)),
        options: TrainOptions {
            epochs: args.epochs.unwrap_or(p.epochs),
            max_iters: args.max_iters,
            lr: args.lr.unwrap_or(p.lr),
            clip: args.clip.or(p.clip),
            schedule,
            keep_best,
            time_budget: args.time_budget.or(p.time_budget),
            checkpoint_every: args.checkpoint_every,
            stop_after: args.stop_after,
        },
        corpus_size: if args.full_corpus { None } else { args.corpus_size.or(p.ptb_tokens.filter(|_| is_ptb)) },
        seed: args.seed.unwrap_or(1),
    }
}
