//! Vector f32 helpers: loads and stores on slices, `exp`, `tanh`.
//!
//! The element-wise kernels run every element through the same vector code: a slice's tail
//! (fewer than `LANES` elements) is copied into a zero-padded vector, processed, and copied back,
//! so an element's result never depends on its position in the slice.
//!
//! The vectors are as wide as the target's registers: sixteen lanes with AVX-512, eight
//! otherwise (the element-wise arithmetic is the same either way; sums over lanes are not).

// The polynomial coefficients are Cephes' as published, digits beyond f32 precision included.
#![allow(clippy::excessive_precision)]

/// The vector type of the element-wise kernels, and its lane count.
#[cfg(target_feature = "avx512f")]
pub(crate) type Floats = wide::f32x16;
#[cfg(target_feature = "avx512f")]
type Ints = wide::i32x16;
#[cfg(target_feature = "avx512f")]
pub(crate) const LANES: usize = 16;
#[cfg(not(target_feature = "avx512f"))]
pub(crate) type Floats = wide::f32x8;
#[cfg(not(target_feature = "avx512f"))]
type Ints = wide::i32x8;
#[cfg(not(target_feature = "avx512f"))]
pub(crate) const LANES: usize = 8;

/// Loads `LANES` consecutive values. `values.len()` must be `LANES`.
#[inline(always)]
pub(crate) fn load(values: &[f32]) -> Floats {
    Floats::new(values.try_into().expect("load takes exactly LANES values"))
}

/// Stores `LANES` values. `out.len()` must be `LANES`.
#[inline(always)]
pub(crate) fn store(out: &mut [f32], v: Floats) {
    out.copy_from_slice(&v.to_array());
}

/// Loads up to `LANES` values, padding the missing lanes with `pad`.
#[inline(always)]
pub(crate) fn load_partial(values: &[f32], pad: f32) -> Floats {
    let mut lanes = [pad; LANES];
    lanes[..values.len()].copy_from_slice(values);
    Floats::new(lanes)
}

/// Stores the first `out.len()` (at most `LANES`) lanes of `v`.
#[inline(always)]
pub(crate) fn store_partial(out: &mut [f32], v: Floats) {
    let n = out.len();
    out.copy_from_slice(&v.to_array()[..n]);
}

/// Replaces every element `x` of `values` with `f(x)`, `LANES` at a time; the tail goes through
/// the same `f` in a zero-padded vector.
#[inline(always)]
pub(crate) fn map_inplace(values: &mut [f32], f: impl Fn(Floats) -> Floats) {
    let mut chunks = values.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        store(chunk, f(load(chunk)));
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        store_partial(tail, f(load_partial(tail, 0.0)));
    }
}

/// Replaces every `x` of `values` with `f(x, y)`, where `y` is the element of `other` at the
/// same position; `values` and `other` have the same length. Tails as in [`map_inplace`].
#[inline(always)]
pub(crate) fn zip_map_inplace(values: &mut [f32], other: &[f32], f: impl Fn(Floats, Floats) -> Floats) {
    debug_assert_eq!(values.len(), other.len());
    let mut chunks = values.chunks_exact_mut(LANES);
    let mut other_chunks = other.chunks_exact(LANES);
    for (chunk, o) in (&mut chunks).zip(&mut other_chunks) {
        store(chunk, f(load(chunk), load(o)));
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let o = load_partial(other_chunks.remainder(), 0.0);
        store_partial(tail, f(load_partial(tail, 0.0), o));
    }
}

/// `e^x` per lane, for `x` in `[-87.3, 88.0]`; inputs outside are clamped first, so very
/// negative inputs give about `1.2e-38` instead of 0 (harmless wherever the result is added to
/// something of order 1, as in softmax). Cephes' `expf`: range reduction by `ln 2` split in two
/// constants, degree-5 polynomial, scaling by `2^n` built in the exponent bits. Maximum
/// relative error about 2 ulp (tested in this module).
#[inline(always)]
pub(crate) fn exp(x: Floats) -> Floats {
    let x = x.fast_max(Floats::splat(-87.336_55)).fast_min(Floats::splat(88.0));
    let n = (x * Floats::splat(std::f32::consts::LOG2_E)).round();
    let r = n.mul_neg_add(Floats::splat(0.693_359_4), x);
    let r = n.mul_neg_add(Floats::splat(-2.121_944_4e-4), r);
    let mut p = Floats::splat(1.987_569_1e-4);
    p = p.mul_add(r, Floats::splat(1.398_199_9e-3));
    p = p.mul_add(r, Floats::splat(8.333_452e-3));
    p = p.mul_add(r, Floats::splat(4.166_579_6e-2));
    p = p.mul_add(r, Floats::splat(1.666_666_5e-1));
    p = p.mul_add(r, Floats::splat(5.000_000_1e-1));
    let y = p.mul_add(r * r, r) + Floats::ONE;
    let exponent_bits: Ints = (n.round_int() + Ints::splat(127)) << 23;
    y * wide::bytemuck::cast::<Ints, Floats>(exponent_bits)
}

