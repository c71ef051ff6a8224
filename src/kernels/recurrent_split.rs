//! How a window recurrence is split across threads, and the drivers that run each split.
//!
//! Two ways, chosen by the shape and the pool, with the same bits either way:
//!
//! - **Groups of batch rows**, each through the whole window: rows do not interact, so a group
//!   needs no other thread until the window ends (one hand-off per window). At most `B / 4`
//!   groups, and each group's products get less efficient as it gets smaller.
//! - **Blocks of columns**, all batch rows, one step at a time: each thread computes a range of
//!   the step's product (a column range of the packed recurrent weights, starting at a packed
//!   panel), the threads meet, then each runs the cell update for a block of hidden units (and
//!   meet again: the next step needs the whole state). The backward products, whose columns are
//!   hidden units, fuse with their units' cell update (one meeting per step). The tasks grow
//!   with the hidden size rather than the batch: one per packed panel at most.
//!
//! Every element of a product is accumulated in the same order wherever its row or column
//! falls ([`super::gemm`]), and the cell update is the same per unit, so neither the split nor
//! the number of threads changes a bit of the result.

use super::gemm::{column_alignment, PARALLEL_MIN_WORK};
use super::out_matrix::OutMatrix;

/// Fewest batch rows worth a group of their own.
const MIN_GROUP_ROWS: usize = 4;

/// Multiply-adds of one step's recurrent product from which the steps may be split into blocks:
/// a meeting of the threads costs a few microseconds, small next to a product of this size
/// shared by two threads.
const UNIT_SPLIT_MIN_STEP_WORK: usize = 1 << 21;

/// How a recurrence runs over the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecurrentSplit {
    /// This many groups of consecutive batch rows (1: on the calling thread).
    RowGroups(usize),
    /// This many blocks of columns (of each product, then of hidden units), run in parallel at
    /// every step (see [`unit_block`]).
    UnitBlocks(usize),
}

impl RecurrentSplit {
    /// How many tasks run at once.
    pub(crate) fn tasks(&self) -> usize {
        match *self {
            RecurrentSplit::RowGroups(count) | RecurrentSplit::UnitBlocks(count) => count,
        }
    }

    /// The groups of rows the window runs as ([`for_each_row_group`]): one, of every row, when
    /// the steps are split instead.
    pub(super) fn row_groups(self) -> usize {
        match self {
            RecurrentSplit::RowGroups(groups) => groups,
            RecurrentSplit::UnitBlocks(_) => 1,
        }
    }

