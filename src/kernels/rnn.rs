//! The fused tanh-RNN recurrence, forward and backward, over a window of time steps (a single
//! step is a window with `time = 1`).
//!
//! The input projection `x_t * Wx` does not depend on the hidden state, so the model computes
//! it for the whole window with one GEMM before the time loop; likewise the weight gradients
//! `dWx`, `dWh` and `db` are sums over the window that one GEMM (or one column sum) computes
//! after the backward time loop. What remains inside the loop is only what is truly
//! sequential: per step, the recurrent product and one fused pass over the state.

use super::gemm::{gemm_packed_columns_into, PackedB, Transpose};
use super::out_matrix::OutMatrix;
use super::recurrent_split::{for_each_row_group, recurrent_split};
use super::simd::{simd, tanh, zip_map_inplace, Simd};
use super::{check_len, check_packed};

/// The forward recurrence over a window: for `t = 1..=time`, `h_t = tanh(h_t + h_{t-1} * Wh + b)`
/// (on entry `h_t` holds `x_t * Wx`), with `Wh` packed once for all the steps. `tanh` is
/// [`super::tanh_inplace`]'s, with its accuracy.
///
/// Shapes (row-major): `states` is `time + 1` blocks of `batch x hidden`. Block 0 is the state
/// carried in, `h_0`; on entry block `t >= 1` holds the input projection `x_t * Wx`, on return
/// the hidden state `h_t`. `wh` is `Wh` (`hidden x hidden`) packed by
/// [`PackedB::pack`]`(wh, hidden, Transpose::No)`; `bias` is `hidden`. Panics, before
/// writing anything, if a length or the packed shape does not match.
///
/// Runs in parallel, by groups of batch rows through the whole window or, when a step's
/// product is large, by blocks of hidden units at every step; a row's and a unit's arithmetic
/// does not depend on its group or block, so neither does the result.
pub fn rnn_forward_window(batch: usize, hidden: usize, time: usize, wh: &PackedB, bias: &[f32], states: &mut [f32]) {
    const KERNEL: &str = "rnn_forward_window";
    check_packed(KERNEL, "wh", wh, (Transpose::No, "hidden x hidden"), (hidden, hidden));
    check_len(KERNEL, "bias", bias.len(), "hidden", &[hidden]);
    check_len(KERNEL, "states", states.len(), "(time + 1) x batch x hidden", &[time.saturating_add(1), batch, hidden]);
    if batch == 0 || hidden == 0 {
        return;
    }
    let block = batch * hidden;
    let split = recurrent_split(batch, hidden, block * hidden, time);
    for_each_row_group(batch, split.row_groups(), [(states, hidden)], |_, rows, [steps]| {
        for t in 0..time {
            let (h_prev, h) = steps.row_pair(t);
            let h_prev = &*h_prev;
            let mut h = [OutMatrix::new(KERNEL, h, rows, hidden, hidden)];
            split.run_phase(&mut h, |first, h| forward_step(wh, bias, h_prev, first, h));
        }
    });
}

