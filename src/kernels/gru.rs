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

use super::gemm::{gemm_packed_columns_into, PackedB, Transpose};
use super::out_matrix::OutMatrix;
use super::recurrent_split::{for_each_row_group, recurrent_split};
use super::simd::{load_biased, load_up_to, sigmoid, simd, store_partial, tanh, Simd};
use super::{check_len, check_packed};

/// Gate blocks of a GRU row: `z`, `r`, `h~`.
pub const GRU_GATES: usize = 3;

/// The name the step views' checks report.
const STEP: &str = "gru step";

/// A `rows x hidden` matrix with one column per hidden unit.
fn units_view(rows: usize, hidden: usize, data: &mut [f32]) -> OutMatrix<'_> {
    OutMatrix::new(STEP, data, rows, hidden, hidden)
}

/// A view of no rows: the gradient at the state carried in, which takes none.
fn no_rows(hidden: usize) -> OutMatrix<'static> {
    OutMatrix::new(STEP, &mut [], 0, hidden, hidden)
}

/// The gate blocks `[z, r, h~]` of a step's `rows x 3 hidden` gates.
fn gate_views(rows: usize, hidden: usize, gates: &mut [f32]) -> [OutMatrix<'_>; GRU_GATES] {
    let width = GRU_GATES * hidden;
    OutMatrix::new(STEP, gates, rows, width, width).into_columns([hidden; GRU_GATES])
}

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
/// `3 hidden`. Parallel by groups of batch rows or, on pools larger than the rows allow, at
/// every step by blocks of each product's columns and of hidden units, with the same bits for
/// any split and thread count. Panics, before writing anything, if a length or a packed shape
/// does not match.
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
    if batch == 0 || hidden == 0 {
        return;
    }
    let block = batch * hidden;
    // The product of `h` with `Wh[:, z r]`, or of `r h` with `Wh[:, h~]`, into the columns
    // `first..` of the gates it makes.
    let product = |packed: &PackedB, left: &[f32], first: usize, [a]: &mut [OutMatrix<'_>; 1]| {
        gemm_packed_columns_into(1.0, (left, hidden, Transpose::No), packed, first, 1.0, a)
    };
    let split = recurrent_split(batch, hidden, block * width, time);
    let buffers = [(gates, width), (hs, hidden), (rh, hidden)];
    for_each_row_group(batch, split.row_groups(), buffers, |_, rows, [gates, hs, rh]| {
        for t in 0..time {
            let (h_prev, h) = hs.row_pair(t);
            let (h_prev, a, rh) = (&*h_prev, gates.segment(t, 0, rows * width), rh.segment(t, 0, rows * hidden));
            let [zr, _] = gate_columns(rows, hidden, a);
            split.run_phase(&mut [zr], |first, zr| product(wh_zr, h_prev, first, zr));
            let [z, r, _] = gate_views(rows, hidden, a);
            let mut views = [z, r, units_view(rows, hidden, &mut *rh)];
            split.run_phase(&mut views, |first, views| gates_step(bias, h_prev, first, views));
            let (rh, [_, candidate]) = (&*rh, gate_columns(rows, hidden, a));
            split.run_phase(&mut [candidate], |first, c| product(wh_candidate, rh, first, c));
            let [z, _, candidate] = gate_views(rows, hidden, a);
            let mut views = [z, candidate, units_view(rows, hidden, h)];
            split.run_phase(&mut views, |first, views| candidate_step(bias, h_prev, first, views));
        }
    });
}

/// The gates' columns as the two products make them: `[z r]` (`rows x 2 hidden`) and `h~`.
fn gate_columns(rows: usize, hidden: usize, gates: &mut [f32]) -> [OutMatrix<'_>; 2] {
    let width = GRU_GATES * hidden;
    OutMatrix::new(STEP, gates, rows, width, width).into_columns([2 * hidden, hidden])
}

