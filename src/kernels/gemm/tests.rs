//! GEMM against an f64 triple loop and against `matrixmultiply`, and its packed and parallel
//! forms against it bit for bit.

use super::*;

type GemmFn = fn(usize, usize, usize, f32, &[f32], usize, Transpose, &[f32], usize, Transpose, f32, &mut [f32], usize);

use crate::kernels::test_values as fill;

#[allow(clippy::too_many_arguments)]
fn naive(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: &[f32],
    lda: usize,
    ta: Transpose,
    b: &[f32],
    ldb: usize,
    tb: Transpose,
    beta: f32,
    c: &mut [f64],
    ldc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f64;
            for p in 0..k {
                let a_ip = if ta == Transpose::No { a[i * lda + p] } else { a[p * lda + i] };
                let b_pj = if tb == Transpose::No { b[p * ldb + j] } else { b[j * ldb + p] };
                sum += a_ip as f64 * b_pj as f64;
            }
            let c_ij = &mut c[i * ldc + j];
            *c_ij = alpha as f64 * sum + if beta == 0.0 { 0.0 } else { beta as f64 * *c_ij };
        }
    }
}

/// Every transpose combination, odd shapes, padded leading dimensions, both drivers.
#[test]
fn matches_naive_triple_loop() {
    let shapes = [
        (1, 1, 1),
        (1, 17, 3),
        (7, 1, 5),
        (6, 16, 256),
        (13, 29, 300),
        (37, 150, 9),
        (200, 33, 70),
        (64, 300, 600),
        (5, 1000, 128),
        // A * B^T with a long depth takes the dot-product path: depth tails, two depth
        // blocks, edges of both tile dimensions; the second is also split in parallel.
        (37, 45, 1100),
        (300, 20, 2100),
    ];
    for (case, &(m, n, k)) in shapes.iter().enumerate() {
        for ta in [Transpose::No, Transpose::Yes] {
            for tb in [Transpose::No, Transpose::Yes] {
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)] {
                    let pad = case % 3;
                    let (a_rows, a_cols) = if ta == Transpose::No { (m, k) } else { (k, m) };
                    let (b_rows, b_cols) = if tb == Transpose::No { (k, n) } else { (n, k) };
                    let (lda, ldb, ldc) = (a_cols + pad, b_cols + pad, n + pad);
                    let a = fill(a_rows * lda, 1 + case as u64);
                    let b = fill(b_rows * ldb, 100 + case as u64);
                    let c0 = fill(m * ldc, 200 + case as u64);
                    let mut want: Vec<f64> = c0.iter().map(|&v| v as f64).collect();
                    naive((m, n, k), alpha, &a, lda, ta, &b, ldb, tb, beta, &mut want, ldc);
                    let drivers: [GemmFn; 2] = [gemm, gemm_parallel];
                    for driver in drivers {
                        let mut c = c0.clone();
                        if beta == 0.0 {
                            for i in 0..m {
                                c[i * ldc..i * ldc + n].fill(f32::NAN);
                            }
                        }
                        driver(m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut c, ldc);
                        for i in 0..m {
                            for j in 0..ldc {
                                let (got, want) = (c[i * ldc + j] as f64, want[i * ldc + j]);
                                // Each product is exact in f64; the f32 sum of k terms of
                                // magnitude <= 1 errs by at most about k * 2^-24 (+ scaling).
                                let tol = 1e-6 * (k as f64 + 4.0) * (alpha.abs() as f64 + 1.0);
                                assert!(
                                    (got - want).abs() <= tol,
                                    "{m}x{n}x{k} {ta:?}{tb:?} alpha {alpha} beta {beta}: C[{i}][{j}] = {got}, want {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `C = alpha * op(A) * op(B) + beta * C` by `matrixmultiply`, an independent implementation
/// (its own packing, kernels and summation order).
#[allow(clippy::too_many_arguments)]
fn matrixmultiply_gemm(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    (a, lda, ta): (&[f32], usize, Transpose),
    (b, ldb, tb): (&[f32], usize, Transpose),
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let strides = |ld: usize, t: Transpose| match t {
        Transpose::No => (ld as isize, 1),
        Transpose::Yes => (1, ld as isize),
    };
    let ((rsa, csa), (rsb, csb)) = (strides(lda, ta), strides(ldb, tb));
    // SAFETY: the pointers come from slices that hold every element the strides reach (the
    // shapes are built so), and C does not alias A or B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

/// The second oracle, on the model's shapes (the bench configurations' GEMMs) and odd ones, where the
/// triple loop would be slow: the two implementations sum in different orders, so they agree to
/// the f32 error of a `k`-term sum, bounded by `k * 2^-24` times the largest term's magnitude
/// (all values here are within 1), twice (one error each).
#[test]
fn agrees_with_matrixmultiply() {
    let (no, yes) = (Transpose::No, Transpose::Yes);
    let cases = [
        (700, 256, 100, no, no),
        (100, 256, 700, yes, no),
        (700, 100, 256, no, yes),
        (700, 650, 650, no, no),
        (650, 650, 700, yes, no),
        (20, 2600, 650, no, no),
        (33, 47, 1031, no, yes),
        (129, 3, 77, yes, yes),
    ];
    for (case, &(m, n, k, ta, tb)) in cases.iter().enumerate() {
        let (lda, ldb) = (if ta == no { k } else { m }, if tb == no { n } else { k });
        let a = fill(m * k, 300 + case as u64);
        let b = fill(k * n, 400 + case as u64);
        let c0 = fill(m * n, 500 + case as u64);
        for (alpha, beta) in [(1.0, 0.0), (-0.5, 0.75)] {
            let (mut ours, mut theirs) = (c0.clone(), c0.clone());
            gemm_parallel(m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut ours, n);
            matrixmultiply_gemm((m, n, k), alpha, (&a, lda, ta), (&b, ldb, tb), beta, &mut theirs, n);
            let tol = 2.0 * (k as f64 + 4.0) * f32::EPSILON as f64 * (alpha.abs() as f64 + 1.0);
            for (index, (&x, &y)) in ours.iter().zip(&theirs).enumerate() {
                assert!(
                    (x as f64 - y as f64).abs() <= tol,
                    "{m}x{n}x{k} {ta:?}{tb:?} alpha {alpha} beta {beta}: C[{}][{}] = {x}, matrixmultiply {y}",
                    index / n,
                    index % n
                );
            }
        }
    }
}

#[test]
fn parallel_is_bit_identical_to_serial_for_any_thread_count() {
    for &(m, n, k, ta, tb) in &[
        // Wider than tall: blocks of columns.
        (700, 1000, 100, Transpose::No, Transpose::No),
        (100, 1000, 700, Transpose::Yes, Transpose::No),
        (20, 3000, 100, Transpose::No, Transpose::No),
        // Dot products.
        (700, 100, 1000, Transpose::No, Transpose::Yes),
        // Not by dot products as a whole (320 columns), though its blocks of columns on 64
        // threads (32 wide) would be.
        (700, 320, 1280, Transpose::No, Transpose::Yes),
        // Taller than wide: blocks of rows.
        (1000, 300, 200, Transpose::No, Transpose::No),
        (650, 600, 700, Transpose::Yes, Transpose::No),
    ] {
        let (lda, ldb) = (if ta == Transpose::No { k } else { m }, if tb == Transpose::No { n } else { k });
        let a = fill(m * k, 7);
        let b = fill(k * n, 8);
        let mut serial = vec![0.0; m * n];
        gemm(m, n, k, 1.0, &a, lda, ta, &b, ldb, tb, 0.0, &mut serial, n);
        for threads in [1, 2, 3, 64] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut par = vec![0.0; m * n];
            pool.install(|| gemm_parallel(m, n, k, 1.0, &a, lda, ta, &b, ldb, tb, 0.0, &mut par, n));
            let same = serial.iter().zip(&par).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{m}x{n}x{k} {ta:?} {tb:?}, {threads} threads");
        }
    }
}

#[test]
fn packed_b_gives_the_same_bits_as_gemm() {
    let shapes = [(1, 1, 1), (7, 17, 5), (20, 650, 650), (13, 300, 600), (3, 40, 0), (0, 5, 5)];
    for (case, &(m, n, k)) in shapes.iter().enumerate() {
        for tb in [Transpose::No, Transpose::Yes] {
            for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0)] {
                let pad = case % 2;
                let ldb = if tb == Transpose::No { n } else { k }.max(1) + pad;
                let b_rows = if tb == Transpose::No { k } else { n };
                let (a, b) = (fill(m * (k + 1), case as u64), fill(b_rows * ldb, 50 + case as u64));
                let mut packed = PackedB::new(k, n).unwrap();
                packed.pack(&b, ldb, tb);
                let mut want = fill(m * n, 99);
                let mut got = want.clone();
                gemm(m, n, k, alpha, &a, k + 1, Transpose::No, &b, ldb, tb, beta, &mut want, n);
                gemm_packed(m, alpha, &a, k + 1, Transpose::No, &packed, beta, &mut got, n);
                let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{m}x{n}x{k} {tb:?} alpha {alpha} beta {beta}");
            }
        }
    }
}

#[test]
fn packed_a_gives_the_same_bits_as_gemm() {
    // Several depth blocks, B read in place (m <= 64) and packed, ragged panels, empty
    // shapes; not the products `gemm` does by dot products (13 x 40 x 600 with B^T).
    let shapes = [(1, 1, 1), (7, 17, 5), (100, 256, 700), (50, 300, 100), (13, 40, 600), (3, 40, 0), (0, 5, 5)];
    for (case, &(m, n, k)) in shapes.iter().enumerate() {
        for (ta, tb) in
            [(Transpose::No, Transpose::No), (Transpose::Yes, Transpose::No), (Transpose::No, Transpose::Yes)]
        {
            for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0)] {
                let pad = case % 2;
                let stored = |trans, rows: usize, cols: usize| match trans {
                    Transpose::No => (rows, cols.max(1) + pad),
                    Transpose::Yes => (cols, rows.max(1) + pad),
                };
                let ((a_rows, lda), (b_rows, ldb)) = (stored(ta, m, k), stored(tb, k, n));
                let (a, b) = (fill(a_rows * lda, case as u64), fill(b_rows * ldb, 50 + case as u64));
                let (a_op, b_op) = (Operand { data: &a, ld: lda, trans: ta }, Operand { data: &b, ld: ldb, trans: tb });
                if use_dot_products(&a_op, &b_op, n, k) {
                    continue;
                }
                let mut packed = PackedA::new(m, k).unwrap();
                packed.pack(&a, lda, ta);
                let mut want = fill(m * n, 99);
                let mut got = want.clone();
                gemm(m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut want, n);
                gemm_packed_a(n, alpha, &packed, &b, ldb, tb, beta, &mut got, n);
                let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{m}x{n}x{k} {ta:?} {tb:?} alpha {alpha} beta {beta}");
            }
        }
    }
}

/// A product of one row takes its own path (one-row tiles, B read in place, many panels at
/// once): its bits are those of the same row inside a taller product.
#[test]
fn one_row_gives_the_bits_of_the_same_row_among_others() {
    for (case, &(n, k, pad)) in [(256, 100, 0), (600, 300, 3), (1000, 650, 0), (40, 7, 1)].iter().enumerate() {
        for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0)] {
            let ldb = n + pad;
            let (a, b) = (fill(3 * k, case as u64), fill(k * ldb, 50 + case as u64));
            let c0 = fill(3 * n, 99);
            let mut tall = c0.clone();
            gemm(3, n, k, alpha, &a, k, Transpose::No, &b, ldb, Transpose::No, beta, &mut tall, n);
            let mut one = c0[..n].to_vec();
            gemm(1, n, k, alpha, &a[..k], k, Transpose::No, &b, ldb, Transpose::No, beta, &mut one, n);
            let same = one.iter().zip(&tall[..n]).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "1x{n}x{k} alpha {alpha} beta {beta}");
        }
    }
}

