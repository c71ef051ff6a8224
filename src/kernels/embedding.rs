//! Row gather and scatter-add by token id, and column sums.

use super::simd::{load_up_to, simd, store_partial, zip_map_inplace, Simd};
use super::{check_ids, check_len};
use rayon::prelude::*;

/// `out[r] = table[ids[r]]` for every row `r`.
///
/// Shapes (row-major): `table` is `vocab x dim`, `ids` is `rows`, `out` is `rows x dim`.
/// Panics, before writing anything, if a length does not match or an id is not below `vocab`.
pub fn embedding_gather(vocab: usize, dim: usize, table: &[f32], ids: &[u32], out: &mut [f32]) {
    const KERNEL: &str = "embedding_gather";
    check_len(KERNEL, "table", table.len(), "vocab x dim", &[vocab, dim]);
    check_len(KERNEL, "out", out.len(), "ids.len() x dim", &[ids.len(), dim]);
    check_ids(KERNEL, "ids", ids, ("vocab", vocab));
    if dim == 0 {
        return;
    }
    let gather = |(piece, out): (usize, &mut [f32])| {
        let ids = &ids[piece * GATHER_ROWS..];
        for (row, &id) in out.chunks_exact_mut(dim).zip(ids) {
            let start = id as usize * dim;
            row.copy_from_slice(&table[start..start + dim]);
        }
    };
    if gather_pieces(ids.len(), dim) == 1 {
        gather((0, out));
    } else {
        out.par_chunks_mut(GATHER_ROWS * dim).enumerate().for_each(gather);
    }
}

/// Below this many elements of gathered rows [`embedding_gather`] and [`embedding_scatter_add`]
/// stay on the calling thread: they only move memory, and handing 64K of them (a window of
/// 700 rows of 100) to two threads took longer than copying them on one.
const PARALLEL_MIN_ROWS_ELEMENTS: usize = 1 << 20;

/// Rows per parallel piece of [`embedding_gather`].
const GATHER_ROWS: usize = 64;

/// Parallel pieces of a gather of `rows` rows of `dim` values.
pub(crate) fn gather_pieces(rows: usize, dim: usize) -> usize {
    if rows * dim < PARALLEL_MIN_ROWS_ELEMENTS {
        1
    } else {
        rows.div_ceil(GATHER_ROWS)
    }
}

