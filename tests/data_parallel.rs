//! Data-parallel training in one process: a batch cut into shares by rows, one model and one
//! thread per share, their gradients summed before every update (as an allreduce over
//! processes does) — against one model training the whole batch.
//!
//! The shares add their gradients up in another order than one model does (each share's
//! partial sums over its rows, then the sum over shares), so the losses and weights agree to
//! the rounding of f32 sums rather than bit for bit: losses within 1e-5 relative, weights
//! within 1e-4 relative to their norm after 30 clipped or unclipped steps, the bounds the
//! multi-process training is held to. The shares' weights are identical to each other bit
//! for bit: they apply the same reduced gradient.

use rnnlm::model::{share_rows, BatchShare};
use rnnlm::rng::Rng;
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};
use std::sync::{Barrier, Mutex};

const STEPS: usize = 30;
const SEED: u64 = 11;

/// Sums every share's buffer into each of them, in share order, as an allreduce does.
struct Reduction {
    slots: Mutex<Vec<Vec<f32>>>,
    barrier: Barrier,
}

impl Reduction {
    fn new(shares: usize, len: usize) -> Self {
        Reduction { slots: Mutex::new(vec![vec![0.0; len]; shares]), barrier: Barrier::new(shares) }
    }

    fn all_reduce(&self, share: usize, buffer: &mut [f32]) {
        self.slots.lock().unwrap()[share] = buffer.to_vec();
        self.barrier.wait();
        {
            let slots = self.slots.lock().unwrap();
            for (i, value) in buffer.iter_mut().enumerate() {
                *value = slots[1..].iter().fold(slots[0][i], |sum, slot| sum + slot[i]);
            }
        }
        // Nobody writes the slots again before everyone has read them.
        self.barrier.wait();
    }
}

/// Every window of the run, `B x T` ids and targets, batch-major: row `b` reads the `b`-th
/// of `B` equal parts of the corpus, `T` tokens further at every window (truncated BPTT).
fn windows(corpus: &[u32], window: Window) -> Vec<(Vec<u32>, Vec<i32>)> {
    let part = corpus.len() / window.batch;
    (0..STEPS)
        .map(|step| {
            let positions =
                (0..window.batch).flat_map(|b| (0..window.time).map(move |t| b * part + step * window.time + t));
            positions.map(|i| (corpus[i], corpus[i + 1] as i32)).unzip()
        })
        .collect()
}

fn model(arch: Arch, window: Window, dropout: f32, open: bool) -> Rnnlm {
    let mut model = Rnnlm::new(arch, window, SEED).unwrap();
    if dropout > 0.0 {
        model.set_dropout(dropout, SEED + 1).unwrap();
    }
    model.set_open_gradients(open).unwrap();
    model
}

/// Trains `arch` on the whole batch and on `shares` shares of it; compares them.
fn compare(arch: Arch, window: Window, hyper: (f32, f32, Option<f32>), shares: usize) {
    compare_gradients(arch, window, hyper, shares, false);
}

/// [`compare`], the gradients open ([`Rnnlm::set_open_gradients`]) when `open`.
fn compare_gradients(
    arch: Arch,
    window: Window,
    (dropout, lr, clip): (f32, f32, Option<f32>),
    shares: usize,
    open: bool,
) {
    let mut rng = Rng::new(5);
    let corpus: Vec<u32> = (0..4000).map(|_| (rng.next_u64() % arch.dims.vocab as u64) as u32).collect();
    let windows = windows(&corpus, window);
    let mut whole = model(arch, window, dropout, open);
    let whole_losses: Vec<f32> = windows.iter().map(|(xs, ts)| whole.train_step(xs, ts, lr, clip).unwrap()).collect();

    let reduction = Reduction::new(shares, arch.param_count().unwrap());
    let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shares)
            .map(|share| {
                let (windows, reduction) = (&windows, &reduction);
                scope.spawn(move || {
                    let rows = share_rows(window.batch, shares, share);
                    let mut part = model(arch, Window { batch: rows.len(), time: window.time }, dropout, open);
                    let tokens = rows.start * window.time..rows.end * window.time;
                    let losses = windows
                        .iter()
                        .map(|(xs, ts)| {
                            let share_of_batch = BatchShare { first_row: rows.start, batch_targets: ts.len() };
                            let reduce = |grads: &mut [f32]| reduction.all_reduce(share, grads);
                            let (xs, ts) = (&xs[tokens.clone()], &ts[tokens.clone()]);
                            part.train_step_shared(xs, ts, share_of_batch, (lr, clip), reduce).unwrap()
                        })
                        .collect();
                    (losses, part.params().to_vec())
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });

    for (step, whole_loss) in whole_losses.iter().enumerate() {
        let shared: f32 = results.iter().map(|(losses, _)| losses[step]).sum();
        let relative = ((shared - whole_loss) / whole_loss).abs();
        assert!(relative <= 1e-5, "{arch:?}, step {step}: {shared} against {whole_loss} ({relative:e})");
    }
    let params = &results[0].1;
    for (share, (_, other)) in results.iter().enumerate() {
        assert!(params.iter().zip(other).all(|(a, b)| a.to_bits() == b.to_bits()), "share {share} drifted apart");
    }
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let difference: Vec<f32> = params.iter().zip(whole.params()).map(|(a, b)| a - b).collect();
    let relative = norm(&difference) / norm(whole.params());
    assert!(relative <= 1e-4, "{arch:?}: weights {relative:e} apart");
    assert!(relative > 0.0 || shares == 1, "the shares' sums run in another order: some rounding differs");
}

fn arch(cell: Cell, layers: usize, tied: bool) -> Arch {
    Arch { dims: Dims { vocab: 50, embed: 16, hidden: 16 }, cell, layers, tied, output: Softmax::Full }
}

#[test]
fn two_lstm_layers_with_dropout_and_clipping_over_three_shares() {
    compare(arch(Cell::Lstm, 2, false), Window { batch: 7, time: 5 }, (0.3, 1.0, Some(0.25)), 3);
}

#[test]
fn a_tied_gru_with_dropout_over_two_shares() {
    compare(arch(Cell::Gru, 1, true), Window { batch: 6, time: 4 }, (0.2, 0.5, Some(1.0)), 2);
}

#[test]
fn the_plain_rnn_without_clipping_over_four_shares() {
    // Unclipped and untied: one model folds the output layer's update into its backward pass
    // and updates only the embedding rows it touched; the shares update the rows that any
    // share touched.
    compare(arch(Cell::Rnn, 1, false), Window { batch: 9, time: 3 }, (0.0, 0.1, None), 4);
}

#[test]
fn a_tied_lstm_with_open_gradients_over_two_shares() {
    // The tied embedding's own gradient is apart from the buffer: it is summed too.
    compare_gradients(arch(Cell::Lstm, 1, true), Window { batch: 6, time: 4 }, (0.0, 0.5, Some(1.0)), 2, true);
}

#[test]
fn one_share_is_the_whole_batch() {
    compare(arch(Cell::Lstm, 1, false), Window { batch: 4, time: 3 }, (0.25, 1.0, Some(0.5)), 1);
}
