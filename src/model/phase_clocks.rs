//! The phase clocks: how a step's time splits between its [`Phase`]s, for `rnnlm bench`. Off,
//! a step reads no clock.

use super::{Phase, Rnnlm};
use std::time::Instant;

/// Seconds spent in each [`Phase`] since the phase clocks were started
/// ([`set_phase_timing`](Rnnlm::set_phase_timing)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PhaseTimes {
    seconds: [f64; Phase::ALL.len()],
}

impl PhaseTimes {
    /// Seconds spent in `phase`.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn of(&self, phase: Phase) -> f64 {
        self.seconds[phase.index()]
    }

    /// Seconds spent in all phases.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn total(&self) -> f64 {
        self.seconds.iter().sum()
    }
}

impl Rnnlm {
    /// Starts (from zero) or stops the phase clocks. They are off unless turned on: a step then
    /// reads no clock (a benchmark turns them on to split a step's time by part).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn set_phase_timing(&mut self, on: bool) {
        self.times = on.then(PhaseTimes::default);
    }

    /// Time spent per part of the model since the clocks were started; zero while they are off.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn phase_times(&self) -> PhaseTimes {
        self.times.unwrap_or_default()
    }

    /// Sets the phase clocks (to what [`phase_times`](Self::phase_times) returned earlier),
    /// turning them on.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn set_phase_times(&mut self, times: PhaseTimes) {
        self.times = Some(times);
    }

    /// The time now, if the phase clocks run.
    pub(super) fn clock(&self) -> Option<Instant> {
        self.times.map(|_| Instant::now())
    }

    /// Adds the time since `start` (from [`clock`](Self::clock)) to `phase`.
    pub(super) fn add_time(&mut self, start: Option<Instant>, phase: Phase) {
        if let (Some(start), Some(times)) = (start, &mut self.times) {
            times.seconds[phase.index()] += start.elapsed().as_secs_f64();
        }
    }
}
