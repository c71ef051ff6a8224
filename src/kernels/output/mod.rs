//! The fused output layer: `z = hs * W + b`, softmax cross-entropy, and its backward pass, in
//! panels of columns that stay in L2.
//!
//! Done as separate passes (a GEMM writing all `rows x classes` logits, a softmax sweeping them,
//! then two gradient GEMMs reading them), the logits of a window of 700 rows over 10,000 classes (28 MB)
//! leave the caches and are read back from memory four or five times. Here the classes are cut
//! into panels of [`PANEL_COLS`] columns, and each panel is handled while it is in L2:
//!
//! - forward, per panel: `z = hs * W[:, panel] + b[panel]` (one GEMM), then per row the panel's
//!   maximum `m`, `e = exp(z - m)` in place, and `s = sum(e)`;
//! - loss, per row: the panels' `(m, s)` pairs combine into the row's log-sum-exp, and each
//!   panel gets the factor `exp(m - max) / sum * inv_n` that turns its `e` into the softmax;
//! - backward, per panel: the gradient `dz = e * factor - onehot * inv_n` in place, then
//!   `dW[:, panel] = hs^T * dz` and `db[panel] = column sums of dz` (each panel owns its columns,
//!   nothing to reduce), and this panel's share of `dhs = dz * W^T`.
//!
//! The logits are stored panel after panel (`rows x width` each, row-major), so a panel is one
//! contiguous slice. The forward pass shares the panels out one by one. The backward pass
//! groups them into runs of consecutive panels ("tasks"); each task adds its panels' shares of
//! `dhs` into its own buffer, in panel order, and the buffers are added up in task order. The
//! grouping depends only on the layer's shape (about `classes / hidden` tasks, fewer where a
//! panel's products are small, at most one per panel), never on the number of threads, so
//! results are bit-identical for any thread count, and a host with more cores gets more tasks
//! running at once.

use super::embedding::sum_columns;
use super::gemm::{gemm, GemmShape, PackedA, Transpose, PARALLEL_MIN_WORK};
use super::optim::sgd_update;
use super::out_matrix::{Axis, OutMatrix};
use super::simd::{map_inplace, simd, Simd};
use super::{check_len, check_targets, filled, lazy_zeros};
mod backward;
mod forward;
mod tasks;
mod weights;

use forward::{ForwardPass, PanelForward, Weights};

use rayon::prelude::*;
use tasks::{sum_and_transpose, sum_partials, task_layout, BackwardShare, PartialFold, PartialLayout, TaskFlags};
use tasks::{SUM_ROWS, TRANSPOSE_UNITS};
use weights::PackedForGradient;
pub use weights::{PackedWeights, WeightLayout};

/// A target id that is ignored: its row contributes no loss and a zero gradient.
pub const IGNORE_TARGET: i32 = -1;

/// Columns per panel. A panel of 700 rows is 700 KiB: it stays in a 1 - 2 MiB L2 from its GEMM
/// through its statistics, and from its gradient through both backward GEMMs.
pub const PANEL_COLS: usize = 256;
/// Weights (`hidden x classes`) from which even one row's pass is shared between threads.
const PARALLEL_MIN_WEIGHTS: usize = 1 << 19;
/// Rows per parallel job when combining the panels' statistics.
const COMBINE_ROWS: usize = 64;
/// Marks a panel row whose target is in another panel (or ignored).
const NO_TARGET: u32 = u32::MAX;

/// What the forward pass learns about one row within one panel.
#[derive(Clone, Copy, Debug, Default)]
struct PanelRow {
    /// Largest `z` of the row within the panel.
    max: f32,
    /// `sum of exp(z - max)` over the panel's part of the row.
    sum: f32,
    /// The row's target as a column of this panel, or `NO_TARGET`.
    target: u32,
    /// `z` at the target, when the target is in this panel.
    target_logit: f32,
}