#[test]
fn both_packed_give_the_same_bits_as_gemm() {
    let shapes = [(1, 1, 1), (1, 300, 100), (7, 17, 5), (100, 256, 700), (50, 300, 100), (3, 40, 0)];
    for (case, &(m, n, k)) in shapes.iter().enumerate() {
        for tb in [Transpose::No, Transpose::Yes] {
            for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0)] {
                let ldb = if tb == Transpose::No { n } else { k }.max(1);
                let b_rows = if tb == Transpose::No { k } else { n };
                let (a, b) = (fill(m * k.max(1), case as u64), fill(b_rows * ldb, 50 + case as u64));
                let (mut packed_a, mut packed_b) = (PackedA::new(m, k).unwrap(), PackedB::new(k, n).unwrap());
                packed_a.pack(&a, k.max(1), Transpose::No);
                packed_b.pack(&b, ldb, tb);
                let mut want = fill(m * n, 99);
                let mut got = want.clone();
                gemm(m, n, k, alpha, &a, k.max(1), Transpose::No, &b, ldb, tb, beta, &mut want, n);
                let mut view = OutMatrix::new("test", &mut got, m, n, n);
                gemm_packed_both_into(alpha, &packed_a, &packed_b, beta, &mut view);
                let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{m}x{n}x{k} {tb:?} alpha {alpha} beta {beta}");
            }
        }
    }
}

