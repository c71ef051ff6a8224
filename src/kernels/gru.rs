//! The GRU cell over a window, forward and backward, in the form whose reset gate multiplies
//! the state before its product with `Wh`:
//!
//! ```text
//! z  = sigmoid(x Wx_z + h Wh_z + b_z)
//! r  = sigmoid(x Wx_r + h Wh_r + b_r)
//! h~ = tanh(x Wx_h + (r h) Wh_h + b_h)
//! h' = (1 - z) h + z h~          computed as h + z (h~ - h), one fused multiply-add
//! ```
//!
//! Gate blocks are `[z | r | h~]`, each `H` columns wide. Because `h~` needs `r` first, each
//! step has two recurrent products: `h * Wh[:, z r]` (`H x 2H`) and `(r h) * Wh[:, h~]`
//! (`H x H`), each against its own packed block of `Wh`. The input projection is one GEMM over
//! the window before the loop, as for the other cells; the weight gradients after the loop
//! are `dWx = X^T * da`, `dWh[:, z r] = H_prev^T * da[:, z r]`, `dWh[:, h~] = (r h)^T * da[:, h~]`
//! (the forward keeps every step's `r h` for it), `db` = column sums of `da`.

use super::gemm::{gemm_packed, PackedB, Transpose};
use super::row_groups::for_each_row_group;
use super::simd::{load_biased, load_up_to, sigmoid, simd, store_partial, tanh, Simd};
use super::{check_len, check_packed};

/// Gate blocks of a GRU row: `z`, `r`, `h~`.
pub const GRU_GATES: usize = 3;

/// The forward recurrence over a window.
///
/// Shapes (row-major): `gates` is `time` blocks of `batch x 3 hidden`; on entry block `t - 1`
/// holds the input projection `x_t * Wx` (no bias), on return the activated gates
/// `[z | r | h~]` of step `t`. `hs` is `time + 1` blocks of `batch x hidden`: block 0 holds the
/// state carried in, and on return block `t` holds `h_t`. `rh` is `time` blocks of
/// `batch x hidden` that receive `r * h_{t-1}` of each step. `wh_zr` is the first `2 hidden`
/// columns of `Wh` (`hidden x 3 hidden`) packed by [`PackedB::pack`]`(wh, 3 * hidden,
/// Transpose::No)` as a `hidden x 2 hidden` matrix, `wh_candidate` its last `hidden` columns,
/// packed by [`PackedB::pack`]`(&wh[2 * hidden..], 3 * hidden, Transpose::No)`; `bias` is
/// `3 hidden`. Parallel over groups of batch rows, with the same bits for any thread count.
/// Panics, before writing anything, if a length or a packed shape does not match.
#[allow(clippy::too_many_arguments)]
pub fn gru_forward_window(
    batch: usize,
    hidden: usize,
    time: usize,
    (wh_zr, wh_candidate): (&PackedB, &PackedB),
    bias: &[f32],
    gates: &mut [f32],
    hs: &mut [f32],
    rh: &mut [f32],
) {
    const KERNEL: &str = "gru_forward_window";
    let width = GRU_GATES * hidden;
    check_packed(KERNEL, "wh_zr", wh_zr, (Transpose::No, "hidden x 2 hidden"), (hidden, 2 * hidden));
    check_packed(KERNEL, "wh_candidate", wh_candidate, (Transpose::No, "hidden x hidden"), (hidden, hidden));
    check_len(KERNEL, "bias", bias.len(), "3 hidden", &[GRU_GATES, hidden]);
    check_len(KERNEL, "gates", gates.len(), "time x batch x 3 hidden", &[time, batch, width]);
    check_len(KERNEL, "hs", hs.len(), "(time + 1) x batch x hidden", &[time.saturating_add(1), batch, hidden]);
    check_len(KERNEL, "rh", rh.len(), "time x batch x hidden", &[time, batch, hidden]);
    let work = time * batch * hidden * width;
    for_each_row_group(batch, work, [(gates, width), (hs, hidden), (rh, hidden)], |_, rows, [gates, hs, rh]| {
        for t in 0..time {
            let (h_prev, h) = hs.row_pair(t);
            let a = gates.segment(t, 0, rows * width);
            let rh = rh.segment(t, 0, rows * hidden);
            gemm_packed(rows, 1.0, h_prev, hidden, Transpose::No, wh_zr, 1.0, a, width);
            simd!(V => {
                for ((a_row, h_prev), rh) in
                    a.chunks_exact_mut(width).zip(h_prev.chunks_exact(hidden)).zip(rh.chunks_exact_mut(hidden))
                {
                    update_and_reset_gates::<V>(bias, a_row, h_prev, rh);
                }
            });
            gemm_packed(rows, 1.0, rh, hidden, Transpose::No, wh_candidate, 1.0, &mut a[2 * hidden..], width);
            simd!(V => {
                for ((a_row, h_prev), h) in
                    a.chunks_exact_mut(width).zip(h_prev.chunks_exact(hidden)).zip(h.chunks_exact_mut(hidden))
                {
                    candidate_and_state::<V>(bias, a_row, h_prev, h);
                }
            });
        }
    });
}

