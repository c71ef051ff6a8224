//! Vector f32 code, written once and compiled per instruction-set level: the [`Simd`] vector
//! type, loads and stores on slices, `exp`, `sigmoid`, `tanh`.
//!
//! The element-wise kernels run every element through the same vector code: a slice's tail
//! (fewer than `LANES` elements) is copied into a zero-padded vector, processed, and copied back,
//! so an element's result never depends on its position in the slice.
//!
//! The level ([`SimdLevel`]) is chosen at run time ([`simd_level`]); a kernel reaches its vector
//! code through [`simd!`], generic over the vector type. Element-wise arithmetic is the same at
//! every level with FMA (AVX-512, AVX2); sums over lanes differ with the lane count, and the
//! baseline level rounds a multiply-add twice on x86-64.

// The polynomial coefficients are Cephes' as published, digits beyond f32 precision included.
#![allow(clippy::excessive_precision)]

mod baseline;
mod level;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use baseline::Baseline;
pub(crate) use level::simd;
pub use level::{simd_level, SimdLevel};
#[cfg(target_arch = "x86_64")]
pub(crate) use level::{with_avx2, with_avx512};
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{F256, F512};

/// The most lanes a vector has at any level.
pub(crate) const MAX_LANES: usize = 16;

/// A vector of f32 lanes at one level. Crate-private: the kernels are generic over it and pick
/// a type with [`simd!`], which has checked that the CPU can run it.
pub(crate) trait Simd:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// Lanes per vector, at most [`MAX_LANES`].
    const LANES: usize;
    /// `[f32; LANES]`.
    type Array: Copy + AsRef<[f32]>;
    /// Every lane `x`.
    fn splat(x: f32) -> Self;
    /// The first `LANES` values of `values` (panics if it is shorter).
    fn load(values: &[f32]) -> Self;
    /// Into the first `LANES` values of `out` (panics if it is shorter).
    fn store(self, out: &mut [f32]);
    /// The lanes.
    fn to_array(self) -> Self::Array;
    /// `self * m + a`, fused where the level has FMA.
    fn mul_add(self, m: Self, a: Self) -> Self;
    /// `a - self * m`, fused where the level has FMA.
    fn mul_neg_add(self, m: Self, a: Self) -> Self;
    /// Lane-wise maximum (the other operand where one is NaN).
    fn max(self, other: Self) -> Self;
    /// Lane-wise minimum (the other operand where one is NaN).
    fn min(self, other: Self) -> Self;
    /// Lane-wise absolute value.
    fn abs(self) -> Self;
    /// Rounded to the nearest integer, ties to even.
    fn round(self) -> Self;
    /// `2^n` for integer-valued lanes `n` in `-126..=127`, built in the exponent bits.
    fn pow2(n: Self) -> Self;
    /// Per lane, `below` where `self < bound`, else `otherwise`.
    fn select_lt(self, bound: Self, below: Self, otherwise: Self) -> Self;
    /// `self` with its sign flipped where `signs` is negative.
    fn flip_signs(self, signs: Self) -> Self;

    /// Every lane 0.
    #[inline(always)]
    fn zero() -> Self {
        Self::splat(0.0)
    }
    /// Every lane 1.
    #[inline(always)]
    fn one() -> Self {
        Self::splat(1.0)
    }
}

/// Loads up to `LANES` values, padding the missing lanes with `pad`.
#[inline(always)]
pub(crate) fn load_partial<V: Simd>(values: &[f32], pad: f32) -> V {
    let mut lanes = [pad; MAX_LANES];
    lanes[..values.len()].copy_from_slice(values);
    V::load(&lanes)
}

/// Stores the first `out.len()` (at most `LANES`) lanes of `v`.
#[inline(always)]
pub(crate) fn store_partial<V: Simd>(out: &mut [f32], v: V) {
    let n = out.len();
    out.copy_from_slice(&v.to_array().as_ref()[..n]);
}

/// Loads up to `LANES` values, padding the missing lanes with zeros: a whole vector, or a
/// tail through [`load_partial`].
#[inline(always)]
pub(crate) fn load_up_to<V: Simd>(values: &[f32]) -> V {
    if values.len() == V::LANES {
        V::load(values)
    } else {
        load_partial(values, 0.0)
    }
}

/// `values[range] + bias[range]` (at most `LANES` values, the missing lanes zero).
#[inline(always)]
pub(crate) fn load_biased<V: Simd>(values: &[f32], bias: &[f32], range: std::ops::Range<usize>) -> V {
    load_up_to::<V>(&values[range.clone()]) + load_up_to::<V>(&bias[range])
}

/// The sum of the lanes, in lane order.
#[inline(always)]
pub(crate) fn lane_sum<V: Simd>(v: V) -> f32 {
    v.to_array().as_ref().iter().sum()
}

