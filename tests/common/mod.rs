//! Helpers shared by the integration tests: reproducible windows and tolerance checks.
#![allow(dead_code)]

use rnnlm::rng::Rng;
use rnnlm::Window;

/// A batch-major window of inputs and targets over `0..vocab`, reproducible from `seed`.
/// `ignore_share` of the targets are `-1`; ids are drawn from a pool of `distinct` ids so that
/// small pools repeat ids within the window.
pub fn random_window(
    window: Window,
    vocab: usize,
    distinct: usize,
    ignore_share: f64,
    seed: u64,
) -> (Vec<u32>, Vec<i32>) {
    let mut rng = Rng::new(seed);
    let pool = distinct.clamp(1, vocab);
    let offset = (rng.next_u64() % vocab as u64) as usize;
    let draw = |rng: &mut Rng| ((offset + (rng.next_u64() % pool as u64) as usize) % vocab) as u32;
    let n = window.tokens();
    let xs: Vec<u32> = (0..n).map(|_| draw(&mut rng)).collect();
    let ts: Vec<i32> = (0..n).map(|_| if rng.uniform() < ignore_share { -1 } else { draw(&mut rng) as i32 }).collect();
    (xs, ts)
}

/// Largest absolute difference over the largest magnitude of `want` (a normwise relative
/// error, which stays meaningful when single elements cancel to nearly zero).
pub fn normwise_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}