/// `table_grad[ids[r]] += rows_grad[r]` for `r` in order, so repeated ids accumulate (and
/// always in the same order).
///
/// Shapes (row-major): `rows_grad` is `ids.len() x dim`, `table_grad` is `vocab x dim`.
/// Panics, before writing anything, if a length does not match or an id is not below `vocab`.
pub fn embedding_scatter_add(vocab: usize, dim: usize, rows_grad: &[f32], ids: &[u32], table_grad: &mut [f32]) {
    const KERNEL: &str = "embedding_scatter_add";
    check_len(KERNEL, "rows_grad", rows_grad.len(), "ids.len() x dim", &[ids.len(), dim]);
    check_len(KERNEL, "table_grad", table_grad.len(), "vocab x dim", &[vocab, dim]);
    check_ids(KERNEL, "ids", ids, ("vocab", vocab));
    if dim == 0 {
        return;
    }
    // Each piece owns a range of the table's rows and adds, in order, the rows whose ids fall
    // in it: every element sees the same additions in the same order however the table is cut.
    let scatter = |(piece, table_rows): (usize, &mut [f32]), ids_per_piece: usize| {
        let first = piece * ids_per_piece;
        simd!(V => {
            for (row, &id) in rows_grad.chunks_exact(dim).zip(ids) {
                if let Some(local) = (id as usize).checked_sub(first).filter(|&local| local < ids_per_piece) {
                    let start = local * dim;
                    zip_map_inplace::<V>(&mut table_rows[start..start + dim], row, #[inline(always)] |acc, g| acc + g);
                }
            }
        })
    };
    if rows_grad.len() < PARALLEL_MIN_ROWS_ELEMENTS {
        scatter((0, table_grad), vocab);
    } else {
        let ids_per_piece = vocab.div_ceil(rayon::current_num_threads());
        table_grad.par_chunks_mut(ids_per_piece * dim).enumerate().for_each(|piece| scatter(piece, ids_per_piece));
    }
}

/// Columns per parallel task of [`column_sums`].
const COLUMNS_PER_TASK: usize = 1024;
/// Below this many elements [`column_sums`] stays on the calling thread.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// `out[j] = sum over i of matrix[i][j]` (overwriting `out`), adding rows in order.
///
/// Shapes: `matrix` is `rows x cols` row-major, `out` is `cols`; panics, before writing
/// anything, if a length does not match. Parallel over fixed groups of columns, so the result
/// does not depend on the thread count.
pub fn column_sums(rows: usize, cols: usize, matrix: &[f32], out: &mut [f32]) {
    const KERNEL: &str = "column_sums";
    check_len(KERNEL, "matrix", matrix.len(), "rows x cols", &[rows, cols]);
    check_len(KERNEL, "out", out.len(), "cols", &[cols]);
    let task = |(group, sums): (usize, &mut [f32])| sum_columns(matrix, cols, group * COLUMNS_PER_TASK, sums);
    if rows * cols < PARALLEL_MIN_ELEMENTS {
        out.chunks_mut(COLUMNS_PER_TASK).enumerate().for_each(task);
    } else {
        out.par_chunks_mut(COLUMNS_PER_TASK).enumerate().for_each(task);
    }
}

/// `out[j] = sum over r of matrix[r][j0 + j]` for a matrix whose rows are `ld` apart
/// (`matrix.len()` a multiple of `ld`), adding the rows in order: [`column_sums`] on one thread,
/// for a range of columns. Sixty-four columns at a time stay in registers over all rows; adding
/// each row into `out` instead made every addition wait for the store of the previous one
/// (`perf` put a fifth of the output layer's panel loops' samples on that store).
pub(super) fn sum_columns(matrix: &[f32], ld: usize, j0: usize, out: &mut [f32]) {
    simd!(V => sum_columns_with::<V>(matrix, ld, j0, out))
}

#[inline(always)]
fn sum_columns_with<V: Simd>(matrix: &[f32], ld: usize, j0: usize, out: &mut [f32]) {
    // Eight vectors of sums (64 columns with AVX2) fit the registers of every level.
    const VECTORS: usize = 8;
    let strip_width = VECTORS * V::LANES;
    for s0 in (0..out.len()).step_by(strip_width) {
        let strip = strip_width.min(out.len() - s0);
        let mut sums = [V::zero(); VECTORS];
        for row in matrix.chunks_exact(ld) {
            for (sum, chunk) in sums.iter_mut().zip(row[j0 + s0..j0 + s0 + strip].chunks(V::LANES)) {
                *sum += load_up_to(chunk);
            }
        }
        for (sum, chunk) in sums.iter().zip(out[s0..s0 + strip].chunks_mut(V::LANES)) {
            store_partial(chunk, *sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_with_repeated_ids() {
        let dim = 3;
        let table: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let ids = [2, 0, 2];
        let mut rows = vec![0.0; 9];
        embedding_gather(4, dim, &table, &ids, &mut rows);
        assert_eq!(rows, vec![6.0, 7.0, 8.0, 0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
        let mut grad = vec![0.0; 12];
        embedding_scatter_add(4, dim, &rows, &ids, &mut grad);
        assert_eq!(grad, vec![0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 12.0, 14.0, 16.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn large_gathers_and_scatters_give_the_same_bits_for_any_thread_count() {
        let (vocab, dim, rows) = (1003, 67, 16_000);
        let table: Vec<f32> = (0..vocab * dim).map(|v| ((v * 31 % 997) as f32 - 498.0) / 97.0).collect();
        // Frequent ids repeat, so that additions to one row must keep their order.
        let ids: Vec<u32> = (0..rows).map(|r| if r % 3 == 0 { 7 } else { (r * 389 % vocab) as u32 }).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut gathered = vec![0.0; rows * dim];
                embedding_gather(vocab, dim, &table, &ids, &mut gathered);
                let mut grad = table.clone();
                embedding_scatter_add(vocab, dim, &gathered, &ids, &mut grad);
                (gathered, grad.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            })
        };
        let (gathered, grad) = run(1);
        assert_eq!(&gathered[dim..2 * dim], &table[389 * dim..390 * dim]);
        let mut want = table.clone();
        for (row, &id) in gathered.chunks_exact(dim).zip(&ids) {
            for (w, g) in want[id as usize * dim..][..dim].iter_mut().zip(row) {
                *w += g;
            }
        }
        assert_eq!(grad, want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        for threads in [2, 3, 16] {
            assert!(run(threads) == (gathered.clone(), grad.clone()), "{threads} threads");
        }
    }

    #[test]
    fn column_sums_of_odd_shapes() {
        for (rows, cols) in [(1, 1), (3, 5), (700, 1500), (2, 2049)] {
            let m: Vec<f32> = (0..rows * cols).map(|v| (v % 7) as f32).collect();
            let mut out = vec![f32::NAN; cols];
            column_sums(rows, cols, &m, &mut out);
            for j in 0..cols {
                let want: f32 = (0..rows).map(|i| m[i * cols + j]).sum();
                assert_eq!(out[j], want);
            }
        }
    }
}
