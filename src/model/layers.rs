//! One recurrent layer over a window: its buffers, allocated once, and its cell's kernels.
//!
//! Every cell is driven the same way by the model: the window's input projection `X * Wx`
//! goes into [`Recurrence::projection`] (one GEMM for the whole window), [`forward`] runs the
//! recurrence from the carried state, the layer above (or the output layer) reads
//! [`outputs`] and writes the gradient at them into [`output_grads`], and [`backward`] turns
//! it into the gradient at the pre-activations, [`pre_activation_grads`] (`da`), from which the
//! model computes `dWx`, `db` and the gradient at the layer's input; `dWh` depends on the cell
//! ([`wh_gradient`]).
//!
//! Rows are time-major (row `t * B + b`), so one time step's rows are one contiguous block.
//!
//! [`forward`]: Recurrence::forward
//! [`outputs`]: Recurrence::outputs
//! [`output_grads`]: Recurrence::output_grads
//! [`backward`]: Recurrence::backward
//! [`pre_activation_grads`]: Recurrence::pre_activation_grads
//! [`wh_gradient`]: Recurrence::wh_gradient

use super::arch::{Cell, Window};
use super::{zeroed, ModelError};
use crate::kernels::{
    gemm_parallel, gru_backward_window, gru_forward_window, lstm_backward_window, lstm_forward_window,
    rnn_backward_window, rnn_forward_window, GemmShape, PackedB, Transpose,
};

/// A recurrent layer's window buffers and passes; see the module doc for the order of calls.
pub(super) trait Recurrence: Send + Sync {
    /// A copy of the layer with its buffers as they are.
    fn boxed_clone(&self) -> Box<dyn Recurrence>;

    /// Where the input projection `X * Wx` (no bias) goes before [`forward`](Self::forward):
    /// `T*B x G*H`.
    fn projection(&mut self) -> &mut [f32];

    /// Runs the window. `state` is this layer's carried state (`h`, then `c` for the LSTM,
    /// each `B x H`): read at the start, replaced by the state after the last step. `wh` is
    /// `H x G*H`, `bias` is `G*H`.
    fn forward(&mut self, wh: &[f32], bias: &[f32], state: &mut [f32]);

    /// The layer's states and the gradient at them.
    fn states(&self) -> &States;
    fn states_mut(&mut self) -> &mut States;

    /// The hidden states `h_1 .. h_T` of the last forward, `T*B x H`.
    fn outputs(&self) -> &[f32] {
        self.states().outputs()
    }

    /// The gradient at each output, `T*B x H`, to be written before [`backward`](Self::backward).
    fn output_grads(&mut self) -> &mut [f32] {
        &mut self.states_mut().dhs
    }

    /// [`outputs`](Self::outputs) and [`output_grads`](Self::output_grads) at once (the output
    /// layer's backward pass reads the one and writes the other).
    fn outputs_and_grads(&mut self) -> (&[f32], &mut [f32]) {
        let states = self.states_mut();
        (&states.hs[states.block..], &mut states.dhs)
    }

    /// Backward through the window of the last forward; the state carried in gets no gradient.
    fn backward(&mut self, wh: &[f32]);

    /// The gradient at the pre-activations after [`backward`](Self::backward), `T*B x G*H`.
    fn pre_activation_grads(&self) -> &[f32];

    /// `dWh` (`H x G*H`, overwritten) of the last backward.
    fn wh_gradient(&self, dwh: &mut [f32]);

    /// The GEMMs the recurrence runs over a window, forward and backward (with `dWh`); the
    /// model adds the input projection and the gradients at `Wx` and at the input.
    fn gemms(&self) -> (Vec<GemmShape>, Vec<GemmShape>);

    /// Bytes of the layer's window buffers.
    fn buffer_bytes(&self) -> usize;
}

