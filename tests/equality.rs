//! The optimized model against the reference implementation (in f64), shape by shape.
//!
//! Tolerances, and why: the optimized path computes in f32, the reference in f64 from the same
//! f32 weights, so every difference is f32 rounding in the optimized path. Each value is a sum
//! of at most a few hundred products (K <= 600 here), whose f32 error is about sqrt(K) * 2^-24
//! relative to the sum of magnitudes (K * 2^-24 = 3.6e-5 in the worst case), plus the tanh and
//! exp approximations (1.5e-7 and 2.4e-7 relative). Hence:
//! - loss: relative error <= 1e-5;
//! - each gradient tensor and each parameter tensor after the SGD updates: normwise relative
//!   error (max |difference| / max |value|) <= 1e-4, which leaves room for the worst case while
//!   failing on any real mistake (a wrong index or a missing term is off by O(1)).

mod common;

use common::{normwise_error, random_window};
use rnnlm::kernels::AdaptiveShape;
use rnnlm::reference::ReferenceRnnlm;
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};

const LOSS_TOL: f64 = 1e-5;
const TENSOR_TOL: f64 = 1e-4;

struct Case {
    arch: Arch,
    window: Window,
    /// Distinct ids a window draws from (small pools repeat ids).
    distinct: usize,
    ignore_share: f64,
    clip: Option<f32>,
    /// Dropout ratio in training, 0 for none.
    dropout: f32,
}

fn case(
    (v, d, h): (usize, usize, usize),
    (b, t): (usize, usize),
    distinct: usize,
    ignore_share: f64,
    clip: Option<f32>,
) -> Case {
    Case {
        arch: Arch::from(Dims { vocab: v, embed: d, hidden: h }),
        window: Window { batch: b, time: t },
        distinct,
        ignore_share,
        clip,
        dropout: 0.0,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case((2, 1, 1), (1, 1), 2, 0.0, None),
        case((7, 3, 5), (1, 1), 7, 0.0, None),
        case((13, 9, 7), (1, 6), 13, 0.2, None),
        case((31, 5, 17), (4, 1), 31, 0.0, Some(0.5)),
        case((50, 8, 8), (3, 4), 2, 0.0, None),
        case((64, 16, 16), (8, 8), 64, 0.1, None),
        case((100, 10, 10), (10, 5), 100, 0.0, None),
        case((101, 33, 17), (7, 3), 5, 0.3, Some(0.1)),
        case((17, 100, 100), (2, 5), 17, 0.0, None),
        case((418, 100, 100), (10, 5), 418, 0.0, None),
        case((257, 20, 30), (20, 35), 257, 0.05, Some(0.25)),
        case((9, 7, 15), (5, 9), 3, 0.5, None),
        case((33, 1, 3), (6, 2), 33, 0.0, Some(1e-3)),
        case((300, 47, 61), (3, 7), 300, 0.0, None),
        case((5, 2, 2), (11, 13), 5, 0.0, None),
        case((120, 24, 40), (1, 30), 120, 0.0, Some(5.0)),
        case((350, 12, 6), (9, 1), 1, 0.0, None),
        case((77, 19, 23), (13, 11), 77, 0.9, None),
        case((15, 6, 9), (4, 4), 15, 1.0, None),
        case((201, 64, 65), (2, 3), 201, 0.0, None),
        case((160, 31, 49), (17, 2), 40, 0.15, Some(2.0)),
        case((3, 300, 2), (2, 2), 3, 0.0, None),
        // Three output panels, the last 88 classes wide.
        case((600, 20, 30), (4, 3), 600, 0.1, None),
        // Nine output panels in five tasks, with enough work (rows * H * V >= 4M) to run them
        // in parallel.
        case((2100, 24, 40), (12, 5), 2100, 0.1, None),
    ]
}

/// Shapes drawn at random (fixed seed): sizes anywhere from 1 up, rarely multiples of 8.
fn random_cases(count: usize) -> Vec<Case> {
    let mut rng = rnnlm::rng::Rng::new(2024);
    let mut below = |n: usize| 1 + (rng.next_u64() % n as u64) as usize;
    (0..count)
        .map(|_| {
            let vocab = 1 + below(400);
            let clip = if below(3) == 1 { Some(below(100) as f32 / 50.0) } else { None };
            case((vocab, below(70), below(70)), (below(16), below(12)), below(vocab), below(4) as f64 * 0.1, clip)
        })
        .collect()
}