/// What the loss learns about one whole row: with them, the factor turning a panel's
/// `exp(z - panel max)` into `softmax * inv_n` is `exp(panel max - max) * factor`.
#[derive(Clone, Copy, Debug, Default)]
struct RowScale {
    /// Largest `z` of the row.
    max: f32,
    /// `inv_n / sum of exp(z - max)` over the row; 0 for an ignored row.
    factor: f64,
}

impl RowScale {
    /// The factor for the part of the row in a panel whose statistics are `stat`.
    fn panel_factor(&self, stat: &PanelRow) -> f32 {
        ((stat.max - self.max).exp() as f64 * self.factor) as f32
    }
}

/// What the panels hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contents {
    Nothing,
    /// `z = hs * W + b`.
    Logits,
    /// `exp(z - panel max)`, with the loss computed: ready for [`OutputLayer::backward`].
    Exponentials,
    /// The gradient `dz` of the last backward pass.
    Gradient,
}

/// What [`OutputLayer::backward`] does with the weight gradients. `w` and `dw` are stored in the
/// layer's [`WeightLayout`].
pub enum OutputUpdate<'a> {
    /// Stores them: `dw = hs^T * dz` and `db` (`classes`), overwritten. `w` is `W` as in the
    /// forward pass.
    Gradients {
        /// `W`, as in the forward pass.
        w: &'a [f32],
        /// Receives `dW`, in `W`'s layout.
        dw: &'a mut [f32],
        /// Receives `db` (`classes`).
        db: &'a mut [f32],
    },
    /// Applies plain SGD in place without storing them: `w -= lr * dW` and `b -= lr * db`,
    /// each panel's update inside the GEMM that computes its gradient (`alpha = -lr`,
    /// `beta = 1`), after the panel's share of `dhs` has used the old weights.
    Sgd {
        /// `W`, updated in place.
        w: &'a mut [f32],
        /// The bias (`classes`), updated in place.
        b: &'a mut [f32],
        /// The learning rate.
        lr: f32,
    },
}

/// Buffers and sizes of the fused output layer for `rows` rows of `hidden` values and `classes`
/// classes; allocated once by [`OutputLayer::new`], never again.
#[derive(Clone, Debug)]
pub struct OutputLayer {
    /// Rows of the passes, at most `room` ([`set_rows`](Self::set_rows)).
    rows: usize,
    /// Rows the buffers were made for.
    room: usize,
    hidden: usize,
    classes: usize,
    /// `rows x classes` values, panel after panel: logits, exponentials or gradient.
    panels: Vec<f32>,
    /// `panel_count x rows`, panel-major.
    stats: Vec<PanelRow>,
    /// One per row, from the last loss.
    row_scales: Vec<RowScale>,
    /// One partial `dhs` per task, `rows x hidden` or transposed ([`PartialLayout`]).
    partial_dhs: Vec<f32>,
    /// Whether each task of a backward pass has finished.
    task_done: TaskFlags,
    /// One `hidden x PANEL_COLS` copy of a panel of `W` per task (SGD updates `W` in place,
    /// while the panel's share of `dhs` still needs the old values).
    weight_copies: Vec<f32>,
    /// How `W` is stored.
    layout: WeightLayout,
    /// `hs`, packed once per forward pass for every panel's `hs * W[:, panel]`.
    packed_hs: PackedA,
    /// `hs`, packed once per backward pass for every panel's weight gradient.
    packed_for_gradient: PackedForGradient,
    /// `1 / n` of the last loss.
    inv_n: f32,
    contents: Contents,
}

impl OutputLayer {
    /// Buffers for `rows x hidden` inputs and `classes` classes: `rows * classes` logits, per
    /// backward task one partial `dhs` and one panel of `W` (together at most about another
    /// `(rows + hidden) * classes` values) and two packed copies of `hs`; `None` if that much
    /// memory cannot be had. Panics if a size is 0. The weights are the affine layer's own,
    /// `hidden x classes` ([`WeightLayout::HiddenByClasses`]).
    pub fn new(rows: usize, hidden: usize, classes: usize) -> Option<Self> {
        Self::with_layout(rows, hidden, classes, WeightLayout::HiddenByClasses)
    }

