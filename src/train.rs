//! Truncated-BPTT training and evaluation exactly as `../shared/SPEC.md` batches them.
//!
//! The trainer reads token ids straight from a memory-mapped token file ([`Ids`]) and reports
//! through an [`Observer`], so that the command line (or any embedding tool) decides what to
//! print; nothing here touches files or the terminal.

use crate::corpus::Ids;
use crate::model::{ModelError, Rnnlm, Window};
use std::fmt;
use std::time::Instant;

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
}

/// Perplexity of `model` on `corpus` with the spec's evaluation batching: the state is reset
/// first, `iters = (len - 1) / (B * T)`, `jump = (len - 1) / B`, window `k` reads
/// `corpus[(k * T + i * jump + t) % len]` and predicts the next position. The parameters are
/// not changed; the hidden state is left as evaluation leaves it. `None` when the corpus does
/// not fill one window.
pub fn evaluate(model: &mut Rnnlm, corpus: Ids<'_>) -> Result<Option<f64>, ModelError> {
    let window = model.window();
    let Window { batch, time } = window;
    let len = corpus.len();
    if len < 2 {
        return Ok(None);
    }
    let iters = (len - 1) / window.tokens();
    if iters == 0 {
        return Ok(None);
    }
    let jump = (len - 1) / batch;
    let mut xs = vec![0u32; window.tokens()];
    let mut ts = vec![0i32; window.tokens()];
    model.reset_state();
    let mut total = 0.0f64;
    for k in 0..iters {
        for b in 0..batch {
            for t in 0..time {
                let position = (k * time + b * jump + t) % len;
                xs[b * time + t] = corpus.get(position);
                ts[b * time + t] = corpus.get((position + 1) % len) as i32;
            }
        }
        total += model.forward(&xs, &ts)? as f64;
    }
    Ok(Some((total / iters as f64).exp()))
}

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub epochs: usize,
    /// Stop after this many iterations in total, even mid-epoch.
    pub max_iters: Option<usize>,
    pub lr: f32,
    /// Global-norm gradient clipping.
    pub clip: Option<f32>,
    /// Divide the learning rate by this factor whenever the validation perplexity is worse than
    /// the best so far.
    pub lr_decay: Option<f32>,
}

/// One training iteration, as reported to the [`Observer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterReport {
    /// Iterations done so far, this one included (1-based).
    pub iter: usize,
    /// The epoch this iteration belongs to (1-based).
    pub epoch: usize,
    pub loss: f32,
    pub lr: f32,
}

/// One finished (or, with `max_iters`, cut-short) epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    pub epoch: usize,
    /// `exp(mean window loss)` over the epoch's iterations.
    pub train_ppl: f64,
    pub valid_ppl: Option<f64>,
    /// Training tokens per second of training time (evaluation excluded).
    pub tokens_per_sec: f64,
    /// Wall time since training started.
    pub elapsed_sec: f64,
    /// Iterations in this epoch (fewer than a full epoch when `max_iters` cut it).
    pub iters: usize,
    /// The learning rate used in the next epoch (after any decay).
    pub lr: f32,
}

/// Receives progress while training runs.
pub trait Observer {
    fn on_iter(&mut self, report: &IterReport);
    fn on_epoch(&mut self, report: &EpochReport);
}

/// Why training stopped early.
#[derive(Debug)]
pub enum TrainError {
    /// The model rejected its input (a bug in the caller: ids out of range, wrong sizes).
    Model(ModelError),
    /// The corpus does not fill one `B x T` window.
    CorpusTooShort { tokens: usize, needed: usize },
    /// The loss became NaN or infinite, or an epoch's perplexity overflowed.
    Diverged { iter: usize, loss: f64 },
    /// A hyper-parameter makes no sense.
    Invalid(String),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Model(e) => write!(f, "{e}"),
            TrainError::CorpusTooShort { tokens, needed } => write!(
                f,
                "the training corpus has {tokens} tokens, shorter than one batch x time window plus one ({needed})"
            ),
            TrainError::Diverged { iter, loss } => write!(
                f,
                "training diverged by iteration {iter} (loss {loss}, perplexity beyond f64); lower --lr or set --clip"
            ),
            TrainError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<ModelError> for TrainError {
    fn from(e: ModelError) -> Self {
        TrainError::Model(e)
    }
}

/// The outcome of [`train`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    pub epochs: Vec<EpochReport>,
    pub iters: usize,
    pub final_lr: f32,
}

