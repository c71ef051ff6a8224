//! The fused softmax cross-entropy: bias, loss and gradient over a block of logit rows.

use super::simd::{exp, load, load_partial, store, store_partial, Floats, LANES};
use super::{check_len, check_targets};
use rayon::prelude::*;

/// A target id that is ignored: its row contributes no loss and a zero gradient.
pub const IGNORE_TARGET: i32 = -1;

/// Rows per parallel task of [`softmax_cross_entropy`]; fixed so that the result does not
/// depend on the thread count (each row is computed by one task in any case).
const ROWS_PER_TASK: usize = 8;
/// Below this many logits the kernel stays on the calling thread.
const PARALLEL_MIN_LOGITS: usize = 1 << 15;
/// Exponentials summed in f32 lanes before the partial sum joins the f64 row total.
const SUM_BLOCK: usize = 512;

/// Softmax cross-entropy with its gradient, in place.
///
/// Shapes (row-major): `logits` is `rows x classes`, `bias` is `classes`, `targets` and
/// `row_loss` are `rows`. Each target is a class id in `0..classes` or [`IGNORE_TARGET`].
/// Panics, before writing anything, if a length does not match or a target is out of range.
///
/// On entry `logits` holds `z = x * W` without the bias. For every row with a target `t`:
/// `row_loss = logsumexp(z + b) - (z + b)[t]`, computed stably (the maximum is subtracted
/// before exponentiating, and no logarithm of a softmax probability is ever taken), and the row
/// is overwritten with the gradient `(softmax(z + b) - onehot(t)) * inv_n`, where the caller
/// passes `inv_n = 1 / n` with `n` the number of rows whose target is not ignored. Ignored rows
/// get `row_loss = 0` and a zero gradient row. The mean loss is `sum(row_loss) * inv_n`.
///
/// Three sweeps over a row that stays in L1/L2: bias add and maximum; `exp` and its sum; scaling.
/// (An "online" two-sweep softmax would need two exponentials per element instead of one.)
/// Rows are processed in parallel in fixed groups; results do not depend on the thread count.
pub fn softmax_cross_entropy(
    rows: usize,
    classes: usize,
    logits: &mut [f32],
    bias: &[f32],
    targets: &[i32],
    inv_n: f32,
    row_loss: &mut [f32],
) {
    const KERNEL: &str = "softmax_cross_entropy";
    check_len(KERNEL, "logits", logits.len(), "rows x classes", &[rows, classes]);
    check_len(KERNEL, "bias", bias.len(), "classes", &[classes]);
    check_len(KERNEL, "targets", targets.len(), "rows", &[rows]);
    check_len(KERNEL, "row_loss", row_loss.len(), "rows", &[rows]);
    check_targets(KERNEL, targets, classes);
    if classes == 0 {
        // Every target is ignored (none can be below 0 classes): no loss, no gradient.
        row_loss.fill(0.0);
        return;
    }
    let task = |((logit_rows, task_targets), losses): ((&mut [f32], &[i32]), &mut [f32])| {
        for ((row, &target), loss) in logit_rows.chunks_exact_mut(classes).zip(task_targets).zip(losses) {
            *loss = softmax_cross_entropy_row(row, bias, target, inv_n);
        }
    };
    let group = ROWS_PER_TASK * classes;
    if rows * classes < PARALLEL_MIN_LOGITS {
        logits
            .chunks_mut(group)
            .zip(targets.chunks(ROWS_PER_TASK))
            .zip(row_loss.chunks_mut(ROWS_PER_TASK))
            .for_each(task);
    } else {
        logits
            .par_chunks_mut(group)
            .zip(targets.par_chunks(ROWS_PER_TASK))
            .zip(row_loss.par_chunks_mut(ROWS_PER_TASK))
            .for_each(task);
    }
}

/// One row of [`softmax_cross_entropy`]; returns the row's loss.
fn softmax_cross_entropy_row(row: &mut [f32], bias: &[f32], target: i32, inv_n: f32) -> f32 {
    if target == IGNORE_TARGET {
        row.fill(0.0);
        return 0.0;
    }
    let target = target as usize;

    // Sweep 1: add the bias, find the maximum.
    let mut max_lanes = Floats::splat(f32::NEG_INFINITY);
    let mut chunks = row.chunks_exact_mut(LANES);
    let mut bias_chunks = bias.chunks_exact(LANES);
    for (chunk, b) in (&mut chunks).zip(&mut bias_chunks) {
        let z = load(chunk) + load(b);
        store(chunk, z);
        max_lanes = max_lanes.fast_max(z);
    }
    let tail = chunks.into_remainder();
    let mut max = max_lanes.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    for (z, &b) in tail.iter_mut().zip(bias_chunks.remainder()) {
        *z += b;
        max = max.max(*z);
    }
    let target_logit = row[target];

    // Sweep 2: exponentiate relative to the maximum and sum.
    let shift = Floats::splat(max);
    let mut sum = 0.0f64;
    for block in row.chunks_mut(SUM_BLOCK) {
        let mut lanes = Floats::ZERO;
        let mut chunks = block.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            let e = exp(load(chunk) - shift);
            store(chunk, e);
            lanes += e;
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            store_partial(tail, exp(load_partial(tail, max) - shift));
            sum += tail.iter().map(|&e| e as f64).sum::<f64>();
        }
        sum += lanes.to_array().iter().map(|&e| e as f64).sum::<f64>();
    }
    let loss = (sum.ln() + (max - target_logit) as f64) as f32;

    // Sweep 3: normalise and scale; subtract the one-hot at the target.
    let factor = Floats::splat((inv_n as f64 / sum) as f32);
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        store(chunk, load(chunk) * factor);
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        store_partial(tail, load_partial(tail, 0.0) * factor);
    }
    row[target] -= inv_n;
    loss
}

