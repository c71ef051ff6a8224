//! Drawing a class from the softmax of a row of logits, without a buffer for the probabilities.

use super::simd::{exp, lane_max, load_partial, simd, Simd, MAX_LANES};

/// The class drawn from `softmax(logits / temperature)` by `uniform` (in `[0, 1)`): the first
/// class whose cumulative weight exceeds `uniform` times the total; with `temperature` 0, the
/// first largest logit. Two passes over the logits (the weights are summed, then summed again
/// up to the draw), each with the vector `exp`, so nothing is stored and a draw over 10,000
/// classes costs a few microseconds. The weights of one vector are summed in its lanes' order;
/// the sums are added in f64. Panics if `logits` is empty or `temperature` is negative or not
/// finite.
pub fn sample_softmax(logits: &[f32], temperature: f32, uniform: f64) -> usize {
    assert!(!logits.is_empty(), "sample_softmax: logits is empty");
    assert!(
        temperature.is_finite() && temperature >= 0.0,
        "sample_softmax: temperature {temperature} is not zero or positive"
    );
    simd!(V => draw::<V>(logits, temperature, uniform))
}

#[inline(always)]
fn draw<V: Simd>(logits: &[f32], temperature: f32, uniform: f64) -> usize {
    let mut chunks = logits.chunks_exact(V::LANES);
    let max_lanes = (&mut chunks).fold(V::splat(f32::NEG_INFINITY), |m, chunk| m.max(V::load(chunk)));
    let max = chunks.remainder().iter().fold(lane_max(max_lanes), |m, &z| m.max(z));
    let argmax = logits.iter().position(|&z| z == max).unwrap_or(0);
    if temperature == 0.0 {
        return argmax;
    }
    let (shift, scale) = (V::splat(max), V::splat(1.0 / temperature));
    let mut total = 0.0f64;
    for start in (0..logits.len()).step_by(V::LANES) {
        total += lane_total(&weights::<V>(logits, start, shift, scale).0);
    }
    let mut target = uniform * total;
    for start in (0..logits.len()).step_by(V::LANES) {
        let (lanes, len) = weights::<V>(logits, start, shift, scale);
        let chunk_total = lane_total(&lanes);
        if target < chunk_total {
            for (i, &w) in lanes[..len].iter().enumerate() {
                if target < w as f64 {
                    return start + i;
                }
                target -= w as f64;
            }
            // Rounding left the target past this vector's last weight: its last class.
            return start + len - 1;
        }
        target -= chunk_total;
    }
    // Rounding left the target past the last weight: the most likely class.
    argmax
}

/// The weights `exp((z - max) * scale)` of the vector of logits starting at `start`, and how
/// many of them there are (lanes past the end weigh 0).
#[inline(always)]
fn weights<V: Simd>(logits: &[f32], start: usize, shift: V, scale: V) -> ([f32; MAX_LANES], usize) {
    let values = &logits[start..logits.len().min(start + V::LANES)];
    let z = if values.len() == V::LANES { V::load(values) } else { load_partial::<V>(values, f32::NEG_INFINITY) };
    let w = exp((z - shift) * scale);
    let mut lanes = [0.0f32; MAX_LANES];
    lanes[..values.len()].copy_from_slice(&w.to_array().as_ref()[..values.len()]);
    (lanes, values.len())
}

/// The lanes' sum in f64, in lane order.
#[inline(always)]
fn lane_total(lanes: &[f32]) -> f64 {
    lanes.iter().map(|&w| w as f64).sum()
}
