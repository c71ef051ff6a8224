//! Truncated-BPTT training and evaluation: the corpus cut into `B` rows read `T` steps at a
//! time, the state carried from window to window.
//!
//! The trainer reads token ids straight from a memory-mapped token file ([`Ids`]) and reports
//! through an [`Observer`], so that the command line (or any embedding tool) decides what to
//! print and write; nothing here touches files or the terminal.
//!
//! A run moves from save point to save point (every epoch's end, every `checkpoint_every`
//! windows, and its stop). At each, the observer gets a [`RunState`] from which
//! [`train`] continues exactly as the uninterrupted run would have gone on; the last save
//! point is also where a divergence rolls back to. After each epoch the [`Schedule`] sets the
//! next rate and may end the run; with `keep_best` an epoch that made validation worse is
//! undone. [`train_shared`] runs the same loop as one member of a [`Group`] (MPI's processes,
//! say) that trains the batch together, each member its rows.
//!
//! ```
//! use rnnlm::files::corpus::Ids;
//! use rnnlm::train::{train, EpochReport, IterReport, Observer, TrainOptions};
//! use rnnlm::{Dims, Rnnlm, Window};
//!
//! /// Keeps each epoch's training perplexity.
//! struct Perplexities(Vec<f64>);
//! impl Observer for Perplexities {
//!     fn on_iter(&mut self, _: &IterReport) {}
//!     fn on_epoch(&mut self, report: &EpochReport) {
//!         self.0.push(report.train_ppl);
//!     }
//! }
//!
//! // A corpus that repeats itself: the model learns it.
//! let corpus: Vec<u32> = (0..600).map(|i| (i % 12) as u32).collect();
//! let mut model = Rnnlm::new(Dims { vocab: 12, embed: 16, hidden: 16 }, Window { batch: 4, time: 5 }, 1)?;
//! let mut seen = Perplexities(Vec::new());
//! train(&mut model, Ids::U32(&corpus), None, &TrainOptions::constant(5, 0.5), &mut seen, None)?;
//! assert!(seen.0[4] < seen.0[0] / 2.0);
//! # Ok::<(), rnnlm::train::TrainError>(())
//! ```

mod batcher;
mod error;
mod group;
mod run;
pub mod run_state;
pub mod schedule;

pub use batcher::{evaluate, Batcher};
pub use error::{TrainError, MAX_RECOVERIES};
pub use group::{step_in_group, Group};
pub use run_state::{BestModel, ModelSnapshot, Progress, RunPoint, RunState};
pub use schedule::{Decision, Schedule, ScheduleState};

use crate::files::corpus::Ids;
use crate::model::{Rnnlm, Window};
use group::Sharing;
use run::Run;

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Epochs in all (a resumed run counts the epochs it had already trained).
    pub epochs: usize,
    /// Stop after this many iterations in total, even mid-epoch.
    pub max_iters: Option<usize>,
    /// The learning rate of the first window.
    pub lr: f32,
    /// Global-norm gradient clipping.
    pub clip: Option<f32>,
    /// How the rate changes after each epoch.
    pub schedule: Schedule,
    /// When an epoch makes validation perplexity worse than the best so far, go back to the
    /// best epoch's weights and hidden state before going on; the checkpoint holds the best.
    pub keep_best: bool,
    /// Stop after the window that crosses this many seconds of wall time (over all sessions
    /// of the run), then evaluate and end as after an epoch.
    pub time_budget: Option<f64>,
    /// A save point (and a point to roll back to) every this many windows, besides every
    /// epoch's end.
    pub checkpoint_every: Option<usize>,
    /// Stop after this many windows in total as if interrupted (resumable).
    pub stop_after: Option<usize>,
}

impl TrainOptions {
    /// `epochs` epochs at a constant rate `lr`, nothing else.
    pub fn constant(epochs: usize, lr: f32) -> TrainOptions {
        TrainOptions {
            epochs,
            max_iters: None,
            lr,
            clip: None,
            schedule: Schedule::Constant,
            keep_best: false,
            time_budget: None,
            checkpoint_every: None,
            stop_after: None,
        }
    }
}

/// One training iteration, as reported to the [`Observer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterReport {
    /// Iterations done so far, this one included (1-based).
    pub iter: usize,
    /// The epoch this iteration belongs to (1-based).
    pub epoch: usize,
    /// The window's loss.
    pub loss: f32,
    /// The rate it was trained at.
    pub lr: f32,
}

/// One finished (or, with `max_iters`, cut-short) epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// The epoch (from 1).
    pub epoch: usize,
    /// `exp(mean window loss)` over the epoch's iterations.
    pub train_ppl: f64,
    /// Validation perplexity after it, if there is a validation split.
    pub valid_ppl: Option<f64>,
    /// Training tokens per second of training time (evaluation excluded).
    pub tokens_per_sec: f64,
    /// Wall time since training started.
    pub elapsed_sec: f64,
    /// Iterations in this epoch (fewer than a full epoch when `max_iters` cut it).
    pub iters: usize,
    /// The learning rate this epoch ended at (its last windows').
    pub trained_lr: f32,
    /// The learning rate used in the next epoch (after any decay).
    pub lr: f32,
}