/// Trains `model` on `train` for `options.epochs` epochs (or `options.max_iters` iterations),
/// evaluating on `valid` after each epoch when given. The model's window sets `B` and `T`.
pub fn train(
    model: &mut Rnnlm,
    train: Ids<'_>,
    valid: Option<Ids<'_>>,
    options: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<TrainSummary, TrainError> {
    let positive = |name: &str, value: f32| {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(TrainError::Invalid(format!("{name} must be a positive number, not {value}")))
        }
    };
    positive("the learning rate", options.lr)?;
    if let Some(clip) = options.clip {
        positive("the clipping norm", clip)?;
    }
    if let Some(decay) = options.lr_decay {
        if !(decay.is_finite() && decay >= 1.0) {
            return Err(TrainError::Invalid(format!("the learning-rate decay must be a number >= 1, not {decay}")));
        }
    }
    let window = model.window();
    let mut batcher = Batcher::new(train.len(), window)
        .ok_or(TrainError::CorpusTooShort { tokens: train.len(), needed: window.tokens() + 1 })?;
    let iters_per_epoch = batcher.iters_per_epoch();
    let total_iters = options.max_iters.unwrap_or(usize::MAX).min(options.epochs.saturating_mul(iters_per_epoch));

    let mut xs = vec![0u32; window.tokens()];
    let mut ts = vec![0i32; window.tokens()];
    let mut saved_state = vec![0.0f32; model.state().len()];
    let mut lr = options.lr;
    let mut best_valid = f64::INFINITY;
    let mut reports = Vec::new();
    let start = Instant::now();
    let mut iter = 0;
    let mut epoch = 0;
    while iter < total_iters {
        epoch += 1;
        let epoch_start = Instant::now();
        let mut loss_sum = 0.0f64;
        let mut epoch_iters = 0;
        while epoch_iters < iters_per_epoch && iter < total_iters {
            batcher.next_window(train, &mut xs, &mut ts);
            let loss = model.train_step(&xs, &ts, lr, options.clip)?;
            iter += 1;
            epoch_iters += 1;
            if !loss.is_finite() {
                return Err(TrainError::Diverged { iter, loss: loss as f64 });
            }
            loss_sum += loss as f64;
            observer.on_iter(&IterReport { iter, epoch, loss, lr });
        }
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        let valid_ppl = match valid {
            Some(valid) => {
                saved_state.copy_from_slice(model.state());
                let ppl = evaluate(model, valid)?;
                model.set_state(&saved_state)?;
                ppl
            }
            None => None,
        };
        if let (Some(ppl), Some(decay)) = (valid_ppl, options.lr_decay) {
            if ppl > best_valid {
                lr /= decay;
            }
        }
        if let Some(ppl) = valid_ppl {
            best_valid = best_valid.min(ppl);
        }
        let mean_loss = loss_sum / epoch_iters as f64;
        // A mean loss above ~709 nats means the correct token got probability below e^-709:
        // the weights have blown up even if every loss is still a finite number.
        if !mean_loss.exp().is_finite() {
            return Err(TrainError::Diverged { iter, loss: mean_loss });
        }
        let report = EpochReport {
            epoch,
            train_ppl: mean_loss.exp(),
            valid_ppl,
            tokens_per_sec: (epoch_iters * window.tokens()) as f64 / train_seconds.max(1e-9),
            elapsed_sec: start.elapsed().as_secs_f64(),
            iters: epoch_iters,
            lr,
        };
        observer.on_epoch(&report);
        reports.push(report);
    }
    Ok(TrainSummary { epochs: reports, iters: iter, final_lr: lr })
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
