//! The recurrent language model on flat buffers: Embedding -> a stack of recurrent layers
//! (tanh, LSTM or GRU) -> Affine -> softmax cross-entropy, or an adaptive softmax instead of the
//! last two (the output layer is behind one interface, `output`).
//!
//! In the manner of llm.c: all parameters live in one `Vec<f32>` (the tensors of
//! [`Arch::tensors`], back to back), the gradients in a second buffer of the same layout, and
//! every activation of a `batch x time` window in a workspace allocated once by
//! [`Rnnlm::new`]. After the first call, [`Rnnlm::train_step`] allocates nothing.
//!
//! Inside the workspace, the rows of a window are stored time-major (row `t * batch + b`), so
//! the hidden states of one time step are one contiguous `batch x hidden` block and the states
//! of the whole window one contiguous `(batch * time) x hidden` matrix: the input of the next
//! layer and of the affine GEMM as it is, never copied per step. The public API takes and
//! returns windows batch-major (`[b][t]`, as the spec writes them).
//!
//! ```
//! use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};
//!
//! // A one-layer LSTM over 50 words, windows of 2 rows x 3 steps.
//! let dims = Dims { vocab: 50, embed: 8, hidden: 8 };
//! let arch = Arch { dims, cell: Cell::Lstm, layers: 1, tied: false, output: Softmax::Full };
//! let mut model = Rnnlm::new(arch, Window { batch: 2, time: 3 }, 1)?;
//! let (xs, ts) = ([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7]);
//! let first = model.train_step(&xs, &ts, 0.5, Some(0.25))?;
//! model.reset_state();
//! let second = model.train_step(&xs, &ts, 0.5, Some(0.25))?;
//! assert!(second < first); // one step on the same window lowers its loss
//! # Ok::<(), rnnlm::ModelError>(())
//! ```

mod arch;
mod batch_share;
mod cost;
mod dropout;
mod error;
mod layers;
mod open_grads;
mod output;
mod passes;
mod phase_clocks;
mod ranking;
mod workspace;

pub use arch::{Arch, Cell, Dims, Softmax, Tensor, Window};
pub use batch_share::{share_rows, BatchShare};
pub use cost::{LayerCost, Phase, WindowCost};
pub use error::ModelError;

use crate::kernels::{clip_factor, scale_inplace, sgd_update, sum_of_squares, AdaptiveTensor, IGNORE_TARGET};
use crate::rng::Rng;
use dropout::DropoutSites;
use layers::Recurrence;
use open_grads::OpenGradients;
pub(crate) use phase_clocks::PhaseTimes;
use workspace::{state_len, Workspace};

/// A zero-filled buffer, or an error instead of an abort when the memory cannot be had.
fn zeroed<T: Clone + Default>(name: &'static str, len: usize) -> Result<Vec<T>, ModelError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| cannot_allocate(name, len))?;
    v.resize(len, T::default());
    Ok(v)
}

/// A zero-filled buffer whose pages the operating system provides only when they are first
/// written: the gradient buffer, of which a step writes the embedding's rows of the window's
/// words alone (with a vocabulary of 267,735 words and D = 512, the 548 MB of the embedding's
/// gradient would otherwise all be memory in use).
fn lazily_zeroed(name: &'static str, len: usize) -> Result<Vec<f32>, ModelError> {
    crate::kernels::lazy_zeros(Some(len)).ok_or_else(|| cannot_allocate(name, len))
}

fn cannot_allocate(name: &'static str, len: usize) -> ModelError {
    ModelError::InvalidSize { name, value: len, why: "cannot allocate that many elements" }
}

