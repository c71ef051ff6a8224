//! Sampling text from a trained model.
//!
//! ```
//! use rnnlm::inference::generate::generate;
//! use rnnlm::{Dims, Rnnlm, Window};
//!
//! let mut model = Rnnlm::new(Dims { vocab: 40, embed: 8, hidden: 8 }, Window { batch: 1, time: 1 }, 5)?;
//! let sampled = generate(&mut model, &[3, 7], 10, 0.8, 42)?;
//! assert_eq!(sampled.len(), 10);
//! model.reset_state();
//! assert_eq!(generate(&mut model, &[3, 7], 10, 0.8, 42)?, sampled); // the same seed, the same text
//! # Ok::<(), rnnlm::ModelError>(())
//! ```

use crate::kernels::sample_softmax;
use crate::model::{ModelError, Rnnlm, Window};
use crate::rng::Rng;

/// Feeds `start` through `model` (which must have a 1 x 1 window), then samples `len` tokens,
/// each from `softmax(logits / temperature)` (the most likely token when `temperature` is 0).
/// Returns the sampled ids. Reproducible for a given `seed`.
pub fn generate(
    model: &mut Rnnlm,
    start: &[u32],
    len: usize,
    temperature: f32,
    seed: u64,
) -> Result<Vec<u32>, ModelError> {
    if model.window() != (Window { batch: 1, time: 1 }) {
        return Err(ModelError::InvalidSize {
            name: "window for generation",
            value: model.window().tokens(),
            why: "must be 1 x 1",
        });
    }
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(ModelError::InvalidHyperParameter {
            name: "temperature",
            value: temperature,
            why: "must be zero or positive",
        });
    }
    let Some((&last, prefix)) = start.split_last() else {
        return Err(ModelError::WrongLength { what: "start text", expected: 1, got: 0 });
    };
    let mut logits = vec![0.0f32; model.dims().vocab];
    for &id in prefix {
        model.logits(&[id], &mut logits)?;
    }
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len);
    let mut current = last;
    for _ in 0..len {
        model.logits(&[current], &mut logits)?;
        current = sample(&logits, temperature, &mut rng);
        out.push(current);
    }
    Ok(out)
}

/// One draw from `softmax(logits / temperature)`, or the first largest logit when
/// `temperature` is 0 ([`sample_softmax`] with a uniform number from `rng`).
pub fn sample(logits: &[f32], temperature: f32, rng: &mut Rng) -> u32 {
    sample_softmax(logits, temperature, rng.uniform()) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_temperature_is_greedy_and_sampling_follows_the_weights() {
        let logits = [0.0, 2.0, 1.0, 2.0];
        let mut rng = Rng::new(1);
        assert_eq!(sample(&logits, 0.0, &mut rng), 1);
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[sample(&logits, 1.0, &mut rng) as usize] += 1;
        }
        let total = 1.0 + 2.0 * 2f64.exp() + 1f64.exp();
        for (id, &count) in counts.iter().enumerate() {
            let want = (logits[id] as f64).exp() / total;
            assert!((count as f64 / 20_000.0 - want).abs() < 0.015, "id {id}: {count}");
        }
    }
}
