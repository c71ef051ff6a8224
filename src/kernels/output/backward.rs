//! The fused output layer's backward pass: per panel the gradient in place, `db`, `dW` (or the
//! SGD update) and the panel's share of `dhs`, run as the tasks of [`tasks`](super::tasks).

use super::tasks::TaskLayout;
use super::*;

impl OutputLayer {
    /// Backward pass of the last [`forward`](Self::forward): `dhs = dz * W^T` (`rows x hidden`,
    /// overwritten) and the weight gradients as `update` says, where `dz = (softmax - onehot) *
    /// inv_n` (zero for ignored rows). `hs` is the forward's. May be repeated (with the same
    /// result for the same inputs). Shapes: `hs` and `dhs` are `rows x hidden`; `w` and `dw`
    /// are in the layer's layout, `db` and `b` are `classes`. Panics, before writing anything, if
    /// the last pass was not a [`forward`](Self::forward) or a length does not match.
    pub fn backward(&mut self, hs: &[f32], update: OutputUpdate<'_>, dhs: &mut [f32]) {
        const KERNEL: &str = "OutputLayer::backward";
        let make_gradient = self.check_backward(KERNEL, hs, &update, dhs);
        let (rows, hidden, classes) = (self.rows, self.hidden, self.classes);
        let (stored_rows, stored_cols) = self.layout.stored(hidden, classes);
        // `W` (or `dW`) is written through disjoint column blocks, one per panel; `W` is read
        // either in place (nothing writes it) or from a copy of the panel made before its update.
        let (shared_w, out, alpha, beta, bias_out, lr) = match update {
            OutputUpdate::Gradients { w, dw, db } => {
                let dw = OutMatrix::new(KERNEL, dw, stored_rows, stored_cols, stored_cols);
                (Some(w), dw, 1.0, 0.0, db, None)
            }
            OutputUpdate::Sgd { w, b, lr } => {
                (None, OutMatrix::new(KERNEL, w, stored_rows, stored_cols, stored_cols), -lr, 1.0, b, Some(lr))
            }
        };
        self.packed_for_gradient.pack(hs, hidden);
        let pass = PanelBackward {
            shape: (rows, hidden, classes),
            tasks: task_layout(rows, hidden, classes),
            partial_layout: PartialLayout::for_shape(rows, hidden),
            weights: self.layout,
            gradient: make_gradient.then_some((self.row_scales.as_slice(), self.inv_n)),
            shared_w,
            out: &out,
            update: (alpha, beta, lr),
            packed_for_gradient: &self.packed_for_gradient,
        };
        let parallel = self.is_parallel();
        let tasks_per_job = if parallel { 1 } else { pass.tasks.tasks };
        let (panels, stats) =
            (&mut self.panels[..rows * classes], &mut self.stats[..classes.div_ceil(PANEL_COLS) * rows]);
        let fold = PartialFold::new(&mut self.partial_dhs, (pass.tasks.tasks, hidden * rows), &self.task_done);
        panels
            .par_chunks_mut(rows * pass.tasks.cols_per_task)
            .zip(stats.par_chunks_mut(rows * pass.tasks.panels_per_task()))
            .zip(
                self.weight_copies
                    .par_chunks_mut(hidden * PANEL_COLS)
                    .zip(bias_out.par_chunks_mut(pass.tasks.cols_per_task)),
            )
            .enumerate()
            .with_min_len(tasks_per_job)
            .for_each(|(task, ((panels, stats), (weight_copy, bias_out)))| {
                fold.run(task, |partial| {
                    let mut share = BackwardShare { panels, stats, partial, weight_copy, bias_out };
                    for index in 0..share.stats.len() / rows {
                        pass.panel(task, index, &mut share);
                    }
                })
            });
        let dhs = OutMatrix::new(KERNEL, dhs, rows, hidden, hidden);
        sum_task_partials(fold, pass.partial_layout, parallel, dhs);
        self.contents = Contents::Gradient;
    }

    /// Panics unless the last pass left the exponentials or a gradient and every length fits;
    /// whether the panels still hold the exponentials (the gradient is still to be made).
    fn check_backward(&self, kernel: &str, hs: &[f32], update: &OutputUpdate<'_>, dhs: &[f32]) -> bool {
        let make_gradient = match self.contents {
            Contents::Exponentials => true,
            Contents::Gradient => false,
            Contents::Nothing | Contents::Logits => panic!("{kernel}: needs a forward with the loss first"),
        };
        let (rows, hidden, classes) = (self.rows, self.hidden, self.classes);
        check_len(kernel, "hs", hs.len(), "rows x hidden", &[rows, hidden]);
        check_len(kernel, "dhs", dhs.len(), "rows x hidden", &[rows, hidden]);
        let w_shape = self.layout.shape_name();
        match update {
            OutputUpdate::Gradients { w, dw, db } => {
                check_len(kernel, "w", w.len(), w_shape, &[hidden, classes]);
                check_len(kernel, "dw", dw.len(), w_shape, &[hidden, classes]);
                check_len(kernel, "db", db.len(), "classes", &[classes]);
            }
            OutputUpdate::Sgd { w, b, .. } => {
                check_len(kernel, "w", w.len(), w_shape, &[hidden, classes]);
                check_len(kernel, "b", b.len(), "classes", &[classes]);
            }
        }
        make_gradient
    }
}

