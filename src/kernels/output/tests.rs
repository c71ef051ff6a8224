use super::super::{normwise_error, test_values};
use super::*;

/// Deterministic values in [-scale, scale).
fn fill(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    test_values(len, seed).into_iter().map(|v| v * scale).collect()
}

/// Everything the layer computes, in f64 straight from the definitions.
struct Expected {
    logits: Vec<f64>,
    row_loss: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
    dhs: Vec<f64>,
}

fn expected(
    (rows, hidden, classes): (usize, usize, usize),
    hs: &[f32],
    w: &[f32],
    b: &[f32],
    targets: &[i32],
) -> Expected {
    let kept = targets.iter().filter(|&&t| t != IGNORE_TARGET).count();
    let inv_n = if kept == 0 { 0.0 } else { 1.0 / kept as f64 };
    let mut logits = vec![0.0; rows * classes];
    let mut dz = vec![0.0; rows * classes];
    let mut row_loss = vec![0.0; rows];
    for r in 0..rows {
        for j in 0..classes {
            logits[r * classes + j] =
                b[j] as f64 + (0..hidden).map(|i| hs[r * hidden + i] as f64 * w[i * classes + j] as f64).sum::<f64>();
        }
        if targets[r] == IGNORE_TARGET {
            continue;
        }
        let z = &logits[r * classes..(r + 1) * classes];
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        let t = targets[r] as usize;
        row_loss[r] = sum.ln() + max - z[t];
        for j in 0..classes {
            dz[r * classes + j] = ((z[j] - max).exp() / sum - if j == t { 1.0 } else { 0.0 }) * inv_n;
        }
    }
    let mut dw = vec![0.0; hidden * classes];
    let mut db = vec![0.0; classes];
    let mut dhs = vec![0.0; rows * hidden];
    for r in 0..rows {
        for j in 0..classes {
            let g = dz[r * classes + j];
            db[j] += g;
            for i in 0..hidden {
                dw[i * classes + j] += hs[r * hidden + i] as f64 * g;
                dhs[r * hidden + i] += g * w[i * classes + j] as f64;
            }
        }
    }
    Expected { logits, row_loss, dw, db, dhs }
}

/// Sizes not multiples of the panel or the vector width, one row, one class, one panel
/// plus one column, several tasks, work enough to run in parallel (the last); ignored and
/// repeated targets.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (1, 3, 7),
    (13, 5, 256),
    (7, 9, 257),
    (20, 17, 600),
    (50, 100, 418),
    (3, 8, 2100),
    (33, 1, 530),
    (70, 100, 700),
];

fn targets_for(rows: usize, classes: usize, case: usize) -> Vec<i32> {
    (0..rows)
        .map(|r| match (r + case) % 5 {
            0 => IGNORE_TARGET,
            1 => (classes - 1) as i32,
            2 => 0,
            _ => ((r * 7919 + case) % classes) as i32,
        })
        .collect()
}

/// `rows x cols` row-major, transposed.
fn transposed<T: Copy>(m: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols * rows).map(|i| m[(i % rows) * cols + i / rows]).collect()
}

/// Loss, logits and every gradient against the f64 definitions; tolerances as in the model's
/// equality test (f32 sums of at most a few thousand terms, exp within 2 ulp).
#[test]
fn matches_the_definitions_on_awkward_shapes() {
    matches_the_definitions(WeightLayout::HiddenByClasses);
}

/// The same with `W` stored transposed, as an embedding table (tied weights).
#[test]
fn matches_the_definitions_with_transposed_weights() {
    matches_the_definitions(WeightLayout::ClassesByHidden);
}

