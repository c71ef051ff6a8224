//! The LSTM cell over a window, forward and backward: the gate GEMM of each step plus one
//! fused pass over the step's `B x 4H` pre-activations.
//!
//! Gate blocks are `[f | g | i | o]`, each `H` columns wide (forget, candidate, input,
//! output). As for the tanh cell, the input projection `x_t * Wx` of every step is one GEMM
//! over the whole window before the time loop, and the weight gradients are GEMMs over the
//! whole window after the backward loop (`dWx = X^T * da`, `dWh = H_prev^T * da`, `db` = column
//! sums of `da`); what remains inside the loop is the recurrent product and the fused cell.

use super::gemm::{gemm_packed_columns_into, PackedB, Transpose};
use super::out_matrix::OutMatrix;
use super::recurrent_split::{for_each_row_group, recurrent_split};
use super::simd::{load_biased, load_up_to, sigmoid, simd, store_partial, tanh, Simd};
use super::{check_len, check_packed};

/// Gate blocks of an LSTM row: `f`, `g`, `i`, `o`.
pub const LSTM_GATES: usize = 4;

/// The name the step views' checks report.
const STEP: &str = "lstm step";

/// A step's matrices with one column per hidden unit, as the step functions take them: the
/// four gate blocks of the step's gates, then two `rows x hidden` states (forward: `h_t` and
/// `c_t`; backward: the gradients at `h_t` and `c_t`).
type StepViews<'a> = [OutMatrix<'a>; LSTM_GATES + 2];

/// The views of one step for `rows` rows: `gates` is `rows x 4 hidden`, `first` and `second`
/// are `rows x hidden`.
fn step_views<'a>(
    rows: usize,
    hidden: usize,
    gates: &'a mut [f32],
    first: &'a mut [f32],
    second: &'a mut [f32],
) -> StepViews<'a> {
    let width = LSTM_GATES * hidden;
    let [f, g, i, o] = OutMatrix::new(STEP, gates, rows, width, width).into_columns([hidden; LSTM_GATES]);
    let state = |data| OutMatrix::new(STEP, data, rows, hidden, hidden);
    [f, g, i, o, state(first), state(second)]
}

/// The forward recurrence over a window.
///
/// Shapes (row-major): `gates` is `time` blocks of `batch x 4 hidden`; on entry block `t - 1`
/// holds the input projection `x_t * Wx` (no bias), on return the activated gates
/// `[f | g | i | o]` of step `t`, which [`lstm_backward_window`] reads. `hs` and `cs` are
/// `time + 1` blocks of `batch x hidden`: block 0 holds the state carried in (`h_0`, `c_0`), and
/// on return block `t` holds `h_t` and `c_t`. `wh` is `Wh` (`hidden x 4 hidden`) packed by
/// [`PackedB::pack`]`(wh, 4 * hidden, Transpose::No)`; `bias` is `4 hidden`.
///
/// Per step: `a = gates_t + h_{t-1} * Wh + b`; `f, i, o = sigmoid(a_f, a_i, a_o)`,
/// `g = tanh(a_g)`; `c_t = f c_{t-1} + g i` (one fused multiply-add); `h_t = o tanh(c_t)`.
/// Parallel by groups of batch rows or, on pools larger than the rows allow, at every step by
/// blocks of the product's columns and then of hidden units, with the same bits for any split
/// and thread count. Panics, before writing anything, if a length or the packed shape does not
/// match.
#[allow(clippy::too_many_arguments)]
pub fn lstm_forward_window(
    batch: usize,
    hidden: usize,
    time: usize,
    wh: &PackedB,
    bias: &[f32],
    gates: &mut [f32],
    hs: &mut [f32],
    cs: &mut [f32],
) {
    const KERNEL: &str = "lstm_forward_window";
    let width = LSTM_GATES * hidden;
    check_packed(KERNEL, "wh", wh, (Transpose::No, "hidden x 4 hidden"), (hidden, width));
    check_len(KERNEL, "bias", bias.len(), "4 hidden", &[LSTM_GATES, hidden]);
    check_len(KERNEL, "gates", gates.len(), "time x batch x 4 hidden", &[time, batch, width]);
    let states = ("(time + 1) x batch x hidden", [time.saturating_add(1), batch, hidden]);
    check_len(KERNEL, "hs", hs.len(), states.0, &states.1);
    check_len(KERNEL, "cs", cs.len(), states.0, &states.1);
    if batch == 0 || hidden == 0 {
        return;
    }
    let block = batch * hidden;
    let split = recurrent_split(batch, hidden, block * width, time);
    let buffers = [(gates, width), (hs, hidden), (cs, hidden)];
    for_each_row_group(batch, split.row_groups(), buffers, |_, rows, [gates, hs, cs]| {
        for t in 0..time {
            let ((h_prev, h), (c_prev, c)) = (hs.row_pair(t), cs.row_pair(t));
            let (h_prev, c_prev, a) = (&*h_prev, &*c_prev, gates.segment(t, 0, rows * width));
            let mut products = [OutMatrix::new(STEP, &mut *a, rows, width, width)];
            split.run_phase(&mut products, |first, products| recurrent_products(wh, h_prev, first, products));
            let mut views = step_views(rows, hidden, a, h, c);
            split.run_phase(&mut views, |first, views| cells_forward(bias, c_prev, first, views));
        }
    });
}