/// First pass of a forward step, one row: `z` and `r` from their pre-activations (without the
/// bias) in `a`, stored there; `rh = r * h_prev`.
#[inline(always)]
fn update_and_reset_gates<V: Simd>(bias: &[f32], a: &mut [f32], h_prev: &[f32], rh: &mut [f32]) {
    let hidden = h_prev.len();
    for j in (0..hidden).step_by(V::LANES) {
        let (start, end) = (j, (j + V::LANES).min(hidden));
        let block = |gate: usize| gate * hidden + start..gate * hidden + end;
        let (z, r) = (sigmoid(load_biased::<V>(a, bias, block(0))), sigmoid(load_biased::<V>(a, bias, block(1))));
        store_partial(&mut rh[start..end], r * load_up_to::<V>(&h_prev[start..end]));
        store_partial(&mut a[block(0)], z);
        store_partial(&mut a[block(1)], r);
    }
}

/// Second pass of a forward step, one row: `h~` from its pre-activation (without the bias) in
/// `a`, stored there, and the new state `h = h_prev + z (h~ - h_prev)`.
#[inline(always)]
fn candidate_and_state<V: Simd>(bias: &[f32], a: &mut [f32], h_prev: &[f32], h: &mut [f32]) {
    let hidden = h_prev.len();
    for j in (0..hidden).step_by(V::LANES) {
        let (start, end) = (j, (j + V::LANES).min(hidden));
        let block = |gate: usize| gate * hidden + start..gate * hidden + end;
        let candidate = tanh(load_biased::<V>(a, bias, block(2)));
        let (z, h_prev) = (load_up_to::<V>(&a[block(0)]), load_up_to::<V>(&h_prev[start..end]));
        store_partial(&mut h[start..end], z.mul_add(candidate - h_prev, h_prev));
        store_partial(&mut a[block(2)], candidate);
    }
}

