//! The baseline vector type: `wide`'s four lanes, which compile to SSE2 on x86-64 (no FMA: a
//! multiply-add is a multiply and an add, rounded twice), NEON on aarch64 and scalar code
//! elsewhere. It needs no run-time check, so it is also the fallback.

use super::Simd;

/// Four f32 lanes.
pub(crate) type Baseline = wide::f32x4;

impl Simd for Baseline {
    const LANES: usize = 4;
    type Array = [f32; 4];

    #[inline(always)]
    fn splat(x: f32) -> Self {
        wide::f32x4::splat(x)
    }
    #[inline(always)]
    fn load(values: &[f32]) -> Self {
        wide::f32x4::new(values[..4].try_into().expect("four values"))
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        out[..4].copy_from_slice(&wide::f32x4::to_array(self));
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        wide::f32x4::to_array(self)
    }
    #[inline(always)]
    fn mul_add(self, m: Self, a: Self) -> Self {
        wide::f32x4::mul_add(self, m, a)
    }
    #[inline(always)]
    fn mul_neg_add(self, m: Self, a: Self) -> Self {
        wide::f32x4::mul_neg_add(self, m, a)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.fast_max(other)
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        self.fast_min(other)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        wide::f32x4::abs(self)
    }
    #[inline(always)]
    fn round(self) -> Self {
        wide::f32x4::round(self)
    }
    #[inline(always)]
    fn pow2(n: Self) -> Self {
        let biased = n.round_int() + wide::i32x4::splat(127);
        wide::bytemuck::cast(biased << 23)
    }
    #[inline(always)]
    fn select_lt(self, bound: Self, below: Self, otherwise: Self) -> Self {
        self.simd_lt(bound).select(below, otherwise)
    }
    #[inline(always)]
    fn flip_signs(self, signs: Self) -> Self {
        wide::f32x4::flip_signs(self, signs)
    }
}
