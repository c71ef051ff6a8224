//! Throughput measurement: training steps per second and the GEMM ceiling, measured in one run.
//!
//! Every figure about work comes from the model's parts ([`Rnnlm::window_cost`]): each
//! recurrent layer and the output layer report the GEMMs they run (for a full softmax
//! `6 H V` operations per token; per recurrent layer about `6 G H (input + H)`, `G` gate blocks
//! per cell: 1 tanh, 4 LSTM, 3 GRU), with an adaptive softmax what it really computes: the
//! head's GEMMs over every row and each cluster's over the rows whose target it holds, counted
//! window by window. The ceiling runs exactly those GEMMs, with the same shapes (a cluster's
//! rows: their mean over the measured windows) and the same GEMM code, and nothing else: the
//! speed a step would have if everything that is not a GEMM were free. Measuring both in the
//! same run makes their ratio meaningful on a shared, noisy machine. The step's time is split
//! by [`Phase`], each with the parallel tasks its parts report.

use crate::files::corpus::Ids;
use crate::inference::generate::sample;
use crate::inference::score::{ScoreError, SentenceScorer};
use crate::kernels::{fma_loop, MAX_CLUSTERS};
use crate::model::PhaseTimes;
use crate::model::{Arch, Cell, ModelError, Phase, Rnnlm, Window};
use crate::rng::Rng;
use crate::train::Batcher;
use std::time::Instant;

mod ceiling;
mod shared;
pub use ceiling::GemmCeiling;
pub use shared::{run_shared, SharedBenchResult};

/// One benchmark configuration of the performance table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchConfig {
    /// The name of the configuration (`c1` … `c6`).
    pub name: &'static str,
    /// The recurrent cell.
    pub cell: Cell,
    /// Recurrent layers.
    pub layers: usize,
    /// Whether the output layer uses the embedding weights.
    pub tied: bool,
    /// Dropout ratio of training.
    pub dropout: f32,
    /// Word-vector size `D`.
    pub embed: usize,
    /// Hidden size `H`.
    pub hidden: usize,
    /// The window shape `B x T`.
    pub window: Window,
    /// Train on the first N tokens of PTB's training split (None: all of it).
    pub corpus_tokens: Option<usize>,
    /// Instead of PTB, a corpus of this many words drawn from a Zipf law ([`zipf_corpus`]).
    pub zipf_vocab: Option<usize>,
    /// An adaptive softmax's cutoffs and div value (None: the full softmax).
    pub adaptive: Option<(&'static [usize], f32)>,
    /// Whether scoring rounds follow the training rounds. A scorer has its own copy of the
    /// weights: for c7's 600 MB that would double the memory the benchmark is measured with,
    /// so its scoring speed is measured with `rnnlm score` on a checkpoint instead.
    pub scoring: bool,
}

/// A tanh configuration on full PTB.
const fn tanh(name: &'static str, size: usize, window: Window) -> BenchConfig {
    BenchConfig {
        name,
        cell: Cell::Rnn,
        layers: 1,
        tied: false,
        dropout: 0.0,
        embed: size,
        hidden: size,
        window,
        corpus_tokens: None,
        zipf_vocab: None,
        adaptive: None,
        scoring: true,
    }
}

/// The chapter's window and the textbook's.
const SHORT: Window = Window { batch: 10, time: 5 };
const LONG: Window = Window { batch: 20, time: 35 };

/// WikiText-103's vocabulary size: c7's.
pub const C7_VOCAB: usize = 267_735;

/// Tokens of c7's Zipf corpus.
pub const ZIPF_TOKENS: usize = 1_000_000;

