//! The x86-64 vector types: [`F512`] (AVX-512F, 16 lanes) and [`F256`] (AVX2 + FMA, 8 lanes).
//!
//! SAFETY, for every `unsafe` block in this file: the intrinsics need the type's target
//! features. Both types are crate-private, and the kernels name them only through `simd!`,
//! which selects a type after [`super::simd_level`] has found its features on this CPU and
//! runs the code inside a function that enables them. Loads and stores go through slices whose
//! length is checked first (`values[..LANES]`), so they never touch memory outside them.

use super::Simd;
use std::arch::x86_64::*;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// Rounding of `round`: to nearest (ties to even), without raising exceptions.
const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// Sixteen f32 lanes in an AVX-512 register.
#[derive(Clone, Copy)]
pub(crate) struct F512(__m512);

/// Eight f32 lanes in an AVX register, with FMA.
#[derive(Clone, Copy)]
pub(crate) struct F256(__m256);

/// `impl $op for $t` through the intrinsic `$f`.
macro_rules! binary_ops {
    ($t:ident: $(($op:ident, $method:ident, $f:ident)),*) => {$(
        impl $op for $t {
            type Output = $t;
            #[inline(always)]
            fn $method(self, other: $t) -> $t {
                // SAFETY: see the module documentation.
                $t(unsafe { $f(self.0, other.0) })
            }
        }
    )*
        impl AddAssign for $t {
            #[inline(always)]
            fn add_assign(&mut self, other: $t) {
                *self = *self + other;
            }
        }
        impl Neg for $t {
            type Output = $t;
            #[inline(always)]
            fn neg(self) -> $t {
                self.flip_signs(<$t>::splat(-1.0))
            }
        }
    };
}

binary_ops!(F512: (Add, add, _mm512_add_ps), (Sub, sub, _mm512_sub_ps), (Mul, mul, _mm512_mul_ps), (Div, div, _mm512_div_ps));
binary_ops!(F256: (Add, add, _mm256_add_ps), (Sub, sub, _mm256_sub_ps), (Mul, mul, _mm256_mul_ps), (Div, div, _mm256_div_ps));

// SAFETY (the whole impl): see the module documentation.
impl Simd for F512 {
    const LANES: usize = 16;
    type Array = [f32; 16];

    #[inline(always)]
    fn splat(x: f32) -> Self {
        F512(unsafe { _mm512_set1_ps(x) })
    }
    #[inline(always)]
    fn load(values: &[f32]) -> Self {
        let values = &values[..16];
        F512(unsafe { _mm512_loadu_ps(values.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        let out = &mut out[..16];
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 16] {
        let mut lanes = [0.0; 16];
        self.store(&mut lanes);
        lanes
    }
    #[inline(always)]
    fn mul_add(self, m: Self, a: Self) -> Self {
        F512(unsafe { _mm512_fmadd_ps(self.0, m.0, a.0) })
    }
    #[inline(always)]
    fn mul_neg_add(self, m: Self, a: Self) -> Self {
        F512(unsafe { _mm512_fnmadd_ps(self.0, m.0, a.0) })
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        F512(unsafe { _mm512_max_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        F512(unsafe { _mm512_min_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F512(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    fn round(self) -> Self {
        F512(unsafe { _mm512_roundscale_ps::<NEAREST>(self.0) })
    }
    #[inline(always)]
    fn pow2(n: Self) -> Self {
        F512(unsafe {
            let biased = _mm512_add_epi32(_mm512_cvtps_epi32(n.0), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(biased))
        })
    }
    #[inline(always)]
    fn select_lt(self, bound: Self, below: Self, otherwise: Self) -> Self {
        F512(unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, bound.0), otherwise.0, below.0) })
    }
    #[inline(always)]
    fn flip_signs(self, signs: Self) -> Self {
        F512(unsafe {
            let sign_bits = _mm512_and_si512(_mm512_castps_si512(signs.0), _mm512_set1_epi32(i32::MIN));
            _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(self.0), sign_bits))
        })
    }
}

// SAFETY (the whole impl): see the module documentation.
impl Simd for F256 {
    const LANES: usize = 8;
    type Array = [f32; 8];

    #[inline(always)]
    fn splat(x: f32) -> Self {
        F256(unsafe { _mm256_set1_ps(x) })
    }
    #[inline(always)]
    fn load(values: &[f32]) -> Self {
        let values = &values[..8];
        F256(unsafe { _mm256_loadu_ps(values.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        let out = &mut out[..8];
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 8] {
        let mut lanes = [0.0; 8];
        self.store(&mut lanes);
        lanes
    }
    #[inline(always)]
    fn mul_add(self, m: Self, a: Self) -> Self {
        F256(unsafe { _mm256_fmadd_ps(self.0, m.0, a.0) })
    }
    #[inline(always)]
    fn mul_neg_add(self, m: Self, a: Self) -> Self {
        F256(unsafe { _mm256_fnmadd_ps(self.0, m.0, a.0) })
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        F256(unsafe { _mm256_max_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        F256(unsafe { _mm256_min_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F256(unsafe { _mm256_and_ps(self.0, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX))) })
    }
    #[inline(always)]
    fn round(self) -> Self {
        F256(unsafe { _mm256_round_ps::<NEAREST>(self.0) })
    }
    #[inline(always)]
    fn pow2(n: Self) -> Self {
        F256(unsafe {
            let biased = _mm256_add_epi32(_mm256_cvtps_epi32(n.0), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased))
        })
    }
    #[inline(always)]
    fn select_lt(self, bound: Self, below: Self, otherwise: Self) -> Self {
        F256(unsafe { _mm256_blendv_ps(otherwise.0, below.0, _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, bound.0)) })
    }
    #[inline(always)]
    fn flip_signs(self, signs: Self) -> Self {
        F256(unsafe { _mm256_xor_ps(self.0, _mm256_and_ps(signs.0, _mm256_set1_ps(-0.0))) })
    }
}