/// The backward recurrence over a window.
///
/// Shapes (row-major): `hs` is the forward's `time + 1` blocks of `batch x hidden`; `gates`
/// is its `time` blocks of `batch x 3 hidden` activated gates, overwritten with the gradient
/// at each step's pre-activations, `da`; `dhs` is `time` blocks of `batch x hidden`, block
/// `t - 1` for `h_t`: on entry the loss gradient with respect to each `h_t` from above, on
/// return that plus the gradient through the later steps. `drh` is scratch for
/// `batch x hidden` values. `wh_zr_t` and `wh_candidate_t` are the two blocks of `Wh` packed
/// transposed: [`PackedB::pack`]`(wh, 3 * hidden, Transpose::Yes)` as `2 hidden x hidden`
/// and `(&wh[2 * hidden..], 3 * hidden, Transpose::Yes)` as `hidden x hidden`.
///
/// Per step, from the last, with `dh` the whole gradient at `h_t`:
/// `da_h~ = dh z (1 - h~^2)`, `da_z = dh (h~ - h_prev) z (1 - z)`, `d(rh) = da_h~ * Wh_h~^T`,
/// `da_r = d(rh) h_prev r (1 - r)`, and
/// `dh_prev += dh (1 - z) + d(rh) r + da[z r] * Wh[z r]^T`. The state carried in receives no
/// gradient (truncated BPTT). Parallel over groups of batch rows as [`gru_forward_window`].
/// Panics, before writing anything, if a length or a packed shape does not match.
#[allow(clippy::too_many_arguments)]
pub fn gru_backward_window(
    batch: usize,
    hidden: usize,
    time: usize,
    (wh_zr_t, wh_candidate_t): (&PackedB, &PackedB),
    hs: &[f32],
    gates: &mut [f32],
    dhs: &mut [f32],
    drh: &mut [f32],
) {
    const KERNEL: &str = "gru_backward_window";
    let width = GRU_GATES * hidden;
    check_packed(KERNEL, "wh_zr_t", wh_zr_t, (Transpose::Yes, "2 hidden x hidden"), (2 * hidden, hidden));
    check_packed(KERNEL, "wh_candidate_t", wh_candidate_t, (Transpose::Yes, "hidden x hidden"), (hidden, hidden));
    check_len(KERNEL, "hs", hs.len(), "(time + 1) x batch x hidden", &[time.saturating_add(1), batch, hidden]);
    check_len(KERNEL, "gates", gates.len(), "time x batch x 3 hidden", &[time, batch, width]);
    check_len(KERNEL, "dhs", dhs.len(), "time x batch x hidden", &[time, batch, hidden]);
    check_len(KERNEL, "drh", drh.len(), "batch x hidden", &[batch, hidden]);
    let block = batch * hidden;
    let work = time * batch * hidden * width;
    for_each_row_group(
        batch,
        work,
        [(gates, width), (dhs, hidden), (drh, hidden)],
        |first_row, rows, [gates, dhs, drh]| {
            let h_of = |t: usize| &hs[t * block + first_row * hidden..][..rows * hidden];
            let drh = drh.segment(0, 0, rows * hidden);
            for t in (0..time).rev() {
                let da = gates.segment(t, 0, rows * width);
                let h_prev = h_of(t);
                // At the first step the state carried in takes no gradient: no `dh_prev`.
                let (mut dh_prev, dh) = if t == 0 {
                    (None, dhs.segment(0, 0, rows * hidden))
                } else {
                    let (dh_prev, dh) = dhs.row_pair(t - 1);
                    (Some(dh_prev), dh)
                };
                simd!(V => {
                    for (r, da_row) in da.chunks_exact_mut(width).enumerate() {
                        let at = r * hidden..(r + 1) * hidden;
                        let dh_prev_row = dh_prev.as_deref_mut().map(|d| &mut d[at.clone()]);
                        candidate_and_update_backward::<V>(da_row, &h_prev[at.clone()], &dh[at], dh_prev_row);
                    }
                });
                gemm_packed(rows, 1.0, &da[2 * hidden..], width, Transpose::No, wh_candidate_t, 0.0, drh, hidden);
                simd!(V => {
                    for (r, da_row) in da.chunks_exact_mut(width).enumerate() {
                        let at = r * hidden..(r + 1) * hidden;
                        let dh_prev_row = dh_prev.as_deref_mut().map(|d| &mut d[at.clone()]);
                        reset_backward::<V>(da_row, &h_prev[at.clone()], &drh[at], dh_prev_row);
                    }
                });
                if let Some(dh_prev) = dh_prev {
                    gemm_packed(rows, 1.0, da, width, Transpose::No, wh_zr_t, 1.0, dh_prev, hidden);
                }
            }
        },
    );
}

/// First pass of a backward step, one row: `a` holds the activated `[z | r | h~]`; `da_z` and
/// `da_h~` replace `z` and `h~`, `r` stays for [`reset_backward`]. `dh_prev += dh (1 - z)`.
#[inline(always)]
fn candidate_and_update_backward<V: Simd>(a: &mut [f32], h_prev: &[f32], dh: &[f32], dh_prev: Option<&mut [f32]>) {
    let hidden = h_prev.len();
    let one = V::one();
    let mut dh_prev = dh_prev;
    for j in (0..hidden).step_by(V::LANES) {
        let (start, end) = (j, (j + V::LANES).min(hidden));
        let block = |gate: usize| gate * hidden + start..gate * hidden + end;
        let (z, candidate) = (load_up_to::<V>(&a[block(0)]), load_up_to::<V>(&a[block(2)]));
        let (dh, h_prev) = (load_up_to::<V>(&dh[start..end]), load_up_to::<V>(&h_prev[start..end]));
        let dz = dh * (candidate - h_prev);
        store_partial(&mut a[block(0)], dz * z * (one - z));
        store_partial(&mut a[block(2)], dh * z * (one - candidate * candidate));
        if let Some(dh_prev) = dh_prev.as_deref_mut() {
            let d = &mut dh_prev[start..end];
            store_partial(d, dh.mul_add(one - z, load_up_to(d)));
        }
    }
}

