//! A run in progress: the loop of [`train`](super::train) and
//! [`train_shared`](super::train_shared) from window to window and save point to save point.

use super::group::{evaluate_shared, step_in_group, Sharing};
use super::{evaluate, Batcher, BestModel, Decision, EpochReport, Event, IterReport, ModelSnapshot, Observer};
use super::{Progress, RunPoint, RunState, Stop, TrainError, TrainOptions, TrainSummary, MAX_RECOVERIES};
use crate::files::corpus::Ids;
use crate::model::Rnnlm;
use std::time::Instant;

/// A run in progress: the model and batcher as they stand, `progress` beside them, and
/// `saved`, the last save point (where a divergence rolls back to) with the best model.
pub(super) struct Run<'a, 'o> {
    model: &'a mut Rnnlm,
    /// The group and this member's rows, when training as one of a group.
    sharing: Option<Sharing<'o>>,
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
    /// The whole batch's window (this member's rows of it, with a group).
    xs: Vec<u32>,
    ts: Vec<i32>,
}

/// Whether the run stops after a window, as the whole group sees it.
#[derive(Clone, Copy)]
struct WindowEnd {
    over_budget: bool,
    interrupted: bool,
}

impl<'a, 'o> Run<'a, 'o> {
    pub(super) fn start(
        model: &'a mut Rnnlm,
        mut batcher: Batcher,
        (train, valid): (Ids<'a>, Option<Ids<'a>>),
        options: &'a TrainOptions,
        observer: &'o mut dyn Observer,
        resume: Option<RunState>,
        mut sharing: Option<Sharing<'o>>,
    ) -> Result<Self, TrainError> {
        let saved = match resume {
            Some(state) => {
                restore(model, sharing.as_ref(), &state.now.model)?;
                batcher.set_time_idx(state.now.progress.time_idx);
                state
            }
            None => RunState {
                now: RunPoint {
                    progress: Progress::start(options.lr),
                    model: snapshot_into(model, sharing.as_mut(), None),
                },
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
        let tokens = batcher.window().tokens();
        let total_iters =
            options.max_iters.unwrap_or(usize::MAX).min(options.epochs.saturating_mul(batcher.iters_per_epoch()));
        Ok(Run {
            loss_limit: 2.0 * (model.dims().vocab as f32).ln(),
            model,
            sharing,
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

    pub(super) fn summary(&self, stop: Stop) -> TrainSummary {
        let p = &self.progress;
        TrainSummary { epochs: p.epochs.clone(), iters: p.iter, final_lr: p.lr, stop }
    }

    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.session_start.elapsed().as_secs_f64()
    }

    /// Trains window after window until the run stops.
    pub(super) fn go(&mut self) -> Result<Stop, TrainError> {
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
            let checkpoint_due = self.options.checkpoint_every.is_some_and(|n| p.iter.is_multiple_of(n));
            let interrupted = self.options.stop_after.is_some_and(|n| p.iter >= n) || self.observer.stop_requested();
            let WindowEnd { over_budget, interrupted } =
                self.agree(WindowEnd { over_budget: self.over_budget(), interrupted });
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
                let over_budget =
                    self.agree(WindowEnd { over_budget: self.over_budget(), interrupted: false }).over_budget;
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

    fn over_budget(&self) -> bool {
        self.options.time_budget.is_some_and(|budget| self.elapsed() >= budget)
    }

    /// One training window. `false` when it diverged and the run went back to its last save
    /// point.
    fn train_window(&mut self) -> Result<bool, TrainError> {
        if self.progress.epoch_iters == 0 {
            self.epoch_start = Instant::now();
        }
        self.batcher.next_window(self.train, &mut self.xs, &mut self.ts);
        let lr = self.progress.lr;
        let loss = self.step(lr)?;
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

    /// The training step of the window in `xs` and `ts` (this member's rows of it, with a
    /// group); the whole batch's loss.
    fn step(&mut self, lr: f32) -> Result<f32, TrainError> {
        let clip = self.options.clip;
        Ok(match &mut self.sharing {
            None => self.model.train_step(&self.xs, &self.ts, lr, clip)?,
            Some(sharing) => step_in_group(self.model, sharing.group, (&self.xs, &self.ts), (lr, clip))?,
        })
    }

    /// `end` as the whole group sees it (as it is, without a group).
    fn agree(&mut self, end: WindowEnd) -> WindowEnd {
        let Some(sharing) = &mut self.sharing else { return end };
        let [over_budget, interrupted] = sharing.any([end.over_budget, end.interrupted]);
        WindowEnd { over_budget, interrupted }
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
        restore(self.model, self.sharing.as_ref(), &self.saved.now.model)?;
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
                let ppl = match &mut self.sharing {
                    None => evaluate(self.model, valid)?,
                    Some(sharing) => evaluate_shared(self.model, valid, sharing)?,
                };
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
            tokens_per_sec: (p.epoch_iters * self.batcher.window().tokens()) as f64 / train_seconds.max(1e-9),
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
            let model = snapshot_into(self.model, self.sharing.as_mut(), self.saved.best.take().map(|b| b.model));
            self.saved.best = Some(BestModel { epoch, valid_ppl: v, model });
        } else if let (true, Some(best)) = (decision.worse, &self.saved.best) {
            // The run goes on with the data and the dropout masks it would have had.
            let windows = self.model.training_windows();
            restore(self.model, self.sharing.as_ref(), &best.model)?;
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
        self.saved.now.model = snapshot_into(self.model, self.sharing.as_mut(), Some(buffers));
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
            now: RunPoint {
                progress: self.progress.clone(),
                model: snapshot_into(self.model, self.sharing.as_mut(), None),
            },
            best: self.saved.best.take(),
            last_good: Some(last_good),
        };
        self.observer.on_save_point(&state);
        Ok(Stop::Interrupted)
    }
}

/// The model's snapshot, in `buffers` when given (no allocation once they have the size);
/// with a group, its state is the whole batch's.
fn snapshot_into(model: &Rnnlm, sharing: Option<&mut Sharing<'_>>, buffers: Option<ModelSnapshot>) -> ModelSnapshot {
    let mut s = buffers.unwrap_or_default();
    s.params.clear();
    s.params.extend_from_slice(model.params());
    match sharing {
        None => {
            s.state.clear();
            s.state.extend_from_slice(model.state());
        }
        Some(sharing) => sharing.gather_state(model, &mut s.state),
    }
    s.training_windows = model.training_windows();
    s
}

/// Puts a snapshot back into the model (with a group, this member's rows of its state).
fn restore(model: &mut Rnnlm, sharing: Option<&Sharing<'_>>, s: &ModelSnapshot) -> Result<(), TrainError> {
    if s.params.len() != model.params().len() {
        return Err(TrainError::Invalid(format!(
            "the saved run has {} parameters, the model {}",
            s.params.len(),
            model.params().len()
        )));
    }
    match sharing {
        None if s.state.len() != model.state().len() => {
            return Err(TrainError::Invalid(format!(
                "the saved run has a state of {}, the model {}",
                s.state.len(),
                model.state().len()
            )))
        }
        None => model.set_state(&s.state)?,
        Some(sharing) => sharing.scatter_state(&s.state, model)?,
    }
    model.params_mut().copy_from_slice(&s.params);
    model.set_training_windows(s.training_windows);
    Ok(())
}