/// The bytes of `buffers` (of `f32`) and `packed` copies.
fn bytes_of(buffers: &[&Vec<f32>], packed: &[&PackedB]) -> usize {
    buffers.iter().map(|b| b.len() * size_of::<f32>()).sum::<usize>() + packed.iter().map(|p| p.bytes()).sum::<usize>()
}

/// The buffers of a layer with `cell` for windows of `window`, `hidden` units wide.
pub(super) fn new_layer(cell: Cell, hidden: usize, window: Window) -> Result<Box<dyn Recurrence>, ModelError> {
    let sizes = Sizes::new(hidden, window)?;
    Ok(match cell {
        Cell::Rnn => Box::new(RnnLayer::new(sizes)?),
        Cell::Lstm => Box::new(LstmLayer::new(sizes)?),
        Cell::Gru => Box::new(GruLayer::new(sizes)?),
    })
}

/// What every layer has: its hidden states over the window and the gradient at them.
#[derive(Clone)]
pub(super) struct States {
    /// `T + 1` blocks of `B x H`: the state carried in, then `h_1 .. h_T`.
    hs: Vec<f32>,
    /// `T` blocks of `B x H`: the gradient at each `h_t`.
    dhs: Vec<f32>,
    /// `B x H`: one block.
    block: usize,
}

impl States {
    fn new(sizes: Sizes) -> Result<Self, ModelError> {
        Ok(States { hs: sizes.buffer(sizes.time + 1, 1)?, dhs: sizes.buffer(sizes.time, 1)?, block: sizes.block })
    }

    /// `h_1 .. h_T`.
    fn outputs(&self) -> &[f32] {
        &self.hs[self.block..]
    }

    /// `h_0 .. h_{T-1}`: the state each step started from.
    fn previous(&self) -> &[f32] {
        &self.hs[..self.hs.len() - self.block]
    }

    /// The state carried in, and the one carried out after the last step.
    fn first_and_last(&mut self) -> (&mut [f32], &[f32]) {
        let block = self.block;
        let (first, rest) = self.hs.split_at_mut(block);
        (first, &rest[rest.len() - block..])
    }
}

/// The sizes every layer's buffers follow from.
#[derive(Clone, Copy)]
struct Sizes {
    batch: usize,
    hidden: usize,
    time: usize,
    /// `B x H`: one time step of states.
    block: usize,
}

impl Sizes {
    fn new(hidden: usize, window: Window) -> Result<Sizes, ModelError> {
        let too_big = ModelError::InvalidSize {
            name: "window",
            value: window.tokens(),
            why: "the recurrent layer's buffers overflow the address space",
        };
        let block = window.batch.checked_mul(hidden).ok_or(too_big.clone())?;
        // The largest buffer: T blocks of B x 4H.
        block.checked_mul(4).and_then(|b| b.checked_mul(window.time + 1)).ok_or(too_big)?;
        Ok(Sizes { batch: window.batch, hidden, time: window.time, block })
    }

    /// `blocks` blocks of `B x H`, times `width` gate blocks.
    fn buffer(&self, blocks: usize, width: usize) -> Result<Vec<f32>, ModelError> {
        zeroed("window", blocks * self.block * width)
    }

    /// The recurrent product of every step, `B x cols = B x k * k x cols`, forward (`T` steps)
    /// or backward (`T - 1`: the state carried in gets no gradient) with `Wh` transposed.
    fn step_gemm(&self, (cols, k): (usize, usize), backward: bool) -> GemmShape {
        let (steps, trans_b) =
            if backward { (self.time.saturating_sub(1), Transpose::Yes) } else { (self.time, Transpose::No) };
        GemmShape::new((self.batch, cols, k), Transpose::No, trans_b).times(steps)
    }

    /// `dWh`'s product for `cols` gate columns: `H x cols = (T*B x H)^T * T*B x cols`.
    fn wh_gradient_gemm(&self, cols: usize) -> GemmShape {
        GemmShape::new((self.hidden, cols, self.time * self.batch), Transpose::Yes, Transpose::No)
    }