    /// [`new`](Self::new) for weights stored as `layout` says.
    pub fn with_layout(rows: usize, hidden: usize, classes: usize, layout: WeightLayout) -> Option<Self> {
        assert!(
            rows > 0 && hidden > 0 && classes > 0,
            "OutputLayer::new: rows ({rows}), hidden ({hidden}) and classes ({classes}) must all be positive"
        );
        let tasks = task_layout(rows, hidden, classes).tasks;
        Some(OutputLayer {
            rows,
            room: rows,
            hidden,
            classes,
            panels: lazy_zeros(rows.checked_mul(classes))?,
            stats: filled(classes.div_ceil(PANEL_COLS).checked_mul(rows), PanelRow::default())?,
            row_scales: filled(Some(rows), RowScale::default())?,
            partial_dhs: filled(hidden.checked_mul(rows).and_then(|len| len.checked_mul(tasks)), 0.0)?,
            weight_copies: filled(hidden.checked_mul(PANEL_COLS * tasks), 0.0)?,
            task_done: TaskFlags::new(tasks)?,
            layout,
            packed_hs: PackedA::with_room(rows, hidden)?,
            packed_for_gradient: PackedForGradient::new(layout, rows, hidden)?,
            inv_n: 0.0,
            contents: Contents::Nothing,
        })
    }

    /// Makes the next passes take `rows` rows (at most the rows the layer was made for), in the
    /// same buffers: for a softmax over the rows of a window that fall into one cluster of an
    /// adaptive softmax, a different number every window. Forgets what the last pass left.
    /// Panics if `rows` is 0 or more than the layer was made for.
    pub fn set_rows(&mut self, rows: usize) {
        assert!(
            rows > 0 && rows <= self.room,
            "OutputLayer::set_rows: {rows} rows, but the layer was made for 1..={}",
            self.room
        );
        self.rows = rows;
        self.packed_hs.set_rows(rows);
        self.packed_for_gradient.set_rows(rows);
        self.contents = Contents::Nothing;
    }

    /// Rows of the passes ([`set_rows`](Self::set_rows)).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The GEMMs of a forward pass (`z = hs * W`) and of a backward pass (`dW`, `dhs`) at the
    /// current rows, each run as a panel of columns at a time.
    pub fn gemms(&self) -> ([GemmShape; 1], [GemmShape; 2]) {
        self.layout.gemms((self.rows, self.hidden, self.classes))
    }

    /// Parallel tasks of a forward pass (one per panel of classes) and of a backward pass
    /// (runs of panels, grouped by the shape alone); 1 each when the work is too small to share.
    pub fn tasks(&self) -> (usize, usize) {
        if self.is_parallel() {
            (self.classes.div_ceil(PANEL_COLS), task_layout(self.rows, self.hidden, self.classes).tasks)
        } else {
            (1, 1)
        }
    }

    /// Bytes of the layer's buffers (logits, statistics, partial sums, packed copies).
    pub fn buffer_bytes(&self) -> usize {
        let floats = self.panels.len() + self.partial_dhs.len() + self.weight_copies.len();
        floats * size_of::<f32>()
            + self.stats.len() * size_of::<PanelRow>()
            + self.row_scales.len() * size_of::<RowScale>()
            + self.packed_hs.bytes()
            + self.packed_for_gradient.bytes()
    }

    /// Logits only: afterwards [`logits_row`](Self::logits_row) and
    /// [`argmax_row`](Self::argmax_row) read `z = hs * W + b`.
    ///
    /// Shapes (row-major): `hs` is `rows x hidden`, `w` is `W` in the layer's layout
    /// (`hidden x classes` or `classes x hidden`), `bias` is `classes`. Panics, before writing
    /// anything, if a length does not match.
    pub fn forward_logits(&mut self, hs: &[f32], w: &[f32], bias: &[f32]) {
        self.check_forward("OutputLayer::forward_logits", hs, w, bias);
        self.forward_panels(hs, Weights::Stored(w, self.layout), bias, ForwardPass::Logits);
        self.contents = Contents::Logits;
    }

