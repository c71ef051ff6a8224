//! What the window recurrences share: cutting a window's batch rows into groups that run in
//! parallel, each through every time step of the window.
//!
//! Batch rows do not interact in a recurrence, so a group of rows can go through the whole
//! window on its own: one hand-off per window rather than one per step. A row's arithmetic
//! does not depend on its group, so neither does the result.

use super::gemm::PARALLEL_MIN_WORK;
use super::out_matrix::OutMatrix;

/// Fewest batch rows worth a group of their own.
const MIN_GROUP_ROWS: usize = 4;

/// Runs `f(first_row, rows, views)` for groups of consecutive batch rows, in parallel when
/// `work` (multiply-adds) is worth it. Each of `buffers` is `(data, width)`: `data` holds
/// blocks of `batch x width` values, one per time step, and the group's view of it is a matrix
/// whose row `t` is the group's `rows x width` part of block `t`.
///
/// The groups are as many as the pool has threads (each group's GEMMs get less efficient as it
/// gets smaller, and rows do not interact, so nothing is gained by cutting finer).
pub(super) fn for_each_row_group<const N: usize>(
    batch: usize,
    work: usize,
    buffers: [(&mut [f32], usize); N],
    f: impl Fn(usize, usize, &mut [OutMatrix<'_>; N]) + Sync,
) {
    if batch == 0 || buffers.iter().any(|(_, width)| *width == 0) {
        return;
    }
    let groups = row_group_count(batch, work);
    let group_rows = batch.div_ceil(groups);
    let widths = buffers.each_ref().map(|(_, width)| *width);
    let mut views = buffers.map(|(data, width)| {
        let block = batch * width;
        OutMatrix::new("row groups", data, data.len() / block, block, block)
    });
    let per_group = widths.map(|width| group_rows * width);
    OutMatrix::par_column_groups(&mut views, batch.div_ceil(group_rows), per_group, |first_col, group| {
        let first_row = first_col / widths[0];
        f(first_row, group_rows.min(batch - first_row), group)
    });
}

/// How many groups [`for_each_row_group`] cuts `batch` rows into for `work` multiply-adds in
/// the current pool.
pub(crate) fn row_group_count(batch: usize, work: usize) -> usize {
    if work < PARALLEL_MIN_WORK {
        1
    } else {
        rayon::current_num_threads().min(batch / MIN_GROUP_ROWS).max(1)
    }
}