/// Per-row argmax of `logits + bias`: `out[r]` is the class of the largest value of row `r`,
/// the lowest class among equal values. Shapes: `logits` is `rows x classes` (row-major),
/// `bias` is `classes`, `out` is `rows`; `classes > 0` unless `rows == 0`. Panics, before
/// writing anything, if not.
pub fn argmax_rows(rows: usize, classes: usize, logits: &[f32], bias: &[f32], out: &mut [u32]) {
    const KERNEL: &str = "argmax_rows";
    check_len(KERNEL, "logits", logits.len(), "rows x classes", &[rows, classes]);
    check_len(KERNEL, "bias", bias.len(), "classes", &[classes]);
    check_len(KERNEL, "out", out.len(), "rows", &[rows]);
    assert!(classes > 0 || rows == 0, "{KERNEL}: classes is 0, so {rows} rows have no argmax");
    for (row, best) in logits.chunks_exact(classes).zip(out.iter_mut()) {
        let mut best_class = 0;
        let mut best_value = f32::NEG_INFINITY;
        for (class, (&z, &b)) in row.iter().zip(bias).enumerate() {
            if z + b > best_value {
                best_value = z + b;
                best_class = class;
            }
        }
        *best = best_class as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss and gradient of one row in f64, straight from the definition.
    fn reference_row(logits: &[f32], target: usize) -> (f64, Vec<f64>) {
        let z: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        let loss = sum.ln() + (max - z[target]);
        let grad =
            z.iter().enumerate().map(|(j, v)| (v - max).exp() / sum - if j == target { 1.0 } else { 0.0 }).collect();
        (loss, grad)
    }

    fn run(logits: &[f32], target: i32) -> (f32, Vec<f32>) {
        let classes = logits.len();
        let mut row = logits.to_vec();
        let mut loss = [0.0];
        softmax_cross_entropy(1, classes, &mut row, &vec![0.0; classes], &[target], 1.0, &mut loss);
        (loss[0], row)
    }

    #[test]
    fn extreme_logits() {
        let cases: Vec<(Vec<f32>, usize)> = vec![
            (vec![1e30, -1e30, 0.0], 0),
            (vec![1e30, -1e30, 0.0], 1),
            (vec![-1e30; 11], 4),
            (vec![1e30; 11], 10),
            (vec![0.0, 0.0, 0.0, 88.0, 0.0, 0.0, 0.0, 0.0, 0.0, -88.0], 9),
            (vec![3.5; 17], 16),
        ];
        for (logits, target) in cases {
            let (loss, grad) = run(&logits, target as i32);
            let (want_loss, want_grad) = reference_row(&logits, target);
            assert!(loss.is_finite(), "{logits:?}: loss {loss}");
            assert!(
                (loss as f64 - want_loss).abs() <= 1e-6 * want_loss.abs().max(1.0),
                "{logits:?}: loss {loss} want {want_loss}"
            );
            for (g, w) in grad.iter().zip(&want_grad) {
                assert!((*g as f64 - w).abs() <= 1e-6, "{logits:?}: grad {grad:?} want {want_grad:?}");
            }
        }
    }

    #[test]
    fn one_huge_logit_gives_a_huge_loss_not_infinity() {
        let mut logits = vec![0.0; 20];
        logits[3] = 1e30;
        let (loss, grad) = run(&logits, 0);
        assert_eq!(loss, 1e30);
        assert!((grad[3] - 1.0).abs() < 1e-6 && (grad[0] + 1.0).abs() < 1e-6);
    }

    #[test]
    fn bias_ignored_rows_and_scaling() {
        let classes = 13;
        let rows = 3;
        let mut logits: Vec<f32> = (0..rows * classes).map(|i| (i as f32 * 0.7).sin()).collect();
        let bias: Vec<f32> = (0..classes).map(|j| j as f32 * 0.1).collect();
        let biased: Vec<f32> = logits.iter().enumerate().map(|(i, &z)| z + bias[i % classes]).collect();
        let targets = [5, IGNORE_TARGET, 12];
        let mut loss = [9.0; 3];
        softmax_cross_entropy(rows, classes, &mut logits, &bias, &targets, 0.5, &mut loss);
        assert_eq!(loss[1], 0.0);
        assert!(logits[classes..2 * classes].iter().all(|&g| g == 0.0));
        for r in [0, 2] {
            let (want_loss, want_grad) = reference_row(&biased[r * classes..(r + 1) * classes], targets[r] as usize);
            assert!((loss[r] as f64 - want_loss).abs() < 1e-6);
            for (g, w) in logits[r * classes..(r + 1) * classes].iter().zip(&want_grad) {
                assert!((*g as f64 - 0.5 * w).abs() < 1e-7);
            }
        }
    }

    #[test]
    fn argmax_takes_the_first_of_equal_values() {
        let logits = [1.0, 3.0, 3.0, 0.0, 0.0, 0.0];
        let mut out = [9; 2];
        argmax_rows(2, 3, &logits, &[0.0, 0.0, 0.0], &mut out);
        assert_eq!(out, [1, 0]);
        argmax_rows(2, 3, &logits, &[0.0, 0.0, 0.5], &mut out);
        assert_eq!(out, [2, 2]);
    }
}
