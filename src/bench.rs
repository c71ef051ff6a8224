//! Throughput measurement: training steps per second and the GEMM ceiling, measured in one run.
//!
//! A training step does `6 * H * (V + D + H)` floating-point operations per token, all of them
//! in nine GEMMs (forward: `x * Wx`, `h * Wh`, `hs * W`; backward: `hs^T * dlogits`,
//! `dlogits * W^T`, `dt * Wh^T`, `h_prev^T * dt`, `x^T * dt`, `dt * Wx^T`). The ceiling runs
//! exactly those GEMMs, with the same shapes and the same GEMM code, and nothing else: the
//! speed a step would have if everything that is not a GEMM were free. Measuring both in the
//! same run makes their ratio meaningful on a shared, noisy machine.

use crate::corpus::Ids;
use crate::kernels::{gemm_parallel, Transpose};
use crate::model::{Dims, ModelError, Rnnlm, Window};
use crate::train::Batcher;
use std::time::Instant;

/// One benchmark configuration of the performance issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    pub name: &'static str,
    pub embed: usize,
    pub hidden: usize,
    pub window: Window,
    /// Train on the first N tokens of PTB's training split (None: all of it).
    pub corpus_tokens: Option<usize>,
}

/// c1 (the chapter), c2 (full PTB, chapter window), c3 (full PTB, B = 20, T = 35), c4 (H = 650).
pub const CONFIGS: [BenchConfig; 4] = [
    BenchConfig {
        name: "c1",
        embed: 100,
        hidden: 100,
        window: Window { batch: 10, time: 5 },
        corpus_tokens: Some(1000),
    },
    BenchConfig { name: "c2", embed: 100, hidden: 100, window: Window { batch: 10, time: 5 }, corpus_tokens: None },
    BenchConfig { name: "c3", embed: 100, hidden: 100, window: Window { batch: 20, time: 35 }, corpus_tokens: None },
    BenchConfig { name: "c4", embed: 650, hidden: 650, window: Window { batch: 20, time: 35 }, corpus_tokens: None },
];

/// Floating-point operations per token of a training step.
pub fn flops_per_token(dims: Dims) -> f64 {
    6.0 * dims.hidden as f64 * (dims.vocab + dims.embed + dims.hidden) as f64
}

/// Median, minimum and maximum of some measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
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
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchResult {
    pub dims: Dims,
    pub window: Window,
    pub threads: usize,
    pub repeats: usize,
    pub iters_per_repeat: usize,
    /// Training tokens per second, over the repeats.
    pub tokens_per_sec: Spread,
    /// Achieved GFLOP/s at the median.
    pub gflops: f64,
    /// GFLOP/s of the step's GEMMs alone (median over the repeats).
    pub ceiling_gflops: f64,
    /// Shares of the step's time in the RNN part, the affine/softmax part and the update.
    pub rnn_fraction: f64,
    pub affine_fraction: f64,
    pub update_fraction: f64,
    /// With a one-thread pool to compare against: the speed-up over it, measured in rounds
    /// where the two pools take turns.
    pub one_thread: Option<ThreadScaling>,
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
    /// Tokens per second the GEMM ceiling allows.
    pub fn ceiling_tokens_per_sec(&self) -> f64 {
        self.ceiling_gflops * 1e9 / flops_per_token(self.dims)
    }
}

/// Turns each pool takes in a scaling round.
const SCALING_TURNS: usize = 10;

/// Runs `repeats` timed rounds of `iters` training steps (SGD, lr 0.1, no clipping) on
/// `corpus` after two warm-up steps, each followed by a round of the GEMM ceiling and, given
/// `one_thread` (a pool of one thread), by a round of `iters` steps in each pool, the two pools
/// taking turns of a tenth of that.
pub fn run(
    model: &mut Rnnlm,
    corpus: Ids<'_>,
    repeats: usize,
    iters: usize,
    one_thread: Option<&rayon::ThreadPool>,
) -> Result<BenchResult, ModelError> {
    let window = model.window();
    let dims = model.dims();
    let mut batcher = Batcher::new(corpus.len(), window).ok_or(ModelError::InvalidSize {
        name: "corpus",
        value: corpus.len(),
        why: "does not fill one window",
    })?;
    let mut xs = vec![0u32; window.tokens()];
    let mut ts = vec![0i32; window.tokens()];
    let mut step = |model: &mut Rnnlm| -> Result<(), ModelError> {
        batcher.next_window(corpus, &mut xs, &mut ts);
        model.train_step(&xs, &ts, 0.1, None).map(|_| ())
    };
    for _ in 0..2 {
        step(model)?;
    }
    let mut ceiling = GemmCeiling::new(dims, window);
    ceiling.measure(1);
    model.reset_phase_times();
    // Training and ceiling rounds alternate, so that both see the same machine load.
    let mut rates = Vec::with_capacity(repeats);
    let mut ceiling_rates = Vec::with_capacity(repeats);
    let mut one_thread_rates = Vec::with_capacity(repeats);
    let round_tokens = (iters * window.tokens()) as f64;
    let mut speedups = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        for _ in 0..iters {
            step(model)?;
        }
        rates.push(round_tokens / start.elapsed().as_secs_f64());
        ceiling_rates.push(ceiling.measure(iters));
        if let Some(pool) = one_thread {
            // Its phase times would blur the main split: measured apart and restored.
            let times = model.phase_times();
            let (mut many, mut one) = (0.0, 0.0);
            // Turns of a tenth of the round: short next to the load's swings, long next to the
            // time an idle pool's threads take to wake up again.
            let turn = iters.div_ceil(SCALING_TURNS);
            for first in (0..iters).step_by(turn) {
                let steps = turn.min(iters - first);
                many += timed(|| (0..steps).try_for_each(|_| step(model)))?;
                one += pool.install(|| timed(|| (0..steps).try_for_each(|_| step(model))))?;
            }
            one_thread_rates.push(round_tokens / one);
            speedups.push(one / many);
            model.set_phase_times(times);
        }
    }
    let one_thread = (!one_thread_rates.is_empty())
        .then(|| ThreadScaling { tokens_per_sec: Spread::of(&one_thread_rates), speedup: Spread::of(&speedups) });
    let times = model.phase_times();
    let total = times.rnn + times.affine + times.update;
    let tokens_per_sec = Spread::of(&rates);
    Ok(BenchResult {
        dims,
        window,
        threads: rayon::current_num_threads(),
        repeats,
        iters_per_repeat: iters,
        tokens_per_sec,
        gflops: tokens_per_sec.median * flops_per_token(dims) / 1e9,
        ceiling_gflops: Spread::of(&ceiling_rates).median,
        rnn_fraction: times.rnn / total,
        affine_fraction: times.affine / total,
        update_fraction: times.update / total,
        one_thread,
    })
}

