//! `SimpleRnnlm` on flat buffers: Embedding -> tanh RNN -> Affine -> softmax cross-entropy.
//!
//! In the manner of llm.c: all parameters live in one `Vec<f32>` (the six tensors of the spec,
//! back to back, in the order of [`Tensor::ALL`]), the gradients in a second buffer of the same
//! layout, and every activation of a `batch x time` window in a workspace allocated once by
//! [`SimpleRnnlm::new`]. After the first call, [`SimpleRnnlm::train_step`] allocates nothing.
//!
//! Inside the workspace, the rows of a window are stored time-major (row `t * batch + b`), so
//! the hidden states of one time step are one contiguous `batch x hidden` block and the states
//! of the whole window one contiguous `(batch * time) x hidden` matrix for the affine GEMM. The
//! public API takes and returns windows batch-major (`[b][t]`, as the spec writes them).

use crate::kernels::{
    clip_factor, column_sums, embedding_gather, embedding_scatter_add, gemm_parallel, rnn_backward_window,
    rnn_forward_window, scale_inplace, sgd_update, sum_of_squares, OutputLayer, OutputUpdate, PackedMatrix, Transpose,
    IGNORE_TARGET,
};
use crate::rng::Rng;
use std::fmt;
use std::time::Instant;

/// The model's sizes: `V`, `D` and `H` of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Word-vector size `D`.
    pub embed: usize,
    /// Hidden size `H`.
    pub hidden: usize,
}

/// The shape of one truncated-BPTT window: `B` rows of `T` time steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Batch rows `B`.
    pub batch: usize,
    /// Time steps `T`.
    pub time: usize,
}

impl Window {
    /// Tokens in one window, `B * T`.
    pub fn tokens(&self) -> usize {
        self.batch * self.time
    }
}

/// The six parameter tensors, in their order in the flat buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tensor {
    /// `embed.W`, `V x D`.
    EmbedW,
    /// `rnn.Wx`, `D x H`.
    RnnWx,
    /// `rnn.Wh`, `H x H`.
    RnnWh,
    /// `rnn.b`, `H`.
    RnnB,
    /// `affine.W`, `H x V`.
    AffineW,
    /// `affine.b`, `V`.
    AffineB,
}

impl Tensor {
    /// All tensors in buffer order.
    pub const ALL: [Tensor; 6] =
        [Tensor::EmbedW, Tensor::RnnWx, Tensor::RnnWh, Tensor::RnnB, Tensor::AffineW, Tensor::AffineB];

    /// The name used by the spec and by checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Tensor::EmbedW => "embed.W",
            Tensor::RnnWx => "rnn.Wx",
            Tensor::RnnWh => "rnn.Wh",
            Tensor::RnnB => "rnn.b",
            Tensor::AffineW => "affine.W",
            Tensor::AffineB => "affine.b",
        }
    }

    /// The shape (rows, columns); vectors have one row.
    pub fn shape(self, dims: Dims) -> (usize, usize) {
        let Dims { vocab, embed, hidden } = dims;
        match self {
            Tensor::EmbedW => (vocab, embed),
            Tensor::RnnWx => (embed, hidden),
            Tensor::RnnWh => (hidden, hidden),
            Tensor::RnnB => (1, hidden),
            Tensor::AffineW => (hidden, vocab),
            Tensor::AffineB => (1, vocab),
        }
    }

    /// The shape as the spec and checkpoints write it: `[rows, cols]` for matrices, `[len]` for
    /// the two bias vectors.
    pub fn spec_shape(self, dims: Dims) -> Vec<usize> {
        let (rows, cols) = self.shape(dims);
        match self {
            Tensor::RnnB | Tensor::AffineB => vec![cols],
            _ => vec![rows, cols],
        }
    }

    /// The element range of this tensor in the flat parameter (or gradient) buffer.
    pub fn range(self, dims: Dims) -> std::ops::Range<usize> {
        let mut start = 0;
        for tensor in Tensor::ALL {
            let (rows, cols) = tensor.shape(dims);
            if tensor == self {
                return start..start + rows * cols;
            }
            start += rows * cols;
        }
        unreachable!("every tensor is in Tensor::ALL")
    }
}