/// Second pass of a backward step, one row: `da_r = d(rh) h_prev r (1 - r)` replaces `r`;
/// `dh_prev += d(rh) r`.
#[inline(always)]
fn reset_backward<V: Simd>(a: &mut [f32], h_prev: &[f32], drh: &[f32], dh_prev: Option<&mut [f32]>) {
    let hidden = h_prev.len();
    let mut dh_prev = dh_prev;
    for j in (0..hidden).step_by(V::LANES) {
        let (start, end) = (j, (j + V::LANES).min(hidden));
        let r_block = hidden + start..hidden + end;
        let (r, drh) = (load_up_to::<V>(&a[r_block.clone()]), load_up_to::<V>(&drh[start..end]));
        let dr = drh * load_up_to::<V>(&h_prev[start..end]);
        store_partial(&mut a[r_block], dr * r * (V::one() - r));
        if let Some(dh_prev) = dh_prev.as_deref_mut() {
            let d = &mut dh_prev[start..end];
            store_partial(d, drh.mul_add(r, load_up_to(d)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_near, assert_same_bits_for_any_thread_count, test_values};
    use super::*;

    /// Batch 1, sizes off the vector width, one step, and shapes large enough for several
    /// parallel groups (the last uneven).
    const SHAPES: [(usize, usize, usize); 6] =
        [(1, 1, 1), (1, 5, 3), (3, 17, 4), (7, 40, 2), (20, 90, 35), (9, 150, 6)];

    struct Case {
        batch: usize,
        hidden: usize,
        time: usize,
        wh: Vec<f32>,
        bias: Vec<f32>,
        /// Forward inputs: the input projections and `h_0`.
        projections: Vec<f32>,
        h0: Vec<f32>,
        /// Backward input: the gradient from above for every `h_t`.
        dhs: Vec<f32>,
    }

    /// The forward's gates, states and `r h`, and the backward's `da`.
    struct Results<T> {
        gates: Vec<T>,
        hs: Vec<T>,
        rh: Vec<T>,
        da: Vec<T>,
    }

    impl Case {
        fn new(case: usize, (batch, hidden, time): (usize, usize, usize)) -> Case {
            let scale = |values: Vec<f32>, s: f32| values.into_iter().map(|v| v * s).collect::<Vec<_>>();
            let seed = 10 * case as u64 + 7;
            let block = batch * hidden;
            Case {
                batch,
                hidden,
                time,
                wh: scale(test_values(hidden * 3 * hidden, seed + 1), 1.0 / (hidden as f32).sqrt()),
                bias: scale(test_values(3 * hidden, seed + 2), 0.5),
                projections: scale(test_values(time * 3 * block, seed + 3), 2.0),
                h0: test_values(block, seed + 4),
                dhs: test_values(time * block, seed + 5),
            }
        }

        fn packed(&self, columns: std::ops::Range<usize>, trans: Transpose) -> PackedB {
            let (h, n) = (self.hidden, columns.len());
            let mut packed = if trans == Transpose::No { PackedB::new(h, n) } else { PackedB::new(n, h) }.unwrap();
            packed.pack(&self.wh[columns.start..], 3 * h, trans);
            packed
        }

        fn windows(&self) -> Results<f32> {
            let (b, h, t) = (self.batch, self.hidden, self.time);
            let mut gates = self.projections.clone();
            let mut hs = [self.h0.clone(), vec![f32::NAN; t * b * h]].concat();
            let mut rh = vec![f32::NAN; t * b * h];
            let forward = (&self.packed(0..2 * h, Transpose::No), &self.packed(2 * h..3 * h, Transpose::No));
            gru_forward_window(b, h, t, forward, &self.bias, &mut gates, &mut hs, &mut rh);
            let forward_gates = gates.clone();
            let backward = (&self.packed(0..2 * h, Transpose::Yes), &self.packed(2 * h..3 * h, Transpose::Yes));
            let (mut dhs, mut drh) = (self.dhs.clone(), vec![f32::NAN; b * h]);
            gru_backward_window(b, h, t, backward, &hs, &mut gates, &mut dhs, &mut drh);
            Results { gates: forward_gates, hs, rh, da: gates }
        }

        /// The GRU in f64, row by row and step by step, as the module doc writes it.
        fn definition(&self) -> Results<f64> {
            let (b, h, time) = (self.batch, self.hidden, self.time);
            let (block, width) = (b * h, 3 * h);
            let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
            let wh = |k: usize, col: usize| self.wh[k * width + col] as f64;
            let mut gates = vec![0.0; time * b * width];
            let mut hs: Vec<f64> = self.h0.iter().map(|&v| v as f64).chain(vec![0.0; time * block]).collect();
            let mut rh = vec![0.0; time * block];
            for t in 0..time {
                for r in 0..b {
                    let row = (t * b + r) * width;
                    let h_prev: Vec<f64> = hs[t * block + r * h..][..h].to_vec();
                    for col in 0..2 * h {
                        let pre = self.projections[row + col] as f64
                            + self.bias[col] as f64
                            + (0..h).map(|k| h_prev[k] * wh(k, col)).sum::<f64>();
                        gates[row + col] = sigmoid(pre);
                    }
                    for j in 0..h {
                        rh[t * block + r * h + j] = gates[row + h + j] * h_prev[j];
                    }
                    for j in 0..h {
                        let col = 2 * h + j;
                        let pre = self.projections[row + col] as f64
                            + self.bias[col] as f64
                            + (0..h).map(|k| rh[t * block + r * h + k] * wh(k, col)).sum::<f64>();
                        gates[row + col] = pre.tanh();
                        let z = gates[row + j];
                        hs[(t + 1) * block + r * h + j] = (1.0 - z) * h_prev[j] + z * gates[row + col];
                    }
                }
            }
            let mut da = gates.clone();
            let mut dhs: Vec<f64> = self.dhs.iter().map(|&v| v as f64).collect();
            for t in (0..time).rev() {
                for r in 0..b {
                    let row = (t * b + r) * width;
                    let h_prev: Vec<f64> = hs[t * block + r * h..][..h].to_vec();
                    let mut dh_prev = vec![0.0; h];
                    for j in 0..h {
                        let [z, candidate] = [0, 2].map(|gate| gates[row + gate * h + j]);
                        let dh = dhs[t * block + r * h + j];
                        da[row + j] = dh * (candidate - h_prev[j]) * z * (1.0 - z);
                        da[row + 2 * h + j] = dh * z * (1.0 - candidate * candidate);
                        dh_prev[j] += dh * (1.0 - z);
                    }
                    let drh: Vec<f64> =
                        (0..h).map(|k| (0..h).map(|j| da[row + 2 * h + j] * wh(k, 2 * h + j)).sum()).collect();
                    for j in 0..h {
                        let rr = gates[row + h + j];
                        da[row + h + j] = drh[j] * h_prev[j] * rr * (1.0 - rr);
                        dh_prev[j] += drh[j] * rr;
                    }
                    if t > 0 {
                        for k in 0..h {
                            let through: f64 = (0..2 * h).map(|col| da[row + col] * wh(k, col)).sum();
                            dhs[(t - 1) * block + r * h + k] += dh_prev[k] + through;
                        }
                    }
                }
            }
            Results { gates, hs, rh, da }
        }
    }

    #[test]
    fn windows_match_the_definitions() {
        for (case, &shape) in SHAPES.iter().enumerate() {
            let case = Case::new(case, shape);
            let (got, want) = (case.windows(), case.definition());
            // f32 sums of at most 150 terms of magnitude below 3, sigmoid and tanh within a few
            // ulp, carried through up to 35 steps: below 1e-5 of the largest value.
            assert_near(
                &format!("{shape:?}"),
                1e-5,
                &[
                    ("gates", &got.gates[..], &want.gates[..]),
                    ("hs", &got.hs[..], &want.hs[..]),
                    ("rh", &got.rh[..], &want.rh[..]),
                    ("da", &got.da[..], &want.da[..]),
                ],
            );
        }
    }

    #[test]
    fn windows_give_the_same_bits_for_any_thread_count() {
        for (case, &shape) in SHAPES.iter().enumerate() {
            let case = Case::new(case, shape);
            assert_same_bits_for_any_thread_count(&format!("{shape:?}"), || {
                let r = case.windows();
                [r.gates, r.hs, r.rh, r.da].concat()
            });
        }
    }
}
