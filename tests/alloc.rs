//! A training step allocates nothing after the first one: proven with a counting allocator.

mod common;

use common::random_window;
use rayon::prelude::*;
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts every allocation and reallocation of the process, on every thread.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is global: tests that count take turns.
static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Allocations made by 100 training steps that follow a first one, in a pool of `threads`.
fn allocations_in_100_steps(arch: Arch, window: Window, threads: usize, clip: Option<f32>) -> usize {
    allocations_with_dropout(arch, 0.0, window, threads, clip)
}

/// The same with dropout of ratio `dropout`.
fn allocations_with_dropout(arch: Arch, dropout: f32, window: Window, threads: usize, clip: Option<f32>) -> usize {
    let _turn = COUNTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let windows: Vec<_> = (0..101).map(|i| random_window(window, arch.dims.vocab, 50, 0.05, i)).collect();
    let mut model = Rnnlm::new(arch, window, 1).unwrap();
    model.set_dropout(dropout, 2).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        // rayon's threads register with their work-stealing queues' memory reclamation the
        // first time they steal, once per thread for its lifetime; make every thread steal
        // before counting, so that only the model's own steady state is measured.
        (0..threads * 64).into_par_iter().for_each(|_| std::thread::sleep(std::time::Duration::from_micros(50)));
        let (xs, ts) = &windows[0];
        model.train_step(xs, ts, 0.1, clip).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for (xs, ts) in &windows[1..] {
            model.train_step(xs, ts, 0.1, clip).unwrap();
        }
        ALLOCATIONS.load(Ordering::SeqCst) - before
    })
}

#[test]
fn training_steps_after_the_first_allocate_nothing() {
    // The chapter's shape (serial kernels) and one large enough for every parallel path.
    let chapter = (Dims { vocab: 418, embed: 100, hidden: 100 }, Window { batch: 10, time: 5 });
    let large = (Dims { vocab: 1200, embed: 100, hidden: 100 }, Window { batch: 20, time: 35 });
    for (dims, window) in [chapter, large] {
        for threads in [1, 2] {
            for clip in [None, Some(0.25)] {
                let count = allocations_in_100_steps(dims.into(), window, threads, clip);
                assert_eq!(count, 0, "{dims:?} {window:?}, {threads} threads, clip {clip:?}: {count} allocations");
            }
        }
    }
}

/// Allocations of 100 forward and backward passes with open gradients (an optimizer outside
/// the crate, as the Python package's book classes run) that follow a first one.
fn allocations_with_open_gradients(arch: Arch, window: Window, threads: usize) -> usize {
    let _turn = COUNTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let windows: Vec<_> = (0..101).map(|i| random_window(window, arch.dims.vocab, 50, 0.05, i)).collect();
    let mut model = Rnnlm::new(arch, window, 1).unwrap();
    model.set_dropout(0.5, 2).unwrap();
    model.set_open_gradients(true).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        (0..threads * 64).into_par_iter().for_each(|_| std::thread::sleep(std::time::Duration::from_micros(50)));
        let step = |model: &mut Rnnlm, (xs, ts): &(Vec<u32>, Vec<i32>)| {
            model.params_written();
            model.forward_training(xs, ts).unwrap();
            model.backward().unwrap();
        };
        step(&mut model, &windows[0]);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for window in &windows[1..] {
            step(&mut model, window);
        }
        ALLOCATIONS.load(Ordering::SeqCst) - before
    })
}

#[test]
fn passes_with_open_gradients_allocate_nothing_after_the_first() {
    let dims = Dims { vocab: 1200, embed: 100, hidden: 100 };
    for (cell, layers, tied) in [(Cell::Rnn, 1, false), (Cell::Lstm, 2, true)] {
        let arch = Arch { dims, cell, layers, tied, output: Softmax::Full };
        for (window, threads) in [(Window { batch: 10, time: 5 }, 1), (Window { batch: 20, time: 35 }, 2)] {
            let count = allocations_with_open_gradients(arch, window, threads);
            assert_eq!(count, 0, "{arch:?} {window:?}, {threads} threads: {count} allocations");
        }
    }
}

#[test]
fn gated_and_stacked_training_steps_allocate_nothing_after_the_first() {
    let dims = Dims { vocab: 1200, embed: 100, hidden: 100 };
    let cases = [
        (Cell::Lstm, 1, false),
        (Cell::Gru, 1, false),
        (Cell::Lstm, 2, true),
        (Cell::Gru, 2, true),
        (Cell::Rnn, 2, false),
    ];
    for (cell, layers, tied) in cases {
        let arch = Arch { dims, cell, layers, tied, output: Softmax::Full };
        for (window, threads) in [(Window { batch: 10, time: 5 }, 1), (Window { batch: 20, time: 35 }, 2)] {
            for dropout in [0.0, 0.5] {
                let count = allocations_with_dropout(arch, dropout, window, threads, Some(0.25));
                assert_eq!(count, 0, "{arch:?} {window:?}, {threads} threads, dropout {dropout}: {count} allocations");
            }
        }
    }
}