/// Named views of a flat parameter or gradient buffer.
struct Views<S> {
    embed_w: S,
    rnn_wx: S,
    rnn_wh: S,
    rnn_b: S,
    affine_w: S,
    affine_b: S,
}

/// Splits `buffer` into consecutive slices of the given lengths.
fn split_mut<const N: usize>(mut buffer: &mut [f32], lengths: [usize; N]) -> [&mut [f32]; N] {
    lengths.map(|len| {
        let (head, tail) = std::mem::take(&mut buffer).split_at_mut(len);
        buffer = tail;
        head
    })
}

fn tensor_lengths(dims: Dims) -> [usize; 6] {
    Tensor::ALL.map(|t| {
        let (rows, cols) = t.shape(dims);
        rows * cols
    })
}

fn views(mut buffer: &[f32], dims: Dims) -> Views<&[f32]> {
    let [embed_w, rnn_wx, rnn_wh, rnn_b, affine_w, affine_b] = tensor_lengths(dims).map(|len| {
        let (head, tail) = buffer.split_at(len);
        buffer = tail;
        head
    });
    Views { embed_w, rnn_wx, rnn_wh, rnn_b, affine_w, affine_b }
}

fn views_mut(buffer: &mut [f32], dims: Dims) -> Views<&mut [f32]> {
    let [embed_w, rnn_wx, rnn_wh, rnn_b, affine_w, affine_b] = split_mut(buffer, tensor_lengths(dims));
    Views { embed_w, rnn_wx, rnn_wh, rnn_b, affine_w, affine_b }
}

/// What can go wrong when building or driving a model.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelError {
    /// A size is zero or too large to allocate.
    InvalidSize { name: &'static str, value: usize, why: &'static str },
    /// A slice passed to the model has the wrong length.
    WrongLength { what: &'static str, expected: usize, got: usize },
    /// A token id is not in `0..vocab` (targets may also be `-1`).
    TokenOutOfRange { what: &'static str, row: usize, step: usize, id: i64, vocab: usize },
    /// A hyper-parameter has a value that makes no sense.
    InvalidHyperParameter { name: &'static str, value: f32, why: &'static str },
    /// `backward` was called before any `forward`.
    BackwardBeforeForward,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::InvalidSize { name, value, why } => write!(f, "invalid {name} {value}: {why}"),
            ModelError::WrongLength { what, expected, got } => {
                write!(f, "{what} has {got} elements, expected {expected}")
            }
            ModelError::TokenOutOfRange { what, row, step, id, vocab } => {
                write!(f, "{what} id {id} at batch row {row}, time step {step} is outside the vocabulary 0..{vocab}")
            }
            ModelError::InvalidHyperParameter { name, value, why } => write!(f, "invalid {name} {value}: {why}"),
            ModelError::BackwardBeforeForward => write!(f, "backward called before any forward pass"),
        }
    }
}

impl std::error::Error for ModelError {}

/// A zero-filled buffer, or an error instead of an abort when the memory cannot be had.
fn zeroed<T: Clone + Default>(name: &'static str, len: usize) -> Result<Vec<T>, ModelError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| ModelError::InvalidSize {
        name,
        value: len,
        why: "cannot allocate that many elements",
    })?;
    v.resize(len, T::default());
    Ok(v)
}

