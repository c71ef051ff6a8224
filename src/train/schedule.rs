//! Learning-rate schedules: what happens to the rate, and whether training goes on, after each
//! epoch's validation perplexity is known.
//!
//! A schedule is a pure function of the validation perplexities seen so far (kept in
//! [`ScheduleState`]), so a resumed run takes exactly the decisions the uninterrupted run takes.

use std::fmt;
use std::str::FromStr;

/// How the learning rate changes from epoch to epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Divide the rate by `factor` whenever validation perplexity is worse than the best so far.
    Plateau {
        /// The divisor, above 1.
        factor: f32,
    },
    /// Mikolov's RNNLM schedule: once validation entropy (log perplexity) improves by less than
    /// `threshold` (relative to the best so far), halve the rate after every epoch; stop the
    /// next time it improves by less than the threshold.
    Newbob {
        /// The relative improvement below which the rate is halved.
        threshold: f64,
    },
    /// Divide the rate by `factor` after every epoch from `from_epoch - 1` on, so that epoch
    /// `from_epoch` is the first one trained at `lr / factor`.
    Step {
        /// The first epoch at the divided rate.
        from_epoch: usize,
        /// The divisor, above 1.
        factor: f32,
    },
}

/// The threshold of `newbob` when none is given: 0.3 %, Mikolov's RNNLM's.
pub const NEWBOB_THRESHOLD: f64 = 0.003;

impl Schedule {
    /// Whether the schedule needs validation perplexities to decide anything.
    pub fn needs_validation(&self) -> bool {
        matches!(self, Schedule::Plateau { .. } | Schedule::Newbob { .. })
    }

    /// Whether `--keep-best` is on unless the user says otherwise (for `newbob`, as in RNNLM).
    pub fn keeps_best_by_default(&self) -> bool {
        matches!(self, Schedule::Newbob { .. })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Plateau { factor } => write!(f, "plateau:{factor}"),
            Schedule::Newbob { threshold } => write!(f, "newbob:{threshold}"),
            Schedule::Step { from_epoch, factor } => write!(f, "step:{from_epoch}:{factor}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    /// `constant`, `plateau:F`, `newbob`, `newbob:THRESHOLD` or `step:E:F`, with F ≥ 1,
    /// 0 < THRESHOLD < 1 and E ≥ 1.
    fn from_str(text: &str) -> Result<Schedule, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let factor = |s: &str| match s.parse::<f32>() {
            Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
            _ => Err(format!("the factor of `{text}` must be a number >= 1, not `{s}`")),
        };
        match parts.as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["plateau", f] => Ok(Schedule::Plateau { factor: factor(f)? }),
            ["newbob"] => Ok(Schedule::Newbob { threshold: NEWBOB_THRESHOLD }),
            ["newbob", t] => match t.parse::<f64>() {
                Ok(threshold) if threshold > 0.0 && threshold < 1.0 => Ok(Schedule::Newbob { threshold }),
                _ => Err(format!("the threshold of `{text}` must be a number between 0 and 1, not `{t}`")),
            },
            ["step", e, f] => match e.parse::<usize>() {
                Ok(from_epoch) if from_epoch >= 1 => Ok(Schedule::Step { from_epoch, factor: factor(f)? }),
                _ => Err(format!("the epoch of `{text}` must be a whole number >= 1, not `{e}`")),
            },
            _ => Err(format!("unknown schedule `{text}`: use constant, plateau:F, newbob[:THRESHOLD] or step:E:F")),
        }
    }
}

/// What a schedule remembers between epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleState {
    /// The best validation perplexity so far (infinite before the first).
    pub best_valid: f64,
    /// `newbob` only: the rate is being halved every epoch.
    pub annealing: bool,
}

impl Default for ScheduleState {
    fn default() -> Self {
        ScheduleState { best_valid: f64::INFINITY, annealing: false }
    }
}

/// What to do after an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// The rate of the next epoch.
    pub lr: f32,
    /// The epoch made validation worse than the best so far.
    pub worse: bool,
    /// The epoch set a new best validation perplexity.
    pub new_best: bool,
    /// The schedule has nothing more to gain: stop training.
    pub stop: bool,
}

