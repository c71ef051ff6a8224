//! Training results do not depend on the number of rayon threads.

mod common;

use common::random_window;
use rnnlm::{Dims, SimpleRnnlm, Window};

/// Parameters and losses after a few SGD steps in a pool of `threads`.
fn train(threads: usize, clip: Option<f32>) -> (Vec<f32>, Vec<f32>) {
    // Large enough that every kernel takes its parallel path (GEMM, softmax, column sums).
    let dims = Dims { vocab: 2500, embed: 60, hidden: 90 };
    let window = Window { batch: 20, time: 35 };
    let mut model = SimpleRnnlm::new(dims, window, 3).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let losses = pool.install(|| {
        (0..4)
            .map(|step| {
                let (xs, ts) = random_window(window, dims.vocab, 400, 0.05, step);
                model.train_step(&xs, &ts, 0.5, clip).unwrap()
            })
            .collect()
    });
    (model.params().to_vec(), losses)
}

#[test]
fn one_two_and_three_threads_give_bit_identical_parameters() {
    for clip in [None, Some(1.0)] {
        let (params_1, losses_1) = train(1, clip);
        for threads in [2, 3] {
            let (params_n, losses_n) = train(threads, clip);
            assert_eq!(losses_1, losses_n, "losses with {threads} threads, clip {clip:?}");
            let differing = params_1.iter().zip(&params_n).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differing, 0, "{differing} parameters differ with {threads} threads, clip {clip:?}");
        }
    }
}
