//! The spec's batching: the training batcher and the evaluation loop.

use crate::files::corpus::Ids;
use crate::model::{BatchShare, ModelError, Rnnlm, Window};
use std::ops::Range;

/// The spec's training batcher: `B` rows reading the corpus at offsets `i * jump`, all advanced
/// by one global `time_idx` that is never reset between epochs.
#[derive(Clone, Debug)]
pub struct Batcher {
    window: Window,
    offsets: Vec<usize>,
    data_size: usize,
    time_idx: usize,
}

impl Batcher {
    /// A batcher over a corpus of `corpus_len` tokens; `None` when the corpus does not fill
    /// one window (fewer than `B * T + 1` tokens).
    pub fn new(corpus_len: usize, window: Window) -> Option<Batcher> {
        let data_size = corpus_len.checked_sub(1)?;
        if data_size / window.tokens() == 0 {
            return None;
        }
        let jump = (corpus_len - 1) / window.batch;
        let offsets = (0..window.batch).map(|i| i * jump).collect();
        Some(Batcher { window, offsets, data_size, time_idx: 0 })
    }

    /// The window it cuts.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Windows in one epoch: `data_size / (B * T)`.
    pub fn iters_per_epoch(&self) -> usize {
        self.data_size / self.window.tokens()
    }

    /// Fills the next window: `xs[b][t] = corpus[(offsets[b] + time_idx) % data_size]` and
    /// `ts[b][t]` the token after it, batch-major, advancing `time_idx` by `T`. `xs` and `ts`
    /// are `B x T`; panics, before writing anything, if not.
    pub fn next_window(&mut self, corpus: Ids<'_>, xs: &mut [u32], ts: &mut [i32]) {
        let Window { batch, time } = self.window;
        let tokens = self.window.tokens();
        assert!(
            xs.len() == tokens && ts.len() == tokens,
            "Batcher::next_window: xs has {} elements and ts {}, but batch x time is {batch} x {time} = {tokens}",
            xs.len(),
            ts.len()
        );
        for t in 0..time {
            for b in 0..batch {
                let position = (self.offsets[b] + self.time_idx) % self.data_size;
                xs[b * time + t] = corpus.get(position);
                ts[b * time + t] = corpus.get(position + 1) as i32;
            }
            self.time_idx += 1;
        }
    }

    /// The global time index (tokens consumed per row so far).
    pub fn time_idx(&self) -> usize {
        self.time_idx
    }

    /// Moves to global time index `time_idx`, as a batcher that has read `time_idx / T`
    /// windows stands (for resuming a run).
    pub fn set_time_idx(&mut self, time_idx: usize) {
        self.time_idx = time_idx;
    }
}

/// Perplexity of `model` on `corpus` with the spec's evaluation batching: the state is reset
/// first, `iters = (len - 1) / (B * T)`, `jump = (len - 1) / B`, window `k` reads
/// `corpus[(k * T + i * jump + t) % len]` and predicts the next position. The parameters are
/// not changed; the hidden state is left as evaluation leaves it. `None` when the corpus does
/// not fill one window.
pub fn evaluate(model: &mut Rnnlm, corpus: Ids<'_>) -> Result<Option<f64>, ModelError> {
    let batch = model.window().batch;
    let loss = evaluation_loss(model, corpus, batch, 0..batch)?;
    Ok(loss.map(|(total, iters)| (total / iters as f64).exp()))
}

/// [`evaluate`]'s window losses summed, and the number of windows, for a batch of `batch`
/// rows of which the model holds `rows`: when those are fewer than the batch, the sum is
/// their part of it (each window's loss divided by the whole batch's targets).
pub(super) fn evaluation_loss(
    model: &mut Rnnlm,
    corpus: Ids<'_>,
    batch: usize,
    rows: Range<usize>,
) -> Result<Option<(f64, usize)>, ModelError> {
    let time = model.window().time;
    let whole = Window { batch, time };
    let len = corpus.len();
    let iters = len.saturating_sub(1) / whole.tokens();
    if len < 2 || iters == 0 {
        return Ok(None);
    }
    let jump = (len - 1) / batch;
    let tokens = model.window().tokens();
    let (mut xs, mut ts) = (vec![0u32; tokens], vec![0i32; tokens]);
    let share = BatchShare { first_row: rows.start, batch_targets: whole.tokens() };
    model.reset_state();
    let mut total = 0.0f64;
    for k in 0..iters {
        for (r, b) in rows.clone().enumerate() {
            for t in 0..time {
                let position = (k * time + b * jump + t) % len;
                xs[r * time + t] = corpus.get(position);
                ts[r * time + t] = corpus.get((position + 1) % len) as i32;
            }
        }
        let loss =
            if rows.len() == batch { model.forward(&xs, &ts)? } else { model.forward_shared(&xs, &ts, share)? };
        total += loss as f64;
    }
    Ok(Some((total, iters)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batcher_follows_the_spec() {
        let corpus: Vec<u32> = (0..23).collect();
        let ids = Ids::U32(&corpus);
        let window = Window { batch: 2, time: 3 };
        let mut batcher = Batcher::new(corpus.len(), window).unwrap();
        // data_size 22, jump 11, iters 22 / 6 = 3.
        assert_eq!(batcher.iters_per_epoch(), 3);
        let mut xs = vec![0; 6];
        let mut ts = vec![0; 6];
        batcher.next_window(ids, &mut xs, &mut ts);
        assert_eq!(xs, vec![0, 1, 2, 11, 12, 13]);
        assert_eq!(ts, vec![1, 2, 3, 12, 13, 14]);
        for _ in 0..3 {
            batcher.next_window(ids, &mut xs, &mut ts);
        }
        // time_idx 9..12 wraps modulo data_size for the second row: 20, 21, 0.
        assert_eq!(xs, vec![9, 10, 11, 20, 21, 0]);
        assert_eq!(ts, vec![10, 11, 12, 21, 22, 1]);
        assert_eq!(batcher.time_idx(), 12);
    }

    #[test]
    fn a_corpus_shorter_than_a_window_has_no_batcher() {
        assert!(Batcher::new(6, Window { batch: 2, time: 3 }).is_none());
        assert!(Batcher::new(7, Window { batch: 2, time: 3 }).is_some());
        assert!(Batcher::new(0, Window { batch: 1, time: 1 }).is_none());
    }
}
