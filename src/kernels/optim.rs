//! Optimizer pieces: the SGD update and global-norm gradient clipping.
//!
//! Long slices are shared between threads in pieces cut by the length alone: the update and
//! the scaling touch each element once, and the sum of squares adds its pieces' sums along a
//! binary tree whose shape depends only on the length, so every result is the same for any
//! thread count.

use super::check_same_len;
use super::simd::{load_partial, map_inplace, simd, zip_map_inplace, Simd};
use rayon::prelude::*;

/// Elements per piece of work: below this a slice is one piece on the calling thread.
const PIECE: usize = 1 << 16;

/// `params[i] -= lr * grads[i]` for every element (one fused multiply-add each).
/// `params` and `grads` have the same length; panics, before writing anything, if not.
pub fn sgd_update(params: &mut [f32], grads: &[f32], lr: f32) {
    check_same_len("sgd_update", ("params", params.len()), ("grads", grads.len()));
    let update = |(params, grads): (&mut [f32], &[f32])| simd!(V => zip_map_inplace::<V>(params, grads, #[inline(always)] |p, g| g.mul_neg_add(V::splat(lr), p)));
    if params.len() <= PIECE {
        update((params, grads));
    } else {
        params.par_chunks_mut(PIECE).zip(grads.par_chunks(PIECE)).for_each(update);
    }
}

/// Parallel pieces of an update of `len` elements.
pub(crate) fn update_pieces(len: usize) -> usize {
    len.div_ceil(PIECE).max(1)
}

/// Elements summed in f32 lanes before the partial sum is added to the f64 total: keeps the
/// f32 rounding error to about `512 / 8 = 64` terms' worth while staying vectorised.
const BLOCK: usize = 512;

/// `sum of values[i]^2`, accumulated in f64: in f32 lanes within blocks of 512 elements, the
/// blocks' sums added in order within pieces of 65,536 elements, and the pieces' sums along
/// a binary tree (each half a whole number of pieces) computed in parallel. The order of
/// operations is fixed by the length alone.
pub fn sum_of_squares(values: &[f32]) -> f64 {
    let pieces = values.len().div_ceil(PIECE);
    if pieces <= 1 {
        return simd!(V => sum_of_squares_with::<V>(values));
    }
    let (left, right) = values.split_at(pieces / 2 * PIECE);
    let (left, right) = rayon::join(|| sum_of_squares(left), || sum_of_squares(right));
    left + right
}

#[inline(always)]
fn sum_of_squares_with<V: Simd>(values: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for block in values.chunks(BLOCK) {
        let mut lanes = V::zero();
        let mut chunks = block.chunks_exact(V::LANES);
        for chunk in &mut chunks {
            let v = V::load(chunk);
            lanes = v.mul_add(v, lanes);
        }
        let tail: V = load_partial(chunks.remainder(), 0.0);
        lanes = tail.mul_add(tail, lanes);
        total += lanes.to_array().as_ref().iter().map(|&x| x as f64).sum::<f64>();
    }
    total
}

/// `values[i] *= factor` for every element.
pub fn scale_inplace(values: &mut [f32], factor: f32) {
    let scale = |values: &mut [f32]| simd!(V => map_inplace::<V>(values, #[inline(always)] |v| v * V::splat(factor)));
    if values.len() <= PIECE {
        scale(values);
    } else {
        values.par_chunks_mut(PIECE).for_each(scale);
    }
}

/// The factor by which global-norm clipping scales every gradient, if it does:
/// `Some(max_norm / (norm + 1e-6))` when `norm > max_norm`, else `None`. `norm` is the L2 norm
/// over all gradients, `sqrt` of the sum of [`sum_of_squares`] over every tensor.
pub fn clip_factor(norm: f64, max_norm: f32) -> Option<f32> {
    (norm > max_norm as f64).then(|| (max_norm as f64 / (norm + 1e-6)) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_update_odd_length() {
        let mut p: Vec<f32> = (0..11).map(|i| i as f32).collect();
        let g = vec![2.0; 11];
        sgd_update(&mut p, &g, 0.5);
        let want: Vec<f32> = (0..11).map(|i| i as f32 - 1.0).collect();
        assert_eq!(p, want);
    }

    #[test]
    fn sum_of_squares_matches_f64() {
        let v: Vec<f32> = (0..5003).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let want: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
        let got = sum_of_squares(&v);
        assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
        assert_eq!(sum_of_squares(&[]), 0.0);
    }

    #[test]
    fn long_slices_give_the_same_bits_for_any_thread_count() {
        let len = 5 * PIECE + 77;
        let values: Vec<f32> = (0..len).map(|i| ((i * 7919 % 2003) as f32 - 1000.0) / 300.0).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut params = values.clone();
                sgd_update(&mut params, &values[..len].iter().rev().copied().collect::<Vec<_>>(), 0.3);
                scale_inplace(&mut params, 0.7);
                (sum_of_squares(&params).to_bits(), params.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            })
        };
        let one = run(1);
        for threads in [2, 3, 16] {
            assert!(run(threads) == one, "{threads} threads");
        }
        let want: f64 = values.iter().map(|&x| x as f64 * x as f64).sum();
        assert!((sum_of_squares(&values) - want).abs() <= 1e-6 * want);
    }

    #[test]
    fn clip_factor_follows_the_spec() {
        assert_eq!(clip_factor(1.0, 5.0), None);
        assert_eq!(clip_factor(5.0, 5.0), None);
        let f = clip_factor(10.0, 5.0).unwrap();
        assert!((f as f64 - 5.0 / (10.0 + 1e-6)).abs() < 1e-7);
        let mut g = vec![3.0; 9];
        scale_inplace(&mut g, 0.5);
        assert_eq!(g, vec![1.5; 9]);
    }
}