/// The same case with other recurrent layers, dropout, and tied weights (with `D = H`).
fn with_layers(case: &Case, cell: Cell, layers: usize, dropout: f32, tied: bool) -> Case {
    let mut dims = case.arch.dims;
    if tied {
        dims.embed = dims.hidden;
    }
    Case { arch: Arch { dims, cell, layers, tied, output: Softmax::Full }, dropout, ..*case }
}

/// Every cell with 1, 2 and 3 layers, untied and tied, without dropout and with (but the
/// chapter's one untied tanh layer without dropout, which `cases` covers), on every third
/// awkward shape and four random ones of their own.
fn gated_and_stacked_cases() -> Vec<Case> {
    let awkward: Vec<Case> = cases().into_iter().step_by(3).chain(random_cases(4)).collect();
    let mut all = Vec::new();
    for cell in Cell::ALL {
        for layers in [1, 2, 3] {
            for dropout in [0.0, 0.3] {
                for tied in [false, true] {
                    if (cell, layers, dropout, tied) != (Cell::Rnn, 1, 0.0, false) {
                        all.extend(awkward.iter().map(|case| with_layers(case, cell, layers, dropout, tied)));
                    }
                }
            }
        }
    }
    all
}

/// A permutation of `0..n` drawn from `seed`: the word ranking of an adaptive softmax.
fn shuffled(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = rnnlm::rng::Rng::new(seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
}

/// Adaptive softmaxes on awkward shapes: one cutoff with div 1, three cutoffs, a cluster of
/// one word, a vocabulary no multiple of any vector width; every cell, stacked, with dropout
/// and clipping, and the words ranked in a shuffled order.
fn adaptive_cases() -> Vec<Case> {
    type Shape = ((usize, usize, usize), (usize, usize), &'static [usize], f32, Option<f32>);
    let shapes: [Shape; 6] = [
        ((13, 5, 7), (3, 4), &[4, 9], 4.0, None),
        ((37, 6, 5), (2, 6), &[4, 11, 20], 2.0, Some(0.5)),
        ((101, 9, 17), (4, 5), &[30], 1.0, None),
        ((40, 8, 8), (5, 3), &[30, 39], 4.0, Some(0.1)),
        ((257, 20, 24), (20, 35), &[50, 120], 4.0, Some(0.25)),
        ((2100, 24, 40), (12, 5), &[256, 1000], 4.0, None),
    ];
    let mut all = Vec::new();
    for (index, &(dims, window, cutoffs, div, clip)) in shapes.iter().enumerate() {
        let base = case(dims, window, dims.0, 0.1, clip);
        let shape = AdaptiveShape::new(dims.0, dims.2, cutoffs, div, index % 2 == 0).unwrap();
        for (cell, layers, dropout) in [(Cell::Rnn, 1, 0.0), (Cell::Lstm, 2, 0.3), (Cell::Gru, 1, 0.0)] {
            let mut case = with_layers(&base, cell, layers, dropout, false);
            case.arch.output = Softmax::Adaptive(shape);
            all.push(case);
        }
    }
    all
}

#[test]
fn adaptive_softmax_models_match_the_reference() {
    check_against_the_reference(adaptive_cases());
}

#[test]
fn optimized_model_matches_the_reference_on_awkward_and_random_shapes() {
    check_against_the_reference(cases().into_iter().chain(random_cases(16)).collect());
}

#[test]
fn gated_and_stacked_models_match_the_reference() {
    check_against_the_reference(gated_and_stacked_cases());
}

fn check_against_the_reference(cases: Vec<Case>) {
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for (index, case) in cases.iter().enumerate() {
        let arch = case.arch;
        let label = format!("case {index} {arch:?} {:?} clip {:?} dropout {}", case.window, case.clip, case.dropout);
        let mut model = Rnnlm::new(arch, case.window, 1000 + index as u64).unwrap();
        let mut reference = ReferenceRnnlm::<f64>::from_params(arch, case.window, model.params());
        let order = shuffled(arch.dims.vocab, index as u64);
        if arch.adaptive().is_some() {
            model.set_word_order(&order).unwrap();
            reference.set_word_order(&order);
        }
        let seed = 31 * index as u64;
        model.set_dropout(case.dropout, seed).unwrap();
        reference.set_dropout(case.dropout, seed);
        let lr = 0.5;
        for step in 0..4 {
            let (xs, ts) =
                random_window(case.window, arch.dims.vocab, case.distinct, case.ignore_share, 77 * index as u64 + step);
            // Gradients from forward + backward on a copy (without clipping, train_step folds
            // the output layer's update into its gradient GEMM and does not store that gradient).
            let mut probe = model.clone();
            probe.forward_training(&xs, &ts).unwrap();
            probe.backward().unwrap();
            let loss = model.train_step(&xs, &ts, lr, case.clip).unwrap();
            let mut unclipped = ReferenceRnnlm::<f64>::from_params(arch, case.window, probe.params());
            unclipped.set_state(&reference.state());
            unclipped.set_word_order(&reference.word_order);
            unclipped.set_dropout(case.dropout, seed);
            unclipped.training_windows = reference.training_windows;
            unclipped.forward_training(&xs, &ts);
            unclipped.backward();
            let want_loss = reference.train_step(&xs, &ts, lr as f64, case.clip.map(f64::from));
            let loss_error = (loss as f64 - want_loss).abs() / want_loss.abs().max(1e-6);
            assert!(loss_error <= LOSS_TOL, "{label} step {step}: loss {loss} want {want_loss}");
            worst.0 = worst.0.max(loss_error);

            let (want_grads, want_params) = (unclipped.grads(), reference.params());
            for tensor in arch.tensors() {
                let range = arch.range(tensor);
                let grad_error = normwise_error(probe.grad(tensor), &want_grads[range.clone()]);
                assert!(
                    grad_error <= TENSOR_TOL,
                    "{label} step {step}: gradient of {} off by {grad_error:e}",
                    arch.name(tensor)
                );
                let param_error = normwise_error(model.param(tensor), &want_params[range]);
                assert!(
                    param_error <= TENSOR_TOL,
                    "{label} step {step}: {} after SGD off by {param_error:e}",
                    arch.name(tensor)
                );
                worst.1 = worst.1.max(grad_error);
                worst.2 = worst.2.max(param_error);
            }
            let state_error = normwise_error(model.state(), &reference.state());
            assert!(state_error <= TENSOR_TOL, "{label} step {step}: carried state off by {state_error:e}");
        }
    }
    println!("worst errors: loss {:e}, gradients {:e}, parameters {:e}", worst.0, worst.1, worst.2);
}

#[test]
fn a_window_of_ignored_targets_has_zero_loss_and_zero_gradients() {
    let dims = Dims { vocab: 11, embed: 4, hidden: 6 };
    let window = Window { batch: 3, time: 4 };
    let mut model = Rnnlm::new(dims, window, 5).unwrap();
    let xs = vec![3u32; 12];
    let ts = vec![-1i32; 12];
    assert_eq!(model.forward(&xs, &ts).unwrap(), 0.0);
    model.backward().unwrap();
    assert!(model.grads().iter().all(|&g| g == 0.0));
}

#[test]
fn predictions_match_the_reference() {
    let dims = Dims { vocab: 53, embed: 11, hidden: 19 };
    let window = Window { batch: 4, time: 6 };
    let mut model = Rnnlm::new(dims, window, 9).unwrap();
    // Spread the weights so that the logits of a row are well separated (not so far that the
    // recurrence amplifies rounding: at 30-fold, levels without FMA drift by 1e-3).
    for p in model.params_mut() {
        *p *= 4.0;
    }
    let mut reference = ReferenceRnnlm::<f64>::from_params(dims, window, model.params());
    let mut exact = 0;
    for step in 0..3 {
        let (xs, _) = random_window(window, dims.vocab, dims.vocab, 0.0, step);
        let state = model.state().to_vec();
        let mut logits = vec![0.0; window.tokens() * dims.vocab];
        model.logits(&xs, &mut logits).unwrap();
        model.set_state(&state).unwrap();
        let mut guesses = vec![0u32; window.tokens()];
        model.predict(&xs, &mut guesses).unwrap();
        let want = reference.predict(&xs);
        for (i, (&got, &want)) in guesses.iter().zip(&want).enumerate() {
            if got == want {
                exact += 1;
                continue;
            }
            // A different class only where the two tie within the logits' f32 error: sums of
            // 19 products of weights spread 4-fold, about 1e-6 of the largest logit per
            // rounding (different levels of the kernels round differently).
            let row = &logits[i * dims.vocab..][..dims.vocab];
            let scale = row.iter().fold(0.0f32, |m, z| m.max(z.abs()));
            let gap = (row[got as usize] - row[want as usize]).abs();
            assert!(gap <= 1e-5 * scale, "window {step}, position {i}: {got} vs {want}, logits {gap} apart of {scale}");
        }
    }
    assert!(exact >= 3 * window.tokens() - 2, "only {exact} of {} predictions agree", 3 * window.tokens());
}

#[test]
fn adaptive_predictions_and_probabilities_match_the_reference() {
    let dims = Dims { vocab: 61, embed: 9, hidden: 13 };
    let window = Window { batch: 3, time: 5 };
    let shape = AdaptiveShape::new(61, 13, &[10, 30], 2.0, true).unwrap();
    let arch = Arch { dims, cell: Cell::Lstm, layers: 1, tied: false, output: Softmax::Adaptive(shape) };
    let mut model = Rnnlm::new(arch, window, 9).unwrap();
    for p in model.params_mut() {
        *p *= 4.0;
    }
    let order = shuffled(61, 5);
    model.set_word_order(&order).unwrap();
    let mut reference = ReferenceRnnlm::<f64>::from_params(arch, window, model.params());
    reference.set_word_order(&order);
    for step in 0..3 {
        let (xs, _) = random_window(window, dims.vocab, dims.vocab, 0.0, step);
        let state = model.state().to_vec();
        let mut log_probs = vec![0.0; window.tokens() * dims.vocab];
        model.logits(&xs, &mut log_probs).unwrap();
        model.set_state(&state).unwrap();
        let mut guesses = vec![0u32; window.tokens()];
        model.predict(&xs, &mut guesses).unwrap();
        let want = reference.predict(&xs);
        for (i, row) in log_probs.chunks(dims.vocab).enumerate() {
            let total: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
            assert!((total - 1.0).abs() < 1e-5, "window {step}, position {i}: probabilities sum to {total}");
            let gap = row[want[i] as usize] - row[guesses[i] as usize];
            assert!(
                gap <= 1e-5,
                "window {step}, position {i}: guessed {} below the reference's {} by {gap}",
                guesses[i],
                want[i]
            );
        }
    }
}

#[test]
fn reset_state_starts_windows_afresh() {
    let dims = Dims { vocab: 20, embed: 5, hidden: 7 };
    let window = Window { batch: 2, time: 3 };
    let mut model = Rnnlm::new(dims, window, 3).unwrap();
    let (xs, ts) = random_window(window, 20, 20, 0.0, 1);
    let first = model.forward(&xs, &ts).unwrap();
    let carried = model.forward(&xs, &ts).unwrap();
    assert_ne!(first, carried, "the second window starts from the carried state");
    model.reset_state();
    assert_eq!(model.forward(&xs, &ts).unwrap(), first);
}

#[test]
fn dropout_applies_in_training_only_and_its_masks_are_the_references() {
    let arch = Arch {
        dims: Dims { vocab: 40, embed: 8, hidden: 12 },
        cell: Cell::Lstm,
        layers: 2,
        tied: false,
        output: Softmax::Full,
    };
    let window = Window { batch: 3, time: 5 };
    let (xs, ts) = random_window(window, 40, 40, 0.0, 9);
    let mut model = Rnnlm::new(arch, window, 4).unwrap();
    let plain = model.clone().forward(&xs, &ts).unwrap();
    model.set_dropout(0.5, 77).unwrap();
    assert_eq!(model.clone().forward(&xs, &ts).unwrap(), plain, "evaluation never drops out");
    let dropped = model.clone().forward_training(&xs, &ts).unwrap();
    assert_ne!(dropped, plain, "training drops out");
    let mut reference = ReferenceRnnlm::<f64>::from_params(arch, window, model.params());
    let loss_with_seed = |reference: &mut ReferenceRnnlm<f64>, seed: u64| {
        reference.set_dropout(0.5, seed);
        reference.training_windows = 0;
        reference.forward_training(&xs, &ts)
    };
    assert!((loss_with_seed(&mut reference, 77) - dropped as f64).abs() < 1e-5 * dropped as f64);
    assert!((loss_with_seed(&mut reference, 78) - dropped as f64).abs() > 1e-3, "another seed, other masks");
    // The window index picks the masks: the next training window draws new ones.
    let mut later = model.clone();
    later.set_training_windows(1);
    assert_ne!(later.forward_training(&xs, &ts).unwrap(), dropped);
    assert_eq!(later.training_windows(), 2);
}