/// Every activation of one window, allocated once. Rows are time-major (`t * batch + b`).
#[derive(Clone)]
struct Workspace {
    /// Input ids, `B*T`.
    ids: Vec<u32>,
    /// Target ids or `-1`, `B*T`.
    targets: Vec<i32>,
    /// Gathered word vectors `x_t`, `B*T x D`.
    x: Vec<f32>,
    /// `T + 1` blocks of `B x H`: block 0 is the state carried in, block `t + 1` is `h_t`.
    states: Vec<f32>,
    /// `rnn.Wh`, packed for the forward recurrence, then transposed for the backward one.
    recurrent: PackedMatrix,
    /// The output layer's logits (in column panels) and scratch.
    output: OutputLayer,
    /// Loss of each row, `B*T`.
    row_loss: Vec<f32>,
    /// Gradient with respect to every `h_t`, overwritten in place by `dt`, `B*T x H`.
    dhs: Vec<f32>,
    /// Gradient with respect to the gathered word vectors, `B*T x D`.
    dx: Vec<f32>,
    /// Distinct ids of the last backward window, in order of first appearance: the only rows
    /// of the embedding gradient that may be non-zero.
    touched: Vec<u32>,
    /// `touched_mark[id]` is true while `id` is in `touched`.
    touched_mark: Vec<bool>,
}

/// Seconds spent in each part of the model since the last
/// [`reset_phase_times`](SimpleRnnlm::reset_phase_times): what `rnnlm bench` reports as the
/// split between the recurrent part and the output layer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Embedding, the RNN over time (forward and backward) and their weight gradients.
    pub rnn: f64,
    /// The affine layer, softmax and loss, forward and backward.
    pub affine: f64,
    /// Clipping and the SGD update.
    pub update: f64,
}

/// The SimpleRnnlm of `../shared/SPEC.md`, on flat buffers.
#[derive(Clone)]
pub struct SimpleRnnlm {
    dims: Dims,
    window: Window,
    params: Vec<f32>,
    grads: Vec<f32>,
    /// Hidden state carried between windows, `B x H` (batch-row order).
    state: Vec<f32>,
    ws: Workspace,
    times: PhaseTimes,
}

impl SimpleRnnlm {
    /// A model initialised as the spec says from `seed`, with a workspace for `window`.
    ///
    /// Initialisation draws standard normals from [`Rng::new(seed)`](Rng) for `embed.W`,
    /// `rnn.Wx`, `rnn.Wh` and `affine.W`, in that order, each row-major, and scales them by
    /// `1/100`, `1/sqrt(D)`, `1/sqrt(H)` and `1/sqrt(H)`; the biases start at zero.
    pub fn new(dims: Dims, window: Window, seed: u64) -> Result<Self, ModelError> {
        let mut model = Self::zeroed(dims, window)?;
        let mut rng = Rng::new(seed);
        let scales = [
            (Tensor::EmbedW, 0.01),
            (Tensor::RnnWx, 1.0 / (dims.embed as f64).sqrt()),
            (Tensor::RnnWh, 1.0 / (dims.hidden as f64).sqrt()),
            (Tensor::AffineW, 1.0 / (dims.hidden as f64).sqrt()),
        ];
        for (tensor, scale) in scales {
            for p in &mut model.params[tensor.range(dims)] {
                *p = (rng.normal() * scale) as f32;
            }
        }
        Ok(model)
    }

    /// A model with the given flat parameters (layout of [`Tensor::range`]).
    pub fn from_params(dims: Dims, window: Window, params: &[f32]) -> Result<Self, ModelError> {
        let mut model = Self::zeroed(dims, window)?;
        if params.len() != model.params.len() {
            return Err(ModelError::WrongLength {
                what: "parameter buffer",
                expected: model.params.len(),
                got: params.len(),
            });
        }
        model.params.copy_from_slice(params);
        Ok(model)
    }