/// `1 / (1 + e^-x)` per lane, through [`exp`]: relative error within a few ulp wherever the
/// result is above `1e-30`, and an absolute error below `1e-37` where it is smaller (there the
/// clamp of `exp` stops the fall at about `6e-39`).
#[inline(always)]
pub(crate) fn sigmoid(x: Floats) -> Floats {
    Floats::ONE / (Floats::ONE + exp(-x))
}

/// Loads up to `LANES` values, padding the missing lanes with zeros: [`load`] for a whole
/// vector, [`load_partial`] for a tail.
#[inline(always)]
pub(crate) fn load_up_to(values: &[f32]) -> Floats {
    if values.len() == LANES {
        load(values)
    } else {
        load_partial(values, 0.0)
    }
}

/// `tanh` per lane. Below `|x| = 0.625` Cephes' odd polynomial (no cancellation near 0),
/// above it `1 - 2 / (e^{2|x|} + 1)`; `|x|` is clamped at 10, past which `tanh` rounds to 1 in f32.
#[inline(always)]
pub(crate) fn tanh(x: Floats) -> Floats {
    let a = x.abs().fast_min(Floats::splat(10.0));
    let z = a * a;
    let mut p = Floats::splat(-5.704_988_7e-3);
    p = p.mul_add(z, Floats::splat(2.063_908_9e-2));
    p = p.mul_add(z, Floats::splat(-5.373_971_6e-2));
    p = p.mul_add(z, Floats::splat(1.333_144_2e-1));
    p = p.mul_add(z, Floats::splat(-3.333_328_2e-1));
    let near_zero = (p * z).mul_add(a, a);
    let e = exp(a + a);
    let far = Floats::ONE - Floats::splat(2.0) / (e + Floats::ONE);
    let magnitude = a.simd_lt(Floats::splat(0.625)).select(near_zero, far);
    magnitude.flip_signs(x)
}

/// Largest absolute error of [`tanh_inplace`] against `f64::tanh` (measured: 7.93e-8), over
/// every finite f32 input (`cargo test --release -- --ignored tanh_exhaustive`). The relative error is at
/// most [`TANH_MAX_REL_ERROR`] for every input.
pub const TANH_MAX_ABS_ERROR: f64 = 8.0e-8;

/// Largest relative error of [`tanh_inplace`] against `f64::tanh` over every finite f32 input
/// (measured: 1.42e-7, about 1.2 units of `f32::EPSILON`).
pub const TANH_MAX_REL_ERROR: f64 = 1.5e-7;