/// The language model: embedding, stacked tanh, LSTM or GRU layers (with dropout between them
/// and optionally tied weights), affine and softmax cross-entropy, on flat buffers.
#[derive(Clone)]
pub struct Rnnlm {
    arch: Arch,
    window: Window,
    params: Vec<f32>,
    grads: Vec<f32>,
    /// The state carried between windows: per layer, bottom first, `h` (`B x H`) and for the
    /// LSTM then `c` (`B x H`), batch-row order.
    state: Vec<f32>,
    /// Dropout's ratio, seed and buffers, when training drops out.
    dropout: Option<DropoutSites>,
    /// Training windows so far: the index of the next training window's dropout masks.
    training_windows: u64,
    /// The gradient norm the last training step computed (it does when it clips).
    last_grad_norm: Option<f64>,
    ws: Workspace,
    /// The phase clocks, while they run ([`set_phase_timing`](Self::set_phase_timing)); off,
    /// a step reads no clock.
    times: Option<PhaseTimes>,
    /// With an adaptive softmax: `order[rank]` is the word id of each rank, and `rank[id]` its
    /// inverse (empty with a full softmax, whose classes are the ids).
    word_order: Vec<u32>,
    word_rank: Vec<u32>,
    /// Set while code outside the crate reads and writes the gradients
    /// ([`set_open_gradients`](Self::set_open_gradients)).
    open_grads: Option<OpenGradients>,
    /// Scratch of [`train_step_shared`](Self::train_step_shared)'s sums over processes.
    share_buffers: batch_share::ShareBuffers,
}

impl Rnnlm {
    /// A model initialised as the spec says from `seed`, with a workspace for `window`. A bare
    /// [`Dims`] is the chapter's Rnnlm (one tanh layer).
    ///
    /// Initialisation draws standard normals from [`Rng::new(seed)`](Rng) for `embed.W`, then
    /// each layer's `Wx` and `Wh`, then `affine.W`, each row-major, and scales them by `1/100`,
    /// `1/sqrt(input size)`, `1/sqrt(H)` and `1/sqrt(H)`; the biases start at zero. For one
    /// tanh layer this is the order of the spec's table.
    pub fn new(arch: impl Into<Arch>, window: Window, seed: u64) -> Result<Self, ModelError> {
        let mut model = Self::zeroed(arch.into(), window)?;
        let arch = model.arch;
        let mut rng = Rng::new(seed);
        let hidden_scale = 1.0 / (arch.dims.hidden as f64).sqrt();
        for tensor in arch.tensors() {
            let scale = match tensor {
                Tensor::EmbedW => 0.01,
                Tensor::Wx(layer) => 1.0 / (arch.input_size(layer) as f64).sqrt(),
                Tensor::Wh(_) | Tensor::AffineW => hidden_scale,
                // Every weight by its input size: the head and projections read H values,
                // cluster k's output weights its projection's (the columns of its matrix).
                Tensor::Adaptive(AdaptiveTensor::HeadWeight | AdaptiveTensor::Projection(_)) => hidden_scale,
                Tensor::Adaptive(AdaptiveTensor::ClusterWeight(_)) => 1.0 / (arch.shape(tensor).1 as f64).sqrt(),
                Tensor::B(_) | Tensor::AffineB | Tensor::Adaptive(AdaptiveTensor::HeadBias) => continue,
            };
            for p in &mut model.params[arch.range(tensor)] {
                *p = (rng.normal() * scale) as f32;
            }
        }
        Ok(model)
    }

    /// A model with the given flat parameters (layout of [`Arch::range`]). With an adaptive
    /// softmax the words are ranked as their ids are until [`set_word_order`](Self::set_word_order)
    /// says otherwise (`Checkpoint::model`, with the `checkpoint` feature, sets the
    /// checkpoint's ranking; [`with_window`](Self::with_window) keeps a model's).
    pub fn from_params(arch: impl Into<Arch>, window: Window, params: &[f32]) -> Result<Self, ModelError> {
        let mut model = Self::zeroed(arch.into(), window)?;
        check_len("parameter buffer", model.params.len(), params.len())?;
        model.params.copy_from_slice(params);
        Ok(model)
    }