/// One forward step for the units `first..` of `h` (`rows x units`, holding `x_t * Wx`):
/// `h = tanh(h + h_prev * Wh + b)`, `h_prev` being the whole previous state (`rows x hidden`).
fn forward_step(wh: &PackedB, bias: &[f32], h_prev: &[f32], first: usize, [h]: &mut [OutMatrix<'_>; 1]) {
    let hidden = wh.n();
    gemm_packed_columns_into(1.0, (h_prev, hidden, Transpose::No), wh, first, 1.0, h);
    let (rows, units) = (h.rows(), h.cols());
    let bias = &bias[first..first + units];
    simd!(V => {
        for r in 0..rows {
            zip_map_inplace::<V>(h.segment(r, 0, units), bias, #[inline(always)] |pre, b| tanh(pre + b));
        }
    })
}

/// The backward recurrence over a window: for `t = time..=1`, `dt = dh_t * (1 - h_t^2)`, then
/// `dh_{t-1} += dt * Wh^T`, with `Wh^T` packed once for all the steps.
///
/// Shapes (row-major): `states` is the forward's, `time + 1` blocks of `batch x hidden`; `dhs`
/// is `time` blocks of `batch x hidden`, block `t - 1` for `h_t`. On entry `dhs` holds the
/// loss gradient with respect to each `h_t` from above (the output layer); on return the
/// gradient at each pre-activation, `dt`, with the recurrence through later steps included.
/// The incoming state `h_0` receives no gradient (truncated BPTT). `wh_t` is `Wh` packed
/// transposed, by [`PackedB::pack`]`(wh, hidden, Transpose::Yes)`. Parallel as
/// [`rnn_forward_window`]. Panics, before writing anything, if a length or the packed shape
/// does not match.
pub fn rnn_backward_window(batch: usize, hidden: usize, time: usize, wh_t: &PackedB, states: &[f32], dhs: &mut [f32]) {
    const KERNEL: &str = "rnn_backward_window";
    check_packed(KERNEL, "wh_t", wh_t, (Transpose::Yes, "hidden x hidden"), (hidden, hidden));
    check_len(KERNEL, "states", states.len(), "(time + 1) x batch x hidden", &[time.saturating_add(1), batch, hidden]);
    check_len(KERNEL, "dhs", dhs.len(), "time x batch x hidden", &[time, batch, hidden]);
    if batch == 0 || hidden == 0 {
        return;
    }
    let block = batch * hidden;
    // Block `t` of `dhs` belongs to `h_{t+1}`, block `t + 1` of `states`.
    let split = recurrent_split(batch, hidden, block * hidden, time.saturating_sub(1));
    for_each_row_group(batch, split.row_groups(), [(dhs, hidden)], |first_row, rows, [steps]| {
        let h_of = |t: usize| &states[(t + 1) * block + first_row * hidden..][..rows * hidden];
        for t in (0..time).rev() {
            let (dh, dt_next) = steps.row_and_next(t);
            let mut dh = [OutMatrix::new(KERNEL, dh, rows, hidden, hidden)];
            split.run_phase(&mut dh, |first, dh| backward_step(wh_t, (h_of(t), dt_next), first, dh));
        }
    });
}

/// One backward step for the units `first..` of `dh` (`rows x units`, the gradient at `h_t`
/// from above): `dh += dt_next * Wh^T` (the next step's gradient at its pre-activation, all
/// units, when there is a next step), then `dh = dh * (1 - h_t^2)`; `h` is the whole `h_t`.
fn backward_step(wh_t: &PackedB, (h, dt_next): (&[f32], Option<&[f32]>), first: usize, [dh]: &mut [OutMatrix<'_>; 1]) {
    let hidden = wh_t.n();
    if let Some(dt_next) = dt_next {
        gemm_packed_columns_into(1.0, (dt_next, hidden, Transpose::No), wh_t, first, 1.0, dh);
    }
    let (rows, units) = (dh.rows(), dh.cols());
    simd!(V => {
        for r in 0..rows {
            let h = &h[r * hidden + first..][..units];
            zip_map_inplace::<V>(dh.segment(r, 0, units), h, #[inline(always)] |d, h| d * (V::one() - h * h));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::{normwise_error, test_values};
    use super::*;

    /// Batch 1, sizes off the vector width, one step, shapes large enough for several
    /// parallel groups of rows (the last uneven), and one whose steps are split by blocks of
    /// hidden units (the last narrower).
    const SHAPES: [(usize, usize, usize); 7] =
        [(1, 1, 1), (1, 5, 3), (3, 17, 4), (7, 40, 2), (20, 90, 35), (9, 300, 6), (5, 700, 3)];

    struct Case {
        batch: usize,
        hidden: usize,
        time: usize,
        wh: Vec<f32>,
        bias: Vec<f32>,
        /// Forward input: `h_0` and the input projections.
        states: Vec<f32>,
        /// Backward input: the gradient from above for every `h_t`.
        dhs: Vec<f32>,
    }

    impl Case {
        fn new(case: usize, (batch, hidden, time): (usize, usize, usize)) -> Case {
            let scale = |values: Vec<f32>, s: f32| values.into_iter().map(|v| v * s).collect::<Vec<_>>();
            let seed = 10 * case as u64;
            Case {
                batch,
                hidden,
                time,
                // Spec-like scale (1 / sqrt(H)) keeps the states away from saturation.
                wh: scale(test_values(hidden * hidden, seed + 1), 1.0 / (hidden as f32).sqrt()),
                bias: scale(test_values(hidden, seed + 2), 0.1),
                states: test_values((time + 1) * batch * hidden, seed + 3),
                dhs: test_values(time * batch * hidden, seed + 4),
            }
        }

        fn packed(&self, trans: Transpose) -> PackedB {
            let mut packed = PackedB::new(self.hidden, self.hidden).unwrap();
            packed.pack(&self.wh, self.hidden, trans);
            packed
        }

        /// The window functions' results: states after the forward, `dt` after the backward.
        fn windows(&self) -> (Vec<f32>, Vec<f32>) {
            let (mut states, mut dts) = (self.states.clone(), self.dhs.clone());
            let (b, h, t) = (self.batch, self.hidden, self.time);
            rnn_forward_window(b, h, t, &self.packed(Transpose::No), &self.bias, &mut states);
            rnn_backward_window(b, h, t, &self.packed(Transpose::Yes), &states, &mut dts);
            (states, dts)
        }

        /// The definitions in f64.
        fn definition(&self) -> (Vec<f64>, Vec<f64>) {
            let (b, h) = (self.batch, self.hidden);
            let block = b * h;
            let mut states: Vec<f64> = self.states.iter().map(|&v| v as f64).collect();
            for t in 1..=self.time {
                for r in 0..b {
                    for j in 0..h {
                        let mut pre = states[t * block + r * h + j] + self.bias[j] as f64;
                        for k in 0..h {
                            pre += states[(t - 1) * block + r * h + k] * self.wh[k * h + j] as f64;
                        }
                        states[t * block + r * h + j] = pre.tanh();
                    }
                }
            }
            let mut dts: Vec<f64> = self.dhs.iter().map(|&v| v as f64).collect();
            for t in (0..self.time).rev() {
                for i in 0..block {
                    let h_t = states[(t + 1) * block + i];
                    dts[t * block + i] *= 1.0 - h_t * h_t;
                }
                if t > 0 {
                    for r in 0..b {
                        for k in 0..h {
                            let through: f64 =
                                (0..h).map(|j| dts[t * block + r * h + j] * self.wh[k * h + j] as f64).sum();
                            dts[(t - 1) * block + r * h + k] += through;
                        }
                    }
                }
            }
            (states, dts)
        }
    }

    #[test]
    fn windows_match_the_definitions() {
        for (case, &shape) in SHAPES.iter().enumerate() {
            let case = Case::new(case, shape);
            let (states, dts) = case.windows();
            let (want_states, want_dts) = case.definition();
            // f32 sums of at most 300 terms of magnitude below 1, tanh within 1.5e-7, carried
            // through up to 35 steps of a contracting recurrence: far below 1e-5 of the largest
            // value.
            let (state_error, dt_error) = (normwise_error(&states, &want_states), normwise_error(&dts, &want_dts));
            assert!(state_error < 1e-5 && dt_error < 1e-5, "{shape:?}: states {state_error:e}, dt {dt_error:e}");
        }
    }

    #[test]
    fn windows_give_the_same_bits_for_any_thread_count() {
        for (case, &shape) in SHAPES.iter().enumerate() {
            let case = Case::new(case, shape);
            let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| case.windows());
            for threads in [2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let windows = pool.install(|| case.windows());
                let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same(&windows.0, &one_thread.0) && same(&windows.1, &one_thread.1),
                    "{shape:?}, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn the_last_shape_splits_its_steps_by_hidden_units() {
        use super::super::recurrent_split::{recurrent_split, RecurrentSplit};
        let (batch, hidden, _) = SHAPES[SHAPES.len() - 1];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let split = pool.install(|| recurrent_split(batch, hidden, 5 * 700 * 700, 3));
        assert!(matches!(split, RecurrentSplit::UnitBlocks(2)), "{split:?}");
    }
}