    fn packed(&self, k: usize, n: usize) -> Result<PackedB, ModelError> {
        PackedB::new(k, n).ok_or(ModelError::InvalidSize {
            name: "hidden size",
            value: self.hidden,
            why: "the packed recurrent weights cannot be allocated",
        })
    }

    /// `dWh = H_prev^T * da` over the window, for the gate columns `da` holds (`da` and `dwh`
    /// with leading dimension `ld`): `h_prevs` is `h_0 .. h_{T-1}`, `T*B x H`.
    fn h_prev_product(&self, h_prevs: &[f32], da: &[f32], (cols, ld): (usize, usize), dwh: &mut [f32]) {
        let (n, h) = (self.time * self.batch, self.hidden);
        gemm_parallel(h, cols, n, 1.0, h_prevs, h, Transpose::Yes, da, ld, Transpose::No, 0.0, dwh, ld);
    }
}

/// The chapter's tanh cell. Its pre-activations and states share one buffer: the projection
/// goes into blocks `1..=T` of the states, which the recurrence turns into `h_1 .. h_T`; the
/// gradient at the outputs turns into `da` in place.
#[derive(Clone)]
struct RnnLayer {
    sizes: Sizes,
    states: States,
    /// `Wh`, packed for the forward recurrence, then transposed for the backward one.
    packed: PackedB,
}

impl RnnLayer {
    fn new(sizes: Sizes) -> Result<Self, ModelError> {
        Ok(RnnLayer { states: States::new(sizes)?, packed: sizes.packed(sizes.hidden, sizes.hidden)?, sizes })
    }
}

impl Recurrence for RnnLayer {
    fn boxed_clone(&self) -> Box<dyn Recurrence> {
        Box::new(self.clone())
    }

    fn states(&self) -> &States {
        &self.states
    }

    fn states_mut(&mut self) -> &mut States {
        &mut self.states
    }

    fn projection(&mut self) -> &mut [f32] {
        &mut self.states.hs[self.sizes.block..]
    }

    fn forward(&mut self, wh: &[f32], bias: &[f32], state: &mut [f32]) {
        let Sizes { batch, hidden, time, .. } = self.sizes;
        self.states.first_and_last().0.copy_from_slice(state);
        self.packed.pack(wh, hidden, Transpose::No);
        rnn_forward_window(batch, hidden, time, &self.packed, bias, &mut self.states.hs);
        state.copy_from_slice(self.states.first_and_last().1);
    }

    fn backward(&mut self, wh: &[f32]) {
        let Sizes { batch, hidden, time, .. } = self.sizes;
        self.packed.pack(wh, hidden, Transpose::Yes);
        rnn_backward_window(batch, hidden, time, &self.packed, &self.states.hs, &mut self.states.dhs);
    }

    fn pre_activation_grads(&self) -> &[f32] {
        &self.states.dhs
    }

    fn wh_gradient(&self, dwh: &mut [f32]) {
        let hidden = self.sizes.hidden;
        self.sizes.h_prev_product(self.states.previous(), &self.states.dhs, (hidden, hidden), dwh);
    }

    fn gemms(&self) -> (Vec<GemmShape>, Vec<GemmShape>) {
        let (sizes, h) = (&self.sizes, self.sizes.hidden);
        (vec![sizes.step_gemm((h, h), false)], vec![sizes.step_gemm((h, h), true), sizes.wh_gradient_gemm(h)])
    }

    fn buffer_bytes(&self) -> usize {
        bytes_of(&[&self.states.hs, &self.states.dhs], &[&self.packed])
    }
}

/// The LSTM cell: gates and cell states in buffers of their own beside the states.
#[derive(Clone)]
struct LstmLayer {
    sizes: Sizes,
    states: States,
    /// `T` blocks of `B x 4H`: the projection, then the activated gates, then `da`.
    gates: Vec<f32>,
    /// `T + 1` blocks of `B x H`: the carried `c`, then `c_1 .. c_T`.
    cs: Vec<f32>,
    /// `B x H` scratch: the gradient at the cell state being carried back.
    dc: Vec<f32>,
    /// `Wh` packed (`H x 4H`) and transposed (`4H x H`).
    wh: PackedB,
    wh_t: PackedB,
}