    fn zeroed(arch: Arch, window: Window) -> Result<Self, ModelError> {
        check_sizes(&[
            ("vocabulary size", arch.dims.vocab),
            ("embedding size", arch.dims.embed),
            ("hidden size", arch.dims.hidden),
            ("layer count", arch.layers),
        ])?;
        check_window(window)?;
        let too_big =
            |name| ModelError::InvalidSize { name, value: 0, why: "the buffers it needs overflow the address space" };
        let Dims { vocab: v, embed: d, hidden: h } = arch.dims;
        if arch.tied && d != h {
            return Err(ModelError::InvalidSize {
                name: "embedding size",
                value: d,
                why: "must equal the hidden size when the weights are tied",
            });
        }
        if let Some(shape) = arch.adaptive() {
            let why = if arch.tied {
                "tied weights need the full softmax: the adaptive softmax has no H x V matrix to share with the embedding"
                    .to_owned()
            } else if (shape.vocab(), shape.hidden()) != (v, h) {
                format!(
                    "the adaptive softmax is shaped for {} words and {} hidden units, the model has {v} and {h}",
                    shape.vocab(),
                    shape.hidden()
                )
            } else {
                String::new()
            };
            if !why.is_empty() {
                return Err(ModelError::InvalidArchitecture { why });
            }
        }
        let param_count = arch.param_count().ok_or(too_big("model"))?;
        let ws = Workspace::new(arch, window)?;
        let state = zeroed("window", state_len(arch, window)?)?;
        let identity = || (0..v as u32).collect::<Vec<u32>>();
        let (word_order, word_rank) =
            if arch.adaptive().is_some() { (identity(), identity()) } else { (Vec::new(), Vec::new()) };
        Ok(Rnnlm {
            arch,
            window,
            params: zeroed("model", param_count)?,
            grads: lazily_zeroed("model", param_count)?,
            state,
            dropout: None,
            training_windows: 0,
            last_grad_norm: None,
            ws,
            times: None,
            word_order,
            word_rank,
            open_grads: None,
            share_buffers: Default::default(),
        })
    }

    /// Trains with inverted dropout of ratio `p` (`0 <= p < 1`; 0 turns it off) on the word
    /// vectors, between layers and before the affine layer, with masks drawn from `seed`, the
    /// training window and the element ([`crate::kernels::dropout_forward`]). Only
    /// [`forward_training`](Self::forward_training) and [`train_step`](Self::train_step) drop
    /// out. Allocates the dropout buffers.
    pub fn set_dropout(&mut self, p: f32, seed: u64) -> Result<(), ModelError> {
        if !(0.0..1.0).contains(&p) {
            return Err(ModelError::InvalidHyperParameter { name: "dropout", value: p, why: "must be in [0, 1)" });
        }
        self.dropout = if p == 0.0 { None } else { Some(DropoutSites::new(self.arch, self.window, p, seed)?) };
        Ok(())
    }

    /// The dropout ratio and seed, if the model trains with dropout.
    pub fn dropout(&self) -> Option<(f32, u64)> {
        self.dropout.as_ref().map(|d| (d.p(), d.seed()))
    }

    /// Training windows run so far ([`forward_training`](Self::forward_training) calls): the
    /// next one's dropout masks are those of this index.
    pub fn training_windows(&self) -> u64 {
        self.training_windows
    }

    /// Sets the training-window count (to resume a run where its dropout masks left off).
    pub fn set_training_windows(&mut self, windows: u64) {
        self.training_windows = windows;
    }

    /// The model's sizes.
    pub fn dims(&self) -> Dims {
        self.arch.dims
    }

    /// The model's architecture: sizes, cell, layers.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The window shape the workspace was built for.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The flat parameter buffer (layout of [`Arch::range`]).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The parameters, dropping everything else (the workspace is most of the memory).
    pub fn into_params(self) -> Vec<f32> {
        self.params
    }