/// `values[i] = tanh(values[i])` for every element, `LANES` at a time.
///
/// Accuracy: absolute error at most [`TANH_MAX_ABS_ERROR`] and relative error at most
/// [`TANH_MAX_REL_ERROR`] against `f64::tanh`, over the whole finite f32 range (measured
/// exhaustively). Each element's result depends only on its own value, not on its position.
pub fn tanh_inplace(values: &mut [f32]) {
    map_inplace(values, tanh);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tanh_error(x: f32) -> (f64, f64) {
        let mut v = [x];
        tanh_inplace(&mut v);
        let want = (x as f64).tanh();
        let abs = (v[0] as f64 - want).abs();
        let rel = if want == 0.0 { abs } else { abs / want.abs() };
        (abs, rel)
    }

    /// Worst errors over every `stride`-th f32 bit pattern (finite values only).
    fn sweep(stride: usize) -> (f64, f64) {
        let mut worst = (0.0f64, 0.0f64);
        let mut batch = [0.0f32; 4096];
        let mut bits_in_batch = [0u32; 4096];
        let mut filled = 0;
        let flush = |batch: &mut [f32], bits: &[u32], worst: &mut (f64, f64)| {
            tanh_inplace(batch);
            for (&y, &b) in batch.iter().zip(bits) {
                let want = (f32::from_bits(b) as f64).tanh();
                let abs = (y as f64 - want).abs();
                let rel = if want == 0.0 { abs } else { abs / want.abs() };
                worst.0 = worst.0.max(abs);
                worst.1 = worst.1.max(rel);
            }
        };
        for bits in (0..=u32::MAX).step_by(stride) {
            let x = f32::from_bits(bits);
            if !x.is_finite() {
                continue;
            }
            batch[filled] = x;
            bits_in_batch[filled] = bits;
            filled += 1;
            if filled == batch.len() {
                flush(&mut batch, &bits_in_batch, &mut worst);
                filled = 0;
            }
        }
        flush(&mut batch[..filled], &bits_in_batch[..filled], &mut worst);
        worst
    }

    #[test]
    fn tanh_error_bound_on_a_sweep_of_the_f32_range() {
        let (abs, rel) = sweep(997);
        assert!(abs <= TANH_MAX_ABS_ERROR, "max abs error {abs:e}");
        assert!(rel <= TANH_MAX_REL_ERROR, "max rel error {rel:e}");
    }

    #[test]
    fn tanh_error_bound_near_the_branch_and_the_clamp() {
        for &centre in &[0.0f32, 0.625, -0.625, 9.0, -9.0, 10.0, 1e-30, -1e-30] {
            let mut x = centre;
            for _ in 0..20_000 {
                let (abs, rel) = tanh_error(x);
                assert!(abs <= TANH_MAX_ABS_ERROR && rel <= TANH_MAX_REL_ERROR, "x = {x:e}");
                x = f32::from_bits(x.to_bits() + 1);
            }
        }
    }

    #[test]
    #[ignore = "checks all 4 billion f32 inputs; run by hand when the tanh code changes"]
    fn tanh_exhaustive() {
        let (abs, rel) = sweep(1);
        println!("tanh over all finite f32: max abs error {abs:e}, max rel error {rel:e}");
        assert!(abs <= TANH_MAX_ABS_ERROR && rel <= TANH_MAX_REL_ERROR);
    }

    #[test]
    fn tanh_special_values() {
        let mut v = [0.0, -0.0, 1e30, -1e30, f32::MAX, f32::MIN, 20.0, -20.0, 1e-40];
        tanh_inplace(&mut v);
        assert_eq!(v[0].to_bits(), 0.0f32.to_bits());
        assert_eq!(v[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(&v[2..8], &[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
        assert_eq!(v[8], 1e-40);
    }

    #[test]
    fn tail_elements_match_vector_lanes() {
        let xs: Vec<f32> = (0..13).map(|i| i as f32 * 0.37 - 2.0).collect();
        let mut whole = xs.clone();
        tanh_inplace(&mut whole);
        for (i, &x) in xs.iter().enumerate() {
            let mut single = [x];
            tanh_inplace(&mut single);
            assert_eq!(single[0].to_bits(), whole[i].to_bits());
        }
    }

    #[test]
    fn sigmoid_error() {
        let mut worst = 0.0f64;
        let mut x = -100.0f32;
        while x < 100.0 {
            let got = sigmoid(Floats::splat(x)).to_array()[0] as f64;
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            let error = (got - want).abs();
            if want > 1e-30 {
                worst = worst.max(error / want);
            } else {
                assert!(error < 1e-37, "x = {x}: {got} vs {want}");
            }
            x += 0.0123;
        }
        assert!(worst < 5.0e-7, "max rel error {worst:e}");
        assert_eq!(sigmoid(Floats::splat(0.0)).to_array()[0], 0.5);
        assert_eq!(sigmoid(Floats::splat(1e30)).to_array()[0], 1.0);
    }

    #[test]
    fn exp_relative_error() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 87.0 {
            let got = exp(Floats::splat(x)).to_array()[0] as f64;
            let want = (x as f64).exp();
            worst = worst.max((got - want).abs() / want);
            x += 0.0137;
        }
        assert!(worst < 3.0e-7, "max rel error {worst:e}");
    }
}