/// c1 (the chapter), c2 (full PTB, chapter window), c3 (full PTB, B = 20, T = 35), c4
/// (H = 650), c5 (the next chapter's LSTM of 100), c6 (its two LSTMs of 650, dropout 0.5, tied),
/// c7 (a large vocabulary: an LSTM of 512 over [`C7_VOCAB`] words drawn from a Zipf law, with an
/// adaptive softmax, cutoffs 20000,60000, div value 4).
pub const CONFIGS: [BenchConfig; 7] = [
    BenchConfig { corpus_tokens: Some(1000), ..tanh("c1", 100, SHORT) },
    tanh("c2", 100, SHORT),
    tanh("c3", 100, LONG),
    tanh("c4", 650, LONG),
    BenchConfig { cell: Cell::Lstm, ..tanh("c5", 100, LONG) },
    BenchConfig { cell: Cell::Lstm, layers: 2, tied: true, dropout: 0.5, ..tanh("c6", 650, LONG) },
    BenchConfig {
        cell: Cell::Lstm,
        zipf_vocab: Some(C7_VOCAB),
        adaptive: Some((&[20_000, 60_000], 4.0)),
        scoring: false,
        ..tanh("c7", 512, LONG)
    },
];

/// `tokens` ids of a `vocab`-word vocabulary drawn from a Zipf law of exponent 1 (the
/// probability of id `i` proportional to `1 / (i + 1)`: id 0 the most frequent), from `seed`.
pub fn zipf_corpus(vocab: usize, tokens: usize, seed: u64) -> Vec<u32> {
    let mut cumulative = Vec::with_capacity(vocab);
    let mut total = 0.0;
    for i in 0..vocab {
        total += 1.0 / (i + 1) as f64;
        cumulative.push(total);
    }
    let mut rng = Rng::new(seed);
    (0..tokens)
        .map(|_| {
            let u = rng.uniform() * total;
            cumulative.partition_point(|&c| c <= u).min(vocab - 1) as u32
        })
        .collect()
}

/// Median, minimum and maximum of some measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The lowest value.
    pub min: f64,
    /// The highest value.
    pub max: f64,
}

impl Spread {
    /// Of a non-empty list.
    pub fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Spread { median, min: sorted[0], max: sorted[n - 1] }
    }
}

/// What one benchmark run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// The model measured.
    pub arch: Arch,
    /// The window shape `B x T`.
    pub window: Window,
    /// Rayon threads of the run.
    pub threads: usize,
    /// Timed rounds.
    pub repeats: usize,
    /// Training steps per round.
    pub iters_per_repeat: usize,
    /// Training tokens per second, over the repeats.
    pub tokens_per_sec: Spread,
    /// Floating-point operations per token of the measured steps (with an adaptive softmax,
    /// their mean: it depends on the targets).
    pub flops_per_token: f64,
    /// Achieved GFLOP/s at the median.
    pub gflops: f64,
    /// GFLOP/s of the step's GEMMs alone (median over the repeats).
    pub ceiling_gflops: f64,
    /// GFLOP/s of multiply-adds in registers on every thread (the `fma_loop` kernel): the machine's
    /// arithmetic peak at the SIMD level in use (median over the repeats).
    pub peak_gflops: f64,
    /// Each phase of a step, in the order they run: its share of the time and its tasks.
    pub phases: Vec<PhaseShare>,
    /// With a one-thread pool to compare against: the speed-up over it, measured in rounds
    /// where the two pools take turns.
    pub one_thread: Option<ThreadScaling>,
    /// Given sentences to score: tokens per second scoring them ([`SentenceScorer`]), one
    /// round after each training round.
    pub scoring_tokens_per_sec: Option<Spread>,
}

/// One phase of the measured steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhaseShare {
    /// The phase.
    pub phase: Phase,
    /// Its share of the steps' time.
    pub share: f64,
    /// The most parallel tasks a part of the model splits it into.
    pub tasks: usize,
    /// GFLOP/s of its GEMMs over its own time (0 for a phase without GEMMs).
    pub gflops: f64,
}

/// Sentences scored between the training rounds of [`run`], by a scorer of their own (with
/// the model's weights as they were when it was made).
pub struct ScoringRounds {
    scorer: SentenceScorer,
    ids: Vec<u32>,
    lengths: Vec<usize>,
    losses: Vec<f32>,
}

