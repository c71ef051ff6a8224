//! Allocation-free f32 kernels over plain slices.
//!
//! Every kernel takes its operands as `&[f32]` / `&mut [f32]` plus explicit dimensions, stores
//! matrices row-major (element `(i, j)` of an `rows x cols` matrix with leading dimension `ld`
//! lives at `i * ld + j`) and never touches the heap. They know nothing of files, models or the
//! command line, so they can be embedded in other tools as they are.
//!
//! **Shape contracts are checked in every build.** Before it writes anything, each kernel
//! checks every operand's length against the dimensions it was given (and its leading
//! dimension, and every token id or target against the number of rows or classes it indexes),
//! and panics on a mismatch with a message that names the kernel, the operand and both sizes,
//! such as `sgd_update: grads has 50 elements, but params has 100`. A caller's mistake is
//! never answered with a silently wrong result or a half-written output. The checks are O(1)
//! per call, except the id checks, which read each id once beside kernels that read a row of
//! weights per id.
//!
//! | kernel | what it computes |
//! |--------|------------------|
//! | [`gemm`], [`gemm_parallel`] | `C = alpha * op(A) * op(B) + beta * C` |
//! | [`GemmShape`] | one GEMM's shape and count, as the layers report their work |
//! | [`PackedB`], [`gemm_packed`] | the same with `op(B)` packed once for many products |
//! | [`PackedA`], [`gemm_packed_a`] | the same with `op(A)` packed once for many products |
//! | [`tanh_inplace`] | SIMD `tanh` over a slice |
//! | [`rnn_forward_window`], [`rnn_backward_window`] | the tanh recurrence over a window (`h_t = tanh(x_t Wx + h_{t-1} Wh + b)`, given `x_t Wx`) and its gradient |
//! | [`lstm_forward_window`], [`lstm_backward_window`] | the LSTM cell over a whole window: recurrent GEMM plus one fused pass over the gates per step |
//! | [`gru_forward_window`], [`gru_backward_window`] | the GRU cell (reset gate before `Wh`) over a whole window: two recurrent GEMMs and two fused passes per step |
//! | [`OutputLayer`] | the fused output layer: `hs * W + b`, softmax cross-entropy, backward, in L2-sized column panels |
//! | [`AdaptiveOutput`] | the adaptive softmax (head plus tail clusters of an [`AdaptiveShape`]): loss, backward, exact log-probabilities of every class |
//! | [`embedding_gather`], [`embedding_scatter_add`] | row gather / scatter-add by token id |
//! | [`dropout_forward`], [`dropout_backward`] | inverted dropout with masks keyed by (seed, window, site, element) |
//! | [`column_sums`] | bias gradients |
//! | [`sample_softmax`] | a class drawn from the softmax of a row of logits (generating text) |
//! | [`sgd_update`], [`sum_of_squares`], [`scale_inplace`], [`clip_factor`] | optimizer pieces |
//!
//! Results never depend on the number of rayon threads: every output element is computed by
//! one block of work in an order of operations that does not depend on how the work is cut,
//! and where partial sums must be combined (the output layer's `dhs`), they are grouped by the
//! problem's shape alone and added in a fixed order. The recurrences run by groups of batch
//! rows, each through the whole window, while there are rows enough for every thread (four
//! per group); on larger pools, when a step's product is large, at every step by blocks of the
//! product's columns and of hidden units instead.
//!
//! ```
//! use rnnlm::kernels::{gemm, tanh_inplace, Transpose};
//!
//! // One tanh RNN step for 2 rows: h = tanh(x Wx + h0 Wh), sizes D = 3, H = 2.
//! let (x, wx) = ([1.0, 0.0, 2.0, 0.5, 1.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
//! let (h0, wh) = ([0.5, -0.5, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]);
//! let mut h = [0.0f32; 4];
//! gemm(2, 2, 3, 1.0, &x, 3, Transpose::No, &wx, 2, Transpose::No, 0.0, &mut h, 2);
//! gemm(2, 2, 2, 1.0, &h0, 2, Transpose::No, &wh, 2, Transpose::No, 1.0, &mut h, 2);
//! tanh_inplace(&mut h);
//! assert!((h[0] - (1.1f32 + 0.5).tanh()).abs() < 1e-6);
//! ```

mod adaptive;
mod dropout;
mod embedding;
mod gemm;
mod gru;
mod lstm;
mod optim;
mod out_matrix;
mod output;
#[cfg(feature = "cli")]
mod peak;
mod recurrent_split;
mod rnn;
mod sample;
mod simd;

pub use adaptive::{AdaptiveOutput, AdaptivePacked, AdaptiveShape, AdaptiveTensor, Slot, MAX_CLUSTERS};
pub use dropout::{dropout_backward, dropout_forward, dropout_keeps, MaskKey};
pub(crate) use embedding::gather_pieces;
pub use embedding::{column_sums, embedding_gather, embedding_scatter_add};
pub use gemm::{gemm, gemm_packed, gemm_packed_a, gemm_parallel, GemmShape, PackedA, PackedB, Transpose};
pub use gru::{gru_backward_window, gru_forward_window, GRU_GATES};
pub use lstm::{lstm_backward_window, lstm_forward_window, LSTM_GATES};
pub(crate) use optim::update_pieces;
pub use optim::{clip_factor, scale_inplace, sgd_update, sum_of_squares};
pub use output::{OutputLayer, OutputUpdate, PackedWeights, WeightLayout, IGNORE_TARGET, PANEL_COLS};
#[cfg(feature = "cli")]
pub(crate) use peak::fma_loop;
pub(crate) use recurrent_split::recurrent_split;
pub use rnn::{rnn_backward_window, rnn_forward_window};
pub use sample::sample_softmax;
pub use simd::{simd_level, tanh_inplace, SimdLevel, TANH_MAX_ABS_ERROR, TANH_MAX_REL_ERROR};