    /// [`forward_logits`](Self::forward_logits) with `W` packed in advance ([`PackedWeights`]),
    /// the same logits bit for bit: for few rows at a time (generating text), where packing
    /// `W` again at every call would be most of the work. `w` must have been made for this
    /// layer's `hidden`, `classes` and layout.
    pub fn forward_logits_packed(&mut self, hs: &[f32], w: &PackedWeights, bias: &[f32]) {
        const KERNEL: &str = "OutputLayer::forward_logits_packed";
        self.check_packed(KERNEL, w);
        check_len(KERNEL, "hs", hs.len(), "rows x hidden", &[self.rows, self.hidden]);
        check_len(KERNEL, "bias", bias.len(), "classes", &[self.classes]);
        self.forward_panels(hs, Weights::Packed(w), bias, ForwardPass::Logits);
        self.contents = Contents::Logits;
    }

    /// Panics unless `w` was packed for this layer's `hidden`, `classes` and layout.
    #[track_caller]
    fn check_packed(&self, kernel: &str, w: &PackedWeights) {
        let ours = (self.hidden, self.classes, self.layout);
        assert!(
            w.shape() == ours,
            "{kernel}: w was packed for (hidden, classes, layout) {:?}, the layer has {ours:?}",
            w.shape()
        );
    }

    /// Forward pass with the loss: `row_loss[r] = logsumexp(z_r) - z_r[targets[r]]`, computed
    /// stably (no logarithm of a probability is taken), and 0 for rows whose target is
    /// [`IGNORE_TARGET`]. The mean loss is `sum(row_loss) * inv_n`, where the caller passes
    /// `inv_n = 1 / n` for `n` rows with a target. Leaves what
    /// [`backward`](Self::backward) needs.
    ///
    /// Shapes as in [`forward_logits`](Self::forward_logits); `targets` and `row_loss` are
    /// `rows`; each target is in `0..classes` or `IGNORE_TARGET`. Panics, before writing
    /// anything, if a length does not match or a target is out of range.
    pub fn forward(&mut self, hs: &[f32], w: &[f32], bias: &[f32], targets: &[i32], inv_n: f32, row_loss: &mut [f32]) {
        const KERNEL: &str = "OutputLayer::forward";
        self.check_forward(KERNEL, hs, w, bias);
        check_len(KERNEL, "targets", targets.len(), "rows", &[self.rows]);
        check_len(KERNEL, "row_loss", row_loss.len(), "rows", &[self.rows]);
        check_targets(KERNEL, targets, self.classes);
        self.forward_panels(hs, Weights::Stored(w, self.layout), bias, ForwardPass::Exponentials(targets));
        self.combine_panels(targets, inv_n, row_loss);
        self.inv_n = inv_n;
        self.contents = Contents::Exponentials;
    }