    /// The flat parameter buffer, writable (for loading checkpoints or custom optimizers).
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.ws.output.params_changed();
        &mut self.params
    }

    /// The gradients of the last [`backward`](Self::backward), same layout as the parameters.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// One parameter tensor.
    pub fn param(&self, tensor: Tensor) -> &[f32] {
        &self.params[self.arch.range(tensor)]
    }

    /// The gradient of one parameter tensor.
    pub fn grad(&self, tensor: Tensor) -> &[f32] {
        &self.grads[self.arch.range(tensor)]
    }

    /// The state carried into the next window: per layer, bottom first, `h` (`B x H`) and, for
    /// the LSTM, `c` (`B x H`), batch-row order.
    pub fn state(&self) -> &[f32] {
        &self.state
    }

    /// Replaces the carried state (layout of [`state`](Self::state)).
    pub fn set_state(&mut self, state: &[f32]) -> Result<(), ModelError> {
        check_len("hidden state", self.state.len(), state.len())?;
        self.state.copy_from_slice(state);
        Ok(())
    }

    /// Zeroes the carried state, as at the start of training or evaluation.
    pub fn reset_state(&mut self) {
        self.state.fill(0.0);
    }

    /// Zeroes the carried state of batch row `row` alone (its `h` in every layer, and `c` for
    /// the LSTM): that row starts a new sequence at the next window, the others go on.
    pub fn reset_state_row(&mut self, row: usize) -> Result<(), ModelError> {
        let Window { batch, .. } = self.window;
        if row >= batch {
            return Err(ModelError::InvalidSize { name: "batch row", value: row, why: "is not below the batch size" });
        }
        let hidden = self.arch.dims.hidden;
        for block in self.state.chunks_exact_mut(batch * hidden) {
            block[row * hidden..(row + 1) * hidden].fill(0.0);
        }
        Ok(())
    }

    /// Forward pass over one window; returns the mean loss over the targets that are not `-1`
    /// (0 when every target is ignored) and leaves the loss gradient ready for
    /// [`backward`](Self::backward). `xs` and `ts` are `B x T`, batch-major (`[b][t]`).
    /// The state is carried in from the previous window and out to the next. No dropout: this
    /// is the forward pass of evaluation ([`forward_training`](Self::forward_training) is
    /// training's).
    pub fn forward(&mut self, xs: &[u32], ts: &[i32]) -> Result<f32, ModelError> {
        self.forward_with_loss(xs, ts, false, None)
    }

    /// The forward pass of a training step: [`forward`](Self::forward) with dropout, when the
    /// model has it ([`set_dropout`](Self::set_dropout)), drawing the masks of training window
    /// [`training_windows`](Self::training_windows), which it then counts.
    pub fn forward_training(&mut self, xs: &[u32], ts: &[i32]) -> Result<f32, ModelError> {
        let loss = self.forward_with_loss(xs, ts, true, None)?;
        self.training_windows += 1;
        Ok(loss)
    }

    /// Each target's loss `-ln p(target)` for one window, into `losses` (`B x T`, batch-major
    /// like `ts`; 0 where the target is ignored): what scoring text needs. The same values, bit
    /// for bit, as the losses [`forward`](Self::forward) averages, but nothing is kept for a
    /// backward pass (so less is written); advances the state like `forward`.
    pub fn forward_losses(&mut self, xs: &[u32], ts: &[i32], losses: &mut [f32]) -> Result<(), ModelError> {
        check_len("loss output", self.window.tokens(), losses.len())?;
        self.forward_loss_only(xs, ts)?;
        for (row, position) in self.rows_and_positions() {
            losses[position] = self.ws.row_loss[row];
        }
        Ok(())
    }

    /// Next-token guesses for one window: `out[b][t]` is the argmax of the logits after input
    /// `xs[b][t]`. Advances the state like [`forward`](Self::forward); clears the gradient of
    /// any earlier forward.
    pub fn predict(&mut self, xs: &[u32], out: &mut [u32]) -> Result<(), ModelError> {
        check_len("prediction output", self.window.tokens(), out.len())?;
        self.forward_without_loss(xs)?;
        for (row, position) in self.rows_and_positions() {
            let class = self.ws.output.argmax_row(row);
            out[position] = self.word_order.get(class as usize).copied().unwrap_or(class);
        }
        Ok(())
    }

    /// The logits (bias included) after every input of one window: `out[(b * T + t) * V + v]`
    /// for batch-major `xs[b][t]`; with an adaptive softmax, the log-probabilities of every
    /// word (exact: their softmax is the same distribution). Advances the state like
    /// [`forward`](Self::forward); clears the gradient of any earlier forward.
    pub fn logits(&mut self, xs: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let vocab = self.arch.dims.vocab;
        check_len("logits output", self.window.tokens() * vocab, out.len())?;
        self.forward_without_loss(xs)?;
        for (row, position) in self.rows_and_positions() {
            let out = &mut out[position * vocab..(position + 1) * vocab];
            if self.word_order.is_empty() {
                self.ws.output.scores_row(row, out);
            } else {
                self.ws.output.scores_row(row, &mut self.ws.class_scores);
                for (&score, &id) in self.ws.class_scores.iter().zip(&self.word_order) {
                    out[id as usize] = score;
                }
            }
        }
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

    /// Forward, backward, optional global-norm clipping to `clip`, and the SGD update
    /// `p -= lr * g`. Returns the window's loss. Allocates nothing after the first call.
    ///
    /// Without clipping, the output layer's update is folded into its gradient GEMM, so its
    /// gradients are not stored: after such a step, [`grad`](Self::grad) of `affine.W` and
    /// `affine.b` is not this window's (call [`backward`](Self::backward) for gradients).
    pub fn train_step(&mut self, xs: &[u32], ts: &[i32], lr: f32, clip: Option<f32>) -> Result<f32, ModelError> {
        check_step(lr, clip)?;
        self.ws.output.params_changed();
        let loss = self.forward_training(xs, ts)?;
        // The output layer's update folds into its gradient GEMMs unless clipping needs every
        // gradient before any update, or the weights are tied and the embedding's gradient is
        // the sum of both uses.
        let fold = clip.is_none() && !self.arch.tied;
        if fold {
            self.backward_impl(Some(lr))?;
        } else {
            self.backward()?;
        }
        self.clip_and_update(lr, clip, !fold);
        Ok(loss)
    }

    /// The end of a training step: clipping to the global norm `clip`, then `p -= lr * g` over
    /// every live gradient (the output layer's too unless its update was folded into its
    /// backward pass).
    fn clip_and_update(&mut self, lr: f32, clip: Option<f32>, with_output_layer: bool) {
        let start = self.clock();
        self.last_grad_norm = clip.map(|_| self.grad_norm());
        if let Some(factor) = clip.and_then(|max_norm| clip_factor(self.last_grad_norm.unwrap_or(0.0), max_norm)) {
            self.for_each_live_grad(true, |_, grads| scale_inplace(grads, factor));
        }
        self.for_each_live_grad(with_output_layer, |params, grads| sgd_update(params, grads, lr));
        self.add_time(start, Phase::Update);
    }

    /// With an adaptive softmax, the rows of the last window with a target that each tail
    /// cluster computed (its work; clusters past the last count 0). `None` with a full softmax.
    pub fn cluster_rows(&self) -> Option<[usize; crate::kernels::MAX_CLUSTERS]> {
        self.ws.output.cluster_rows()
    }

    /// The global gradient norm of the last [`train_step`](Self::train_step), when it clipped
    /// (without clipping the output layer's gradient is folded into its update and never
    /// formed whole).
    pub fn last_grad_norm(&self) -> Option<f64> {
        self.last_grad_norm
    }

    /// L2 norm of all gradients of the last backward pass.
    pub fn grad_norm(&mut self) -> f64 {
        let mut squares = 0.0;
        self.for_each_live_grad(true, |_, grads| squares += sum_of_squares(grads));
        squares.sqrt()
    }

    /// Calls `f(params, grads)` on every part of the buffers whose gradient may be non-zero:
    /// the dense tensors after `embed.W` (every recurrent layer, then the output layer unless
    /// `with_output_layer` is false), then each embedding row the last window touched. With
    /// tied weights `embed.W` is dense too (the output layer's gradient reaches every row), and
    /// so is it with open gradients; open and tied, the embedding's own gradient comes last.
    fn for_each_live_grad(&mut self, with_output_layer: bool, mut f: impl FnMut(&mut [f32], &mut [f32])) {
        let d = self.arch.dims.embed;
        let embed_dense = self.arch.tied || self.open_grads.is_some();
        let dense_start = if embed_dense { 0 } else { self.arch.range(Tensor::Wx(0)).start };
        let dense_end = if with_output_layer { self.params.len() } else { self.arch.output_range().start };
        let (embed_params, dense_params) = self.params[..dense_end].split_at_mut(dense_start);
        let (embed_grads, dense_grads) = self.grads[..dense_end].split_at_mut(dense_start);
        f(dense_params, dense_grads);
        if !embed_dense {
            for &id in &self.ws.touched {
                let rows = id as usize * d..(id as usize + 1) * d;
                f(&mut embed_params[rows.clone()], &mut embed_grads[rows]);
            }
        }
        if let Some(open) = self.open_grads.as_mut().filter(|open| !open.embedding_apart.is_empty()) {
            let embed = self.arch.range(Tensor::EmbedW);
            f(&mut self.params[embed], &mut open.embedding_apart);
        }
    }

    /// Validates a window and copies it into the workspace, time-major.
    fn load_window(&mut self, xs: &[u32], ts: Option<&[i32]>) -> Result<(), ModelError> {
        let Window { batch, time } = self.window;
        let vocab = self.arch.dims.vocab;
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
                    // The adaptive softmax's classes are ranks.
                    let class = match self.word_rank.get(target as usize) {
                        Some(&rank) if target != IGNORE_TARGET => rank as i32,
                        _ => target,
                    };
                    self.ws.targets[t * batch + b] = class;
                }
            }
        }
        Ok(())
    }
}