impl ScoringRounds {
    /// Sentences back to back in `ids` (`lengths[i]` tokens each, the end token last), scored
    /// in windows of `window` with `start` as every sentence's first input.
    pub fn new(
        model: &Rnnlm,
        window: Window,
        start: u32,
        ids: Vec<u32>,
        lengths: Vec<usize>,
    ) -> Result<Self, ScoreError> {
        let scorer = SentenceScorer::new(model.with_window(window)?, start)?;
        let losses = vec![0.0; ids.len()];
        Ok(ScoringRounds { scorer, ids, lengths, losses })
    }

    /// Scores every sentence once; returns tokens per second.
    fn round(&mut self) -> Result<f64, ScoreError> {
        let start = Instant::now();
        self.scorer.score(&self.ids, &self.lengths, &mut self.losses)?;
        Ok(self.ids.len() as f64 / start.elapsed().as_secs_f64())
    }
}

/// The same training steps on one thread against the main pool, in rounds where the two take
/// turns of a few steps: load from other tenants, which on a shared machine comes and goes
/// within seconds, then falls on both alike, and the ratio moves far less than either rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThreadScaling {
    /// Tokens per second on one thread, over the repeats.
    pub tokens_per_sec: Spread,
    /// One thread's time / the main pool's time for the same round's steps, over the repeats.
    pub speedup: Spread,
}

impl BenchResult {
    /// The share of the step's time spent in the phases `phases` together.
    pub fn share_of(&self, phases: &[Phase]) -> f64 {
        self.phases.iter().filter(|p| phases.contains(&p.phase)).map(|p| p.share).sum()
    }

    /// Tokens per second the GEMM ceiling allows.
    pub fn ceiling_tokens_per_sec(&self) -> f64 {
        self.ceiling_gflops * 1e9 / self.flops_per_token
    }

    /// Training's GFLOP/s as a share of the arithmetic peak.
    pub fn peak_fraction(&self) -> f64 {
        self.gflops / self.peak_gflops
    }
}

/// GFLOP/s of the `fma_loop` kernel on every thread of the current pool at once, run for about
/// `seconds` (at least one slice of 2^18 rounds per thread).
pub fn fma_peak(seconds: f64) -> f64 {
    let start = Instant::now();
    let mut flops = 0.0;
    loop {
        flops += rayon::broadcast(|_| fma_loop(PEAK_SLICE)).iter().sum::<f64>();
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= seconds {
            return flops / elapsed / 1e9;
        }
    }
}

/// Rounds of [`fma_loop`] per thread between two looks at the clock: about a millisecond, long
/// next to the few microseconds that waking the threads costs.
const PEAK_SLICE: usize = 1 << 18;

/// The arithmetic peak's share of a round: a quarter of the training round's time, at least
/// this many seconds.
const PEAK_MIN_SECONDS: f64 = 0.02;

/// Turns each pool takes in a scaling round.
const SCALING_TURNS: usize = 10;