impl LstmLayer {
    fn new(sizes: Sizes) -> Result<Self, ModelError> {
        let h = sizes.hidden;
        Ok(LstmLayer {
            states: States::new(sizes)?,
            gates: sizes.buffer(sizes.time, 4)?,
            cs: sizes.buffer(sizes.time + 1, 1)?,
            dc: sizes.buffer(1, 1)?,
            wh: sizes.packed(h, 4 * h)?,
            wh_t: sizes.packed(4 * h, h)?,
            sizes,
        })
    }
}

impl Recurrence for LstmLayer {
    fn boxed_clone(&self) -> Box<dyn Recurrence> {
        Box::new(self.clone())
    }

    fn states(&self) -> &States {
        &self.states
    }

    fn states_mut(&mut self) -> &mut States {
        &mut self.states
    }

    fn projection(&mut self) -> &mut [f32] {
        &mut self.gates
    }

    fn forward(&mut self, wh: &[f32], bias: &[f32], state: &mut [f32]) {
        let Sizes { batch, hidden, time, block } = self.sizes;
        let (h, c) = state.split_at_mut(block);
        self.states.first_and_last().0.copy_from_slice(h);
        self.cs[..block].copy_from_slice(c);
        self.wh.pack(wh, 4 * hidden, Transpose::No);
        lstm_forward_window(batch, hidden, time, &self.wh, bias, &mut self.gates, &mut self.states.hs, &mut self.cs);
        h.copy_from_slice(self.states.first_and_last().1);
        c.copy_from_slice(&self.cs[time * block..]);
    }

    fn backward(&mut self, wh: &[f32]) {
        let Sizes { batch, hidden, time, .. } = self.sizes;
        self.wh_t.pack(wh, 4 * hidden, Transpose::Yes);
        let (cs, dhs) = (&self.cs, &mut self.states.dhs);
        lstm_backward_window(batch, hidden, time, &self.wh_t, cs, &mut self.gates, dhs, &mut self.dc);
    }

    fn pre_activation_grads(&self) -> &[f32] {
        &self.gates
    }

    fn wh_gradient(&self, dwh: &mut [f32]) {
        let width = 4 * self.sizes.hidden;
        self.sizes.h_prev_product(self.states.previous(), &self.gates, (width, width), dwh);
    }

    fn gemms(&self) -> (Vec<GemmShape>, Vec<GemmShape>) {
        let (sizes, h) = (&self.sizes, self.sizes.hidden);
        let forward = vec![sizes.step_gemm((4 * h, h), false)];
        (forward, vec![sizes.step_gemm((h, 4 * h), true), sizes.wh_gradient_gemm(4 * h)])
    }

    fn buffer_bytes(&self) -> usize {
        bytes_of(&[&self.states.hs, &self.states.dhs, &self.gates, &self.cs, &self.dc], &[&self.wh, &self.wh_t])
    }
}

/// The GRU cell: gates and every step's `r h` in buffers of their own beside the states; `Wh`
/// is packed as its two blocks, `[z r]` and `h~`.
#[derive(Clone)]
struct GruLayer {
    sizes: Sizes,
    states: States,
    /// `T` blocks of `B x 3H`: the projection, then the activated gates, then `da`.
    gates: Vec<f32>,
    /// `T` blocks of `B x H`: `r * h_{t-1}` of each step.
    rh: Vec<f32>,
    /// `B x H` scratch for `d(r h)`.
    drh: Vec<f32>,
    /// `Wh[:, z r]` (`H x 2H`) and `Wh[:, h~]` (`H x H`), packed, and both transposed.
    zr: PackedB,
    candidate: PackedB,
    zr_t: PackedB,
    candidate_t: PackedB,
}