impl Schedule {
    /// The decision after epoch `epoch` (1-based) trained at `lr` ended with validation
    /// perplexity `valid` (none without a validation split), updating `state`.
    pub fn after_epoch(&self, state: &mut ScheduleState, epoch: usize, lr: f32, valid: Option<f64>) -> Decision {
        let best = state.best_valid;
        let worse = valid.is_some_and(|v| v > best);
        let new_best = valid.is_some_and(|v| v < best);
        if let Some(v) = valid {
            state.best_valid = best.min(v);
        }
        let mut decision = Decision { lr, worse, new_best, stop: false };
        match *self {
            Schedule::Constant => {}
            Schedule::Plateau { factor } => {
                if worse {
                    decision.lr = lr / factor;
                }
            }
            Schedule::Newbob { threshold } => {
                if let Some(v) = valid {
                    // Relative improvement of the entropy ln(perplexity) over the best so far.
                    let improvement = if best.is_finite() { (best.ln() - v.ln()) / best.ln() } else { f64::INFINITY };
                    if improvement < threshold {
                        if state.annealing {
                            decision.stop = true;
                        }
                        state.annealing = true;
                    }
                    if state.annealing && !decision.stop {
                        decision.lr = lr / 2.0;
                    }
                }
            }
            Schedule::Step { from_epoch, factor } => {
                if epoch + 1 >= from_epoch {
                    decision.lr = lr / factor;
                }
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print_back() {
        for text in ["constant", "plateau:4", "newbob:0.003", "step:6:2"] {
            assert_eq!(text.parse::<Schedule>().unwrap().to_string(), text);
        }
        assert_eq!("newbob".parse::<Schedule>().unwrap(), Schedule::Newbob { threshold: 0.003 });
    }

    #[test]
    fn malformed_schedules_say_what_is_wrong() {
        for (text, says) in [
            ("step:0:2", "the epoch of `step:0:2` must be a whole number >= 1"),
            ("newbob:-1", "the threshold of `newbob:-1` must be a number between 0 and 1"),
            ("plateau:0.5", "the factor of `plateau:0.5` must be a number >= 1"),
            ("plateau", "unknown schedule `plateau`"),
            ("cosine", "unknown schedule `cosine`"),
            ("step:2:x", "the factor of `step:2:x`"),
        ] {
            let error = text.parse::<Schedule>().unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    /// Runs a schedule over validation perplexities, returning (rate, worse, stop) per epoch.
    fn run(schedule: Schedule, valid: &[f64]) -> Vec<(f32, bool, bool)> {
        let mut state = ScheduleState::default();
        let mut lr = 1.0;
        valid
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let d = schedule.after_epoch(&mut state, i + 1, lr, Some(v));
                lr = d.lr;
                (d.lr, d.worse, d.stop)
            })
            .collect()
    }

    #[test]
    fn plateau_divides_when_validation_worsens() {
        let got = run(Schedule::Plateau { factor: 4.0 }, &[300.0, 200.0, 210.0, 190.0, 195.0]);
        let rates: Vec<f32> = got.iter().map(|g| g.0).collect();
        assert_eq!(rates, vec![1.0, 1.0, 0.25, 0.25, 0.0625]);
        assert!(got.iter().all(|g| !g.2));
    }

    #[test]
    fn newbob_halves_once_improvement_stalls_then_stops() {
        // ln 200 = 5.30; 199 improves it by 0.09 %, under 0.3 %: annealing starts. 150 is a big
        // improvement, but annealing goes on; 149.9 is under the threshold again: stop.
        let got = run(Schedule::Newbob { threshold: 0.003 }, &[300.0, 200.0, 199.0, 150.0, 149.9]);
        assert_eq!(
            got,
            vec![
                (1.0, false, false),
                (1.0, false, false),
                (0.5, false, false),
                (0.25, false, false),
                (0.25, false, true),
            ]
        );
    }

    #[test]
    fn newbob_counts_a_worse_epoch_as_no_improvement() {
        let got = run(Schedule::Newbob { threshold: 0.003 }, &[300.0, 320.0]);
        assert_eq!(got, vec![(1.0, false, false), (0.5, true, false)]);
    }

    #[test]
    fn step_divides_every_epoch_from_its_epoch() {
        let mut state = ScheduleState::default();
        let schedule = Schedule::Step { from_epoch: 3, factor: 2.0 };
        let mut lr = 1.0;
        let mut rates = vec![lr];
        for epoch in 1..=4 {
            lr = schedule.after_epoch(&mut state, epoch, lr, None).lr;
            rates.push(lr);
        }
        // rates[e - 1] is the rate epoch e trains at.
        assert_eq!(rates, vec![1.0, 1.0, 0.5, 0.25, 0.125]);
    }
}
