//! The destination of a product: a raw `rows x cols` view of a slice with a leading dimension,
//! which parallel work can cut into disjoint blocks of rows or columns without ever holding
//! overlapping `&mut` slices. The GEMMs write through it, and so do the kernels that hand
//! threads parts of one buffer (the output layer's panels, the recurrences' row groups).

use rayon::prelude::*;
use std::marker::PhantomData;

/// Which side of C [`OutMatrix::par_blocks`] cuts.
#[derive(Clone, Copy)]
pub(super) enum Axis {
    Rows,
    Cols,
}

/// The destination matrix C of one (serial) GEMM: `rows x cols`, element `(i, j)` at
/// `ptr + i * ld + j`. It is a raw view so that parallel blocks can write disjoint column
/// ranges of the same rows without ever holding overlapping `&mut` slices: a block only ever
/// materialises the segments of its own rows and columns, one at a time.
pub(super) struct OutMatrix<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    ld: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutMatrix` is an exclusive view of its elements (see `OutMatrix::block`), so
// moving it to another thread is like moving the `&mut [f32]` it came from.
unsafe impl Send for OutMatrix<'_> {}
// SAFETY: through `&OutMatrix` the only access to the elements is the `unsafe fn block`, whose
// contract makes the caller hand out disjoint blocks; reading the dimensions is harmless.
unsafe impl Sync for OutMatrix<'_> {}

impl<'a> OutMatrix<'a> {
    /// The `rows x cols` matrix at the start of `c` with leading dimension `ld`; panics with a
    /// message naming `kernel` if it does not fit.
    #[track_caller]
    pub(super) fn new(kernel: &str, c: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(ld >= cols.max(1), "{kernel}: ldc ({ld}) is below n ({cols})");
        if rows > 0 && cols > 0 {
            let needed = (rows - 1) * ld + cols;
            assert!(
                c.len() >= needed,
                "{kernel}: C has {} elements, but {rows} x {cols} with ldc {ld} needs {needed}",
                c.len()
            );
        }
        OutMatrix { ptr: c.as_mut_ptr(), rows, cols, ld, _borrow: PhantomData }
    }

    /// The sub-matrix of rows `i0..i0 + rows` and columns `j0..j0 + cols`.
    ///
    /// # Safety
    /// While the returned view is alive, no other view may touch its elements: the caller
    /// hands out only pairwise-disjoint blocks and does not use `self` meanwhile.
    pub(super) unsafe fn block(&self, (i0, rows): (usize, usize), (j0, cols): (usize, usize)) -> OutMatrix<'a> {
        assert!(i0 + rows <= self.rows && j0 + cols <= self.cols, "gemm: block outside C");
        OutMatrix {
            // SAFETY: in bounds (asserted), so the offset stays inside the original slice.
            ptr: unsafe { self.ptr.add(i0 * self.ld + j0) },
            rows,
            cols,
            ld: self.ld,
            _borrow: PhantomData,
        }
    }

    /// The view cut into `G` consecutive blocks of columns, `widths[k]` wide (together the
    /// view's width): a step's gates, one view per gate or per product.
    pub(super) fn into_columns<const G: usize>(self, widths: [usize; G]) -> [OutMatrix<'a>; G] {
        assert_eq!(self.cols, widths.iter().sum::<usize>(), "gemm: {} columns are not {widths:?}", self.cols);
        let starts: [usize; G] = std::array::from_fn(|g| widths[..g].iter().sum());
        // SAFETY: the blocks are consecutive, non-overlapping ranges of columns of this view,
        // which is consumed, so they are the only views of its elements.
        std::array::from_fn(|g| unsafe { self.block((0, self.rows), (starts[g], widths[g])) })
    }

    /// Runs `f(first, block)` over the pool for consecutive blocks of `per_block` rows (or
    /// columns) of this view, the last block shorter; `first` is the block's first row (or
    /// column).
    pub(super) fn par_blocks(&mut self, axis: Axis, per_block: usize, f: impl Fn(usize, &mut OutMatrix<'_>) + Sync) {
        let extent = match axis {
            Axis::Rows => self.rows,
            Axis::Cols => self.cols,
        };
        let this = &*self;
        (0..extent.div_ceil(per_block)).into_par_iter().for_each(|block| {
            let first = block * per_block;
            let len = per_block.min(extent - first);
            let range = match axis {
                Axis::Rows => ((first, len), (0, this.cols)),
                Axis::Cols => ((0, this.rows), (first, len)),
            };
            // SAFETY: the blocks are consecutive, non-overlapping ranges of rows (or columns),
            // so no two share an element, and `&mut self` keeps the view itself unused while
            // they run.
            let mut block = unsafe { this.block(range.0, range.1) };
            f(first, &mut block);
        });
    }

    /// Runs `f(r, blocks)` over the pool for `count` ranges of columns of every view in `views`
    /// at once: range `r` of view `k` is `range(r, k) = (first, len)`. Within a view the ranges
    /// must be disjoint (each is asserted to lie inside its view). The recurrences use it to hand
    /// each thread the same batch rows of several window-sized buffers, or the same block of
    /// columns of a step's matrices.
    pub(super) fn par_column_ranges<const N: usize>(
        views: &mut [OutMatrix<'a>; N],
        count: usize,
        range: impl Fn(usize, usize) -> (usize, usize) + Sync,
        f: impl Fn(usize, &mut [OutMatrix<'_>; N]) + Sync,
    ) {
        let views = &*views;
        (0..count).into_par_iter().for_each(|r| {
            // SAFETY: within a view the ranges are disjoint (the caller's contract; `block`
            // asserts each is inside its view), so no two blocks of one view share an element;
            // distinct views come from distinct `&mut` slices; and `&mut views` keeps the views
            // themselves unused while the blocks run.
            let mut blocks: [OutMatrix<'_>; N] = std::array::from_fn(|k| {
                let (first, len) = range(r, k);
                unsafe { views[k].block((0, views[k].rows), (first, len)) }
            });
            f(r, &mut blocks);
        });
    }

    /// Row `i`, columns `j0..j0 + len`.
    #[inline(always)]
    pub(super) fn segment(&mut self, i: usize, j0: usize, len: usize) -> &mut [f32] {
        assert!(i < self.rows && j0 + len <= self.cols, "gemm: segment outside C");
        // SAFETY: the segment lies inside this view (asserted; the view was checked against
        // its slice when created), the view is exclusive for its elements, and `&mut self`
        // keeps this the only segment alive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.ld + j0), len) }
    }

    /// Number of rows.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub(super) fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`, columns `0..cols`, and row `i + 1` to read when there is one: a backward step
    /// writes its own step and reads the gradient of the step after it.
    pub(super) fn row_and_next(&mut self, i: usize) -> (&mut [f32], Option<&[f32]>) {
        if i + 1 < self.rows {
            let (row, next) = self.row_pair(i);
            (row, Some(next))
        } else {
            let cols = self.cols;
            (self.segment(i, 0, cols), None)
        }
    }

    /// Rows `i` and `i + 1`, columns `0..cols`, at once (the recurrence reads one time step
    /// and writes the next).
    pub(super) fn row_pair(&mut self, i: usize) -> (&mut [f32], &mut [f32]) {
        assert!(i + 1 < self.rows, "gemm: row pair outside C");
        // SAFETY: both rows lie inside this view (asserted), which is exclusive for its
        // elements; they do not overlap because row `i` ends at `i * ld + cols <= (i + 1) * ld`,
        // and `&mut self` keeps them the only slices of the view alive.
        unsafe {
            let row = self.ptr.add(i * self.ld);
            (
                std::slice::from_raw_parts_mut(row, self.cols),
                std::slice::from_raw_parts_mut(row.add(self.ld), self.cols),
            )
        }
    }
}
