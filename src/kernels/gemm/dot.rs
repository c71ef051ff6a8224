//! `C = A * B^T` by dot products, for deep and narrow products where packing would transpose
//! both operands for little reuse.

use super::*;

/// Rows and columns of C that one dot-product tile computes: 24 accumulators.
pub(super) const DOT_ROWS: usize = 3;
pub(super) const DOT_COLS: usize = 8;

/// Depth of one dot-product block: 8 rows of B (32 KiB) stay in L1.
pub(super) const DOT_KC: usize = 1024;

/// Whether `C = A * B^T` is better done as dot products: both operands are then contiguous along
/// the depth, and when the depth dominates and C is narrow (say `dlogits * W^T` over a whole
/// vocabulary, K = 10,000 and N = 100) packing would have to transpose both for little reuse.
/// Dot products need no packing at all; beyond `N = 256` packing pays again (docs/design.md,
/// "Choices the kernels make"). The fused output layer's per-panel products have K = 256 and
/// do not come here.
pub(super) fn use_dot_products(a: &Operand<'_>, b: &Operand<'_>, n: usize, k: usize) -> bool {
    a.trans == Transpose::No && b.trans == Transpose::Yes && n <= 256 && k >= 512 && k >= 4 * n
}

/// `C = alpha * A * B^T + beta * C` by dot products: `A` row-major `m x k`, `B` row-major
/// `n x k`, both read in place. Each `C[i][j]` sums its depth in blocks of `DOT_KC`, each block
/// in `LANES` partial sums added up in a fixed order, so the result does not depend on where
/// `(i, j)` falls.
pub(super) fn gemm_dot(k: usize, alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    simd!(V => gemm_dot_with::<V>(k, alpha, a, b, beta, c))
}

/// [`gemm_dot`] with vectors `V`.
#[inline(always)]
pub(super) fn gemm_dot_with<V: Simd>(
    k: usize,
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut OutMatrix<'_>,
) {
    let (m, n) = (c.rows(), c.cols());
    for pc in (0..k).step_by(DOT_KC) {
        let kc = DOT_KC.min(k - pc);
        let whole = kc / V::LANES * V::LANES;
        let beta_block = if pc == 0 { beta } else { 1.0 };
        // Eight rows of B (32 KiB) stay in L1 while every row of A streams past them.
        for j0 in (0..n).step_by(DOT_COLS) {
            let cols = DOT_COLS.min(n - j0);
            // Rows past the edge repeat the last real row; their sums are not stored.
            let b_rows: [&[f32]; DOT_COLS] =
                std::array::from_fn(|j| &b.data[(j0 + j.min(cols - 1)) * b.ld + pc..][..kc]);
            for i0 in (0..m).step_by(DOT_ROWS) {
                let rows = DOT_ROWS.min(m - i0);
                let a_rows: [&[f32]; DOT_ROWS] =
                    std::array::from_fn(|r| &a.data[(i0 + r.min(rows - 1)) * a.ld + pc..][..kc]);
                let mut acc = [[V::zero(); DOT_COLS]; DOT_ROWS];
                for p in (0..whole).step_by(V::LANES) {
                    let mut a_vectors = [V::zero(); DOT_ROWS];
                    for (a_vector, a_row) in a_vectors.iter_mut().zip(&a_rows) {
                        *a_vector = V::load(&a_row[p..]);
                    }
                    for (j, b_row) in b_rows.iter().enumerate() {
                        let b_vector = V::load(&b_row[p..]);
                        for (row_acc, a_vector) in acc.iter_mut().zip(&a_vectors) {
                            row_acc[j] = a_vector.mul_add(b_vector, row_acc[j]);
                        }
                    }
                }
                for (r, row_acc) in acc.iter().enumerate().take(rows) {
                    let c_row = c.segment(i0 + r, j0, cols);
                    for (j, c_ij) in c_row.iter_mut().enumerate() {
                        let tail: f32 = a_rows[r][whole..].iter().zip(&b_rows[j][whole..]).map(|(x, y)| x * y).sum();
                        let dot = lane_sum(row_acc[j]) + tail;
                        *c_ij = if beta_block == 0.0 { dot * alpha } else { dot * alpha + *c_ij * beta_block };
                    }
                }
            }
        }
    }
}
