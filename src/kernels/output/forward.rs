//! One panel of a forward pass: its GEMM, then per row the bias and the softmax's statistics
//! (or the exponentials the backward pass needs).

use super::super::gemm::{gemm_packed_a, gemm_packed_both_into, PackedA};
use super::super::out_matrix::OutMatrix;
use super::super::simd::{exp, lane_max, lane_sum, simd, zip_map_inplace, Simd, MAX_LANES};
use super::{PackedWeights, PanelRow, WeightLayout, IGNORE_TARGET, NO_TARGET, PANEL_COLS};

/// What a forward pass leaves in the panels.
#[derive(Clone, Copy)]
pub(super) enum ForwardPass<'a> {
    /// `z = hs * W + b`.
    Logits,
    /// `exp(z - panel max)` and each row's statistics for these targets, for the loss and the
    /// backward pass.
    Exponentials(&'a [i32]),
    /// Only each row's statistics for these targets (the panels keep `hs * W`, without the
    /// bias): what the loss alone needs.
    Statistics(&'a [i32]),
}

/// The weights a forward pass reads.
#[derive(Clone, Copy)]
pub(super) enum Weights<'a> {
    /// `W` as stored, each panel packed by its GEMM.
    Stored(&'a [f32], WeightLayout),
    /// Packed in advance.
    Packed(&'a PackedWeights),
}

/// What every panel of one forward pass reads.
pub(super) struct PanelForward<'a> {
    pub(super) packed_hs: &'a PackedA,
    pub(super) weights: Weights<'a>,
    pub(super) bias: &'a [f32],
    pub(super) hidden: usize,
    pub(super) classes: usize,
    pub(super) pass: ForwardPass<'a>,
}

impl PanelForward<'_> {
    /// Panel `index`: `hs * W[:, panel]` into the start of `room` (`rows x width`), then what
    /// the pass asks, with the panel's statistics into `stats` (`rows`).
    pub(super) fn panel(&self, index: usize, room: &mut [f32], stats: &mut [PanelRow]) {
        let (hidden, classes, rows) = (self.hidden, self.classes, stats.len());
        let j0 = index * PANEL_COLS;
        let width = PANEL_COLS.min(classes - j0);
        let panel = &mut room[..rows * width];
        match self.weights {
            Weights::Stored(w, layout) => {
                let (w_panel, ldw, w_trans) = layout.panel(w, j0, (hidden, classes));
                gemm_packed_a(width, 1.0, self.packed_hs, w_panel, ldw, w_trans, 0.0, panel, width);
            }
            Weights::Packed(packed) => {
                let mut c = OutMatrix::new("OutputLayer::forward_loss_only", panel, rows, width, width);
                gemm_packed_both_into(1.0, self.packed_hs, packed.panel(index), 0.0, &mut c);
            }
        }
        let bias = &self.bias[j0..j0 + width];
        let pass = self.pass;
        simd!(V => {
            for (r, (row, stat)) in panel.chunks_exact_mut(width).zip(stats.iter_mut()).enumerate() {
                let target_in_panel = |targets: &[i32]| {
                    let target = targets[r] as i64 - j0 as i64;
                    (0..width as i64).contains(&target).then_some(target as usize)
                };
                match pass {
                    ForwardPass::Statistics(targets) if targets[r] == IGNORE_TARGET => {
                        *stat = PanelRow::default();
                    }
                    ForwardPass::Statistics(targets) => {
                        *stat = row_statistics::<V, false>(row, bias, target_in_panel(targets));
                    }
                    ForwardPass::Exponentials(targets) => {
                        *stat = row_statistics::<V, true>(row, bias, target_in_panel(targets));
                    }
                    ForwardPass::Logits => zip_map_inplace::<V>(row, bias, #[inline(always)] |z, b| z + b),
                }
            }
        })
    }
}

/// The statistics of a panel row of logits `z = row + bias` (max, `sum of exp(z - max)`, the
/// target's `z`), the bias added on the fly; with `KEEP`, the row is replaced by
/// `exp(z - max)` for the backward pass, else nothing is stored (the loss alone). Either way
/// the sums are the same, in the same order, so the loss has the same bits.
#[inline(always)]
pub(super) fn row_statistics<V: Simd, const KEEP: bool>(
    row: &mut [f32],
    bias: &[f32],
    target: Option<usize>,
) -> PanelRow {
    let whole = row.len() / V::LANES * V::LANES;
    let biased = |row: &[f32], i: usize| V::load(&row[i..]) + V::load(&bias[i..]);
    let mut max_lanes = V::splat(f32::NEG_INFINITY);
    for i in (0..whole).step_by(V::LANES) {
        max_lanes = max_lanes.max(biased(row, i));
    }
    let max = (whole..row.len()).fold(lane_max(max_lanes), |m, i| m.max(row[i] + bias[i]));
    let target_logit = target.map_or(0.0, |t| row[t] + bias[t]);
    let shift = V::splat(max);
    let mut sum_lanes = V::zero();
    for i in (0..whole).step_by(V::LANES) {
        let e = exp(biased(row, i) - shift);
        if KEEP {
            e.store(&mut row[i..]);
        }
        sum_lanes += e;
    }
    let mut sum = lane_sum(sum_lanes);
    let tail = &mut row[whole..];
    if !tail.is_empty() {
        let mut lanes = [max; MAX_LANES];
        for ((lane, &z), &b) in lanes.iter_mut().zip(tail.iter()).zip(&bias[whole..]) {
            *lane = z + b;
        }
        let e = exp(V::load(&lanes) - shift).to_array();
        let e = &e.as_ref()[..tail.len()];
        if KEEP {
            tail.copy_from_slice(e);
        }
        sum += e.iter().sum::<f32>();
    }
    PanelRow { max, sum, target: target.map_or(NO_TARGET, |t| t as u32), target_logit }
}