fn matches_the_definitions(layout: WeightLayout) {
    for (case, &(rows, hidden, classes)) in SHAPES.iter().enumerate() {
        let hs = fill(rows * hidden, 1 + case as u64, 1.0);
        let w_rows = fill(hidden * classes, 100 + case as u64, 2.0);
        let b = fill(classes, 200 + case as u64, 0.5);
        let targets = targets_for(rows, classes, case);
        let mut want = expected((rows, hidden, classes), &hs, &w_rows, &b, &targets);
        // The weights and their gradient as the layer stores them.
        let w = match layout {
            WeightLayout::HiddenByClasses => w_rows.clone(),
            WeightLayout::ClassesByHidden => {
                want.dw = transposed(&want.dw, hidden, classes);
                transposed(&w_rows, hidden, classes)
            }
        };
        let kept = targets.iter().filter(|&&t| t != IGNORE_TARGET).count();
        let inv_n = 1.0 / kept.max(1) as f32;
        let mut layer = OutputLayer::with_layout(rows, hidden, classes, layout).unwrap();

        layer.forward_logits(&hs, &w, &b);
        let mut row = vec![0.0; classes];
        for r in 0..rows {
            layer.logits_row(r, &mut row);
            let want_row = &want.logits[r * classes..(r + 1) * classes];
            assert!(normwise_error(&row, want_row) < 1e-5, "{rows}x{hidden}x{classes}: logits of row {r}");
            let best = want_row.iter().enumerate().fold(0, |best, (j, &v)| if v > want_row[best] { j } else { best });
            assert_eq!(layer.argmax_row(r), best as u32, "{rows}x{hidden}x{classes}: argmax of row {r}");
        }

        let mut row_loss = vec![f32::NAN; rows];
        layer.forward(&hs, &w, &b, &targets, inv_n, &mut row_loss);
        for (r, (&got, &want)) in row_loss.iter().zip(&want.row_loss).enumerate() {
            assert!(
                (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{rows}x{hidden}x{classes}: loss of row {r}: {got} vs {want}"
            );
        }

        // The loss alone, with W packed in advance: the same bits, in a layer of its own (the
        // backward pass below needs this one's forward).
        let mut packed = PackedWeights::new(hidden, classes, layout).unwrap();
        packed.pack(&w);
        let mut alone = OutputLayer::with_layout(rows, hidden, classes, layout).unwrap();
        let mut loss_only = vec![f32::NAN; rows];
        alone.forward_loss_only(&hs, &packed, &b, &targets, &mut loss_only);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&loss_only), bits(&row_loss), "{rows}x{hidden}x{classes}: loss alone");
        assert!(!alone.ready_for_backward());
        let (mut dw, mut db, mut dhs) =
            (vec![f32::NAN; hidden * classes], vec![f32::NAN; classes], vec![f32::NAN; rows * hidden]);
        layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs);
        for (name, got, want) in [("dW", &dw, &want.dw), ("db", &db, &want.db), ("dhs", &dhs, &want.dhs)] {
            let error = normwise_error(got, want);
            assert!(error < 1e-5, "{rows}x{hidden}x{classes}: {name} off by {error}");
        }

        // A second backward gives the same gradients.
        let (mut dw2, mut db2, mut dhs2) = (vec![0.0; hidden * classes], vec![0.0; classes], vec![0.0; rows * hidden]);
        layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw2, db: &mut db2 }, &mut dhs2);
        assert!(dw == dw2 && db == db2 && dhs == dhs2);

        // SGD in place: the same dhs, and the parameters moved by -lr times the gradients.
        let lr = 0.7;
        let (mut w_sgd, mut b_sgd, mut dhs_sgd) = (w.clone(), b.clone(), vec![0.0; rows * hidden]);
        layer.forward(&hs, &w, &b, &targets, inv_n, &mut row_loss);
        layer.backward(&hs, OutputUpdate::Sgd { w: &mut w_sgd, b: &mut b_sgd, lr }, &mut dhs_sgd);
        assert_eq!(dhs_sgd, dhs);
        let moved = |before: &[f32], grads: &[f64]| -> Vec<f64> {
            before.iter().zip(grads).map(|(&p, &g)| p as f64 - lr as f64 * g).collect()
        };
        assert!(normwise_error(&w_sgd, &moved(&w, &want.dw)) < 1e-6, "{rows}x{hidden}x{classes}: SGD of W");
        assert!(normwise_error(&b_sgd, &moved(&b, &want.db)) < 1e-6, "{rows}x{hidden}x{classes}: SGD of b");
    }
}

#[test]
fn every_target_ignored_gives_zero_loss_and_gradients() {
    let (rows, hidden, classes) = (4, 3, 300);
    let (hs, w, b) = (fill(rows * hidden, 1, 1.0), fill(hidden * classes, 2, 1.0), fill(classes, 3, 1.0));
    let mut layer = OutputLayer::new(rows, hidden, classes).unwrap();
    let mut row_loss = vec![1.0; rows];
    layer.forward(&hs, &w, &b, &[IGNORE_TARGET; 4], 0.0, &mut row_loss);
    assert_eq!(row_loss, vec![0.0; rows]);
    let (mut dw, mut db, mut dhs) = (vec![1.0; hidden * classes], vec![1.0; classes], vec![1.0; rows * hidden]);
    layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs);
    assert!(dw.iter().chain(&db).chain(&dhs).all(|&g| g == 0.0));
}