/// Runs `repeats` timed rounds of `iters` training steps (SGD, lr 0.1, no clipping) on
/// `corpus` after two warm-up steps, each followed by a round of the GEMM ceiling, a quarter
/// round of the arithmetic peak ([`fma_peak`]), given `scoring` by a round of scoring its
/// sentences, and given `one_thread` (a pool of one thread) by a round of `iters` steps in
/// each pool, the two pools taking turns of a tenth of that.
pub fn run(
    model: &mut Rnnlm,
    corpus: Ids<'_>,
    repeats: usize,
    iters: usize,
    mut scoring: Option<&mut ScoringRounds>,
    one_thread: Option<&rayon::ThreadPool>,
) -> Result<BenchResult, ScoreError> {
    let mut steps = BenchSteps::new(model, corpus)?;
    steps.run(model, 2)?;
    let mut ceiling = GemmCeiling::new(&model.window_cost(&mean_rows(steps.cluster_rows, steps.count)));
    ceiling.measure(1);
    model.set_phase_timing(true);
    if let Some(scoring) = scoring.as_deref_mut() {
        scoring.round()?;
    }
    // Training and ceiling rounds alternate, so that both see the same machine load.
    let mut rounds = RoundFigures::with_capacity(repeats);
    let round_tokens = (iters * model.window().tokens()) as f64;
    for _ in 0..repeats {
        let seconds = timed(|| steps.run(model, iters))?;
        rounds.tokens_per_sec.push(round_tokens / seconds);
        rounds.ceiling_gflops.push(ceiling.measure(iters));
        rounds.peak_gflops.push(fma_peak((seconds / 4.0).max(PEAK_MIN_SECONDS)));
        if let Some(scoring) = scoring.as_deref_mut() {
            rounds.scoring_tokens_per_sec.push(scoring.round()?);
        }
        if let Some(pool) = one_thread {
            let (many, one) = scaling_round(model, pool, iters, &mut steps)?;
            rounds.one_thread_tokens_per_sec.push(round_tokens / one);
            rounds.speedups.push(one / many);
        }
    }
    // Phase clocks ran over the timed rounds' steps only.
    let (phases, flops_per_token) =
        step_figures(model, model.phase_times(), repeats * iters, (steps.count, steps.cluster_rows));
    Ok(rounds.result(model, (repeats, iters), phases, flops_per_token))
}

/// The benchmark's training steps: each on the next window of the corpus, counted with the
/// rows each adaptive cluster computed.
struct BenchSteps<'a> {
    corpus: Ids<'a>,
    batcher: Batcher,
    xs: Vec<u32>,
    ts: Vec<i32>,
    /// Steps run so far.
    count: usize,
    /// The rows each adaptive cluster computed, summed over the steps.
    cluster_rows: [usize; MAX_CLUSTERS],
}

impl<'a> BenchSteps<'a> {
    /// Steps for `model`'s window over `corpus`; an error if the corpus does not fill a window.
    fn new(model: &Rnnlm, corpus: Ids<'a>) -> Result<Self, ModelError> {
        let window = model.window();
        let (xs, ts) = (vec![0; window.tokens()], vec![0; window.tokens()]);
        Ok(BenchSteps {
            corpus,
            batcher: batcher_of(corpus, window)?,
            xs,
            ts,
            count: 0,
            cluster_rows: [0; MAX_CLUSTERS],
        })
    }
}

/// The batcher of `window` over `corpus`; an error if the corpus does not fill a window.
fn batcher_of(corpus: Ids<'_>, window: Window) -> Result<Batcher, ModelError> {
    Batcher::new(corpus.len(), window).ok_or(ModelError::InvalidSize {
        name: "corpus",
        value: corpus.len(),
        why: "does not fill one window",
    })
}

impl BenchSteps<'_> {
    /// `steps` training steps (SGD, lr 0.1, no clipping).
    fn run(&mut self, model: &mut Rnnlm, steps: usize) -> Result<(), ModelError> {
        for _ in 0..steps {
            self.batcher.next_window(self.corpus, &mut self.xs, &mut self.ts);
            model.train_step(&self.xs, &self.ts, 0.1, None)?;
            self.count += 1;
            for (total, window_rows) in self.cluster_rows.iter_mut().zip(model.cluster_rows().unwrap_or_default()) {
                *total += window_rows;
            }
        }
        Ok(())
    }
}

/// What each timed round measured, one value per round.
struct RoundFigures {
    tokens_per_sec: Vec<f64>,
    ceiling_gflops: Vec<f64>,
    peak_gflops: Vec<f64>,
    one_thread_tokens_per_sec: Vec<f64>,
    speedups: Vec<f64>,
    scoring_tokens_per_sec: Vec<f64>,
}