/// Panics unless `operand` of `kernel` has `len` elements equal to the product of `dims`,
/// whose names are `shape` (such as `"batch x hidden"`). An overflowing product never matches.
#[inline(always)]
#[track_caller]
fn check_len(kernel: &str, operand: &str, len: usize, shape: &str, dims: &[usize]) {
    let expected = dims.iter().try_fold(1usize, |product, &dim| product.checked_mul(dim));
    if expected != Some(len) {
        wrong_len(kernel, operand, len, shape, dims);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn wrong_len(kernel: &str, operand: &str, len: usize, shape: &str, dims: &[usize]) -> ! {
    let values: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    let needed = match dims.iter().try_fold(1usize, |product, &dim| product.checked_mul(dim)) {
        Some(product) if dims.len() > 1 => format!("{} = {product}", values.join(" x ")),
        Some(product) => product.to_string(),
        None => format!("{} (which overflows)", values.join(" x ")),
    };
    panic!("{kernel}: {operand} has {len} elements, but {shape} is {needed}");
}

/// Panics unless `first` and `second` of `kernel` have the same length.
#[inline(always)]
#[track_caller]
fn check_same_len(kernel: &str, (first, first_len): (&str, usize), (second, second_len): (&str, usize)) {
    if first_len != second_len {
        panic!("{kernel}: {second} has {second_len} elements, but {first} has {first_len}");
    }
}

/// Panics unless every id is below `count` (`what` says what they index, such as "vocab").
#[inline]
#[track_caller]
fn check_ids(kernel: &str, operand: &str, ids: &[u32], (what, count): (&str, usize)) {
    if let Some(at) = ids.iter().position(|&id| id as usize >= count) {
        panic!("{kernel}: {operand}[{at}] is {}, not below {what} = {count}", ids[at]);
    }
}

/// Panics unless the packed operand `operand` of `kernel` is `rows x cols` as `expected`.
#[inline(always)]
#[track_caller]
fn check_packed(
    kernel: &str,
    operand: &str,
    packed: &PackedB,
    (trans, shape): (Transpose, &str),
    expected: (usize, usize),
) {
    let (rows, cols) = (packed.k(), packed.n());
    if (rows, cols) != expected {
        panic!("{kernel}: {operand} is packed {rows} x {cols}, but {shape} is {} x {}", expected.0, expected.1);
    }
    let how = |t: Transpose| match t {
        Transpose::No => "as stored (Transpose::No)",
        Transpose::Yes => "transposed (Transpose::Yes)",
    };
    match packed.transpose() {
        Some(got) if got == trans => {}
        Some(got) => {
            panic!("{kernel}: {operand} was packed {}, but the kernel takes it packed {}", how(got), how(trans))
        }
        None => panic!("{kernel}: {operand} was never packed"),
    }
}

/// Panics unless every target is a class below `classes` or [`IGNORE_TARGET`].
#[inline]
#[track_caller]
fn check_targets(kernel: &str, targets: &[i32], classes: usize) {
    let valid = |t: i32| t == IGNORE_TARGET || (0..classes as i64).contains(&(t as i64));
    if let Some(at) = targets.iter().position(|&t| !valid(t)) {
        panic!(
            "{kernel}: targets[{at}] is {}, neither a class below classes = {classes} nor IGNORE_TARGET ({IGNORE_TARGET})",
            targets[at]
        );
    }
}

/// A vector of `len` copies of `value`, or `None` if the length overflowed or the memory cannot
/// be had: the kernels' buffers are sized by their callers, who turn `None` into an error.
fn filled<T: Clone>(len: Option<usize>, value: T) -> Option<Vec<T>> {
    let len = len?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, value);
    Some(v)
}

/// `len` zeros, or `None` if the length overflowed or the memory cannot be had. Unlike
/// [`filled`], the memory comes from the allocator already zeroed, which for large buffers
/// means pages the operating system provides only when they are first written: a buffer
/// sized for the worst case (a softmax's logits when every row of a window falls into the
/// largest cluster) is memory in use only as far as it is written.
pub(crate) fn lazy_zeros(len: Option<usize>) -> Option<Vec<f32>> {
    let len = len?;
    // `vec!` aborts when the memory cannot be had; asking first turns that into `None`.
    Vec::<f32>::new().try_reserve_exact(len).ok()?;
    Some(vec![0.0; len])
}

/// max |got - want| / max |want|: a normwise relative error, meaningful where single elements
/// cancel to nearly nothing.
#[cfg(test)]
fn normwise_error(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs())) / scale
}

/// Panics unless every named result is within `tolerance` (normwise) of its definition.
#[cfg(test)]
fn assert_near(label: &str, tolerance: f64, results: &[(&str, &[f32], &[f64])]) {
    for (name, got, want) in results {
        let error = normwise_error(got, want);
        assert!(error < tolerance, "{label}: {name} off by {error:e}");
    }
}

/// Panics unless `results` gives the same bits on pools of 1, 2 and 3 threads.
#[cfg(test)]
fn assert_same_bits_for_any_thread_count(label: &str, results: impl Fn() -> Vec<f32> + Sync) {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        pool.install(&results).iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    let one = run(1);
    assert!(one == run(2) && one == run(3), "{label}: results differ by thread count");
}

/// Deterministic pseudo-random test values in [-1, 1) (xorshift), the same for every run.
#[cfg(test)]
fn test_values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
