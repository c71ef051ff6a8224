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
//! undone.
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
pub mod run_state;
pub mod schedule;

pub use batcher::{evaluate, Batcher};
pub use error::{TrainError, MAX_RECOVERIES};
pub use run_state::{BestModel, ModelSnapshot, Progress, RunPoint, RunState};
pub use schedule::{Decision, Schedule, ScheduleState};

use crate::files::corpus::Ids;
use crate::model::Rnnlm;
use std::time::Instant;

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
    let window = model.window();
    let batcher = Batcher::new(train.len(), window)
        .ok_or(TrainError::CorpusTooShort { tokens: train.len(), needed: window.tokens() + 1 })?;
    let mut run = Run::start(model, batcher, train, valid, options, observer, resume)?;
    let stop = run.go()?;
    let progress = &run.progress;
    Ok(TrainSummary { epochs: progress.epochs.clone(), iters: progress.iter, final_lr: progress.lr, stop })
}

/// A run in progress: the model and batcher as they stand, `progress` beside them, and
/// `saved`, the last save point (where a divergence rolls back to) with the best model.
struct Run<'a, 'o> {
    model: &'a mut Rnnlm,
    batcher: Batcher,
    train: Ids<'a>,
    valid: Option<Ids<'a>>,
    options: &'a TrainOptions,
    observer: &'o mut dyn Observer,
    progress: Progress,
    saved: RunState,
    /// `2 ln V`: a window loss above twice a uniform guess's is divergence.
    loss_limit: f32,
    total_iters: usize,
    /// When this session started, and the run's wall time before it.
    session_start: Instant,
    elapsed_before: f64,
    epoch_start: Instant,
    xs: Vec<u32>,
    ts: Vec<i32>,
}