/// `a += h_prev * Wh[.., first..]` for the columns `first..` of the step's gates that `a`
/// holds (`h_prev` is the whole previous state, `rows x hidden`).
fn recurrent_products(wh: &PackedB, h_prev: &[f32], first: usize, [a]: &mut [OutMatrix<'_>; 1]) {
    gemm_packed_columns_into(1.0, (h_prev, wh.k(), Transpose::No), wh, first, 1.0, a);
}

/// The fused cell for the units `first..` of `views` (`[f, g, i, o, h, c]`, the gates holding
/// their pre-activations without the bias); `c_prev` is the whole `c_{t-1}`.
fn cells_forward(bias: &[f32], c_prev: &[f32], first: usize, views: &mut StepViews<'_>) {
    let [f, g, i, o, h, c] = views;
    let (rows, units) = (h.rows(), h.cols());
    let hidden = bias.len() / LSTM_GATES;
    let bias: [&[f32]; LSTM_GATES] = std::array::from_fn(|gate| &bias[gate * hidden + first..][..units]);
    simd!(V => {
        for r in 0..rows {
            let gates = [f.segment(r, 0, units), g.segment(r, 0, units), i.segment(r, 0, units), o.segment(r, 0, units)];
            let c_prev = &c_prev[r * hidden + first..][..units];
            cell_forward::<V>(bias, gates, c_prev, c.segment(r, 0, units), h.segment(r, 0, units));
        }
    })
}

/// The fused forward of one row's units: `a` (the four gates) holds the pre-activations
/// without the bias on entry and the activated gates on return; `c` and `h` receive the new
/// state.
#[inline(always)]
fn cell_forward<V: Simd>(bias: [&[f32]; 4], a: [&mut [f32]; 4], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let [af, ag, ai, ao] = a;
    for j in (0..c.len()).step_by(V::LANES) {
        let lanes = j..(j + V::LANES).min(c.len());
        let (f, g, i, o) = (
            sigmoid(load_biased::<V>(af, bias[0], lanes.clone())),
            tanh(load_biased::<V>(ag, bias[1], lanes.clone())),
            sigmoid(load_biased::<V>(ai, bias[2], lanes.clone())),
            sigmoid(load_biased::<V>(ao, bias[3], lanes.clone())),
        );
        let c_new = f.mul_add(load_up_to::<V>(&c_prev[lanes.clone()]), g * i);
        store_partial(&mut c[lanes.clone()], c_new);
        store_partial(&mut h[lanes.clone()], o * tanh(c_new));
        for (gate, value) in [&mut *af, &mut *ag, &mut *ai, &mut *ao].into_iter().zip([f, g, i, o]) {
            store_partial(&mut gate[lanes.clone()], value);
        }
    }
}

/// The backward recurrence over a window.
///
/// Shapes (row-major): `cs` is the forward's `time + 1` blocks of `batch x hidden`; `gates` is
/// its `time` blocks of `batch x 4 hidden` activated gates, overwritten with the gradient at
/// each step's pre-activations, `da` (what the weight gradients need); `dhs` is `time` blocks of
/// `batch x hidden`, block `t - 1` for `h_t`: on entry the loss gradient with respect to each
/// `h_t` from above, on return that plus the gradient through the later steps. `dc` is scratch
/// for `batch x hidden` values. `wh_t` is `Wh` packed transposed, by
/// [`PackedB::pack`]`(wh, 4 * hidden, Transpose::Yes)` (`4 hidden x hidden`).
///
/// Per step, from the last: `ds = dc + dh o (1 - tanh(c_t)^2)`; `dc` for the step before is
/// `ds f`; `da_f = ds c_{t-1} f (1 - f)`, `da_g = ds i (1 - g^2)`, `da_i = ds g i (1 - i)`,
/// `da_o = dh tanh(c_t) o (1 - o)`; `dh_{t-1} += da * Wh^T`. The state carried in receives no
/// gradient (truncated BPTT). Parallel as [`lstm_forward_window`]. Panics, before writing
/// anything, if a length or the packed shape does not match.
#[allow(clippy::too_many_arguments)]
pub fn lstm_backward_window(
    batch: usize,
    hidden: usize,
    time: usize,
    wh_t: &PackedB,
    cs: &[f32],
    gates: &mut [f32],
    dhs: &mut [f32],
    dc: &mut [f32],
) {
    const KERNEL: &str = "lstm_backward_window";
    let width = LSTM_GATES * hidden;
    check_packed(KERNEL, "wh_t", wh_t, (Transpose::Yes, "4 hidden x hidden"), (width, hidden));
    check_len(KERNEL, "cs", cs.len(), "(time + 1) x batch x hidden", &[time.saturating_add(1), batch, hidden]);
    check_len(KERNEL, "gates", gates.len(), "time x batch x 4 hidden", &[time, batch, width]);
    check_len(KERNEL, "dhs", dhs.len(), "time x batch x hidden", &[time, batch, hidden]);
    check_len(KERNEL, "dc", dc.len(), "batch x hidden", &[batch, hidden]);
    if batch == 0 || hidden == 0 {
        return;
    }
    let block = batch * hidden;
    let states_of = |first_row: usize, rows: usize, t: usize| {
        let c_of = |t: usize| &cs[t * block + first_row * hidden..][..rows * hidden];
        (c_of(t), c_of(t + 1))
    };
    let split = recurrent_split(batch, hidden, block * width, time.saturating_sub(1));
    let buffers = [(gates, width), (dhs, hidden), (dc, hidden)];
    for_each_row_group(batch, split.row_groups(), buffers, |first_row, rows, [gates, dhs, dc]| {
        let dc = dc.segment(0, 0, rows * hidden);
        dc.fill(0.0);
        for t in (0..time).rev() {
            let (da, da_next) = gates.row_and_next(t);
            let mut views = step_views(rows, hidden, da, dhs.segment(t, 0, rows * hidden), &mut *dc);
            let states = states_of(first_row, rows, t);
            split.run_phase(&mut views, |first, views| backward_step(wh_t, states, da_next, first, views));
        }
    });
}

/// One backward step for the units `first..` of `views` (`[f, g, i, o, dh, dc]`: the activated
/// gates, the gradient at `h_t` from above and the gradient at `c_t`): first `dh` receives the
/// next step's `da_next * Wh^T` (all of `da_next`, `rows x 4 hidden`, when there is a next
/// step), then the fused cell turns the gates into `da` and `dc` into the gradient at
/// `c_{t-1}`. `(c_prev, c)` are the whole `c_{t-1}` and `c_t`.
fn backward_step(
    wh_t: &PackedB,
    (c_prev, c): (&[f32], &[f32]),
    da_next: Option<&[f32]>,
    first: usize,
    views: &mut StepViews<'_>,
) {
    let hidden = wh_t.n();
    let [f, g, i, o, dh, dc] = views;
    if let Some(da_next) = da_next {
        gemm_packed_columns_into(1.0, (da_next, LSTM_GATES * hidden, Transpose::No), wh_t, first, 1.0, dh);
    }
    let (rows, units) = (dh.rows(), dh.cols());
    simd!(V => {
        for r in 0..rows {
            let gates = [f.segment(r, 0, units), g.segment(r, 0, units), i.segment(r, 0, units), o.segment(r, 0, units)];
            let at = r * hidden + first..r * hidden + first + units;
            cell_backward::<V>(gates, (&c_prev[at.clone()], &c[at]), dh.segment(r, 0, units), dc.segment(r, 0, units));
        }
    })
}

/// The fused backward of one row's units: `a` (the four gates) holds the activated gates on
/// entry and `da` on return; `dc` holds the gradient at `c_t` on entry and at `c_{t-1}` on
/// return.
#[inline(always)]
fn cell_backward<V: Simd>(a: [&mut [f32]; 4], (c_prev, c): (&[f32], &[f32]), dh: &[f32], dc: &mut [f32]) {
    let one = V::one();
    let [af, ag, ai, ao] = a;
    for j in (0..c.len()).step_by(V::LANES) {
        let lanes = j..(j + V::LANES).min(c.len());
        let [f, g, i, o] = [&*af, &*ag, &*ai, &*ao].map(|gate| load_up_to::<V>(&gate[lanes.clone()]));
        let dh = load_up_to::<V>(&dh[lanes.clone()]);
        let tc = tanh(load_up_to::<V>(&c[lanes.clone()]));
        let ds = (dh * o).mul_add(one - tc * tc, load_up_to::<V>(&dc[lanes.clone()]));
        let da = [
            ds * load_up_to::<V>(&c_prev[lanes.clone()]) * f * (one - f),
            ds * i * (one - g * g),
            ds * g * i * (one - i),
            dh * tc * o * (one - o),
        ];
        store_partial(&mut dc[lanes.clone()], ds * f);
        for (gate, value) in [&mut *af, &mut *ag, &mut *ai, &mut *ao].into_iter().zip(da) {
            store_partial(&mut gate[lanes.clone()], value);
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
        /// Forward inputs: the input projections, `h_0` and `c_0`.
        projections: Vec<f32>,
        h0: Vec<f32>,
        c0: Vec<f32>,
        /// Backward input: the gradient from above for every `h_t`.
        dhs: Vec<f32>,
    }

    /// What the window kernels return: gates (then `da`), `hs`, `cs`, and `dhs` after the
    /// backward pass.
    struct Results<T> {
        gates: Vec<T>,
        hs: Vec<T>,
        cs: Vec<T>,
        da: Vec<T>,
    }

    impl Case {
        fn new(case: usize, (batch, hidden, time): (usize, usize, usize)) -> Case {
            let scale = |values: Vec<f32>, s: f32| values.into_iter().map(|v| v * s).collect::<Vec<_>>();
            let seed = 10 * case as u64 + 5;
            let block = batch * hidden;
            Case {
                batch,
                hidden,
                time,
                wh: scale(test_values(hidden * 4 * hidden, seed + 1), 1.0 / (hidden as f32).sqrt()),
                bias: scale(test_values(4 * hidden, seed + 2), 0.5),
                projections: scale(test_values(time * 4 * block, seed + 3), 2.0),
                h0: test_values(block, seed + 4),
                c0: scale(test_values(block, seed + 5), 3.0),
                dhs: test_values(time * block, seed + 6),
            }
        }

        fn windows(&self) -> Results<f32> {
            let (b, h, t) = (self.batch, self.hidden, self.time);
            let mut gates = self.projections.clone();
            let mut hs = [self.h0.clone(), vec![f32::NAN; t * b * h]].concat();
            let mut cs = [self.c0.clone(), vec![f32::NAN; t * b * h]].concat();
            let mut wh = PackedB::new(h, 4 * h).unwrap();
            wh.pack(&self.wh, 4 * h, Transpose::No);
            lstm_forward_window(b, h, t, &wh, &self.bias, &mut gates, &mut hs, &mut cs);
            let forward_gates = gates.clone();
            let mut wh_t = PackedB::new(4 * h, h).unwrap();
            wh_t.pack(&self.wh, 4 * h, Transpose::Yes);
            let (mut dhs, mut dc) = (self.dhs.clone(), vec![f32::NAN; b * h]);
            lstm_backward_window(b, h, t, &wh_t, &cs, &mut gates, &mut dhs, &mut dc);
            Results { gates: forward_gates, hs, cs, da: gates }
        }

        /// The spec's LSTM in f64, row by row and step by step.
        fn definition(&self) -> Results<f64> {
            let (b, h, time) = (self.batch, self.hidden, self.time);
            let (block, width) = (b * h, 4 * h);
            let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
            let mut gates = vec![0.0; time * b * width];
            let mut hs: Vec<f64> = self.h0.iter().map(|&v| v as f64).chain(vec![0.0; time * block]).collect();
            let mut cs: Vec<f64> = self.c0.iter().map(|&v| v as f64).chain(vec![0.0; time * block]).collect();
            for t in 0..time {
                for r in 0..b {
                    let row = (t * b + r) * width;
                    for col in 0..width {
                        let mut pre = self.projections[row + col] as f64 + self.bias[col] as f64;
                        for k in 0..h {
                            pre += hs[t * block + r * h + k] * self.wh[k * width + col] as f64;
                        }
                        gates[row + col] = if col / h == 1 { pre.tanh() } else { sigmoid(pre) };
                    }
                    for j in 0..h {
                        let [f, g, i, o] = [0, 1, 2, 3].map(|gate| gates[row + gate * h + j]);
                        let c = f * cs[t * block + r * h + j] + g * i;
                        cs[(t + 1) * block + r * h + j] = c;
                        hs[(t + 1) * block + r * h + j] = o * c.tanh();
                    }
                }
            }
            let mut da = gates.clone();
            let mut dhs: Vec<f64> = self.dhs.iter().map(|&v| v as f64).collect();
            let mut dc = vec![0.0; block];
            for t in (0..time).rev() {
                for r in 0..b {
                    let row = (t * b + r) * width;
                    for j in 0..h {
                        let [f, g, i, o] = [0, 1, 2, 3].map(|gate| gates[row + gate * h + j]);
                        let (c_prev, c) = (cs[t * block + r * h + j], cs[(t + 1) * block + r * h + j]);
                        let dh = dhs[t * block + r * h + j];
                        let tc = c.tanh();
                        let ds = dc[r * h + j] + dh * o * (1.0 - tc * tc);
                        dc[r * h + j] = ds * f;
                        da[row + j] = ds * c_prev * f * (1.0 - f);
                        da[row + h + j] = ds * i * (1.0 - g * g);
                        da[row + 2 * h + j] = ds * g * i * (1.0 - i);
                        da[row + 3 * h + j] = dh * tc * o * (1.0 - o);
                    }
                    if t > 0 {
                        for k in 0..h {
                            let through: f64 =
                                (0..width).map(|col| da[row + col] * self.wh[k * width + col] as f64).sum();
                            dhs[(t - 1) * block + r * h + k] += through;
                        }
                    }
                }
            }
            Results { gates, hs, cs, da }
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
                    ("cs", &got.cs[..], &want.cs[..]),
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
                [r.gates, r.hs, r.cs, r.da].concat()
            });
        }
    }

    #[test]
    fn the_last_shape_splits_its_steps_by_hidden_units() {
        use super::super::recurrent_split::{recurrent_split, RecurrentSplit};
        let (batch, hidden, _) = SHAPES[SHAPES.len() - 1];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let split = pool.install(|| recurrent_split(batch, hidden, 5 * 4 * 500 * 500, 3));
        assert!(matches!(split, RecurrentSplit::UnitBlocks(2)), "{split:?}");
    }
}