    /// Each row's loss alone: `row_loss[r]` as [`forward`](Self::forward) computes it, bit for
    /// bit, with `W` packed in advance ([`PackedWeights`]) and nothing kept for a backward
    /// pass (the bias is added and the exponentials summed on the fly, never stored, and the
    /// panels' logits stay in the cache). What scoring text needs: afterwards
    /// [`backward`](Self::backward) and the logit readers refuse until the next forward pass.
    /// Rows whose target is [`IGNORE_TARGET`] cost only their share of the GEMM. Shapes and
    /// panics as in [`forward`](Self::forward); `w` must have been made for this layer's
    /// `hidden`, `classes` and layout.
    pub fn forward_loss_only(
        &mut self,
        hs: &[f32],
        w: &PackedWeights,
        bias: &[f32],
        targets: &[i32],
        row_loss: &mut [f32],
    ) {
        const KERNEL: &str = "OutputLayer::forward_loss_only";
        self.check_packed(KERNEL, w);
        check_len(KERNEL, "hs", hs.len(), "rows x hidden", &[self.rows, self.hidden]);
        check_len(KERNEL, "bias", bias.len(), "classes", &[self.classes]);
        check_len(KERNEL, "targets", targets.len(), "rows", &[self.rows]);
        check_len(KERNEL, "row_loss", row_loss.len(), "rows", &[self.rows]);
        check_targets(KERNEL, targets, self.classes);
        self.contents = Contents::Nothing;
        self.forward_panels(hs, Weights::Packed(w), bias, ForwardPass::Statistics(targets));
        self.combine_panels(targets, 1.0, row_loss);
    }

    /// Whether the last pass was a [`forward`](Self::forward) with the loss, which
    /// [`backward`](Self::backward) needs.
    pub fn ready_for_backward(&self) -> bool {
        matches!(self.contents, Contents::Exponentials | Contents::Gradient)
    }

    /// Row `row` of the logits of the last [`forward_logits`](Self::forward_logits) into `out`
    /// (`classes` values). Panics, before writing anything, if `row` is not below `rows`, `out`
    /// is not `classes` long, or the last pass was not a `forward_logits`.
    pub fn logits_row(&self, row: usize, out: &mut [f32]) {
        const KERNEL: &str = "OutputLayer::logits_row";
        self.check_logits_row(KERNEL, row);
        check_len(KERNEL, "out", out.len(), "classes", &[self.classes]);
        for (j0, segment) in self.row_segments(row) {
            out[j0..j0 + segment.len()].copy_from_slice(segment);
        }
    }

    /// The class of the largest logit of row `row` after [`forward_logits`](Self::forward_logits);
    /// the lowest class among equal values. Panics if `row` is not below `rows` or the last pass
    /// was not a `forward_logits`.
    pub fn argmax_row(&self, row: usize) -> u32 {
        self.check_logits_row("OutputLayer::argmax_row", row);
        let mut best = (0, f32::NEG_INFINITY);
        for (j0, segment) in self.row_segments(row) {
            for (j, &z) in segment.iter().enumerate() {
                if z > best.1 {
                    best = (j0 + j, z);
                }
            }
        }
        best.0 as u32
    }

    /// The operands of a forward pass, checked against the layer's sizes.
    #[track_caller]
    fn check_forward(&self, kernel: &str, hs: &[f32], w: &[f32], bias: &[f32]) {
        check_len(kernel, "hs", hs.len(), "rows x hidden", &[self.rows, self.hidden]);
        check_len(kernel, "w", w.len(), self.layout.shape_name(), &[self.hidden, self.classes]);
        check_len(kernel, "bias", bias.len(), "classes", &[self.classes]);
    }

    /// Panics unless logits are there to read and `row` is one of them.
    #[track_caller]
    fn check_logits_row(&self, kernel: &str, row: usize) {
        assert!(self.contents == Contents::Logits, "{kernel}: needs forward_logits first");
        assert!(row < self.rows, "{kernel}: row {row} is not below rows = {}", self.rows);
    }

    /// `(first class, values)` of each panel's part of row `row`.
    fn row_segments(&self, row: usize) -> impl Iterator<Item = (usize, &[f32])> {
        let (rows, classes) = (self.rows, self.classes);
        (0..classes).step_by(PANEL_COLS).map(move |j0| {
            let width = PANEL_COLS.min(classes - j0);
            (j0, &self.panels[rows * j0 + row * width..][..width])
        })
    }

