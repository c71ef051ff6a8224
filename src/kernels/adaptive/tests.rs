use super::super::{assert_same_bits_for_any_thread_count, normwise_error, test_values};
use super::*;
use crate::reference::adaptive::AdaptiveSoftmax;

/// `(rows, hidden, vocab, cutoffs, div_value, head bias)`: one cutoff with div 1 (projections
/// as wide as the state), three cutoffs, sizes that are no multiple of a vector or a panel,
/// a cluster of one word, no head bias, and a case large enough to run in parallel.
/// `(rows, hidden, vocab, cutoffs, div_value, head bias)`.
type CaseShape = (usize, usize, usize, &'static [usize], f32, bool);

const CASES: [CaseShape; 6] = [
    (1, 3, 7, &[2], 1.0, true),
    (13, 5, 37, &[4, 11, 20], 2.0, false),
    (20, 17, 601, &[100, 300], 4.0, true),
    (9, 8, 40, &[30, 39], 4.0, true),
    (33, 1, 530, &[257, 300, 529], 1.5, true),
    (140, 64, 3001, &[500, 1500], 4.0, true),
];

/// Targets with ignored rows, the first and last rank, and a spread of others; with `spare`,
/// no target falls in the last cluster.
fn targets_for(rows: usize, shape: &AdaptiveShape, spare: bool) -> Vec<i32> {
    let limit = if spare { shape.cutoffs()[shape.clusters() - 1] } else { shape.vocab() };
    (0..rows)
        .map(|r| match r % 5 {
            0 => IGNORE_TARGET,
            1 => (limit - 1) as i32,
            2 => 0,
            _ => ((r * 7919 + 13) % limit) as i32,
        })
        .collect()
}

struct Case {
    shape: AdaptiveShape,
    rows: usize,
    hs: Vec<f32>,
    params: Vec<f32>,
    targets: Vec<i32>,
}

fn case(index: usize, spare: bool) -> Case {
    let (rows, hidden, vocab, cutoffs, div, bias) = CASES[index];
    let shape = AdaptiveShape::new(vocab, hidden, cutoffs, div, bias).unwrap();
    let hs = test_values(rows * hidden, 11 + index as u64);
    let params: Vec<f32> =
        test_values(shape.param_count().unwrap(), 29 + index as u64).iter().map(|v| v * 0.8).collect();
    let targets = targets_for(rows, &shape, spare);
    Case { shape, rows, hs, params, targets }
}

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}

fn inv_n(targets: &[i32]) -> f32 {
    let kept = targets.iter().filter(|&&t| t != IGNORE_TARGET).count();
    if kept == 0 {
        0.0
    } else {
        1.0 / kept as f32
    }
}