impl GruLayer {
    fn new(sizes: Sizes) -> Result<Self, ModelError> {
        let h = sizes.hidden;
        Ok(GruLayer {
            states: States::new(sizes)?,
            gates: sizes.buffer(sizes.time, 3)?,
            rh: sizes.buffer(sizes.time, 1)?,
            drh: sizes.buffer(1, 1)?,
            zr: sizes.packed(h, 2 * h)?,
            candidate: sizes.packed(h, h)?,
            zr_t: sizes.packed(2 * h, h)?,
            candidate_t: sizes.packed(h, h)?,
            sizes,
        })
    }
}

impl Recurrence for GruLayer {
    fn boxed_clone(&self) -> Box<dyn Recurrence> {
        Box::new(self.clone())
    }

    fn states(&self) -> &States {
        &self.states
    }

    fn states_mut(&mut self) -> &mut States {
        &mut self.states
    }

    fn projection(&mut self) -> &mut [f32] {
        &mut self.gates
    }

    fn forward(&mut self, wh: &[f32], bias: &[f32], state: &mut [f32]) {
        let Sizes { batch, hidden, time, .. } = self.sizes;
        self.states.first_and_last().0.copy_from_slice(state);
        self.zr.pack(wh, 3 * hidden, Transpose::No);
        self.candidate.pack(&wh[2 * hidden..], 3 * hidden, Transpose::No);
        let packed = (&self.zr, &self.candidate);
        gru_forward_window(batch, hidden, time, packed, bias, &mut self.gates, &mut self.states.hs, &mut self.rh);
        state.copy_from_slice(self.states.first_and_last().1);
    }

    fn backward(&mut self, wh: &[f32]) {
        let Sizes { batch, hidden, time, .. } = self.sizes;
        self.zr_t.pack(wh, 3 * hidden, Transpose::Yes);
        self.candidate_t.pack(&wh[2 * hidden..], 3 * hidden, Transpose::Yes);
        let packed = (&self.zr_t, &self.candidate_t);
        let (hs, dhs) = (&self.states.hs, &mut self.states.dhs);
        gru_backward_window(batch, hidden, time, packed, hs, &mut self.gates, dhs, &mut self.drh);
    }

    fn pre_activation_grads(&self) -> &[f32] {
        &self.gates
    }

    /// `dWh[:, z r] = H_prev^T * da[:, z r]`, `dWh[:, h~] = (r h)^T * da[:, h~]`.
    fn wh_gradient(&self, dwh: &mut [f32]) {
        let hidden = self.sizes.hidden;
        let width = 3 * hidden;
        self.sizes.h_prev_product(self.states.previous(), &self.gates, (2 * hidden, width), dwh);
        self.sizes.h_prev_product(&self.rh, &self.gates[2 * hidden..], (hidden, width), &mut dwh[2 * hidden..]);
    }

    fn gemms(&self) -> (Vec<GemmShape>, Vec<GemmShape>) {
        let (sizes, h) = (&self.sizes, self.sizes.hidden);
        let forward = vec![sizes.step_gemm((2 * h, h), false), sizes.step_gemm((h, h), false)];
        // The candidate's product runs at every step (the reset gate needs it), `[z r]`'s only
        // where there is a state before.
        let candidate = GemmShape { times: sizes.time, ..sizes.step_gemm((h, h), true) };
        let backward = vec![
            candidate,
            sizes.step_gemm((h, 2 * h), true),
            sizes.wh_gradient_gemm(2 * h),
            sizes.wh_gradient_gemm(h),
        ];
        (forward, backward)
    }

    fn buffer_bytes(&self) -> usize {
        let buffers = [&self.states.hs, &self.states.dhs, &self.gates, &self.rh, &self.drh];
        bytes_of(&buffers, &[&self.zr, &self.candidate, &self.zr_t, &self.candidate_t])
    }
}
