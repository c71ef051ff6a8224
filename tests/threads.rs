//! Training results do not depend on the number of rayon threads.

mod common;

use common::random_window;
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};

/// Parameters and losses after a few SGD steps in a pool of `threads`.
fn train(arch: Arch, dropout: f32, threads: usize, clip: Option<f32>) -> (Vec<f32>, Vec<f32>) {
    let (dims, window) = (arch.dims, Window { batch: 20, time: 35 });
    let mut model = Rnnlm::new(arch, window, 3).unwrap();
    model.set_dropout(dropout, 8).unwrap();
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

/// Large enough that every kernel takes its parallel path (GEMM, softmax, column sums, the
/// recurrences' row groups).
const DIMS: Dims = Dims { vocab: 2500, embed: 60, hidden: 90 };

fn same_bits_for_1_2_and_3_threads(arch: Arch, dropout: f32, clips: &[Option<f32>]) {
    for &clip in clips {
        let (params_1, losses_1) = train(arch, dropout, 1, clip);
        for threads in [2, 3] {
            let (params_n, losses_n) = train(arch, dropout, threads, clip);
            assert_eq!(losses_1, losses_n, "{arch:?}: losses with {threads} threads, clip {clip:?}");
            let differing = params_1.iter().zip(&params_n).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differing, 0, "{arch:?}: {differing} parameters differ with {threads} threads, clip {clip:?}");
        }
    }
}

#[test]
fn one_two_and_three_threads_give_bit_identical_parameters() {
    same_bits_for_1_2_and_3_threads(DIMS.into(), 0.0, &[None, Some(1.0)]);
}

#[test]
fn adaptive_softmax_models_give_the_same_bits_for_any_thread_count() {
    let shape = rnnlm::kernels::AdaptiveShape::new(DIMS.vocab, DIMS.hidden, &[300, 1000], 4.0, true).unwrap();
    let arch = Arch { dims: DIMS, cell: Cell::Lstm, layers: 2, tied: false, output: Softmax::Adaptive(shape) };
    same_bits_for_1_2_and_3_threads(arch, 0.5, &[None, Some(1.0)]);
}

#[test]
fn gated_and_stacked_models_give_the_same_bits_for_any_thread_count() {
    for cell in [Cell::Lstm, Cell::Gru] {
        same_bits_for_1_2_and_3_threads(
            Arch { dims: DIMS, cell, layers: 2, tied: false, output: Softmax::Full },
            0.0,
            &[Some(1.0)],
        );
        same_bits_for_1_2_and_3_threads(
            Arch { dims: DIMS, cell, layers: 2, tied: false, output: Softmax::Full },
            0.5,
            &[None],
        );
        let tied =
            Arch { dims: Dims { embed: DIMS.hidden, ..DIMS }, cell, layers: 2, tied: true, output: Softmax::Full };
        same_bits_for_1_2_and_3_threads(tied, 0.5, &[None, Some(1.0)]);
    }
}
