//! The arithmetic peak of a core: fused multiply-adds on vectors that never leave the registers.
//!
//! Every kernel of the crate is bounded by what one core can compute per second at the level in
//! use. [`fma_loop`] measures that bound: no loads, no stores, only independent chains of
//! multiply-adds, as many as keep both FMA units of a current x86-64 core busy through the
//! instruction's latency. A benchmark runs it on every thread and divides its own work by the
//! result.

use super::simd::{lane_sum, simd, Simd};
use std::hint::black_box;

/// Independent accumulators. A multiply-add has a latency of 4 cycles and two units take one
/// each per cycle on current x86-64 cores, so 8 chains are in flight; 12 leave a margin and,
/// with the two operands, still fit AVX2's 16 vector registers (more would spill to memory).
const CHAINS: usize = 12;

/// Runs `rounds` rounds of 12 independent vector multiply-adds at the level in use on the calling
/// thread and returns the floating-point operations done: two per lane of each multiply-add
/// (the baseline level's multiply and add count the same, in two instructions).
pub fn fma_loop(rounds: usize) -> f64 {
    simd!(V => chains::<V>(rounds))
}

#[inline(always)]
fn chains<V: Simd>(rounds: usize) -> f64 {
    // x -> x * m + a has the fixed point 1 from any start: the values stay normal, so no
    // denormal slows a lane down, however many rounds.
    let m = V::splat(black_box(0.999_999));
    let a = V::splat(black_box(0.000_001));
    let mut acc: [V; CHAINS] = std::array::from_fn(|i| V::splat(i as f32));
    for _ in 0..rounds {
        for x in acc.iter_mut() {
            *x = x.mul_add(m, a);
        }
    }
    black_box(acc.iter().map(|&x| lane_sum(x)).sum::<f32>());
    (rounds * CHAINS * V::LANES * 2) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd_level;

    #[test]
    fn counts_two_operations_per_lane_of_each_multiply_add() {
        let lanes = simd_level().lanes() as f64;
        assert_eq!(fma_loop(0), 0.0);
        assert_eq!(fma_loop(10), 10.0 * CHAINS as f64 * lanes * 2.0);
    }

    #[test]
    fn the_chains_move_towards_one() {
        // After 5 million rounds the distance to 1 has shrunk by e^-5 (10 -> 0.07) or more (the
        // baseline level rounds the product, and its steps near 1 are whole units of last place).
        let distance = simd!(V => {
            let (m, a) = (V::splat(0.999_999), V::splat(0.000_001));
            let x = (0..5_000_000).fold(V::splat(11.0), |x, _| x.mul_add(m, a));
            (lane_sum(x) / V::LANES as f32 - 1.0).abs()
        });
        assert!(distance < 0.1, "{distance}");
    }
}
