//! The reference implementation's gradients against central finite differences, in f64.

mod common;

use common::random_window;
use rnnlm::reference::ReferenceRnnlm;
use rnnlm::{Dims, SimpleRnnlm, Window};

#[test]
fn reference_gradients_match_central_differences() {
    let dims = Dims { vocab: 6, embed: 3, hidden: 4 };
    let window = Window { batch: 2, time: 3 };
    let mut init = SimpleRnnlm::new(dims, window, 11).unwrap();
    // The spec's embedding scale (1/100) makes its gradients tiny; larger weights exercise
    // every path, including tanh's saturation, with gradients of ordinary size.
    for p in init.params_mut() {
        *p *= 20.0;
    }
    let mut model = ReferenceRnnlm::<f64>::from_params(dims, window, init.params());
    // A first window leaves a non-zero carried state: the checked window starts from it.
    let (xs0, ts0) = random_window(window, dims.vocab, dims.vocab, 0.0, 1);
    model.forward(&xs0, &ts0);
    let carried = model.rnn.state.clone();

    // Repeated ids and an ignored target in the checked window.
    let xs = vec![1, 4, 1, 0, 1, 5];
    let ts = vec![4, -1, 2, 2, 0, 1];
    model.forward(&xs, &ts);
    model.backward();
    let analytic = model.grads();

    let eps = 1e-5;
    let mut worst = 0.0f64;
    for (index, &want) in analytic.iter().enumerate() {
        let original = *model.param_mut(index);
        let loss_at = |value: f64, model: &mut ReferenceRnnlm<f64>| {
            *model.param_mut(index) = value;
            model.rnn.state.clone_from(&carried);
            model.forward(&xs, &ts)
        };
        let numeric = (loss_at(original + eps, &mut model) - loss_at(original - eps, &mut model)) / (2.0 * eps);
        *model.param_mut(index) = original;
        let error = (numeric - want).abs() / want.abs().max(1e-3);
        worst = worst.max(error);
        // Central differences err by eps^2 / 6 times the third derivative (truncation; the
        // largest here, near tanh's saturation, comes to about 2e-7) plus ~1e-16 / eps ~ 1e-11
        // (rounding); 1e-6 is above both and far below any real mistake (O(1)).
        assert!(error < 1e-6, "parameter {index}: analytic {want} numeric {numeric}");
    }
    println!("worst relative error {worst:e} over {} parameters", analytic.len());
}