    /// Runs one phase of a step, `f(first, views)` over `views` (the step's matrices for the
    /// group's rows, of equal width): whole on the calling thread for groups of rows, else by
    /// blocks of columns across the pool ([`for_each_unit_block`]).
    pub(super) fn run_phase<const N: usize>(
        self,
        views: &mut [OutMatrix<'_>; N],
        f: impl Fn(usize, &mut [OutMatrix<'_>; N]) + Sync,
    ) {
        match self {
            RecurrentSplit::RowGroups(_) => f(0, views),
            RecurrentSplit::UnitBlocks(blocks) => for_each_unit_block(views, blocks, f),
        }
    }
}

/// The split for a recurrence of `batch` rows and `hidden` units whose product costs
/// `step_work` multiply-adds per step, over `steps` steps, in the current pool: groups of rows
/// while they can give every thread one, blocks of hidden units beyond that, when a step's
/// product is worth sharing.
///
/// Rows come first because a group meets the other threads once per window; blocks meet at
/// every step (twice in a forward step: once after the product, once after the cells) and share
/// the cache lines where their columns meet, which costs more than the rows' smaller products
/// do while every thread has a group of its own.
pub(crate) fn recurrent_split(batch: usize, hidden: usize, step_work: usize, steps: usize) -> RecurrentSplit {
    let threads = rayon::current_num_threads();
    let most_groups = (batch / MIN_GROUP_ROWS).max(1);
    let blocks = threads.min(hidden / column_alignment());
    if threads > most_groups && blocks > 1 && step_work >= UNIT_SPLIT_MIN_STEP_WORK {
        return RecurrentSplit::UnitBlocks(blocks);
    }
    let groups = if step_work.saturating_mul(steps) < PARALLEL_MIN_WORK { 1 } else { threads.min(most_groups) };
    RecurrentSplit::RowGroups(groups)
}

/// Block `index` of `blocks` blocks of `columns` columns (a step's product's, or its hidden
/// units), `(first, len)`: the boundaries are the multiples of the packed panel width nearest to
/// equal shares (so that a column range of packed weights starts at a panel), the last block
/// taking the rest. With at most `columns / width` blocks, every block is at least one panel
/// wide.
fn unit_block(columns: usize, blocks: usize, index: usize) -> (usize, usize) {
    let align = column_alignment();
    let boundary = |i: usize| match i {
        i if i == blocks => columns,
        i => (2 * i * columns + blocks * align) / (2 * blocks * align) * align,
    };
    (boundary(index), boundary(index + 1) - boundary(index))
}

/// Runs `f(first_row, rows, views)` for `groups` groups of consecutive batch rows, in
/// parallel. Each of `buffers` is `(data, width)`: `data` holds blocks of `batch x width`
/// values, one per time step, and the group's view of it is a matrix whose row `t` is the
/// group's `rows x width` part of block `t`.
pub(super) fn for_each_row_group<const N: usize>(
    batch: usize,
    groups: usize,
    buffers: [(&mut [f32], usize); N],
    f: impl Fn(usize, usize, &mut [OutMatrix<'_>; N]) + Sync,
) {
    if batch == 0 || buffers.iter().any(|(_, width)| *width == 0) {
        return;
    }
    let group_rows = batch.div_ceil(groups.max(1));
    let widths = buffers.each_ref().map(|(_, width)| *width);
    let mut views = buffers.map(|(data, width)| {
        let block = batch * width;
        OutMatrix::new("row groups", data, data.len() / block, block, block)
    });
    let rows_of = |group: usize| (group * group_rows, group_rows.min(batch - group * group_rows));
    let range = |group: usize, k: usize| {
        let (first_row, rows) = rows_of(group);
        (first_row * widths[k], rows * widths[k])
    };
    OutMatrix::par_column_ranges(&mut views, batch.div_ceil(group_rows), range, |group, views| {
        let (first_row, rows) = rows_of(group);
        f(first_row, rows, views)
    });
}

/// Runs `f(first, blocks)` in parallel for the `blocks` blocks of columns of one step
/// ([`unit_block`]): `views` are that step's matrices of equal width (the product's columns, or
/// one column per hidden unit: `batch x hidden` states and one gate's columns each), and each
/// task gets its block's columns of every view; `first` is the block's first column.
fn for_each_unit_block<const N: usize>(
    views: &mut [OutMatrix<'_>; N],
    blocks: usize,
    f: impl Fn(usize, &mut [OutMatrix<'_>; N]) + Sync,
) {
    let columns = views[0].cols();
    debug_assert!(views.iter().all(|view| view.cols() == columns));
    let block = |index: usize| unit_block(columns, blocks, index);
    OutMatrix::par_column_ranges(views, blocks, |index, _| block(index), |index, views| f(block(index).0, views));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
    }

    #[test]
    fn blocks_cover_the_columns_from_panel_boundaries_in_near_equal_shares() {
        let align = column_alignment();
        for (columns, blocks) in [(650, 2), (650, 20), (2600, 7), (300, 9), (64, 2), (2 * align, 2)] {
            let blocks = blocks.min(columns / align);
            let ranges: Vec<(usize, usize)> = (0..blocks).map(|i| unit_block(columns, blocks, i)).collect();
            let mut next = 0;
            for &(first, len) in &ranges {
                assert!(first == next && first % align == 0 && len >= align, "{columns}/{blocks}: {ranges:?}");
                let share = columns as f64 / blocks as f64;
                assert!((len as f64 - share).abs() <= align as f64 + 1.0, "{columns}/{blocks}: {ranges:?}");
                next = first + len;
            }
            assert_eq!(next, columns, "{columns}/{blocks}: {ranges:?}");
        }
    }

    #[test]
    fn rows_while_they_give_every_thread_a_group_then_blocks() {
        // B = 20: five groups of four rows; an LSTM step of 650 units: 33.8M multiply-adds.
        let (batch, hidden, step_work) = (20, 650, 20 * 4 * 650 * 650);
        assert_eq!(in_pool(1, || recurrent_split(batch, hidden, step_work, 35)), RecurrentSplit::RowGroups(1));
        assert_eq!(in_pool(2, || recurrent_split(batch, hidden, step_work, 35)), RecurrentSplit::RowGroups(2));
        assert_eq!(in_pool(5, || recurrent_split(batch, hidden, step_work, 35)), RecurrentSplit::RowGroups(5));
        let most_blocks = hidden / column_alignment();
        let eight = in_pool(8, || recurrent_split(batch, hidden, step_work, 35));
        assert_eq!(eight, RecurrentSplit::UnitBlocks(8.min(most_blocks)));
        let many = in_pool(64, || recurrent_split(batch, hidden, step_work, 35));
        assert_eq!(many, RecurrentSplit::UnitBlocks(64.min(most_blocks)));
        // A small step stays with its rows however large the pool.
        let small = in_pool(64, || recurrent_split(batch, 100, 20 * 4 * 100 * 100, 35));
        assert_eq!(small, RecurrentSplit::RowGroups(5));
    }
}