impl RoundFigures {
    fn with_capacity(rounds: usize) -> Self {
        let list = || Vec::with_capacity(rounds);
        RoundFigures {
            tokens_per_sec: list(),
            ceiling_gflops: list(),
            peak_gflops: list(),
            one_thread_tokens_per_sec: list(),
            speedups: list(),
            scoring_tokens_per_sec: list(),
        }
    }

    /// The run's result: the rounds' spreads with `model`'s shape and the step's figures.
    fn result(
        self,
        model: &Rnnlm,
        (repeats, iters_per_repeat): (usize, usize),
        phases: Vec<PhaseShare>,
        flops_per_token: f64,
    ) -> BenchResult {
        let tokens_per_sec = Spread::of(&self.tokens_per_sec);
        let spread = |values: &[f64]| (!values.is_empty()).then(|| Spread::of(values));
        let one_thread = spread(&self.one_thread_tokens_per_sec)
            .map(|tokens_per_sec| ThreadScaling { tokens_per_sec, speedup: Spread::of(&self.speedups) });
        BenchResult {
            arch: model.arch(),
            window: model.window(),
            threads: rayon::current_num_threads(),
            repeats,
            iters_per_repeat,
            tokens_per_sec,
            flops_per_token,
            gflops: tokens_per_sec.median * flops_per_token / 1e9,
            ceiling_gflops: Spread::of(&self.ceiling_gflops).median,
            peak_gflops: Spread::of(&self.peak_gflops).median,
            phases,
            one_thread,
            scoring_tokens_per_sec: spread(&self.scoring_tokens_per_sec),
        }
    }
}

/// One scaling round: `iters` steps in the current pool and `iters` in `one_thread`, the two
/// taking turns; returns the seconds of each, `(current pool, one thread)`.
fn scaling_round(
    model: &mut Rnnlm,
    one_thread: &rayon::ThreadPool,
    iters: usize,
    steps: &mut BenchSteps<'_>,
) -> Result<(f64, f64), ModelError> {
    // Its phase times would blur the main split: measured apart and restored.
    let times = model.phase_times();
    let (mut many, mut one) = (0.0, 0.0);
    // Turns of a tenth of the round: short next to the load's swings, long next to the time an
    // idle pool's threads take to wake up again.
    let turn = iters.div_ceil(SCALING_TURNS);
    for first in (0..iters).step_by(turn) {
        let count = turn.min(iters - first);
        many += timed(|| steps.run(model, count))?;
        one += one_thread.install(|| timed(|| steps.run(model, count)))?;
    }
    model.set_phase_times(times);
    Ok((many, one))
}

/// Each phase's share of `times` (over `timed_steps` steps) with its tasks and GFLOP/s, and the
/// mean floating-point operations per token of `steps` steps whose adaptive clusters computed
/// `rows` rows in all.
fn step_figures(
    model: &Rnnlm,
    times: PhaseTimes,
    timed_steps: usize,
    (steps, rows): (usize, [usize; MAX_CLUSTERS]),
) -> (Vec<PhaseShare>, f64) {
    let mean = model.window_cost(&mean_rows(rows, steps));
    let phases = Phase::ALL
        .iter()
        .map(|&phase| {
            let seconds = times.of(phase);
            let flops = mean.phase_flops(phase) * timed_steps as f64;
            let gflops = if seconds > 0.0 { flops / seconds / 1e9 } else { 0.0 };
            PhaseShare { phase, share: seconds / times.total(), tasks: mean.tasks(phase), gflops }
        })
        .collect();
    // A cluster's work is linear in its rows: every step's work without the clusters, plus the
    // clusters' over all their rows at once.
    let without_clusters = model.window_cost(&[]).flops();
    let clusters = model.window_cost(&rows).flops() - without_clusters;
    let tokens = (steps * model.window().tokens()) as f64;
    (phases, (steps as f64 * without_clusters + clusters) / tokens)
}

