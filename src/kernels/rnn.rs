//! The fused tanh-RNN time step, forward and backward.
//!
//! The input projection `x_t * Wx` does not depend on the hidden state, so the model computes
//! it for the whole window with one GEMM before the time loop; likewise the weight gradients
//! `dWx`, `dWh` and `db` are sums over the window that one GEMM (or one column sum) computes
//! after the backward time loop. What remains inside the loop is only what is truly
//! sequential: these two kernels.

use super::gemm::{gemm_parallel, Transpose};
use super::simd::{tanh, zip_map_inplace};
use wide::f32x8;

/// One forward time step: `h = tanh(h + h_prev * Wh + b)`.
///
/// Shapes (row-major): `h_prev` and `h` are `batch x hidden`, `wh` is `hidden x hidden`, `bias`
/// is `hidden`. On entry `h` holds the input projection `x_t * Wx` of this step; on return it
/// holds the new hidden state. The recurrent product is accumulated into `h` by GEMM, then one
/// pass over `h` adds the bias and applies `tanh` (see [`super::tanh_inplace`] for its accuracy).
pub fn rnn_step_forward(batch: usize, hidden: usize, h_prev: &[f32], wh: &[f32], bias: &[f32], h: &mut [f32]) {
    debug_assert_eq!(h_prev.len(), batch * hidden);
    debug_assert_eq!(wh.len(), hidden * hidden);
    debug_assert_eq!(bias.len(), hidden);
    debug_assert_eq!(h.len(), batch * hidden);
    gemm_parallel(batch, hidden, hidden, 1.0, h_prev, hidden, Transpose::No, wh, hidden, Transpose::No, 1.0, h, hidden);
    for row in h.chunks_exact_mut(hidden) {
        zip_map_inplace(row, bias, |pre, b| tanh(pre + b));
    }
}

/// One backward time step: `dt = dh * (1 - h^2)`, then `dh_prev += dt * Wh^T`.
///
/// Shapes (row-major): `h`, `dh` and `dh_prev` are `batch x hidden`, `wh` is `hidden x hidden`.
/// `h` is this step's output `h_t`. On entry `dh` holds the whole loss gradient with respect to
/// `h_t` (from the affine layer plus the recurrence from step `t + 1`); on return it holds
/// `dt`, the gradient at the pre-activation. `dh_prev`, when given, is the gradient with respect
/// to `h_{t-1}` being accumulated; pass `None` at the first step of a truncated window, whose
/// incoming state receives no gradient.
pub fn rnn_step_backward(
    batch: usize,
    hidden: usize,
    h: &[f32],
    wh: &[f32],
    dh: &mut [f32],
    dh_prev: Option<&mut [f32]>,
) {
    debug_assert_eq!(h.len(), batch * hidden);
    debug_assert_eq!(wh.len(), hidden * hidden);
    debug_assert_eq!(dh.len(), batch * hidden);
    zip_map_inplace(dh, h, |d, h| d * (f32x8::ONE - h * h));
    if let Some(dh_prev) = dh_prev {
        debug_assert_eq!(dh_prev.len(), batch * hidden);
        gemm_parallel(
            batch,
            hidden,
            hidden,
            1.0,
            dh,
            hidden,
            Transpose::No,
            wh,
            hidden,
            Transpose::Yes,
            1.0,
            dh_prev,
            hidden,
        );
    }
}
