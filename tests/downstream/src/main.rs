//! Uses rnnlm as a library without default features: trains the model for a few windows on a
//! repeating sequence, checks its first loss against the f64 reference, and runs one public
//! kernel on its own buffers. Exits non-zero if anything disagrees.

use rnnlm::kernels::tanh_inplace;
use rnnlm::reference::ReferenceRnnlm;
use rnnlm::{Arch, Cell, Dims, Softmax, Rnnlm, Window};

fn main() {
    let dims = Dims { vocab: 50, embed: 16, hidden: 24 };
    let arch = Arch { dims, cell: Cell::Lstm, layers: 2, tied: false, output: Softmax::Full };
    let window = Window { batch: 4, time: 7 };
    let mut model = Rnnlm::new(arch, window, 7).expect("a valid architecture");
    let mut reference = ReferenceRnnlm::<f64>::from_params(arch, window, model.params());

    // Each row walks the vocabulary with its own stride: a pattern the model can learn.
    let xs: Vec<u32> = (0..window.tokens()).map(|i| ((i % 7) * (1 + i / 7) % 50) as u32).collect();
    let ts: Vec<i32> = (0..window.tokens()).map(|i| (((i % 7) + 1) * (1 + i / 7) % 50) as i32).collect();

    let want = reference.forward(&xs, &ts);
    let first = model.forward(&xs, &ts).expect("tokens in range");
    let error = (first as f64 - want).abs() / want;
    println!("first loss {first:.6} (reference {want:.6}, relative error {error:.1e})");
    assert!(error < 1e-5, "the model and the reference disagree");

    model.reset_state();
    let mut last = first;
    for _ in 0..200 {
        last = model.train_step(&xs, &ts, 1.0, Some(5.0)).expect("tokens in range");
        model.reset_state();
    }
    println!("loss after 200 steps {last:.6}");
    assert!(last < first / 2.0, "training did not lower the loss");

    let mut values = [-3.0f32, -0.5, 0.0, 0.25, 2.0];
    tanh_inplace(&mut values);
    assert!(values.iter().zip([-3.0f64, -0.5, 0.0, 0.25, 2.0]).all(|(&y, x)| (y as f64 - x.tanh()).abs() < 1e-7));
    println!("tanh_inplace: {values:?}");
}
