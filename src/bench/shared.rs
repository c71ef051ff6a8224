//! Throughput of data-parallel training: the members of a [`Group`] (MPI's processes) each
//! train their rows of every window ([`Rnnlm::train_step_shared`]), the gradient summed over
//! the group at every step, as `train --distributed` trains. Besides the speed, the time each
//! step spends in the sum (moving the gradient and waiting for the slowest member) and the
//! bytes it moves: the figures a cluster's scaling is estimated from.

use super::{batcher_of, Spread};
use crate::files::corpus::Ids;
use crate::model::{ModelError, Rnnlm, Window};
use crate::train::{step_in_group, Batcher, Group};
use std::time::Instant;

/// What a benchmark of training in a group measured, the same on every member.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedBenchResult {
    /// Members of the group.
    pub members: usize,
    /// The whole batch's window.
    pub window: Window,
    /// Timed rounds.
    pub repeats: usize,
    /// Training steps per round.
    pub iters_per_repeat: usize,
    /// Tokens of the whole batch per second, over the rounds (each round's time the mean of
    /// the members' times).
    pub tokens_per_sec: Spread,
    /// Seconds per step in the gradient's sums, over the rounds (the members' mean).
    pub sum_seconds_per_step: Spread,
    /// Bytes each step sums, over all its sums, in the mean over the timed steps: the whole
    /// flat gradient with a tied embedding; untied, a mark per word and the gradient with only
    /// the embedding rows some member's window touched.
    pub summed_bytes_per_step: f64,
}

impl SharedBenchResult {
    /// The share of a step's time spent in the gradient's sum, at the medians.
    pub fn sum_share(&self) -> f64 {
        let step_seconds = self.window.tokens() as f64 / self.tokens_per_sec.median;
        self.sum_seconds_per_step.median / step_seconds
    }
}

/// Runs `repeats` timed rounds of training steps (SGD, lr 0.1, no clipping, as
/// [`run`](super::run)) after two warm-up steps, on `model`'s rows ([`Group::rows`]) of windows
/// of `batch` rows of `corpus`. `iters` is this member's wish for the steps per round; the
/// group runs the mean of the members' wishes, so that all run the same steps.
pub fn run_shared(
    model: &mut Rnnlm,
    group: &mut dyn Group,
    corpus: Ids<'_>,
    batch: usize,
    (repeats, iters): (usize, usize),
) -> Result<SharedBenchResult, ModelError> {
    let time = model.window().time;
    let window = Window { batch, time };
    let rows = group.rows(batch);
    if rows.len() != model.window().batch {
        return Err(ModelError::InvalidSize {
            name: "window rows",
            value: model.window().batch,
            why: "are not this member's share of the batch",
        });
    }
    let mut steps = SharedSteps {
        corpus,
        batcher: batcher_of(corpus, window)?,
        xs: vec![0; window.tokens()],
        ts: vec![0; window.tokens()],
    };
    let iters = mean_over(group, iters as f64).round().max(1.0) as usize;
    let mut timed = TimedSums { group, seconds: 0.0, values: 0 };
    steps.run(model, &mut timed, 2)?;
    let (mut tokens_per_sec, mut sum_seconds) = (Vec::new(), Vec::new());
    timed.values = 0;
    for _ in 0..repeats {
        timed.seconds = 0.0;
        let start = Instant::now();
        steps.run(model, &mut timed, iters)?;
        let seconds = mean_over(timed.group, start.elapsed().as_secs_f64());
        tokens_per_sec.push((iters * window.tokens()) as f64 / seconds);
        sum_seconds.push(mean_over(timed.group, timed.seconds) / iters as f64);
    }
    Ok(SharedBenchResult {
        members: timed.group.size(),
        window,
        repeats,
        iters_per_repeat: iters,
        tokens_per_sec: Spread::of(&tokens_per_sec),
        sum_seconds_per_step: Spread::of(&sum_seconds),
        summed_bytes_per_step: (timed.values * std::mem::size_of::<f32>()) as f64 / (repeats * iters) as f64,
    })
}

/// `value`'s mean over the group.
fn mean_over(group: &mut dyn Group, value: f64) -> f64 {
    let mut sum = [value];
    group.sum_f64(&mut sum);
    sum[0] / group.size() as f64
}

/// The benchmark's steps in a group: each on the next window, as training runs them
/// ([`step_in_group`]).
struct SharedSteps<'a> {
    corpus: Ids<'a>,
    batcher: Batcher,
    xs: Vec<u32>,
    ts: Vec<i32>,
}

impl SharedSteps<'_> {
    /// `steps` training steps (SGD, lr 0.1, no clipping).
    fn run(&mut self, model: &mut Rnnlm, group: &mut dyn Group, steps: usize) -> Result<(), ModelError> {
        for _ in 0..steps {
            self.batcher.next_window(self.corpus, &mut self.xs, &mut self.ts);
            step_in_group(model, group, (&self.xs, &self.ts), (0.1, None))?;
        }
        Ok(())
    }
}

/// `group`, its `f32` sums (the gradient's) timed and counted.
struct TimedSums<'g> {
    group: &'g mut dyn Group,
    /// Seconds in the sums since last reset.
    seconds: f64,
    /// Values summed since last reset.
    values: usize,
}

impl Group for TimedSums<'_> {
    fn rank(&self) -> usize {
        self.group.rank()
    }

    fn size(&self) -> usize {
        self.group.size()
    }

    fn sum(&mut self, values: &mut [f32]) {
        let start = Instant::now();
        self.group.sum(values);
        self.seconds += start.elapsed().as_secs_f64();
        self.values += values.len();
    }

    fn sum_f64(&mut self, values: &mut [f64]) {
        self.group.sum_f64(values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dims;

    /// A group of one: its sums are the values themselves.
    struct Alone;

    impl Group for Alone {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            1
        }
        fn sum(&mut self, _: &mut [f32]) {}
        fn sum_f64(&mut self, _: &mut [f64]) {}
    }

    #[test]
    fn a_group_bench_reports_its_rounds_and_the_bytes_it_sums() {
        let dims = Dims { vocab: 20, embed: 4, hidden: 5 };
        let mut model = Rnnlm::new(dims, Window { batch: 3, time: 4 }, 1).unwrap();
        let ids: Vec<u32> = (0..200).map(|i| (i * 7 % 20) as u32).collect();
        let result = run_shared(&mut model, &mut Alone, Ids::U32(&ids), 3, (3, 2)).unwrap();
        assert_eq!((result.members, result.repeats, result.iters_per_repeat), (1, 3, 2));
        // Untied: the marks of 20 words, then the gradient with the embedding's 20 x 4 reduced to
        // the rows a window touched: its 12 tokens of the cycle i * 7 % 20 are 12 words.
        assert_eq!(result.summed_bytes_per_step, 4.0 * (20 + model.params().len() - 80 + 12 * 4) as f64);
        assert!(result.tokens_per_sec.min > 0.0 && result.sum_share() >= 0.0 && result.sum_share() < 1.0);
        let error = run_shared(&mut model, &mut Alone, Ids::U32(&ids), 4, (1, 1)).unwrap_err();
        assert!(error.to_string().contains("window rows"), "{error}");
    }
}