/// Something the schedule or the divergence guard did, as reported to the [`Observer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// The rate of the next epoch differs from the last one's.
    RateChanged {
        /// The epoch (from 1).
        epoch: usize,
        /// The iteration at the epoch's end.
        iter: usize,
        /// The rate before.
        from: f32,
        /// The rate after.
        to: f32,
    },
    /// `keep_best`: the epoch made validation worse, so the best epoch's model came back.
    BackToBest {
        /// The epoch (from 1).
        epoch: usize,
        /// The iteration at the epoch's end.
        iter: usize,
        /// This epoch's validation perplexity.
        valid_ppl: f64,
        /// The best epoch so far.
        best_epoch: usize,
        /// Its validation perplexity.
        best_valid_ppl: f64,
    },
    /// A window's loss (or the gradient norm) showed divergence: the run went back to its last
    /// save point and halved the rate.
    Recovered {
        /// The epoch (from 1).
        epoch: usize,
        /// The window within the epoch (from 1).
        window: usize,
        /// The iteration that diverged.
        iter: usize,
        /// Its loss (or NaN).
        loss: f32,
        /// The iteration of the save point gone back to.
        back_to_iter: usize,
        /// The new, halved rate.
        lr: f32,
    },
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Its epochs (or `max_iters`) are done.
    Completed,
    /// The schedule (`newbob`) found nothing more to gain.
    ScheduleDone,
    /// The time budget is spent.
    TimeBudget,
    /// The observer asked it to stop, or `stop_after` windows are done: it can be resumed.
    Interrupted,
}

/// Receives progress while training runs, and may stop it.
pub trait Observer {
    /// Called after every training window.
    fn on_iter(&mut self, report: &IterReport);
    /// Called after every epoch, once it is evaluated.
    fn on_epoch(&mut self, report: &EpochReport);
    /// Called when the schedule or the divergence guard acts.
    fn on_event(&mut self, _event: &Event) {}
    /// Called at every save point (every epoch's end, every `checkpoint_every` windows, and
    /// when the run stops) with everything needed to continue it.
    fn on_save_point(&mut self, _state: &RunState) {}
    /// Polled after every window: `true` stops the run at a save point, resumable.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// The outcome of [`train`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Every epoch of the run (those of earlier sessions too, when resumed).
    pub epochs: Vec<EpochReport>,
    /// Iterations trained in all.
    pub iters: usize,
    /// The rate the next window would have had.
    pub final_lr: f32,
    /// Why the run stopped.
    pub stop: Stop,
}

fn check_options(options: &TrainOptions) -> Result<(), TrainError> {
    let positive = |name: &str, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(TrainError::Invalid(format!("{name} must be a positive number, not {value}")))
        }
    };
    positive("the learning rate", options.lr as f64)?;
    if let Some(clip) = options.clip {
        positive("the clipping norm", clip as f64)?;
    }
    if let Some(budget) = options.time_budget {
        positive("the time budget", budget)?;
    }
    if options.checkpoint_every == Some(0) {
        return Err(TrainError::Invalid("checkpoints every 0 windows make no sense".into()));
    }
    Ok(())
}

/// Trains `model` on `train` for `options.epochs` epochs (or `options.max_iters` iterations),
/// evaluating on `valid` after each epoch when given. The model's window sets `B` and `T`.
/// With `resume`, continues that run (saved by an earlier call's save point) exactly as it
/// would have gone on; the model must have the run's architecture.
pub fn train(
    model: &mut Rnnlm,
    train: Ids<'_>,
    valid: Option<Ids<'_>>,
    options: &TrainOptions,
    observer: &mut dyn Observer,
    resume: Option<RunState>,
) -> Result<TrainSummary, TrainError> {
    check_options(options)?;
    let batcher = batcher(train, model.window())?;
    let mut run = Run::start(model, batcher, (train, valid), options, observer, resume, None)?;
    let stop = run.go()?;
    Ok(run.summary(stop))
}

/// [`train`] as one member of a group that trains the model together ([`Group`]): `model`'s
/// window holds this member's rows of the whole batch ([`Group::rows`]; the whole batch is the
/// sum of the members' windows), and every member calls this with the same corpus, options and
/// run state. The run is the whole batch's: the same losses, decisions and run states as one
/// process training it with [`train`] (to the rounding of the sums), and every member's weights
/// the same bit for bit. Observers see the same reports on every member (the stop request of
/// any member stops them all); `resume` may be a run state of one process or of a group of
/// another size.
pub fn train_shared(
    model: &mut Rnnlm,
    group: &mut dyn Group,
    train: Ids<'_>,
    valid: Option<Ids<'_>>,
    options: &TrainOptions,
    observer: &mut dyn Observer,
    resume: Option<RunState>,
) -> Result<TrainSummary, TrainError> {
    check_options(options)?;
    let window = model.window();
    let mut sums = [window.batch as f64];
    group.sum_f64(&mut sums);
    let batch = sums[0] as usize;
    let rows = group.rows(batch);
    let mut sharing = Sharing { group, batch, rows };
    // Every member must agree that the windows fit before any goes on.
    let misfit = sharing.rows.len() != window.batch || window.batch == 0;
    if sharing.any([misfit, false])[0] {
        return Err(TrainError::Invalid(format!(
            "a group of {} training a batch of {batch} rows: every member's window must hold its rows (this one's {:?}, {} of them), and every member some",
            sharing.group.size(),
            sharing.rows,
            window.batch
        )));
    }
    let batcher = batcher(train, Window { batch, time: window.time })?;
    let mut run = Run::start(model, batcher, (train, valid), options, observer, resume, Some(sharing))?;
    let stop = run.go()?;
    Ok(run.summary(stop))
}

fn batcher(train: Ids<'_>, window: Window) -> Result<Batcher, TrainError> {
    Batcher::new(train.len(), window)
        .ok_or(TrainError::CorpusTooShort { tokens: train.len(), needed: window.tokens() + 1 })
}