/// Time per token of generating text one token at a time: the logits after the last token
/// (a `1 x 1` window) and a draw from them at temperature 1, as `generate` does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerationLatency {
    /// Tokens generated.
    pub tokens: usize,
    /// Median microseconds per token.
    pub median_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
}

/// Generates tokens with `model`'s weights, one at a time, for about `seconds` (at least 20
/// tokens, at most 100,000), timing each.
pub fn generation_latency(model: &Rnnlm, seconds: f64) -> Result<GenerationLatency, ModelError> {
    let mut generator = model.with_window(Window { batch: 1, time: 1 })?;
    let mut logits = vec![0.0; model.dims().vocab];
    let mut rng = Rng::new(1);
    let mut times = Vec::new();
    let (start, mut token) = (Instant::now(), 0);
    while times.len() < 20 || (start.elapsed().as_secs_f64() < seconds && times.len() < 100_000) {
        let step = Instant::now();
        generator.logits(&[token], &mut logits)?;
        token = sample(&logits, 1.0, &mut rng);
        times.push(step.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    Ok(GenerationLatency { tokens: times.len(), median_us: Spread::of(&times).median, p99_us: p99 })
}

/// Seconds that `f` takes.
fn timed(f: impl FnOnce() -> Result<(), ModelError>) -> Result<f64, ModelError> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

/// Each cluster's mean rows per step: `totals` summed over `steps` steps, rounded.
fn mean_rows(totals: [usize; MAX_CLUSTERS], steps: usize) -> [usize; MAX_CLUSTERS] {
    totals.map(|total| (total as f64 / steps.max(1) as f64).round() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dims;

    #[test]
    fn spread_of_odd_and_even_lists() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Spread { median: 2.0, min: 1.0, max: 3.0 });
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn one_thread_rounds_give_a_speed_up_per_round_pair() {
        let dims = Dims { vocab: 20, embed: 4, hidden: 5 };
        let mut model = Rnnlm::new(dims, Window { batch: 2, time: 3 }, 1).unwrap();
        let ids: Vec<u32> = (0..200).map(|i| (i * 7 % 20) as u32).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let result = run(&mut model, Ids::U32(&ids), 3, 2, None, Some(&pool)).unwrap();
        let scaling = result.one_thread.expect("a one-thread pool was given");
        assert!(scaling.tokens_per_sec.min > 0.0);
        assert!(scaling.speedup.min > 0.0 && scaling.speedup.min <= scaling.speedup.median);
        assert!(result.peak_gflops > 0.0 && result.peak_gflops.is_finite());
        assert_eq!(result.peak_fraction(), result.gflops / result.peak_gflops);
        assert!(run(&mut model, Ids::U32(&ids), 1, 1, None, None).unwrap().one_thread.is_none());
    }

    #[test]
    fn scoring_rounds_follow_the_training_rounds() {
        let dims = Dims { vocab: 20, embed: 4, hidden: 5 };
        let mut model = Rnnlm::new(dims, Window { batch: 2, time: 3 }, 1).unwrap();
        let ids: Vec<u32> = (0..200).map(|i| (i * 7 % 20) as u32).collect();
        let lengths = vec![10; 20];
        let mut scoring = ScoringRounds::new(&model, Window { batch: 4, time: 1 }, 0, ids.clone(), lengths).unwrap();
        let result = run(&mut model, Ids::U32(&ids), 3, 2, Some(&mut scoring), None).unwrap();
        let rates = result.scoring_tokens_per_sec.expect("sentences were given");
        assert!(rates.min > 0.0 && rates.min <= rates.median && rates.median <= rates.max);
        assert!(run(&mut model, Ids::U32(&ids), 1, 1, None, None).unwrap().scoring_tokens_per_sec.is_none());
        let latency = generation_latency(&model, 0.0).unwrap();
        assert_eq!(latency.tokens, 20, "at least 20 tokens, however short the time");
        assert!(latency.median_us > 0.0 && latency.median_us <= latency.p99_us);
    }
}