/// Loss and bias gradient of one row whose logits are `logits` (carried by the bias, with a
/// zero hidden state), and the same in f64.
fn one_row(logits: &[f32], target: usize) -> ((f32, Vec<f32>), (f64, Vec<f64>)) {
    let classes = logits.len();
    let mut layer = OutputLayer::new(1, 1, classes).unwrap();
    let (hs, w) = ([0.0], vec![0.0; classes]);
    let mut row_loss = [0.0];
    layer.forward(&hs, &w, logits, &[target as i32], 1.0, &mut row_loss);
    let (mut dw, mut db, mut dhs) = (vec![0.0; classes], vec![0.0; classes], [0.0]);
    layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs);
    let z: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
    let want_grad = (0..classes).map(|j| (z[j] - max).exp() / sum - if j == target { 1.0 } else { 0.0 }).collect();
    ((row_loss[0], db), (sum.ln() + (max - z[target]), want_grad))
}

/// Logits far outside `exp`'s range, ties, and a row spanning panels: the loss stays finite
/// (log-sum-exp, never the logarithm of a rounded probability) and matches f64.
#[test]
fn extreme_logits_give_finite_losses_and_exact_gradients() {
    let mut spread = vec![0.0f32; 600];
    spread[3] = 88.0;
    spread[599] = -88.0;
    let cases: Vec<(Vec<f32>, usize)> = vec![
        (vec![1e30, -1e30, 0.0], 0),
        (vec![1e30, -1e30, 0.0], 1),
        (vec![-1e30; 11], 4),
        (vec![1e30; 11], 10),
        (spread, 599),
        (vec![3.5; 17], 16),
    ];
    for (logits, target) in cases {
        let ((loss, grad), (want_loss, want_grad)) = one_row(&logits, target);
        assert!(loss.is_finite(), "{:?}…: loss {loss}", &logits[..3]);
        assert!(
            (loss as f64 - want_loss).abs() <= 1e-6 * want_loss.abs().max(1.0),
            "{:?}…: loss {loss}, want {want_loss}",
            &logits[..3]
        );
        for (g, w) in grad.iter().zip(&want_grad) {
            assert!((*g as f64 - w).abs() <= 1e-6, "{:?}…: gradient {g}, want {w}", &logits[..3]);
        }
    }
    let mut huge = vec![0.0; 20];
    huge[3] = 1e30;
    let ((loss, grad), _) = one_row(&huge, 0);
    assert_eq!(loss, 1e30, "one huge logit gives a huge loss, not infinity");
    assert!((grad[3] - 1.0).abs() < 1e-6 && (grad[0] + 1.0).abs() < 1e-6);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Large enough to run their tasks in parallel (rows * hidden * classes >= 4M): 3 tasks with
    // `dhs^T` partials and 10 with `dhs` partials, each added as the tasks finish; 6 and 11
    // partials too large for that, summed at the end.
    for shape in [(64, 100, 2000), (300, 40, 5000), (400, 400, 3000), (1000, 200, 2600)] {
        for layout in [WeightLayout::HiddenByClasses, WeightLayout::ClassesByHidden] {
            same_bits_for_any_thread_count(shape, layout);
        }
    }
}

fn same_bits_for_any_thread_count((rows, hidden, classes): (usize, usize, usize), layout: WeightLayout) {
    let hs = fill(rows * hidden, 5, 1.0);
    let w = fill(hidden * classes, 6, 1.0);
    let b = fill(classes, 7, 1.0);
    let targets = targets_for(rows, classes, 0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut layer = OutputLayer::with_layout(rows, hidden, classes, layout).unwrap();
            let mut row_loss = vec![0.0; rows];
            layer.forward(&hs, &w, &b, &targets, 0.02, &mut row_loss);
            let (mut w_sgd, mut b_sgd, mut dhs) = (w.clone(), b.clone(), vec![0.0; rows * hidden]);
            layer.backward(&hs, OutputUpdate::Sgd { w: &mut w_sgd, b: &mut b_sgd, lr: 0.5 }, &mut dhs);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            (bits(&row_loss), bits(&w_sgd), bits(&b_sgd), bits(&dhs))
        })
    };
    let one = run(1);
    for threads in [2, 3, 16, 64] {
        assert!(one == run(threads), "{rows} x {hidden} x {classes}, {layout:?}: {threads} threads");
    }
}

#[test]
#[should_panic(expected = "OutputLayer::backward: needs a forward with the loss first")]
fn backward_after_logits_only_panics() {
    let mut layer = OutputLayer::new(1, 1, 3).unwrap();
    layer.forward_logits(&[1.0], &[1.0, 2.0, 3.0], &[0.0; 3]);
    layer.backward(&[1.0], OutputUpdate::Gradients { w: &[0.0; 3], dw: &mut [0.0; 3], db: &mut [0.0; 3] }, &mut [0.0]);
}