    /// Fills every panel with `hs * W` and then, as `pass` says, adds the bias, or also replaces
    /// each panel row by `exp(z - max)` and records its statistics, or only records them. For
    /// the statistics alone no panel needs to be kept: each task runs its panels through the
    /// room of its first one, which stays in the cache from one panel to the next (written to
    /// memory and read back, the logits of a window cost a fifth of the time at `H = 100`).
    fn forward_panels(&mut self, hs: &[f32], weights: Weights<'_>, bias: &[f32], pass: ForwardPass<'_>) {
        let (rows, hidden, classes) = (self.rows, self.hidden, self.classes);
        self.packed_hs.pack(hs, hidden, Transpose::No);
        let panel_count = classes.div_ceil(PANEL_COLS);
        let parallel = self.is_parallel();
        let (panels, stats) = (&mut self.panels[..rows * classes], &mut self.stats[..panel_count * rows]);
        let forward = PanelForward { packed_hs: &self.packed_hs, weights, bias, hidden, classes, pass };
        if let ForwardPass::Statistics(_) = pass {
            // One run of consecutive panels per thread, each through one room: the panels'
            // statistics are independent, so how they are cut does not change any result.
            let runs = if parallel { rayon::current_num_threads().clamp(1, panel_count) } else { 1 };
            let panels_per_run = panel_count.div_ceil(runs);
            panels
                .par_chunks_mut(rows * panels_per_run * PANEL_COLS)
                .zip(stats.par_chunks_mut(rows * panels_per_run))
                .enumerate()
                .for_each(|(run, (room, stats))| {
                    for (p, stats) in stats.chunks_mut(rows).enumerate() {
                        forward.panel(run * panels_per_run + p, room, stats);
                    }
                });
        } else {
            // Panels are independent here: one job each, so that a thread slowed by other work
            // leaves more of them to the others.
            let panels_per_job = if parallel { 1 } else { panel_count };
            panels
                .par_chunks_mut(rows * PANEL_COLS)
                .zip(stats.par_chunks_mut(rows))
                .enumerate()
                .with_min_len(panels_per_job)
                .for_each(|(index, (panel, stats))| forward.panel(index, panel, stats));
        }
    }

    /// Combines the panels' statistics into each row's loss and scale, in parallel over rows.
    fn combine_panels(&mut self, targets: &[i32], inv_n: f32, row_loss: &mut [f32]) {
        let (rows, stats) = (self.rows, &self.stats[..self.classes.div_ceil(PANEL_COLS) * self.rows]);
        let rows_per_job = if self.is_parallel() { COMBINE_ROWS } else { rows };
        row_loss
            .par_iter_mut()
            .zip(self.row_scales.par_iter_mut())
            .zip(targets.par_iter())
            .enumerate()
            .with_min_len(rows_per_job)
            .for_each(|(r, ((loss, row_scale), &target))| {
                let panel_rows = || stats.iter().skip(r).step_by(rows);
                let max = panel_rows().fold(f32::NEG_INFINITY, |m, stat| m.max(stat.max));
                if target == IGNORE_TARGET {
                    *row_scale = RowScale { max, factor: 0.0 };
                    *loss = 0.0;
                    return;
                }
                let sum: f64 = panel_rows().map(|stat| stat.sum as f64 * (stat.max - max).exp() as f64).sum();
                let target_logit = stats[target as usize / PANEL_COLS * rows + r].target_logit;
                *loss = (sum.ln() + (max - target_logit) as f64) as f32;
                *row_scale = RowScale { max, factor: inv_n as f64 / sum };
            });
    }

    /// Whether the work is worth sharing between threads; if not, each parallel loop runs all
    /// of its tasks, in order, as one job on the calling thread. Few rows against large
    /// weights are shared too: reading `W` is then the work (one row of logits at `H = 100`,
    /// `V = 10,000` reads 4 MB, 100 us on one core here, 55 on two).
    fn is_parallel(&self) -> bool {
        self.rows * self.hidden * self.classes >= PARALLEL_MIN_WORK
            || self.hidden * self.classes >= PARALLEL_MIN_WEIGHTS
    }
}

#[cfg(test)]
mod tests;