    fn zeroed(dims: Dims, window: Window) -> Result<Self, ModelError> {
        let sizes = [
            ("vocabulary size", dims.vocab),
            ("embedding size", dims.embed),
            ("hidden size", dims.hidden),
            ("batch size", window.batch),
            ("time steps", window.time),
        ];
        for (name, value) in sizes {
            if value == 0 {
                return Err(ModelError::InvalidSize { name, value, why: "must be at least 1" });
            }
            if value > u32::MAX as usize {
                return Err(ModelError::InvalidSize { name, value, why: "must be below 2^32" });
            }
        }
        let too_big =
            |name| ModelError::InvalidSize { name, value: 0, why: "the buffers it needs overflow the address space" };
        let Dims { vocab: v, embed: d, hidden: h } = dims;
        let n = window.batch.checked_mul(window.time).ok_or(too_big("window"))?;
        let param_count = [v.checked_mul(d), d.checked_mul(h), h.checked_mul(h), Some(h), h.checked_mul(v), Some(v)]
            .into_iter()
            .try_fold(0usize, |acc, len| len.and_then(|len| acc.checked_add(len)))
            .ok_or(too_big("model"))?;
        let big = |a: usize, b: usize| a.checked_mul(b).ok_or(too_big("window"));
        let ws = Workspace {
            ids: zeroed("window", n)?,
            targets: zeroed("window", n)?,
            x: zeroed("window", big(n, d)?)?,
            states: zeroed("window", big(big(window.time + 1, window.batch)?, h)?)?,
            recurrent: PackedMatrix::new(h, h).ok_or(too_big("model"))?,
            output: OutputLayer::new(n, h, v).ok_or(ModelError::InvalidSize {
                name: "window",
                value: n,
                why: "the output layer's buffers cannot be allocated",
            })?,
            row_loss: zeroed("window", n)?,
            dhs: zeroed("window", big(n, h)?)?,
            dx: zeroed("window", big(n, d)?)?,
            touched: Vec::with_capacity(n.min(v)),
            touched_mark: zeroed("vocabulary", v)?,
        };
        Ok(SimpleRnnlm {
            dims,
            window,
            params: zeroed("model", param_count)?,
            grads: zeroed("model", param_count)?,
            state: zeroed("window", big(window.batch, h)?)?,
            ws,
            times: PhaseTimes::default(),
        })
    }

    /// Time spent per part of the model since the last reset.
    pub fn phase_times(&self) -> PhaseTimes {
        self.times
    }

    /// Starts the phase clocks from zero.
    pub fn reset_phase_times(&mut self) {
        self.times = PhaseTimes::default();
    }

    /// Sets the phase clocks (to what [`phase_times`](Self::phase_times) returned earlier).
    pub fn set_phase_times(&mut self, times: PhaseTimes) {
        self.times = times;
    }

    /// The model's sizes.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// The window shape the workspace was built for.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The flat parameter buffer (layout of [`Tensor::range`]).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The parameters, dropping everything else (the workspace is most of the memory).
    pub fn into_params(self) -> Vec<f32> {
        self.params
    }

    /// The flat parameter buffer, writable (for loading checkpoints or custom optimizers).
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The gradients of the last [`backward`](Self::backward), same layout as the parameters.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// One parameter tensor.
    pub fn param(&self, tensor: Tensor) -> &[f32] {
        &self.params[tensor.range(self.dims)]
    }

    /// The gradient of one parameter tensor.
    pub fn grad(&self, tensor: Tensor) -> &[f32] {
        &self.grads[tensor.range(self.dims)]
    }

    /// The hidden state carried into the next window, `B x H`, batch-row order.
    pub fn state(&self) -> &[f32] {
        &self.state
    }

    /// Replaces the carried hidden state (`B x H`).
    pub fn set_state(&mut self, state: &[f32]) -> Result<(), ModelError> {
        check_len("hidden state", self.state.len(), state.len())?;
        self.state.copy_from_slice(state);
        Ok(())
    }

    /// Zeroes the carried hidden state, as at the start of training or evaluation.
    pub fn reset_state(&mut self) {
        self.state.fill(0.0);
    }

    /// Forward pass over one window; returns the mean loss over the targets that are not `-1`
    /// (0 when every target is ignored) and leaves the loss gradient ready for
    /// [`backward`](Self::backward). `xs` and `ts` are `B x T`, batch-major (`[b][t]`).
    /// The hidden state is carried in from the previous window and out to the next.
    pub fn forward(&mut self, xs: &[u32], ts: &[i32]) -> Result<f32, ModelError> {
        self.load_window(xs, Some(ts))?;
        self.forward_hidden();
        let kept = self.ws.targets.iter().filter(|&&t| t != IGNORE_TARGET).count();
        let inv_n = if kept == 0 { 0.0 } else { 1.0 / kept as f32 };
        let p = views(&self.params, self.dims);
        let ws = &mut self.ws;
        let start = Instant::now();
        let hs = &ws.states[self.window.batch * self.dims.hidden..];
        ws.output.forward(hs, p.affine_w, p.affine_b, &ws.targets, inv_n, &mut ws.row_loss);
        self.times.affine += start.elapsed().as_secs_f64();
        let total: f64 = self.ws.row_loss.iter().map(|&l| l as f64).sum();
        Ok((total * inv_n as f64) as f32)
    }

