//! Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major.
//!
//! A small packed implementation in the style of BLIS and `matrixmultiply`: `op(B)` is packed
//! into blocks of `KC x NC` (panels `NR` columns wide), a transposed `op(A)` into panels of
//! `MR x KC` (an `A` used as stored is read in place, which costs the micro-kernel the same
//! loads and saves a transposing copy), and a `MR x NR` register-tiled micro-kernel does the
//! multiply-adds. It exists because
//! `matrixmultiply` and `gemm` allocate their packing buffers on the heap at every call, and a
//! training step must not allocate: here the packing buffers are fixed-size thread-locals that
//! live in each thread's static TLS block, so they are never taken from the heap.
//!
//! By concern: `pack` copies blocks of the operands into the packed layout; `tile` holds the
//! register tile of each SIMD level and the loops that run it over a block of B; `dot` computes
//! deep, narrow `A * B^T` by dot products; `packed` keeps operands packed once for many
//! products ([`PackedA`], [`PackedB`]); this module checks the operands and drives the blocks,
//! serially ([`gemm`]) or over the rayon pool ([`gemm_parallel`]). C is written through
//! `super::out_matrix`, the raw view that lets parallel blocks write disjoint parts of it.

use super::out_matrix::{Axis, OutMatrix};
use super::simd::{lane_sum, simd, simd_level, Simd, SimdLevel};
use std::cell::RefCell;
use wide::f32x8;

use dot::*;
use pack::*;
pub(super) use packed::{
    column_alignment, gemm_packed_a_into, gemm_packed_both_into, gemm_packed_columns_into, gemm_packed_into,
};
pub use packed::{gemm_packed, gemm_packed_a, PackedA, PackedB};
use tile::*;

/// Whether an operand is used as stored (`No`) or transposed (`Yes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    /// `op(X) = X`.
    No,
    /// `op(X) = X^T`.
    Yes,
}

/// One GEMM a kernel runs, `C (m x n) = op(A) (m x k) * op(B) (k x n)`, and how many times:
/// what the kernels and the model's layers report of their work, from which the FLOP counts
/// and the GEMM ceiling of a benchmark follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// The length of each dot product.
    pub k: usize,
    /// How `A` is used.
    pub trans_a: Transpose,
    /// How `B` is used.
    pub trans_b: Transpose,
    /// How many times it runs.
    pub times: usize,
}

impl GemmShape {
    /// `(m, n, k)` with the given transposes, run once.
    pub fn new((m, n, k): (usize, usize, usize), trans_a: Transpose, trans_b: Transpose) -> GemmShape {
        GemmShape { m, n, k, trans_a, trans_b, times: 1 }
    }

    /// The same, run `times` times.
    pub fn times(self, times: usize) -> GemmShape {
        GemmShape { times, ..self }
    }

    /// Floating-point operations of all its runs: `2 m n k times`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.times as f64
    }
}

impl Transpose {
    /// The other one: how the same stored matrix gives `op(X)^T`.
    pub(in crate::kernels) fn flip(self) -> Transpose {
        match self {
            Transpose::No => Transpose::Yes,
            Transpose::Yes => Transpose::No,
        }
    }
}

/// Depth of one packed block: `MR x KC` of A and `KC x NR` of B (at most 46 KiB) stay in L1.
const KC: usize = 256;
/// Columns of one packed block of B: `KC x NC` (256 KiB) stays in L2.
const NC: usize = 256;

/// A read-only matrix operand: `op(X)` of `rows x cols` over `data` with leading dimension `ld`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    ld: usize,
    trans: Transpose,
}

impl Operand<'_> {
    /// Distance in `data` between consecutive rows and consecutive columns of `op(X)`.
    fn strides(&self) -> (usize, usize) {
        match self.trans {
            Transpose::No => (self.ld, 1),
            Transpose::Yes => (1, self.ld),
        }
    }

    /// `op(X)` without its first `rows` rows.
    fn skip_rows(self, rows: usize) -> Self {
        let (row_stride, _) = self.strides();
        Operand { data: &self.data[rows * row_stride..], ..self }
    }

    /// `op(X)` without its first `cols` columns.
    fn skip_cols(self, cols: usize) -> Self {
        let (_, col_stride) = self.strides();
        Operand { data: &self.data[cols * col_stride..], ..self }
    }

    /// Asserts that `op(X)` of `rows x cols` fits in `data` with a valid leading dimension;
    /// the message names `kernel` and the operand, `name`.
    #[track_caller]
    fn check(&self, kernel: &str, name: &str, rows: usize, cols: usize) {
        let (stored_rows, stored_cols) = match self.trans {
            Transpose::No => (rows, cols),
            Transpose::Yes => (cols, rows),
        };
        assert!(
            self.ld >= stored_cols.max(1),
            "{kernel}: leading dimension of {name} ({}) is below its {stored_cols} stored columns",
            self.ld
        );
        if stored_rows > 0 && stored_cols > 0 {
            let needed = (stored_rows - 1) * self.ld + stored_cols;
            assert!(
                self.data.len() >= needed,
                "{kernel}: {name} has {} elements, but a {stored_rows} x {stored_cols} matrix with ld {} needs {needed}",
                self.data.len(),
                self.ld
            );
        }
    }
}

