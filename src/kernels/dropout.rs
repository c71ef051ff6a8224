//! Inverted dropout, forward and backward, with masks from a counter-based generator.
//!
//! Whether an element is kept is a pure function of its key: the run's seed, the training
//! window's index, the site (which of a model's buffers), and the element's place in the window
//! counted batch-major, `(b * T + t) * width + j`, as the spec writes a window. No generator
//! state is carried from element to element, so a mask is the same whatever the number of
//! threads, the order of the work or the layout of the buffer (the model's rows are time-major,
//! the reference's batch-major), and a run that resumes at window `k` draws window `k`'s masks.

use super::{check_len, check_same_len};
use rayon::prelude::*;

/// Which mask: the seed of the run, the index of the training window, and the site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskKey {
    /// The run's dropout seed.
    pub seed: u64,
    /// The index of the training window (counted over the whole run).
    pub window: u64,
    /// Which dropout site of the model (one per layer input and output).
    pub site: u32,
    /// The window's first batch row within a batch shared out between processes
    /// (data-parallel training; 0 otherwise): row `b` of the window draws the masks of row
    /// `first_row + b` of the whole batch.
    pub first_row: u64,
}

/// SplitMix64's output function: a bijection of `u64` whose every output bit depends on every
/// input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform 32-bit number for `element` of the mask `key`.
fn draw(key: MaskKey, element: u64) -> u32 {
    let stream = mix(mix(key.seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_add(key.window) ^ ((key.site as u64) << 32));
    (mix(stream.wrapping_add(element.wrapping_mul(0x9E37_79B9_7F4A_7C15))) >> 32) as u32
}

/// The largest draw that is dropped, plus one: an element is kept when its draw is at least
/// this, which happens with probability `1 - p`.
fn drop_below(p: f32) -> u64 {
    (p as f64 * (1u64 << 32) as f64) as u64
}

/// Whether `element` survives dropout with ratio `p` (`0 <= p < 1`) under `key`; an element is
/// kept with probability `1 - p`.
pub fn dropout_keeps(p: f32, key: MaskKey, element: u64) -> bool {
    draw(key, element) as u64 >= drop_below(p)
}

/// Rows per parallel task of [`dropout_forward`].
const ROWS_PER_TASK: usize = 64;

/// Inverted dropout over a window: `out = input * m` and `multipliers = m`, where `m` is
/// `1 / (1 - p)` for a kept element and 0 for a dropped one ([`dropout_keeps`]).
///
/// Shapes: `input`, `out` and `multipliers` are `time x batch` rows of `width` values, row
/// `t * batch + b` for batch row `b` at step `t`; the element `(b, t, j)` is drawn as element
/// `((key.first_row + b) * time + t) * width + j` of the mask. `p` is in `[0, 1)`. Parallel over fixed groups of
/// rows; the result does not depend on the thread count. Panics, before writing anything, if a
/// length does not match or `p` is out of range.
pub fn dropout_forward(
    p: f32,
    key: MaskKey,
    (batch, time, width): (usize, usize, usize),
    input: &[f32],
    out: &mut [f32],
    multipliers: &mut [f32],
) {
    const KERNEL: &str = "dropout_forward";
    assert!((0.0..1.0).contains(&p), "{KERNEL}: p is {p}, not in [0, 1)");
    check_len(KERNEL, "input", input.len(), "time x batch x width", &[time, batch, width]);
    check_len(KERNEL, "out", out.len(), "time x batch x width", &[time, batch, width]);
    check_len(KERNEL, "multipliers", multipliers.len(), "time x batch x width", &[time, batch, width]);
    if width == 0 {
        return;
    }
    let (scale, threshold) = ((1.0 / (1.0 - p as f64)) as f32, drop_below(p));
    let group = ROWS_PER_TASK * width;
    out.par_chunks_mut(group).zip(multipliers.par_chunks_mut(group)).enumerate().for_each(|(task, (out, mults))| {
        let first_row = task * ROWS_PER_TASK;
        let rows = out.chunks_exact_mut(width).zip(mults.chunks_exact_mut(width));
        for (r, (out_row, mult_row)) in rows.enumerate() {
            let row = first_row + r;
            let (t, b) = (row / batch, row % batch);
            let first_element = ((key.first_row + b as u64) * time as u64 + t as u64) * width as u64;
            let input_row = &input[row * width..(row + 1) * width];
            for (j, ((o, m), &x)) in out_row.iter_mut().zip(mult_row.iter_mut()).zip(input_row).enumerate() {
                let kept = draw(key, first_element + j as u64) as u64 >= threshold;
                *m = if kept { scale } else { 0.0 };
                *o = x * *m;
            }
        }
    });
}

/// The backward pass of [`dropout_forward`]: `grads *= multipliers`, element by element.
/// Panics, before writing anything, if the lengths differ.
pub fn dropout_backward(multipliers: &[f32], grads: &mut [f32]) {
    check_same_len("dropout_backward", ("multipliers", multipliers.len()), ("grads", grads.len()));
    grads.par_chunks_mut(1 << 14).zip(multipliers.par_chunks(1 << 14)).for_each(|(grads, mults)| {
        for (g, &m) in grads.iter_mut().zip(mults) {
            *g *= m;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: MaskKey = MaskKey { seed: 42, window: 7, site: 1, first_row: 0 };

    #[test]
    fn the_kept_share_is_one_minus_p() {
        for p in [0.0, 0.1, 0.5, 0.9] {
            let kept = (0..200_000u64).filter(|&e| dropout_keeps(p, KEY, e)).count() as f64 / 200_000.0;
            // Binomial standard deviation at most sqrt(0.25 / 200,000) = 0.0011.
            assert!((kept - (1.0 - p as f64)).abs() < 0.006, "p {p}: kept {kept}");
        }
    }

    #[test]
    fn masks_differ_by_seed_window_site_and_element() {
        let mask = |key: MaskKey| (0..256u64).map(|e| dropout_keeps(0.5, key, e)).collect::<Vec<_>>();
        let base = mask(KEY);
        for other in [MaskKey { seed: 43, ..KEY }, MaskKey { window: 8, ..KEY }, MaskKey { site: 2, ..KEY }] {
            let differing = base.iter().zip(mask(other)).filter(|(a, b)| **a != *b).count();
            assert!((80..176).contains(&differing), "{other:?}: {differing} of 256 differ");
        }
    }

    #[test]
    fn forward_scales_kept_elements_keys_them_batch_major_and_backward_masks_gradients() {
        let (batch, time, width) = (3, 4, 5);
        let input: Vec<f32> = (0..batch * time * width).map(|i| i as f32 + 1.0).collect();
        let (mut out, mut mults) = (vec![f32::NAN; input.len()], vec![f32::NAN; input.len()]);
        dropout_forward(0.25, KEY, (batch, time, width), &input, &mut out, &mut mults);
        for t in 0..time {
            for b in 0..batch {
                for j in 0..width {
                    let i = (t * batch + b) * width + j;
                    let kept = dropout_keeps(0.25, KEY, ((b * time + t) * width + j) as u64);
                    let want = if kept { 1.0 / 0.75 } else { 0.0 };
                    assert_eq!((mults[i], out[i]), (want, input[i] * want), "b {b} t {t} j {j}");
                }
            }
        }
        let mut grads = vec![3.0; input.len()];
        dropout_backward(&mults, &mut grads);
        assert!(grads.iter().zip(&mults).all(|(&g, &m)| g == 3.0 * m));
    }

    #[test]
    fn a_share_of_the_batch_draws_its_rows_masks_of_the_whole_batch() {
        // Rows 2..5 of a batch of 6 as a window of their own, with first_row = 2.
        let (batch, time, width) = (6, 4, 3);
        let whole: Vec<f32> = (0..batch * time * width).map(|i| i as f32).collect();
        let (mut out, mut mults) = (vec![0.0; whole.len()], vec![0.0; whole.len()]);
        dropout_forward(0.5, KEY, (batch, time, width), &whole, &mut out, &mut mults);
        let (first, rows) = (2, 3);
        let rows_of = |values: &[f32], rows_per_step: usize, from: usize| -> Vec<f32> {
            (0..time).flat_map(|t| values[(t * rows_per_step + from) * width..][..rows * width].to_vec()).collect()
        };
        let share_input = rows_of(&whole, batch, first);
        let (mut share_out, mut share_mults) = (vec![0.0; share_input.len()], vec![0.0; share_input.len()]);
        let key = MaskKey { first_row: first as u64, ..KEY };
        dropout_forward(0.5, key, (rows, time, width), &share_input, &mut share_out, &mut share_mults);
        assert_eq!(share_mults, rows_of(&mults, batch, first));
        assert_eq!(share_out, rows_of(&out, batch, first));
        assert!(share_mults.contains(&0.0) && share_mults.contains(&2.0));
    }

    #[test]
    fn the_same_bits_for_any_thread_count() {
        let (batch, time, width) = (20, 35, 90);
        let input: Vec<f32> = (0..batch * time * width).map(|i| (i % 13) as f32).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (mut out, mut mults) = (vec![0.0; input.len()], vec![0.0; input.len()]);
            pool.install(|| dropout_forward(0.5, KEY, (batch, time, width), &input, &mut out, &mut mults));
            (out, mults)
        };
        let one = run(1);
        assert!(one == run(2) && one == run(3));
    }
}