/// What every panel of one backward pass reads.
struct PanelBackward<'a> {
    /// `(rows, hidden, classes)`.
    shape: (usize, usize, usize),
    tasks: TaskLayout,
    partial_layout: PartialLayout,
    weights: WeightLayout,
    /// The rows' scales and `1 / n`, when the panels hold exponentials still to be turned into
    /// the gradient; `None` when they hold the gradient of an earlier backward pass.
    gradient: Option<(&'a [RowScale], f32)>,
    /// `W`, read in place; `None` when the pass updates it (each panel reads a copy of its own).
    shared_w: Option<&'a [f32]>,
    /// `dW`, or `W` updated in place, handed out by column blocks.
    out: &'a OutMatrix<'a>,
    /// `(alpha, beta, learning rate)` of the weight update: `(1, 0, None)` stores `dW`,
    /// `(-lr, 1, Some(lr))` applies SGD.
    update: (f32, f32, Option<f32>),
    packed_for_gradient: &'a PackedForGradient,
}

impl PanelBackward<'_> {
    /// Panel `index` of task `task`: the gradient in place, the bias, this panel's share of
    /// `dhs` into the task's partial (with the panel's old `W`), then `dW` or the SGD update.
    fn panel(&self, task: usize, index: usize, share: &mut BackwardShare<'_>) {
        let (rows, hidden, classes) = self.shape;
        let j0 = task * self.tasks.cols_per_task + index * PANEL_COLS;
        let width = PANEL_COLS.min(classes - j0);
        let panel = &mut share.panels[index * rows * PANEL_COLS..][..rows * width];
        if let Some((row_scales, inv_n)) = self.gradient {
            gradient_in_place(panel, width, &share.stats[index * rows..][..rows], row_scales, inv_n);
        }
        let (alpha, beta, lr) = self.update;
        let bias_out = &mut share.bias_out[index * PANEL_COLS..][..width];
        match lr {
            None => sum_columns(panel, width, 0, bias_out),
            Some(lr) => {
                let mut bias_grad = [0.0f32; PANEL_COLS];
                sum_columns(panel, width, 0, &mut bias_grad[..width]);
                sgd_update(bias_out, &bias_grad[..width], lr);
            }
        }
        // SAFETY: every panel belongs to one task and is processed once, so the blocks of
        // its classes (columns of `W`, rows of `W^T`) in all live views are pairwise
        // disjoint, and `out` itself is only used to hand them out.
        let (block_rows, block_cols) = self.weights.block((j0, width), hidden);
        let mut out_block = unsafe { self.out.block(block_rows, block_cols) };
        let (w_panel, ldw, w_trans) = match self.shared_w {
            Some(w) => self.weights.panel(w, j0, (hidden, classes)),
            None => {
                let (copy_rows, copy_cols) = (block_rows.1, block_cols.1);
                let copy = &mut share.weight_copy[..copy_rows * copy_cols];
                for (i, copy_row) in copy.chunks_exact_mut(copy_cols).enumerate() {
                    copy_row.copy_from_slice(out_block.segment(i, 0, copy_cols));
                }
                self.weights.panel_of_copy(copy, (hidden, width))
            }
        };
        let beta_partial = if index == 0 { 0.0 } else { 1.0 };
        // The same product either way round: `dz * W^T` (rows x hidden) or its transpose;
        // each side is (the product's rows or columns, operand, leading dimension, transpose).
        let dz: &[f32] = panel;
        let (a, b) = match self.partial_layout {
            PartialLayout::RowsByHidden => ((rows, dz, width, Transpose::No), (hidden, w_panel, ldw, w_trans.flip())),
            PartialLayout::HiddenByRows => ((hidden, w_panel, ldw, w_trans), (rows, dz, width, Transpose::Yes)),
        };
        gemm(a.0, b.0, width, 1.0, a.1, a.2, a.3, b.1, b.2, b.3, beta_partial, share.partial, b.0);
        self.packed_for_gradient.weight_gradient(alpha, panel, width, beta, &mut out_block);
    }
}

/// Turns a panel of exponentials (`rows x width`) into the gradient `dz = softmax * inv_n -
/// onehot * inv_n`, with each row's statistics within the panel and scale over the whole row.
fn gradient_in_place(panel: &mut [f32], width: usize, stats: &[PanelRow], row_scales: &[RowScale], inv_n: f32) {
    simd!(V => {
        for ((row, stat), row_scale) in panel.chunks_exact_mut(width).zip(stats).zip(row_scales) {
            let scale = V::splat(row_scale.panel_factor(stat));
            map_inplace::<V>(row, #[inline(always)] |e| e * scale);
            if stat.target != NO_TARGET {
                row[stat.target as usize] -= inv_n;
            }
        }
    })
}

/// `dhs` as the sum of the tasks' partials (or the one they were added into), in parallel
/// blocks of rows or (transposed) of hidden units.
fn sum_task_partials(fold: PartialFold<'_>, partial_layout: PartialLayout, parallel: bool, mut dhs: OutMatrix<'_>) {
    let (rows, hidden) = (dhs.rows(), dhs.cols());
    let (tasks, partials) = fold.finish();
    match partial_layout {
        PartialLayout::RowsByHidden => {
            let rows_per_block = if parallel { SUM_ROWS } else { rows };
            dhs.par_blocks(Axis::Rows, rows_per_block, |first_row, block| {
                sum_partials(partials, (tasks, rows * hidden), first_row, block)
            });
        }
        PartialLayout::HiddenByRows => {
            let units_per_block = if parallel { TRANSPOSE_UNITS } else { hidden };
            dhs.par_blocks(Axis::Cols, units_per_block, |first_unit, block| {
                sum_and_transpose(partials, (tasks, hidden, rows), first_unit, block)
            });
        }
    }
}