/// `C = beta * C` for the whole of C (the product of an empty K dimension).
fn scale_c(beta: f32, c: &mut OutMatrix<'_>) {
    let n = c.cols();
    for i in 0..c.rows() {
        for c_ij in c.segment(i, 0, n) {
            *c_ij = if beta == 0.0 { 0.0 } else { *c_ij * beta };
        }
    }
}

/// `$f::<MR>` for the tile height `$mr`, one monomorphised copy per height (so that the
/// accumulators stay in registers); the arms cover `tile_heights()` of every level.
macro_rules! at_tile_height {
    ($mr:expr, $f:ident) => {
        match $mr {
            14 => $f::<14>,
            12 => $f::<12>,
            10 => $f::<10>,
            8 => $f::<8>,
            6 => $f::<6>,
            5 => $f::<5>,
            4 => $f::<4>,
            3 => $f::<3>,
            2 => $f::<2>,
            1 => $f::<1>,
            _ => unreachable!("tile heights come from tile_heights()"),
        }
    };
}

/// Rows of C up to which a row-major `op(B)` is read in place rather than packed: B is then
/// reused by at most a few row panels, too few to pay for copying it (the recurrences' per-step
/// GEMMs, `x * Wx` and a small window's output layer), and the micro-kernel reads each of its
/// rows as two vector loads either way (docs/design.md, "Choices the kernels make").
const IN_PLACE_MAX_ROWS: usize = 64;

/// The product of an empty matrix, if it is one: nothing to do when C is empty, `C = beta * C`
/// when the depth is 0. Returns whether it handled the product.
fn empty_product(k: usize, beta: f32, c: &mut OutMatrix<'_>) -> bool {
    if c.rows() == 0 || c.cols() == 0 {
        return true;
    }
    if k == 0 {
        scale_c(beta, c);
        return true;
    }
    false
}

/// The serial driver over an already validated problem; C is `m x n`.
fn gemm_serial(k: usize, alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    if use_dot_products(&a, &b, c.cols(), k) {
        gemm_dot(k, alpha, a, b, beta, c);
    } else {
        gemm_packed_blocks(k, alpha, a, b, beta, c);
    }
}

/// The serial driver's packed product, whatever the shape: for a block of a larger product
/// that the whole product's shape sent to packing (a block of 32 columns could take the dot
/// products, which group the sums differently).
fn gemm_packed_blocks(k: usize, alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    if !empty_product(k, beta, c) {
        multiply_by_blocks_of_b(k, alpha, APanels::Unpacked(a), b, beta, c);
    }
}

/// The packed product: B packed (or read in place) one `KC x NC` block at a time, each block
/// multiplied by all of A's row panels.
fn multiply_by_blocks_of_b(k: usize, alpha: f32, a: APanels<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    let (m, n) = (c.rows(), c.cols());
    // In place only where a block of B spans no more memory than its packed copy would (rows
    // far apart, W with ld = V, would touch a page per row), or where one row panel reads B
    // once: a copy would only add a pass over it (one row of logits: 4 MB copied per token).
    let one_panel = m <= a.tile_rows(m);
    let in_place = b.trans == Transpose::No && m <= IN_PLACE_MAX_ROWS && (KC.min(k) * b.ld <= KC * NC || one_panel);
    with_pack_b(|pack_b| {
        for ((jc, nc), (pc, kc)) in blocks_of_b(k, n) {
            let b_panels = if in_place {
                let nr = nr();
                let whole_panels = nc / nr;
                let edge_cols = nc - whole_panels * nr;
                if edge_cols > 0 {
                    pack_b_block(b, (jc + whole_panels * nr, edge_cols), (pc, kc), pack_b);
                }
                BPanels::InPlace { data: &b.data[pc * b.ld + jc..], ld: b.ld, whole_panels, edge: &pack_b[..kc * nr] }
            } else {
                pack_b_block(b, (jc, nc), (pc, kc), pack_b);
                BPanels::Packed { data: pack_b, kc }
            };
            let beta_block = if pc == 0 { beta } else { 1.0 };
            multiply_rows(a, (pc, kc), b_panels, (jc, nc), (alpha, beta_block), c);
        }
    });
}

/// The `(jc, nc), (pc, kc)` blocks of a `k x n` matrix B in the order the drivers multiply
/// them: `KC x NC` blocks, depth fastest, so that each block of C columns is finished before the
/// next is started.
fn blocks_of_b(k: usize, n: usize) -> impl Iterator<Item = ((usize, usize), (usize, usize))> {
    (0..n)
        .step_by(NC)
        .flat_map(move |jc| (0..k).step_by(KC).map(move |pc| ((jc, NC.min(n - jc)), (pc, KC.min(k - pc)))))
}