#[test]
fn adaptive_softmax_training_steps_allocate_nothing_after_the_first() {
    let dims = Dims { vocab: 1200, embed: 64, hidden: 64 };
    let shape = rnnlm::kernels::AdaptiveShape::new(1200, 64, &[100, 500], 4.0, true).unwrap();
    for cell in [Cell::Rnn, Cell::Lstm] {
        let arch = Arch { dims, cell, layers: 1, tied: false, output: Softmax::Adaptive(shape) };
        for (window, threads) in [(Window { batch: 10, time: 5 }, 1), (Window { batch: 20, time: 35 }, 2)] {
            for (dropout, clip) in [(0.0, None), (0.5, Some(0.25))] {
                let count = allocations_with_dropout(arch, dropout, window, threads, clip);
                assert_eq!(count, 0, "{arch:?} {window:?}, {threads} threads, dropout {dropout}: {count} allocations");
            }
        }
    }
}

#[test]
fn scoring_allocates_nothing_after_the_first_call() {
    let _turn = COUNTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let full = Arch {
        dims: Dims { vocab: 1200, embed: 64, hidden: 64 },
        cell: Cell::Lstm,
        layers: 2,
        tied: false,
        output: Softmax::Full,
    };
    let shape = rnnlm::kernels::AdaptiveShape::new(1200, 64, &[100, 500], 4.0, true).unwrap();
    for arch in [full, Arch { output: Softmax::Adaptive(shape), ..full }] {
        scoring_allocations(arch);
    }
}

/// Scores sentences and a stream with a model of `arch`; panics on any allocation after the
/// first calls.
fn scoring_allocations(arch: Arch) {
    // Sentences of 1 to 30 tokens, back to back.
    let lengths: Vec<usize> = (0..50).map(|i| 1 + (i * 7) % 30).collect();
    let ids: Vec<u32> = (0..lengths.iter().sum::<usize>()).map(|i| (i * 31 % 1200) as u32).collect();
    let mut losses = vec![0.0; ids.len()];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        (0..128).into_par_iter().for_each(|_| std::thread::sleep(std::time::Duration::from_micros(50)));
        let model = Rnnlm::new(arch, Window { batch: 16, time: 8 }, 1).unwrap();
        let mut sentences = rnnlm::inference::score::SentenceScorer::new(model, 0).unwrap();
        let model = Rnnlm::new(arch, Window { batch: 1, time: 8 }, 1).unwrap();
        let mut stream = rnnlm::inference::score::StreamScorer::new(model, 0).unwrap();
        sentences.score(&ids, &lengths, &mut losses).unwrap();
        stream.score(&ids[..13], &mut losses[..13]).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..3 {
            sentences.score(&ids, &lengths, &mut losses).unwrap();
            // Pieces that end inside a window keep its tokens for the next piece.
            for piece in ids.chunks(13) {
                stream.score(piece, &mut losses[..piece.len()]).unwrap();
            }
        }
        let count = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(count, 0, "{arch:?}: {count} allocations while scoring");
    });
}

#[test]
fn steps_on_a_share_of_a_batch_allocate_nothing() {
    // A share of rows 3..13 of a batch of 20, its reduction standing in for a second,
    // identical share; the step itself must allocate nothing (what an allreduce does is MPI's).
    let _turn = COUNTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let arch = Arch {
        dims: Dims { vocab: 1000, embed: 64, hidden: 64 },
        cell: Cell::Lstm,
        layers: 2,
        tied: false,
        output: Softmax::Full,
    };
    let window = Window { batch: 10, time: 7 };
    let windows: Vec<_> = (0..51).map(|i| random_window(window, arch.dims.vocab, 50, 0.0, i)).collect();
    let mut model = Rnnlm::new(arch, window, 1).unwrap();
    model.set_dropout(0.3, 2).unwrap();
    let share = rnnlm::model::BatchShare { first_row: 3, batch_targets: 2 * window.tokens() };
    let double = |grads: &mut [f32]| grads.iter_mut().for_each(|g| *g *= 2.0);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        (0..128).into_par_iter().for_each(|_| std::thread::sleep(std::time::Duration::from_micros(50)));
        let (xs, ts) = &windows[0];
        model.train_step_shared(xs, ts, share, (0.1, Some(0.25)), double).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for (xs, ts) in &windows[1..] {
            model.train_step_shared(xs, ts, share, (0.1, Some(0.25)), double).unwrap();
        }
        let count = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(count, 0, "{count} allocations in 50 shared steps");
    });
}