/// Each size at least 1 and below 2^32, or an error naming it.
fn check_sizes(sizes: &[(&'static str, usize)]) -> Result<(), ModelError> {
    for &(name, value) in sizes {
        if value == 0 {
            return Err(ModelError::InvalidSize { name, value, why: "must be at least 1" });
        }
        if value > u32::MAX as usize {
            return Err(ModelError::InvalidSize { name, value, why: "must be below 2^32" });
        }
    }
    Ok(())
}

/// The learning rate and clipping norm of a training step: both positive numbers.
fn check_step(lr: f32, clip: Option<f32>) -> Result<(), ModelError> {
    let positive = |name: &'static str, value: f32| {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(ModelError::InvalidHyperParameter { name, value, why: "must be a positive number" })
        }
    };
    positive("learning rate", lr)?;
    clip.map_or(Ok(()), |max_norm| positive("clipping norm", max_norm))
}

/// A window's sizes, and its token count within the address space.
fn check_window(window: Window) -> Result<(), ModelError> {
    check_sizes(&[("batch size", window.batch), ("time steps", window.time)])?;
    window.batch.checked_mul(window.time).map(|_| ()).ok_or(ModelError::InvalidSize {
        name: "window",
        value: window.batch,
        why: "its batch x time tokens overflow the address space",
    })
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
    fn resetting_one_row_zeroes_its_state_in_every_layer_and_block_only() {
        let arch = Arch {
            dims: Dims { vocab: 7, embed: 3, hidden: 4 },
            cell: Cell::Lstm,
            layers: 2,
            tied: false,
            output: Softmax::Full,
        };
        let mut model = Rnnlm::new(arch, Window { batch: 3, time: 1 }, 1).unwrap();
        let state: Vec<f32> = (1..=model.state().len()).map(|i| i as f32).collect();
        model.set_state(&state).unwrap();
        model.reset_state_row(1).unwrap();
        // Four blocks of 3 x 4 (h and c of two layers): values 5..=8 of each block are row 1's.
        for (i, (&got, &was)) in model.state().iter().zip(&state).enumerate() {
            let want = if (4..8).contains(&(i % 12)) { 0.0 } else { was };
            assert_eq!(got, want, "element {i}");
        }
        assert!(model.reset_state_row(3).is_err());
    }

    #[test]
    fn backward_needs_a_forward_with_the_loss() {
        let dims = Dims { vocab: 7, embed: 3, hidden: 4 };
        let mut model = Rnnlm::new(dims, Window { batch: 2, time: 2 }, 1).unwrap();
        assert_eq!(model.backward(), Err(ModelError::BackwardBeforeForward));
        model.forward(&[1, 2, 3, 4], &[2, 3, 4, 5]).unwrap();
        assert_eq!(model.backward(), Ok(()));
        assert_eq!(model.backward(), Ok(()), "a second backward of the same forward");
        model.predict(&[1, 2, 3, 4], &mut [0; 4]).unwrap();
        assert_eq!(model.backward(), Err(ModelError::BackwardBeforeForward));
    }
}