/// The activations of `z` and `r` for the units `first..` of `[z, r, rh]` (holding their
/// pre-activations without the bias), and `rh = r h_prev` (`h_prev` the whole previous state).
fn gates_step(bias: &[f32], h_prev: &[f32], first: usize, [z, r, rh]: &mut [OutMatrix<'_>; 3]) {
    let hidden = bias.len() / GRU_GATES;
    let (rows, units) = (rh.rows(), rh.cols());
    let bias = [&bias[first..][..units], &bias[hidden + first..][..units]];
    simd!(V => {
        for row in 0..rows {
            let h_prev = &h_prev[row * hidden + first..][..units];
            let gates = [z.segment(row, 0, units), r.segment(row, 0, units)];
            update_and_reset_gates::<V>(bias, gates, h_prev, rh.segment(row, 0, units));
        }
    })
}

/// The candidate's activation for the units `first..` of `[z, h~, h]` (`h~` holding its
/// pre-activation without the bias), and the new state.
fn candidate_step(bias: &[f32], h_prev: &[f32], first: usize, [z, candidate, h]: &mut [OutMatrix<'_>; 3]) {
    let hidden = bias.len() / GRU_GATES;
    let (rows, units) = (h.rows(), h.cols());
    let bias = &bias[2 * hidden + first..][..units];
    simd!(V => {
        for row in 0..rows {
            let h_prev = &h_prev[row * hidden + first..][..units];
            let (z, candidate) = (z.segment(row, 0, units), candidate.segment(row, 0, units));
            candidate_and_state::<V>(bias, (z, candidate), h_prev, h.segment(row, 0, units));
        }
    })
}

/// `z` and `r` from their pre-activations (without the bias), stored in place; `rh = r h_prev`.
#[inline(always)]
fn update_and_reset_gates<V: Simd>(bias: [&[f32]; 2], [z, r]: [&mut [f32]; 2], h_prev: &[f32], rh: &mut [f32]) {
    for j in (0..rh.len()).step_by(V::LANES) {
        let lanes = j..(j + V::LANES).min(rh.len());
        let (z_act, r_act) = (
            sigmoid(load_biased::<V>(z, bias[0], lanes.clone())),
            sigmoid(load_biased::<V>(r, bias[1], lanes.clone())),
        );
        store_partial(&mut rh[lanes.clone()], r_act * load_up_to::<V>(&h_prev[lanes.clone()]));
        store_partial(&mut z[lanes.clone()], z_act);
        store_partial(&mut r[lanes], r_act);
    }
}

/// `h~` from its pre-activation (without the bias), stored in place, and the new state
/// `h = h_prev + z (h~ - h_prev)`.
#[inline(always)]
fn candidate_and_state<V: Simd>(bias: &[f32], (z, candidate): (&[f32], &mut [f32]), h_prev: &[f32], h: &mut [f32]) {
    for j in (0..h.len()).step_by(V::LANES) {
        let lanes = j..(j + V::LANES).min(h.len());
        let candidate_act = tanh(load_biased::<V>(candidate, bias, lanes.clone()));
        let (z, h_prev) = (load_up_to::<V>(&z[lanes.clone()]), load_up_to::<V>(&h_prev[lanes.clone()]));
        store_partial(&mut h[lanes.clone()], z.mul_add(candidate_act - h_prev, h_prev));
        store_partial(&mut candidate[lanes], candidate_act);
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
/// gradient (truncated BPTT). Parallel as [`gru_forward_window`]. Panics, before writing
/// anything, if a length or a packed shape does not match.
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
    if batch == 0 || hidden == 0 {
        return;
    }
    let (block, step) = (batch * hidden, batch * width);
    // `d(rh) = da_h~ * Wh_h~^T` for the units `first..` of `drh`, from all of the step's `da`.
    let reset_product = |da: &[f32], first: usize, [drh]: &mut [OutMatrix<'_>; 1]| {
        gemm_packed_columns_into(1.0, (&da[2 * hidden..], width, Transpose::No), wh_candidate_t, first, 0.0, drh)
    };
    let split = recurrent_split(batch, hidden, step * hidden, time);
    let buffers = [(gates, width), (dhs, hidden), (drh, hidden)];
    for_each_row_group(batch, split.row_groups(), buffers, |first_row, rows, [gates, dhs, drh]| {
        let h_of = |t: usize| &hs[t * block + first_row * hidden..][..rows * hidden];
        let drh = drh.segment(0, 0, rows * hidden);
        for t in (0..time).rev() {
            let (da, da_next) = gates.row_and_next(t);
            let h_prev = h_of(t);
            let (dh_prev, dh) = match t {
                0 => (no_rows(hidden), dhs.segment(0, 0, rows * hidden)),
                _ => {
                    let (dh_prev, dh) = dhs.row_pair(t - 1);
                    (units_view(rows, hidden, dh_prev), dh)
                }
            };
            let [z, _, candidate] = gate_views(rows, hidden, da);
            let mut views = [z, candidate, units_view(rows, hidden, dh), dh_prev];
            split.run_phase(&mut views, |first, views| update_backward_step(wh_zr_t, (h_prev, da_next), first, views));
            let da_read = &*da;
            let mut drh_view = [units_view(rows, hidden, &mut *drh)];
            split.run_phase(&mut drh_view, |first, drh| reset_product(da_read, first, drh));
            let dh_prev = match t {
                0 => no_rows(hidden),
                _ => units_view(rows, hidden, dhs.row_pair(t - 1).0),
            };
            let [_, r, _] = gate_views(rows, hidden, da);
            let mut views = [r, units_view(rows, hidden, &mut *drh), dh_prev];
            split.run_phase(&mut views, |first, views| reset_backward_step(h_prev, first, views));
        }
    });
}

/// First half of a backward step for the units `first..` of `[z, h~, dh, dh_prev]`
/// (`dh_prev` of no rows at the first step): `dh` receives the next step's
/// `da_next[z r] * Wh[z r]^T` (when there is a next step; `da_next` is all of its
/// `rows x 3 hidden`), then `da_z` and `da_h~` replace `z` and `h~`, and
/// `dh_prev += dh (1 - z)`.
fn update_backward_step(
    wh_zr_t: &PackedB,
    (h_prev, da_next): (&[f32], Option<&[f32]>),
    first: usize,
    [z, candidate, dh, dh_prev]: &mut [OutMatrix<'_>; 4],
) {
    let hidden = wh_zr_t.n();
    if let Some(da_next) = da_next {
        gemm_packed_columns_into(1.0, (da_next, GRU_GATES * hidden, Transpose::No), wh_zr_t, first, 1.0, dh);
    }
    let (rows, units) = (dh.rows(), dh.cols());
    simd!(V => {
        for row in 0..rows {
            let h_prev = &h_prev[row * hidden + first..][..units];
            let (z, candidate) = (z.segment(row, 0, units), candidate.segment(row, 0, units));
            let dh_prev = (dh_prev.rows() > 0).then(|| dh_prev.segment(row, 0, units));
            candidate_and_update_backward::<V>((z, candidate), h_prev, dh.segment(row, 0, units), dh_prev);
        }
    })
}

/// Second half of a backward step for the units `first..` of `[r, drh, dh_prev]`, `drh`
/// holding `d(rh)`: `da_r` replaces `r` and `dh_prev += drh r`.
fn reset_backward_step(h_prev: &[f32], first: usize, [r, drh, dh_prev]: &mut [OutMatrix<'_>; 3]) {
    let hidden = h_prev.len() / drh.rows().max(1);
    let (rows, units) = (drh.rows(), drh.cols());
    simd!(V => {
        for row in 0..rows {
            let h_prev = &h_prev[row * hidden + first..][..units];
            let dh_prev = (dh_prev.rows() > 0).then(|| dh_prev.segment(row, 0, units));
            reset_backward::<V>(r.segment(row, 0, units), h_prev, drh.segment(row, 0, units), dh_prev);
        }
    })
}

/// `da_z` and `da_h~` from the activated `z` and `h~`, stored in their place;
/// `dh_prev += dh (1 - z)` when there is a `dh_prev`.
#[inline(always)]
fn candidate_and_update_backward<V: Simd>(
    (z, candidate): (&mut [f32], &mut [f32]),
    h_prev: &[f32],
    dh: &[f32],
    mut dh_prev: Option<&mut [f32]>,
) {
    let one = V::one();
    for j in (0..dh.len()).step_by(V::LANES) {
        let lanes = j..(j + V::LANES).min(dh.len());
        let (z_act, candidate_act) = (load_up_to::<V>(&z[lanes.clone()]), load_up_to::<V>(&candidate[lanes.clone()]));
        let (dh, h_prev) = (load_up_to::<V>(&dh[lanes.clone()]), load_up_to::<V>(&h_prev[lanes.clone()]));
        let dz = dh * (candidate_act - h_prev);
        store_partial(&mut z[lanes.clone()], dz * z_act * (one - z_act));
        store_partial(&mut candidate[lanes.clone()], dh * z_act * (one - candidate_act * candidate_act));
        if let Some(dh_prev) = dh_prev.as_deref_mut() {
            let d = &mut dh_prev[lanes];
            store_partial(d, dh.mul_add(one - z_act, load_up_to(d)));
        }
    }
}

/// `da_r = d(rh) h_prev r (1 - r)` from the activated `r`, stored in its place;
/// `dh_prev += d(rh) r` when there is a `dh_prev`.
#[inline(always)]
fn reset_backward<V: Simd>(r: &mut [f32], h_prev: &[f32], drh: &[f32], mut dh_prev: Option<&mut [f32]>) {
    for j in (0..r.len()).step_by(V::LANES) {
        let lanes = j..(j + V::LANES).min(r.len());
        let (r_act, drh) = (load_up_to::<V>(&r[lanes.clone()]), load_up_to::<V>(&drh[lanes.clone()]));
        let dr = drh * load_up_to::<V>(&h_prev[lanes.clone()]);
        store_partial(&mut r[lanes.clone()], dr * r_act * (V::one() - r_act));
        if let Some(dh_prev) = dh_prev.as_deref_mut() {
            let d = &mut dh_prev[lanes];
            store_partial(d, drh.mul_add(r_act, load_up_to(d)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_near, assert_same_bits_for_any_thread_count, test_values};
    use super::*;

    /// Batch 1, sizes off the vector width, one step, shapes large enough for several
    /// parallel groups of rows (the last uneven), and one whose steps are split by blocks of
    /// hidden units (the last narrower).
    const SHAPES: [(usize, usize, usize); 7] =
        [(1, 1, 1), (1, 5, 3), (3, 17, 4), (7, 40, 2), (20, 90, 35), (9, 150, 6), (5, 500, 3)];

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

    #[test]
    fn the_last_shape_splits_its_steps_by_hidden_units() {
        use super::super::recurrent_split::{recurrent_split, RecurrentSplit};
        let (batch, hidden, _) = SHAPES[SHAPES.len() - 1];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let split = pool.install(|| recurrent_split(batch, hidden, 5 * 3 * 500 * 500, 3));
        assert!(matches!(split, RecurrentSplit::UnitBlocks(2)), "{split:?}");
    }
}