    /// Next-token guesses for one window: `out[b][t]` is the argmax of the logits after input
    /// `xs[b][t]`. Advances the hidden state like [`forward`](Self::forward); clears the
    /// gradient of any earlier forward.
    pub fn predict(&mut self, xs: &[u32], out: &mut [u32]) -> Result<(), ModelError> {
        check_len("prediction output", self.window.tokens(), out.len())?;
        self.forward_without_loss(xs)?;
        for (row, position) in self.rows_and_positions() {
            out[position] = self.ws.output.argmax_row(row);
        }
        Ok(())
    }

    /// The logits (bias included) after every input of one window: `out[(b * T + t) * V + v]`
    /// for batch-major `xs[b][t]`. Advances the hidden state like [`forward`](Self::forward);
    /// clears the gradient of any earlier forward.
    pub fn logits(&mut self, xs: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let vocab = self.dims.vocab;
        check_len("logits output", self.window.tokens() * vocab, out.len())?;
        self.forward_without_loss(xs)?;
        for (row, position) in self.rows_and_positions() {
            self.ws.output.logits_row(row, &mut out[position * vocab..(position + 1) * vocab]);
        }
        Ok(())
    }

    /// The forward pass up to the logits, for inputs only; what `backward` could use is gone.
    fn forward_without_loss(&mut self, xs: &[u32]) -> Result<(), ModelError> {
        self.load_window(xs, None)?;
        self.forward_hidden();
        let p = views(&self.params, self.dims);
        let start = Instant::now();
        let hs = &self.ws.states[self.window.batch * self.dims.hidden..];
        self.ws.output.forward_logits(hs, p.affine_w, p.affine_b);
        self.times.affine += start.elapsed().as_secs_f64();
        Ok(())
    }

    /// `(row, position)` for every row of a window: `row = t * B + b` is its place in the
    /// (time-major) workspace, `position = b * T + t` its place in a batch-major window.
    fn rows_and_positions(&self) -> impl Iterator<Item = (usize, usize)> {
        let Window { batch, time } = self.window;
        (0..batch * time).map(move |row| {
            let (t, b) = (row / batch, row % batch);
            (row, b * time + t)
        })
    }

    /// Backward pass for the last forward window: overwrites every gradient.
    pub fn backward(&mut self) -> Result<(), ModelError> {
        self.backward_impl(None)
    }