/// The largest lane (ignoring NaN lanes).
#[inline(always)]
pub(crate) fn lane_max<V: Simd>(v: V) -> f32 {
    v.to_array().as_ref().iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Replaces every element `x` of `values` with `f(x)`, `LANES` at a time; the tail goes through
/// the same `f` in a zero-padded vector.
#[inline(always)]
pub(crate) fn map_inplace<V: Simd>(values: &mut [f32], f: impl Fn(V) -> V) {
    let mut chunks = values.chunks_exact_mut(V::LANES);
    for chunk in &mut chunks {
        f(V::load(chunk)).store(chunk);
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        store_partial(tail, f(load_partial(tail, 0.0)));
    }
}

/// Replaces every `x` of `values` with `f(x, y)`, where `y` is the element of `other` at the
/// same position; `values` and `other` have the same length. Tails as in [`map_inplace`].
#[inline(always)]
pub(crate) fn zip_map_inplace<V: Simd>(values: &mut [f32], other: &[f32], f: impl Fn(V, V) -> V) {
    debug_assert_eq!(values.len(), other.len());
    let mut chunks = values.chunks_exact_mut(V::LANES);
    let mut other_chunks = other.chunks_exact(V::LANES);
    for (chunk, o) in (&mut chunks).zip(&mut other_chunks) {
        f(V::load(chunk), V::load(o)).store(chunk);
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
pub(crate) fn exp<V: Simd>(x: V) -> V {
    let x = x.max(V::splat(-87.336_55)).min(V::splat(88.0));
    let n = (x * V::splat(std::f32::consts::LOG2_E)).round();
    let r = n.mul_neg_add(V::splat(0.693_359_4), x);
    let r = n.mul_neg_add(V::splat(-2.121_944_4e-4), r);
    let mut p = V::splat(1.987_569_1e-4);
    p = p.mul_add(r, V::splat(1.398_199_9e-3));
    p = p.mul_add(r, V::splat(8.333_452e-3));
    p = p.mul_add(r, V::splat(4.166_579_6e-2));
    p = p.mul_add(r, V::splat(1.666_666_5e-1));
    p = p.mul_add(r, V::splat(5.000_000_1e-1));
    let y = p.mul_add(r * r, r) + V::one();
    y * V::pow2(n)
}

/// `1 / (1 + e^-x)` per lane, through [`exp`]: relative error within a few ulp wherever the
/// result is above `1e-30`, and an absolute error below `1e-37` where it is smaller (there the
/// clamp of `exp` stops the fall at about `6e-39`).
#[inline(always)]
pub(crate) fn sigmoid<V: Simd>(x: V) -> V {
    V::one() / (V::one() + exp(-x))
}

/// `tanh` per lane. Below `|x| = 0.625` Cephes' odd polynomial (no cancellation near 0),
/// above it `1 - 2 / (e^{2|x|} + 1)`; `|x|` is clamped at 10, past which `tanh` rounds to 1 in f32.
#[inline(always)]
pub(crate) fn tanh<V: Simd>(x: V) -> V {
    let a = x.abs().min(V::splat(10.0));
    let z = a * a;
    let mut p = V::splat(-5.704_988_7e-3);
    p = p.mul_add(z, V::splat(2.063_908_9e-2));
    p = p.mul_add(z, V::splat(-5.373_971_6e-2));
    p = p.mul_add(z, V::splat(1.333_144_2e-1));
    p = p.mul_add(z, V::splat(-3.333_328_2e-1));
    let near_zero = (p * z).mul_add(a, a);
    let e = exp(a + a);
    let far = V::one() - V::splat(2.0) / (e + V::one());
    let magnitude = a.select_lt(V::splat(0.625), near_zero, far);
    magnitude.flip_signs(x)
}

/// Largest absolute error of [`tanh_inplace`] against `f64::tanh` (measured: 7.93e-8), over
/// every finite f32 input, at every SIMD level (`RNNLM_SIMD=<level> cargo test --release --
/// --ignored tanh_exhaustive`). The relative error is at most [`TANH_MAX_REL_ERROR`] for every
/// input.
pub const TANH_MAX_ABS_ERROR: f64 = 8.0e-8;

/// Largest relative error of [`tanh_inplace`] against `f64::tanh` over every finite f32 input,
/// at every SIMD level (measured: 1.42e-7 at each, about 1.2 units of `f32::EPSILON`).
pub const TANH_MAX_REL_ERROR: f64 = 1.5e-7;

/// `values[i] = tanh(values[i])` for every element, `LANES` at a time.
///
/// Accuracy: absolute error at most [`TANH_MAX_ABS_ERROR`] and relative error at most
/// [`TANH_MAX_REL_ERROR`] against `f64::tanh`, over the whole finite f32 range (measured
/// exhaustively). Each element's result depends only on its own value, not on its position.
pub fn tanh_inplace(values: &mut [f32]) {
    simd!(V => map_inplace::<V>(values, tanh))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sigmoid` of one value, at the level in use.
    fn sigmoid1(x: f32) -> f32 {
        simd!(V => sigmoid(V::splat(x)).to_array().as_ref()[0])
    }

    /// `exp` of one value, at the level in use.
    fn exp1(x: f32) -> f32 {
        simd!(V => exp(V::splat(x)).to_array().as_ref()[0])
    }

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
    fn the_level_in_use_is_the_forced_one_or_the_best() {
        match std::env::var("RNNLM_SIMD") {
            // The test runs of every level (`.ci/run`) force one each; a name this CPU cannot
            // run must fail here rather than quietly test another level.
            Ok(name) => assert_eq!(simd_level().name(), name, "RNNLM_SIMD={name} is not the level in use"),
            Err(_) => {
                let best = SimdLevel::ALL.into_iter().find(|level| level.is_supported());
                assert_eq!(Some(simd_level()), best);
            }
        }
        assert!(simd_level().is_supported());
    }

    #[test]
    fn the_level_reports_the_lanes_of_its_vector_type() {
        assert_eq!(simd_level().lanes(), simd!(V => V::LANES));
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
            let got = sigmoid1(x) as f64;
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
        assert_eq!(sigmoid1(0.0), 0.5);
        assert_eq!(sigmoid1(1e30), 1.0);
    }

    #[test]
    fn exp_relative_error() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 87.0 {
            let got = exp1(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max((got - want).abs() / want);
            x += 0.0137;
        }
        assert!(worst < 3.0e-7, "max rel error {worst:e}");
    }
}
