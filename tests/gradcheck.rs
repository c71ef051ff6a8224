//! The reference implementation's gradients against central finite differences, in f64, for
//! every cell, one and two layers.

mod common;

use common::random_window;
use rnnlm::reference::ReferenceRnnlm;
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Tensor, Window};

#[test]
fn reference_gradients_match_central_differences() {
    let dims = Dims { vocab: 6, embed: 3, hidden: 4 };
    let window = Window { batch: 2, time: 3 };
    for cell in Cell::ALL {
        for (layers, dropout, tied) in
            [(1, 0.0, false), (2, 0.0, false), (2, 0.4, false), (1, 0.0, true), (2, 0.4, true)]
        {
            // Tied weights need D = H.
            let dims = if tied { Dims { embed: dims.hidden, ..dims } } else { dims };
            let arch = Arch { dims, cell, layers, tied, output: Softmax::Full };
            let worst = check(arch, window, dropout);
            println!("{} x {layers}, dropout {dropout}, tied {tied}: worst relative error {worst:e}", cell.name());
        }
    }
}

#[test]
fn adaptive_softmax_gradients_match_central_differences() {
    // Two cutoffs (a shortlist of 2, clusters of 3 and 2 words), div 2, with and without the
    // head's bias, under an LSTM with dropout and a GRU.
    let dims = Dims { vocab: 7, embed: 3, hidden: 4 };
    let window = Window { batch: 2, time: 3 };
    for (cell, layers, dropout, head_bias) in
        [(Cell::Rnn, 1, 0.0, true), (Cell::Lstm, 2, 0.4, false), (Cell::Gru, 1, 0.0, true)]
    {
        let shape = rnnlm::kernels::AdaptiveShape::new(dims.vocab, dims.hidden, &[2, 5], 2.0, head_bias).unwrap();
        let arch = Arch { dims, cell, layers, tied: false, output: Softmax::Adaptive(shape) };
        let worst = check(arch, window, dropout);
        println!("{} x {layers} adaptive, dropout {dropout}: worst relative error {worst:e}", cell.name());
    }
}

/// Checks every parameter's gradient with dropout `dropout` (the same masks at every
/// evaluation: the checked window is always training window 1); returns the worst relative
/// error.
fn check(arch: Arch, window: Window, dropout: f32) -> f64 {
    let mut init = Rnnlm::new(arch, window, 11).unwrap();
    // The spec's embedding scale (1/100) makes its gradients tiny; larger weights exercise
    // every path, including the saturation of tanh and the gates, with gradients of ordinary
    // size.
    let embed = arch.range(Tensor::EmbedW);
    for (index, p) in init.params_mut().iter_mut().enumerate() {
        *p *= if embed.contains(&index) { 100.0 } else { 3.0 };
    }
    let mut model = ReferenceRnnlm::<f64>::from_params(arch, window, init.params());
    model.set_dropout(dropout, 5);
    // A first window leaves a non-zero carried state: the checked window starts from it.
    let (xs0, ts0) = random_window(window, arch.dims.vocab, arch.dims.vocab, 0.0, 1);
    model.forward_training(&xs0, &ts0);
    let carried = model.state();

    // Repeated ids and an ignored target in the checked window.
    let xs = vec![1, 4, 1, 0, 1, 5];
    let ts = vec![4, -1, 2, 2, 0, 1];
    model.forward_training(&xs, &ts);
    model.backward();
    let analytic = model.grads();

    let eps = 1e-5;
    let mut worst = 0.0f64;
    for (index, &want) in analytic.iter().enumerate() {
        let original = *model.param_mut(index);
        let loss_at = |value: f64, model: &mut ReferenceRnnlm<f64>| {
            *model.param_mut(index) = value;
            model.set_state(&carried);
            model.training_windows = 1;
            model.forward_training(&xs, &ts)
        };
        let numeric = (loss_at(original + eps, &mut model) - loss_at(original - eps, &mut model)) / (2.0 * eps);
        *model.param_mut(index) = original;
        let error = (numeric - want).abs() / want.abs().max(1e-3);
        worst = worst.max(error);
        // Central differences err by eps^2 / 6 times the third derivative (truncation; the
        // largest here, near the saturation of tanh and the gates, comes to about 2e-7) plus
        // ~1e-16 / eps ~ 1e-11 (rounding); 1e-6 is above both and far below any real mistake
        // (O(1)).
        assert!(error < 1e-6, "{arch:?}: parameter {index}: analytic {want} numeric {numeric}");
    }
    worst
}