    /// The backward pass. With `fold_lr = Some(lr)` the output layer is updated in place
    /// instead of storing its gradients ([`OutputUpdate::Sgd`]): `affine.W -= lr * dW` happens
    /// inside the GEMMs that compute `dW`, which saves writing the `H x V` gradient and sweeping
    /// it again for the update.
    fn backward_impl(&mut self, fold_lr: Option<f32>) -> Result<(), ModelError> {
        if !self.ws.output.ready_for_backward() {
            return Err(ModelError::BackwardBeforeForward);
        }
        let Dims { vocab, embed: d, hidden: h } = self.dims;
        let Window { batch, time } = self.window;
        let n = batch * time;
        let block = batch * h;
        let p = views_mut(&mut self.params, self.dims);
        let g = views_mut(&mut self.grads, self.dims);
        let Workspace { ids, x, states, recurrent, output, dhs, dx, touched, touched_mark, .. } = &mut self.ws;
        let (states, ids, x) = (&*states, &*ids, &*x);
        let (rnn_wh, rnn_wx) = (&*p.rnn_wh, &*p.rnn_wx);

        let start = Instant::now();
        let update = match fold_lr {
            Some(lr) => OutputUpdate::Sgd { w: p.affine_w, b: p.affine_b, lr },
            None => OutputUpdate::Gradients { w: p.affine_w, dw: g.affine_w, db: g.affine_b },
        };
        output.backward(&states[block..], update, dhs);
        let output_done = Instant::now();
        self.times.affine += (output_done - start).as_secs_f64();

        recurrent.pack(rnn_wh, h, Transpose::Yes);
        rnn_backward_window(batch, h, time, recurrent, states, dhs);
        let dts = &*dhs;
        let h_prevs = &states[..n * h];
        gemm_parallel(h, h, n, 1.0, h_prevs, h, Transpose::Yes, dts, h, Transpose::No, 0.0, g.rnn_wh, h);
        gemm_parallel(d, h, n, 1.0, x, d, Transpose::Yes, dts, h, Transpose::No, 0.0, g.rnn_wx, h);
        column_sums(n, h, dts, g.rnn_b);
        gemm_parallel(n, d, h, 1.0, dts, h, Transpose::No, rnn_wx, h, Transpose::Yes, 0.0, dx, d);

        // Only rows of the embedding gradient that a window touches are ever non-zero:
        // clear the last window's, then scatter this one's.
        for &id in touched.iter() {
            g.embed_w[id as usize * d..(id as usize + 1) * d].fill(0.0);
            touched_mark[id as usize] = false;
        }
        touched.clear();
        for &id in ids {
            if !touched_mark[id as usize] {
                touched_mark[id as usize] = true;
                touched.push(id);
            }
        }
        embedding_scatter_add(vocab, d, dx, ids, g.embed_w);
        self.times.rnn += output_done.elapsed().as_secs_f64();
        Ok(())
    }