impl<'a, 'o> Run<'a, 'o> {
    fn start(
        model: &'a mut Rnnlm,
        mut batcher: Batcher,
        train: Ids<'a>,
        valid: Option<Ids<'a>>,
        options: &'a TrainOptions,
        observer: &'o mut dyn Observer,
        resume: Option<RunState>,
    ) -> Result<Self, TrainError> {
        let saved = match resume {
            Some(state) => {
                restore(model, &state.now.model)?;
                batcher.set_time_idx(state.now.progress.time_idx);
                state
            }
            None => RunState {
                now: RunPoint { progress: Progress::start(options.lr), model: snapshot(model) },
                best: None,
                last_good: None,
            },
        };
        // The run goes on from `now`; a divergence goes back to the last good point.
        let progress = saved.now.progress.clone();
        let saved = match saved.last_good {
            Some(good) => RunState { now: good, best: saved.best, last_good: None },
            None => saved,
        };
        let tokens = model.window().tokens();
        let total_iters =
            options.max_iters.unwrap_or(usize::MAX).min(options.epochs.saturating_mul(batcher.iters_per_epoch()));
        Ok(Run {
            loss_limit: 2.0 * (model.dims().vocab as f32).ln(),
            model,
            batcher,
            train,
            valid,
            options,
            observer,
            elapsed_before: progress.elapsed_sec,
            progress,
            saved,
            total_iters,
            session_start: Instant::now(),
            epoch_start: Instant::now(),
            xs: vec![0; tokens],
            ts: vec![0; tokens],
        })
    }

    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.session_start.elapsed().as_secs_f64()
    }

    /// Trains window after window until the run stops.
    fn go(&mut self) -> Result<Stop, TrainError> {
        // A finished run given more epochs or time goes on from where it ended.
        self.progress.finished = false;
        loop {
            if self.progress.iter >= self.total_iters {
                // Nothing left (a run resumed at its end, or no epochs asked for).
                return self.finish(Stop::Completed);
            }
            if !self.train_window()? {
                continue;
            }
            let p = &self.progress;
            let epoch_done = p.epoch_iters == self.batcher.iters_per_epoch() || p.iter == self.total_iters;
            let over_budget = self.options.time_budget.is_some_and(|budget| self.elapsed() >= budget);
            let checkpoint_due = self.options.checkpoint_every.is_some_and(|n| p.iter.is_multiple_of(n));
            let interrupted = self.options.stop_after.is_some_and(|n| p.iter >= n) || self.observer.stop_requested();
            // The last update may have overflowed a weight without a loss showing it yet: a
            // save point must be good.
            if (epoch_done || over_budget || checkpoint_due || interrupted) && !self.params_finite() {
                self.recover(f32::NAN, false)?;
                continue;
            }
            if epoch_done || over_budget {
                let schedule_done = self.end_epoch()?;
                // The evaluation may be what spends the budget: then no window of the next
                // epoch (and no second evaluation) is started.
                let over_budget = self.options.time_budget.is_some_and(|budget| self.elapsed() >= budget);
                let stop = if over_budget {
                    Some(Stop::TimeBudget)
                } else if schedule_done {
                    Some(Stop::ScheduleDone)
                } else {
                    (self.progress.iter >= self.total_iters).then_some(Stop::Completed)
                };
                if let Some(stop) = stop {
                    return self.finish(stop);
                }
                self.save_point();
            } else if checkpoint_due {
                self.save_point();
            }
            if interrupted {
                return self.interrupt();
            }
        }
    }

    fn params_finite(&self) -> bool {
        self.model.params().iter().all(|v| v.is_finite())
    }

    /// One training window. `false` when it diverged and the run went back to its last save
    /// point.
    fn train_window(&mut self) -> Result<bool, TrainError> {
        if self.progress.epoch_iters == 0 {
            self.epoch_start = Instant::now();
        }
        self.batcher.next_window(self.train, &mut self.xs, &mut self.ts);
        let lr = self.progress.lr;
        let loss = self.model.train_step(&self.xs, &self.ts, lr, self.options.clip)?;
        let p = &mut self.progress;
        p.iter += 1;
        p.epoch_iters += 1;
        let norm_ok = self.model.last_grad_norm().is_none_or(f64::is_finite);
        if !(loss.is_finite() && loss <= self.loss_limit && norm_ok) {
            self.recover(loss, true)?;
            return Ok(false);
        }
        p.epoch_loss_sum += loss as f64;
        self.observer.on_iter(&IterReport { iter: p.iter, epoch: p.epoch + 1, loss, lr });
        Ok(true)
    }

    /// Goes back to the last save point with half the rate, or gives up.
    /// `by_loss`: the window's loss showed it (rather than the weights after its update).
    fn recover(&mut self, loss: f32, by_loss: bool) -> Result<(), TrainError> {
        let (epoch, window, lr) = (self.progress.epoch + 1, self.progress.epoch_iters, self.progress.lr);
        let saved_after = self.saved.now.progress.iter;
        if by_loss && self.progress.iter == saved_after + 1 {
            // The loss came from the saved weights themselves: from there, every rate gives
            // the same loss again.
            return Err(TrainError::DivergedAtSavePoint { epoch, window, loss: loss as f64, saved_after });
        }
        let recoveries = self.progress.recoveries + 1;
        if recoveries > MAX_RECOVERIES {
            return Err(TrainError::Diverged { epoch, window, loss: loss as f64, lr });
        }
        let iter = self.progress.iter;
        self.progress = self.saved.now.progress.clone();
        self.progress.recoveries = recoveries;
        self.progress.lr = lr / 2.0;
        restore(self.model, &self.saved.now.model)?;
        self.batcher.set_time_idx(self.progress.time_idx);
        let back_to_iter = self.progress.iter;
        self.observer.on_event(&Event::Recovered { epoch, window, iter, loss, back_to_iter, lr: lr / 2.0 });
        Ok(())
    }

    /// Evaluates, reports the epoch, and lets the schedule decide; `true` when the schedule
    /// says stop.
    fn end_epoch(&mut self) -> Result<bool, TrainError> {
        let train_seconds = self.epoch_start.elapsed().as_secs_f64();
        let valid_ppl = match self.valid {
            Some(valid) => {
                let carried = self.model.state().to_vec();
                let ppl = evaluate(self.model, valid)?;
                self.model.set_state(&carried)?;
                ppl
            }
            None => None,
        };
        let p = &mut self.progress;
        p.epoch += 1;
        let decision = self.options.schedule.after_epoch(&mut p.schedule, p.epoch, p.lr, valid_ppl);
        let report = EpochReport {
            epoch: p.epoch,
            train_ppl: (p.epoch_loss_sum / p.epoch_iters as f64).exp(),
            valid_ppl,
            tokens_per_sec: (p.epoch_iters * self.model.window().tokens()) as f64 / train_seconds.max(1e-9),
            elapsed_sec: self.elapsed_before + self.session_start.elapsed().as_secs_f64(),
            iters: p.epoch_iters,
            trained_lr: p.lr,
            lr: decision.lr,
        };
        p.epochs.push(report);
        p.epoch_iters = 0;
        p.epoch_loss_sum = 0.0;
        let (epoch, iter, from) = (p.epoch, p.iter, p.lr);
        p.lr = decision.lr;
        self.observer.on_epoch(&report);
        if self.options.keep_best {
            self.keep_best(&decision, epoch, iter, valid_ppl)?;
        }
        if decision.lr != from {
            self.observer.on_event(&Event::RateChanged { epoch, iter, from, to: decision.lr });
        }
        Ok(decision.stop)
    }

    /// Keeps the model of a new best epoch, or goes back to the best after a worse one.
    fn keep_best(
        &mut self,
        decision: &Decision,
        epoch: usize,
        iter: usize,
        valid: Option<f64>,
    ) -> Result<(), TrainError> {
        if let (true, Some(v)) = (decision.new_best, valid) {
            let model = snapshot_into(self.model, self.saved.best.take().map(|b| b.model));
            self.saved.best = Some(BestModel { epoch, valid_ppl: v, model });
        } else if let (true, Some(best)) = (decision.worse, &self.saved.best) {
            // The run goes on with the data and the dropout masks it would have had.
            let windows = self.model.training_windows();
            restore(self.model, &best.model)?;
            self.model.set_training_windows(windows);
            let event = Event::BackToBest {
                epoch,
                iter,
                valid_ppl: valid.unwrap_or(f64::NAN),
                best_epoch: best.epoch,
                best_valid_ppl: best.valid_ppl,
            };
            self.observer.on_event(&event);
        }
        Ok(())
    }

    /// Makes where the run stands its new last good point, and hands it to the observer.
    fn save_point(&mut self) {
        self.stamp();
        self.saved.now.progress.clone_from(&self.progress);
        let buffers = std::mem::take(&mut self.saved.now.model);
        self.saved.now.model = snapshot_into(self.model, Some(buffers));
        self.observer.on_save_point(&self.saved);
    }

    /// Brings the progress's wall time and data position up to this moment.
    fn stamp(&mut self) {
        self.progress.elapsed_sec = self.elapsed();
        self.progress.time_idx = self.batcher.time_idx();
    }

    fn finish(&mut self, stop: Stop) -> Result<Stop, TrainError> {
        self.progress.finished = true;
        self.save_point();
        Ok(stop)
    }

    /// A save point that is not a point to roll back to: the last good point goes with it.
    fn interrupt(&mut self) -> Result<Stop, TrainError> {
        if self.saved.now.progress == self.progress {
            self.observer.on_save_point(&self.saved);
            return Ok(Stop::Interrupted);
        }
        self.stamp();
        // The run ends here: what it saved moves into the state rather than being copied.
        let last_good =
            RunPoint { progress: self.saved.now.progress.clone(), model: std::mem::take(&mut self.saved.now.model) };
        let state = RunState {
            now: RunPoint { progress: self.progress.clone(), model: snapshot(self.model) },
            best: self.saved.best.take(),
            last_good: Some(last_good),
        };
        self.observer.on_save_point(&state);
        Ok(Stop::Interrupted)
    }
}

fn snapshot(model: &Rnnlm) -> ModelSnapshot {
    snapshot_into(model, None)
}

/// The model's snapshot, in `buffers` when given (no allocation once they have the size).
fn snapshot_into(model: &Rnnlm, buffers: Option<ModelSnapshot>) -> ModelSnapshot {
    let mut s = buffers.unwrap_or_default();
    s.params.clear();
    s.params.extend_from_slice(model.params());
    s.state.clear();
    s.state.extend_from_slice(model.state());
    s.training_windows = model.training_windows();
    s
}

fn restore(model: &mut Rnnlm, s: &ModelSnapshot) -> Result<(), TrainError> {
    if s.params.len() != model.params().len() || s.state.len() != model.state().len() {
        return Err(TrainError::Invalid(format!(
            "the saved run has {} parameters and a state of {}, the model {} and {}",
            s.params.len(),
            s.state.len(),
            model.params().len(),
            model.state().len()
        )));
    }
    model.params_mut().copy_from_slice(&s.params);
    model.set_state(&s.state)?;
    model.set_training_windows(s.training_windows);
    Ok(())
}