/// Aligned column ranges of a packed B, inside one block of 256 columns and across blocks,
/// ending mid-panel or at the edge: the bits of the same columns of the whole product.
#[test]
fn column_ranges_of_a_packed_b_give_the_bits_of_the_whole_product() {
    let nr = column_alignment();
    let shapes = [(1, 40, 3), (7, 300, 17), (20, 650, 300), (13, 600, 650)];
    for (case, &(m, n, k)) in shapes.iter().enumerate() {
        for tb in [Transpose::No, Transpose::Yes] {
            let ldb = if tb == Transpose::No { n } else { k };
            let (a, b) = (fill(m * k, case as u64), fill(n * k, 70 + case as u64));
            let mut packed = PackedB::new(k, n).unwrap();
            packed.pack(&b, ldb, tb);
            let mut whole = fill(m * n, 7);
            let c0 = whole.clone();
            gemm(m, n, k, 1.0, &a, k, Transpose::No, &b, ldb, tb, 1.0, &mut whole, n);
            for per_range in [nr, 3 * nr, 8 * nr, 9 * nr] {
                let mut got = c0.clone();
                for first in (0..n).step_by(per_range) {
                    let cols = per_range.min(n - first);
                    let mut view = OutMatrix::new("test", &mut got[first..], m, cols, n);
                    gemm_packed_columns_into(1.0, (&a, k, Transpose::No), &packed, first, 1.0, &mut view);
                }
                let same = got.iter().zip(&whole).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{m}x{n}x{k} {tb:?}, ranges of {per_range}");
            }
        }
    }
}