    /// Forward, backward, optional global-norm clipping to `clip`, and the SGD update
    /// `p -= lr * g`. Returns the window's loss. Allocates nothing after the first call.
    ///
    /// Without clipping, the output layer's update is folded into its gradient GEMM, so its
    /// gradients are not stored: after such a step, [`grad`](Self::grad) of `affine.W` and
    /// `affine.b` is not this window's (call [`backward`](Self::backward) for gradients).
    pub fn train_step(&mut self, xs: &[u32], ts: &[i32], lr: f32, clip: Option<f32>) -> Result<f32, ModelError> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(ModelError::InvalidHyperParameter {
                name: "learning rate",
                value: lr,
                why: "must be a positive number",
            });
        }
        if let Some(max_norm) = clip {
            if !(max_norm.is_finite() && max_norm > 0.0) {
                return Err(ModelError::InvalidHyperParameter {
                    name: "clipping norm",
                    value: max_norm,
                    why: "must be a positive number",
                });
            }
        }
        let loss = self.forward(xs, ts)?;
        match clip {
            // Clipping needs every gradient before any update.
            Some(max_norm) => {
                self.backward()?;
                let start = Instant::now();
                if let Some(factor) = clip_factor(self.grad_norm(), max_norm) {
                    self.for_each_live_grad(true, |_, grads| scale_inplace(grads, factor));
                }
                self.for_each_live_grad(true, |params, grads| sgd_update(params, grads, lr));
                self.times.update += start.elapsed().as_secs_f64();
            }
            None => {
                self.backward_impl(Some(lr))?;
                let start = Instant::now();
                self.for_each_live_grad(false, |params, grads| sgd_update(params, grads, lr));
                self.times.update += start.elapsed().as_secs_f64();
            }
        }
        Ok(loss)
    }

    /// L2 norm of all gradients of the last backward pass.
    pub fn grad_norm(&mut self) -> f64 {
        let mut squares = 0.0;
        self.for_each_live_grad(true, |_, grads| squares += sum_of_squares(grads));
        squares.sqrt()
    }

    /// Calls `f(params, grads)` on every part of the buffers whose gradient may be non-zero:
    /// the dense tensors after `embed.W` (up to the output layer, unless `with_output_layer`),
    /// then each embedding row the last window touched.
    fn for_each_live_grad(&mut self, with_output_layer: bool, mut f: impl FnMut(&mut [f32], &mut [f32])) {
        let d = self.dims.embed;
        let dense_start = Tensor::RnnWx.range(self.dims).start;
        let dense_end = if with_output_layer { self.params.len() } else { Tensor::AffineW.range(self.dims).start };
        let (embed_params, dense_params) = self.params[..dense_end].split_at_mut(dense_start);
        let (embed_grads, dense_grads) = self.grads[..dense_end].split_at_mut(dense_start);
        f(dense_params, dense_grads);
        for &id in &self.ws.touched {
            let rows = id as usize * d..(id as usize + 1) * d;
            f(&mut embed_params[rows.clone()], &mut embed_grads[rows]);
        }
    }

    /// Validates a window and copies it into the workspace, time-major.
    fn load_window(&mut self, xs: &[u32], ts: Option<&[i32]>) -> Result<(), ModelError> {
        let Window { batch, time } = self.window;
        let vocab = self.dims.vocab;
        check_len("input window", batch * time, xs.len())?;
        if let Some(ts) = ts {
            check_len("target window", batch * time, ts.len())?;
        }
        for b in 0..batch {
            for t in 0..time {
                let id = xs[b * time + t];
                if id as usize >= vocab {
                    return Err(ModelError::TokenOutOfRange { what: "input", row: b, step: t, id: id as i64, vocab });
                }
                self.ws.ids[t * batch + b] = id;
                if let Some(ts) = ts {
                    let target = ts[b * time + t];
                    if target != IGNORE_TARGET && !(0..vocab as i64).contains(&(target as i64)) {
                        return Err(ModelError::TokenOutOfRange {
                            what: "target",
                            row: b,
                            step: t,
                            id: target as i64,
                            vocab,
                        });
                    }
                    self.ws.targets[t * batch + b] = target;
                }
            }
        }
        Ok(())
    }

    /// Embedding and the RNN over the window: fills `x` and `states`, and carries the state out.
    fn forward_hidden(&mut self) {
        let Dims { embed: d, hidden: h, .. } = self.dims;
        let Window { batch, time } = self.window;
        let n = batch * time;
        let block = batch * h;
        let p = views(&self.params, self.dims);
        let ws = &mut self.ws;

        let start = Instant::now();
        embedding_gather(self.dims.vocab, d, p.embed_w, &ws.ids, &mut ws.x);
        ws.states[..block].copy_from_slice(&self.state);
        gemm_parallel(
            n,
            h,
            d,
            1.0,
            &ws.x,
            d,
            Transpose::No,
            p.rnn_wx,
            h,
            Transpose::No,
            0.0,
            &mut ws.states[block..],
            h,
        );
        ws.recurrent.pack(p.rnn_wh, h, Transpose::No);
        rnn_forward_window(batch, h, time, &ws.recurrent, p.rnn_b, &mut ws.states);
        self.state.copy_from_slice(&ws.states[time * block..]);
        self.times.rnn += start.elapsed().as_secs_f64();
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), ModelError> {
    if expected == got {
        Ok(())
    } else {
        Err(ModelError::WrongLength { what, expected, got })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_needs_a_forward_with_the_loss() {
        let dims = Dims { vocab: 7, embed: 3, hidden: 4 };
        let mut model = SimpleRnnlm::new(dims, Window { batch: 2, time: 2 }, 1).unwrap();
        assert_eq!(model.backward(), Err(ModelError::BackwardBeforeForward));
        model.forward(&[1, 2, 3, 4], &[2, 3, 4, 5]).unwrap();
        assert_eq!(model.backward(), Ok(()));
        assert_eq!(model.backward(), Ok(()), "a second backward of the same forward");
        model.predict(&[1, 2, 3, 4], &mut [0; 4]).unwrap();
        assert_eq!(model.backward(), Err(ModelError::BackwardBeforeForward));
    }
}