#[test]
fn loss_and_every_gradient_match_the_reference() {
    for index in 0..CASES.len() {
        for spare in [false, true] {
            let Case { shape, rows, hs, params, targets } = case(index, spare);
            let label = format!("case {index} (spare {spare})");
            let mut layer = AdaptiveOutput::new(rows, shape).unwrap();
            let mut row_loss = vec![0.0; rows];
            layer.forward(&hs, &params, &targets, inv_n(&targets), &mut row_loss);
            let mut grads = vec![f32::NAN; params.len()];
            let mut dhs = vec![f32::NAN; rows * shape.hidden()];
            layer.backward(&hs, &params, &mut grads, &mut dhs);

            let mut reference = AdaptiveSoftmax::new(shape, to_f64(&params));
            let want_losses = reference.row_losses(&to_f64(&hs), &targets);
            reference.forward(&to_f64(&hs), &targets);
            let want_dhs = reference.backward();
            for (r, (&got, &want)) in row_loss.iter().zip(&want_losses).enumerate() {
                assert!(
                    (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{label}: loss of row {r}: {got} vs {want}"
                );
            }
            // Normwise per tensor: a tensor's small elements are sums that cancel.
            for tensor in shape.tensors() {
                let range = shape.range(tensor);
                let error = normwise_error(&grads[range.clone()], &reference.grads[range]);
                assert!(error < 1e-5, "{label}: gradient of {} off by {error:e}", tensor.name());
            }
            assert!(normwise_error(&dhs, &want_dhs) < 1e-5, "{label}: dhs");
            if spare {
                let last = shape.clusters() - 1;
                assert_eq!(layer.cluster_rows()[last], 0, "{label}: the last cluster has no target");
                assert!(grads[shape.range(AdaptiveTensor::ClusterWeight(last))].iter().all(|&g| g == 0.0));
            }
        }
    }
}

#[test]
fn the_loss_only_pass_gives_the_training_losses_bit_for_bit() {
    for index in 0..CASES.len() {
        let Case { shape, rows, hs, params, targets } = case(index, false);
        let mut layer = AdaptiveOutput::new(rows, shape).unwrap();
        let mut trained = vec![0.0; rows];
        layer.forward(&hs, &params, &targets, 1.0, &mut trained);
        let mut packed = AdaptivePacked::new(shape).unwrap();
        packed.pack(&params);
        let mut scored = vec![0.0; rows];
        layer.forward_loss_only(&hs, &params, &packed, &targets, &mut scored);
        assert_eq!(trained, scored, "case {index}");
        assert!(!layer.ready_for_backward());
    }
}

#[test]
fn log_probabilities_are_exact_and_sum_to_one() {
    for index in 0..CASES.len() {
        let Case { shape, rows, hs, params, .. } = case(index, false);
        let mut layer = AdaptiveOutput::new(rows, shape).unwrap();
        layer.forward_log_probs(&hs, &params, None);
        let reference = AdaptiveSoftmax::new(shape, to_f64(&params));
        let mut row = vec![0.0; shape.vocab()];
        for r in 0..rows {
            layer.log_probs_row(r, &mut row);
            let want = reference.log_probs(&to_f64(&hs[r * shape.hidden()..(r + 1) * shape.hidden()]));
            for (class, (&got, &want)) in row.iter().zip(&want).enumerate() {
                assert!((got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "case {index} row {r} class {class}");
            }
            let total: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
            assert!((total - 1.0).abs() < 1e-5, "case {index} row {r}: probabilities sum to {total}");
            let best = (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            let argmax = layer.argmax_row(r) as usize;
            assert!(row[argmax] >= row[best] - 1e-6, "case {index} row {r}: argmax {argmax}, best {best}");
        }
        // From weights packed in advance: the same bits.
        let every_row = |layer: &mut AdaptiveOutput| {
            let mut all = vec![0.0; rows * shape.vocab()];
            for (r, out) in all.chunks_mut(shape.vocab()).enumerate() {
                layer.log_probs_row(r, out);
            }
            all
        };
        let unpacked = every_row(&mut layer);
        let mut packed = AdaptivePacked::new(shape).unwrap();
        packed.pack(&params);
        layer.forward_log_probs(&hs, &params, Some(&packed));
        assert_eq!(every_row(&mut layer), unpacked, "case {index}: packed weights");
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let Case { shape, rows, hs, params, targets } = case(CASES.len() - 1, false);
    assert_same_bits_for_any_thread_count("adaptive softmax", || {
        let mut layer = AdaptiveOutput::new(rows, shape).unwrap();
        let mut row_loss = vec![0.0; rows];
        layer.forward(&hs, &params, &targets, inv_n(&targets), &mut row_loss);
        let mut grads = vec![0.0; params.len()];
        let mut dhs = vec![0.0; rows * shape.hidden()];
        layer.backward(&hs, &params, &mut grads, &mut dhs);
        [row_loss, grads, dhs].concat()
    });
}

#[test]
fn a_reused_layer_gives_the_same_results_as_a_fresh_one() {
    // The clusters' row counts change from window to window in the same buffers.
    let Case { shape, rows, hs, params, targets } = case(2, false);
    let mut layer = AdaptiveOutput::new(rows, shape).unwrap();
    let run = |layer: &mut AdaptiveOutput, targets: &[i32]| {
        let mut row_loss = vec![0.0; rows];
        layer.forward(&hs, &params, targets, inv_n(targets), &mut row_loss);
        let mut grads = vec![0.0; params.len()];
        let mut dhs = vec![0.0; rows * shape.hidden()];
        layer.backward(&hs, &params, &mut grads, &mut dhs);
        [row_loss, grads, dhs].concat()
    };
    let other: Vec<i32> = targets.iter().rev().map(|&t| if t == IGNORE_TARGET { 5 } else { t }).collect();
    let first = run(&mut layer, &targets);
    run(&mut layer, &other);
    layer.forward_log_probs(&hs, &params, None);
    let fresh = run(&mut AdaptiveOutput::new(rows, shape).unwrap(), &targets);
    assert_eq!(run(&mut layer, &targets), first);
    assert_eq!(fresh, first);
}

#[test]
#[should_panic(expected = "targets[0] is 37")]
fn a_target_outside_the_classes_is_refused() {
    let Case { shape, rows, hs, params, mut targets } = case(1, false);
    targets[0] = 37;
    AdaptiveOutput::new(rows, shape).unwrap().forward(&hs, &params, &targets, 1.0, &mut vec![0.0; rows]);
}