/// Seconds that `f` takes.
fn timed(f: impl FnOnce() -> Result<(), ModelError>) -> Result<f64, ModelError> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

/// Buffers for the nine GEMMs of one training step, filled with small values.
pub struct GemmCeiling {
    dims: Dims,
    window: Window,
    x: Vec<f32>,
    wx: Vec<f32>,
    wh: Vec<f32>,
    w: Vec<f32>,
    states: Vec<f32>,
    logits: Vec<f32>,
    dhs: Vec<f32>,
    grads: [Vec<f32>; 3],
    dx: Vec<f32>,
}

impl GemmCeiling {
    pub fn new(dims: Dims, window: Window) -> GemmCeiling {
        let Dims { vocab: v, embed: d, hidden: h } = dims;
        let n = window.tokens();
        let fill = |len: usize| (0..len).map(|i| ((i * 7919) % 201) as f32 * 1e-3 - 0.1).collect::<Vec<f32>>();
        GemmCeiling {
            dims,
            window,
            x: fill(n * d),
            wx: fill(d * h),
            wh: fill(h * h),
            w: fill(h * v),
            states: fill((n + window.batch) * h),
            logits: fill(n * v),
            dhs: fill(n * h),
            grads: [fill(h * v), fill(h * h), fill(d * h)],
            dx: fill(n * d),
        }
    }

    /// GFLOP/s of `iters` rounds of the step's GEMMs.
    pub fn measure(&mut self, iters: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..iters {
            self.step();
        }
        let tokens = (iters * self.window.tokens()) as f64;
        tokens * flops_per_token(self.dims) / start.elapsed().as_secs_f64() / 1e9
    }

    /// The GEMMs of one training step, in the model's order and with its shapes.
    fn step(&mut self) {
        let Dims { vocab: v, embed: d, hidden: h } = self.dims;
        let Window { batch, time } = self.window;
        let n = batch * time;
        let block = batch * h;
        let (no, yes) = (Transpose::No, Transpose::Yes);
        gemm_parallel(n, h, d, 1.0, &self.x, d, no, &self.wx, h, no, 0.0, &mut self.states[block..], h);
        for t in 0..time {
            let (before, from_t) = self.states.split_at_mut((t + 1) * block);
            gemm_parallel(batch, h, h, 1.0, &before[t * block..], h, no, &self.wh, h, no, 1.0, &mut from_t[..block], h);
        }
        gemm_parallel(n, v, h, 1.0, &self.states[block..], h, no, &self.w, v, no, 0.0, &mut self.logits, v);
        let [dw, dwh, dwx] = &mut self.grads;
        gemm_parallel(h, v, n, 1.0, &self.states[block..], h, yes, &self.logits, v, no, 0.0, dw, v);
        gemm_parallel(n, h, v, 1.0, &self.logits, v, no, &self.w, v, yes, 0.0, &mut self.dhs, h);
        for t in (1..time).rev() {
            let (earlier, from_t) = self.dhs.split_at_mut(t * block);
            gemm_parallel(
                batch,
                h,
                h,
                1.0,
                &from_t[..block],
                h,
                no,
                &self.wh,
                h,
                yes,
                1.0,
                &mut earlier[(t - 1) * block..],
                h,
            );
        }
        gemm_parallel(h, h, n, 1.0, &self.states[..n * h], h, yes, &self.dhs, h, no, 0.0, dwh, h);
        gemm_parallel(d, h, n, 1.0, &self.x, d, yes, &self.dhs, h, no, 0.0, dwx, h);
        gemm_parallel(n, d, h, 1.0, &self.dhs, h, no, &self.wx, h, yes, 0.0, &mut self.dx, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let result = run(&mut model, Ids::U32(&ids), 3, 2, Some(&pool)).unwrap();
        let scaling = result.one_thread.expect("a one-thread pool was given");
        assert!(scaling.tokens_per_sec.min > 0.0);
        assert!(scaling.speedup.min > 0.0 && scaling.speedup.min <= scaling.speedup.median);
        assert!(run(&mut model, Ids::U32(&ids), 1, 1, None).unwrap().one_thread.is_none());
    }

    #[test]
    fn flops_formula() {
        assert_eq!(flops_per_token(Dims { vocab: 10_000, embed: 100, hidden: 100 }), 6.0 * 100.0 * 10_200.0);
    }
}