#[test]
#[should_panic(expected = "not an aligned range")]
fn an_unaligned_column_range_panics() {
    let mut packed = PackedB::new(4, 100).unwrap();
    packed.pack(&[1.0; 400], 100, Transpose::No);
    let mut c = vec![0.0; 10];
    gemm_packed_columns_into(
        1.0,
        (&[1.0; 4], 4, Transpose::No),
        &packed,
        3,
        0.0,
        &mut OutMatrix::new("t", &mut c, 1, 10, 10),
    );
}

#[test]
#[should_panic(expected = "PackedA::pack: A has")]
fn packing_a_short_left_operand_panics() {
    PackedA::new(3, 4).unwrap().pack(&[1.0; 11], 4, Transpose::No);
}

#[test]
#[should_panic(expected = "PackedB::pack: B has")]
fn packing_a_short_matrix_panics() {
    PackedB::new(3, 4).unwrap().pack(&[1.0; 11], 4, Transpose::No);
}

#[test]
fn tile_height_wastes_the_fewest_rows() {
    let cases = match simd_level() {
        SimdLevel::Avx512 => [(50, 10), (100, 10), (700, 14), (24, 12), (64, 8), (1, 1), (5, 5), (7, 8), (13, 14)],
        _ => [(50, 5), (100, 5), (700, 5), (24, 6), (64, 4), (1, 1), (3, 3), (4, 4), (12, 6)],
    };
    for (m, want) in cases {
        assert_eq!(tile_rows(m), want, "m = {m}");
    }
}

#[test]
fn k_zero_scales_c_by_beta() {
    let mut c = vec![2.0; 6];
    gemm(2, 3, 0, 1.0, &[], 1, Transpose::No, &[], 3, Transpose::No, 0.5, &mut c, 3);
    assert_eq!(c, vec![1.0; 6]);
    gemm(2, 3, 0, 1.0, &[], 1, Transpose::No, &[], 3, Transpose::No, 0.0, &mut c, 3);
    assert_eq!(c, vec![0.0; 6]);
}

#[test]
#[should_panic(expected = "gemm: B has")]
fn short_operand_panics_with_its_name() {
    let mut c = vec![0.0; 4];
    gemm(2, 2, 2, 1.0, &[1.0; 4], 2, Transpose::No, &[1.0; 3], 2, Transpose::No, 0.0, &mut c, 2);
}