/// The operands of a GEMM call, checked; panics with a message naming the operand otherwise.
#[track_caller]
fn checked_operands<'a>(
    kernel: &str,
    (m, n, k): (usize, usize, usize),
    (a, lda, trans_a): (&'a [f32], usize, Transpose),
    (b, ldb, trans_b): (&'a [f32], usize, Transpose),
) -> (Operand<'a>, Operand<'a>) {
    let a = Operand { data: a, ld: lda, trans: trans_a };
    let b = Operand { data: b, ld: ldb, trans: trans_b };
    a.check(kernel, "A", m, k);
    b.check(kernel, "B", k, n);
    (a, b)
}

/// `C = alpha * op(A) * op(B) + beta * C` on the calling thread.
///
/// Shapes: `op(A)` is `m x k`, `op(B)` is `k x n`, `C` is `m x n`. Every matrix is row-major
/// with its own leading dimension: `A` is stored `m x k` (`lda >= k`) when `trans_a` is `No` and
/// `k x m` (`lda >= m`) when it is `Yes`; likewise `B` is stored `k x n` or `n x k`; `C[i][j]` is
/// `c[i * ldc + j]` with `ldc >= n`. When `beta == 0`, `C` is not read (it may hold NaN).
///
/// Each `C[i][j]` is accumulated over `p = 0..k` in order, with one fused multiply-add per
/// term, in blocks of 256: the result is the same wherever `(i, j)` falls in the matrix.
/// Never allocates. Panics if a slice is too short for its stated shape.
///
/// ```
/// use rnnlm::kernels::{gemm, Transpose};
/// // C (2 x 2) = A (2 x 3) * B (3 x 2), all row-major.
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let mut c = [0.0; 4];
/// gemm(2, 2, 3, 1.0, &a, 3, Transpose::No, &b, 2, Transpose::No, 0.0, &mut c, 2);
/// assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let (a, b) = checked_operands("gemm", (m, n, k), (a, lda, trans_a), (b, ldb, trans_b));
    gemm_serial(k, alpha, a, b, beta, &mut OutMatrix::new("gemm", c, m, n, ldc));
}

/// Work (multiply-adds) below which [`gemm_parallel`] stays on the calling thread: waking
/// another thread and handing it a block costs tens of microseconds, about what 4M
/// multiply-adds take on one core (docs/design.md, "Choices the kernels make").
pub(super) const PARALLEL_MIN_WORK: usize = 1 << 22;

/// [`gemm`] split over the current rayon pool.
///
/// Same contract as [`gemm`], and the same result bit for bit, whatever the number of threads:
/// the work is cut into blocks of whole rows or columns of C, by the shape and the number of
/// threads, but each element of C is computed by one block with [`gemm`]'s arithmetic. Small
/// problems run on the calling thread.
///
/// Each thread takes one block of whole rows of C (when C is at least as tall as it is wide)
/// or of whole columns, and runs [`gemm`] on it, packing for itself all of B (rows) or all of A
/// (columns): whichever is the smaller copy to repeat. That is faster than sharing each packed
/// block of B, which needs all threads to meet after every block, and than several blocks per
/// thread, which pack more often (docs/design.md, "Choices the kernels make").
#[allow(clippy::too_many_arguments)]
pub fn gemm_parallel(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let (a, b) = checked_operands("gemm_parallel", (m, n, k), (a, lda, trans_a), (b, ldb, trans_b));
    let mut c = OutMatrix::new("gemm_parallel", c, m, n, ldc);
    let threads = rayon::current_num_threads();
    let mr = tile_rows(m);
    if threads == 1 || m * n * k < PARALLEL_MIN_WORK {
        gemm_serial(k, alpha, a, b, beta, &mut c);
    } else if use_dot_products(&a, &b, n, k) {
        // Dot products read the operands in place: blocks of rows share nothing.
        let per_block = m.div_ceil(threads).next_multiple_of(DOT_ROWS);
        c.par_blocks(Axis::Rows, per_block, |i0, c_block| gemm_dot(k, alpha, a.skip_rows(i0), b, beta, c_block));
    } else if n <= m && m.div_ceil(mr) >= threads {
        let per_block = m.div_ceil(mr).div_ceil(threads) * mr;
        let block = |i0, c_block: &mut OutMatrix<'_>| gemm_packed_blocks(k, alpha, a.skip_rows(i0), b, beta, c_block);
        c.par_blocks(Axis::Rows, per_block, block);
    } else {
        let per_block = n.div_ceil(threads).next_multiple_of(nr());
        let block = |j0, c_block: &mut OutMatrix<'_>| gemm_packed_blocks(k, alpha, a, b.skip_cols(j0), beta, c_block);
        c.par_blocks(Axis::Cols, per_block, block);
    }
}

// After the macro above, which the tiles and the packed operands use.
mod dot;
mod pack;
mod packed;
#[cfg(test)]
mod tests;
mod tile;
