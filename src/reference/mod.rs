//! The naive reference implementation: the model's definition transcribed into plain loops.
//!
//! One struct per layer, as in the chapter (embedding, the recurrent layers over time, affine,
//! softmax-with-loss), each with a `forward` and a `backward` that cache what they need; the
//! recurrent cells are in [`cells`].
//! Written for obviousness, not speed: every optimized path is tested against it, and it never
//! runs in training. It is generic over the float type so that gradient checks can run in f64.
//!
//! Layout: windows are batch-major, row `b * T + t`, exactly as the spec writes `xs[b][t]`.
//!
//! ```
//! use rnnlm::reference::ReferenceRnnlm;
//! use rnnlm::{Dims, Rnnlm, Window};
//!
//! // The optimized model and the f64 reference from the same weights give the same loss.
//! let (dims, window) = (Dims { vocab: 20, embed: 4, hidden: 5 }, Window { batch: 2, time: 3 });
//! let mut fast = Rnnlm::new(dims, window, 7)?;
//! let mut reference = ReferenceRnnlm::<f64>::from_params(dims, window, fast.params());
//! let (xs, ts) = ([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7]);
//! let (a, b) = (fast.forward(&xs, &ts)? as f64, reference.forward(&xs, &ts));
//! assert!((a - b).abs() < 1e-5 * b);
//! # Ok::<(), rnnlm::ModelError>(())
//! ```

// Index loops read like the spec's formulas, which is the point of this module.
#![allow(clippy::needless_range_loop)]

pub mod adaptive;
pub mod cells;

use crate::kernels::{dropout_keeps, AdaptiveTensor, MaskKey};
use crate::model::{Arch, Tensor, Window};
use adaptive::AdaptiveSoftmax;
use cells::{time_layer, TimeLayer};
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// The float operations the reference needs; implemented for `f32` and `f64`.
pub trait Real:
    Copy
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// The nearest value of this type.
    fn from_f64(v: f64) -> Self;
    /// As f64 (exact for f32 and f64).
    fn to_f64(self) -> f64;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// 0.
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    /// 1.
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// `rows x cols` row-major, transposed.
fn transposed<R: Real>(m: &[R], rows: usize, cols: usize) -> Vec<R> {
    (0..cols * rows).map(|i| m[(i % rows) * cols + i / rows]).collect()
}

pub(crate) fn zeros<R: Real>(len: usize) -> Vec<R> {
    vec![R::zero(); len]
}

/// `out = x * w`: `x` is `rows x inner`, `w` is `inner x cols`.
fn matmul<R: Real>(x: &[R], w: &[R], rows: usize, inner: usize, cols: usize) -> Vec<R> {
    let mut out = zeros(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            let mut sum = R::zero();
            for k in 0..inner {
                sum += x[i * inner + k] * w[k * cols + j];
            }
            out[i * cols + j] = sum;
        }
    }
    out
}

/// Embedding: looks up one row of `w` per id.
pub struct Embedding<R> {
    /// The table, `V x D`.
    pub w: Vec<R>,
    /// Its gradient from the last backward pass.
    pub dw: Vec<R>,
    dim: usize,
    ids: Vec<u32>,
}

impl<R: Real> Embedding<R> {
    /// The rows of `ids`, in order (`ids.len() x D`); remembers `ids` for the backward pass.
    pub fn forward(&mut self, ids: &[u32]) -> Vec<R> {
        self.ids = ids.to_vec();
        let mut out = Vec::with_capacity(ids.len() * self.dim);
        for &id in ids {
            out.extend_from_slice(&self.w[id as usize * self.dim..(id as usize + 1) * self.dim]);
        }
        out
    }

    /// `dw`: the rows of `dout` summed into the rows of the forward's ids.
    pub fn backward(&mut self, dout: &[R]) {
        self.dw.iter_mut().for_each(|g| *g = R::zero());
        for (r, &id) in self.ids.iter().enumerate() {
            for k in 0..self.dim {
                self.dw[id as usize * self.dim + k] += dout[r * self.dim + k];
            }
        }
    }
}

/// Affine: `x * W + b` over rows.
pub struct Affine<R> {
    /// `W`, `inputs x outputs`.
    pub w: Vec<R>,
    /// `b`, `outputs`.
    pub b: Vec<R>,
    /// `dW` from the last backward pass.
    pub dw: Vec<R>,
    /// `db` from the last backward pass.
    pub db: Vec<R>,
    inputs: usize,
    outputs: usize,
    x: Vec<R>,
}

impl<R: Real> Affine<R> {
    /// `x * W + b` for `x` of `rows x inputs`; remembers `x` for the backward pass.
    pub fn forward(&mut self, x: &[R]) -> Vec<R> {
        self.x = x.to_vec();
        let rows = x.len() / self.inputs;
        let mut out = matmul(x, &self.w, rows, self.inputs, self.outputs);
        for row in out.chunks_mut(self.outputs) {
            for (o, &b) in row.iter_mut().zip(&self.b) {
                *o += b;
            }
        }
        out
    }

    /// Sets `dw = x^T * dout` and `db` (column sums of `dout`); returns `dout * W^T`.
    pub fn backward(&mut self, dout: &[R]) -> Vec<R> {
        let (n_in, n_out) = (self.inputs, self.outputs);
        let rows = dout.len() / n_out;
        let mut dx = zeros(rows * n_in);
        for g in self.dw.iter_mut().chain(&mut self.db) {
            *g = R::zero();
        }
        for r in 0..rows {
            for j in 0..n_out {
                let g = dout[r * n_out + j];
                self.db[j] += g;
                for i in 0..n_in {
                    self.dw[i * n_out + j] += self.x[r * n_in + i] * g;
                    dx[r * n_in + i] += g * self.w[i * n_out + j];
                }
            }
        }
        dx
    }
}

/// Softmax with cross-entropy loss, mean over the targets that are not `-1`.
pub struct SoftmaxWithLoss<R> {
    classes: usize,
    probs: Vec<R>,
    targets: Vec<i32>,
    kept: usize,
}

impl<R: Real> SoftmaxWithLoss<R> {
    /// The mean of `log-sum-exp(row) - row[target]` over the rows whose target is not `-1`
    /// (0 if none); remembers the softmax for the backward pass.
    pub fn forward(&mut self, scores: &[R], targets: &[i32]) -> R {
        let c = self.classes;
        self.targets = targets.to_vec();
        self.probs = zeros(scores.len());
        self.kept = targets.iter().filter(|&&t| t != -1).count();
        let mut total = R::zero();
        for (r, row) in scores.chunks(c).enumerate() {
            let max = row.iter().fold(row[0], |m, &v| if v > m { v } else { m });
            let mut sum = R::zero();
            for &v in row {
                sum += (v - max).exp();
            }
            for j in 0..c {
                self.probs[r * c + j] = (row[j] - max).exp() / sum;
            }
            if targets[r] != -1 {
                // -log softmax = log-sum-exp - score, never the log of a rounded probability.
                total += sum.ln() + (max - row[targets[r] as usize]);
            }
        }
        if self.kept == 0 {
            R::zero()
        } else {
            total / R::from_f64(self.kept as f64)
        }
    }

    /// The gradient of the mean loss with respect to the scores: `(softmax - onehot) / kept`,
    /// zero on rows without a target.
    pub fn backward(&self) -> Vec<R> {
        let c = self.classes;
        let mut d = self.probs.clone();
        for (r, row) in d.chunks_mut(c).enumerate() {
            let t = self.targets[r];
            if t == -1 {
                row.iter_mut().for_each(|g| *g = R::zero());
                continue;
            }
            row[t as usize] = row[t as usize] - R::one();
            for g in row.iter_mut() {
                *g = *g / R::from_f64(self.kept as f64);
            }
        }
        d
    }
}

/// The reference model: embedding, the recurrent layers, affine, softmax with loss, and the
/// spec's SGD with optional clipping.
pub struct ReferenceRnnlm<R> {
    /// Sizes, cell, layers, tying.
    pub arch: Arch,
    /// The window shape every pass takes.
    pub window: Window,
    /// The embedding.
    pub embed: Embedding<R>,
    /// The recurrent layers, bottom first.
    pub layers: Vec<Box<dyn TimeLayer<R>>>,
    /// The output layer (its `w` unused when the weights are tied; unused with an adaptive
    /// softmax).
    pub affine: Affine<R>,
    /// Softmax with the loss.
    pub loss: SoftmaxWithLoss<R>,
    /// The adaptive softmax, when that is the output layer (its classes are ranks).
    pub adaptive: Option<AdaptiveSoftmax<R>>,
    /// With an adaptive softmax, `word_order[rank]` is the word id of each rank.
    pub word_order: Vec<u32>,
    /// Dropout's ratio and seed, when training drops out.
    pub dropout: Option<(f32, u64)>,
    /// Training windows so far: the index of the next one's dropout masks.
    pub training_windows: u64,
    /// The masks of the last forward pass, one per site (word vectors, each later layer's
    /// input, the output layer's input), `1 / (1 - p)` or 0 per element; empty without dropout.
    masks: Vec<Vec<R>>,
}

impl<R: Real + 'static> ReferenceRnnlm<R> {
    /// A reference model holding `params` (the flat layout of [`Arch::range`]).
    pub fn from_params(arch: impl Into<Arch>, window: Window, params: &[f32]) -> Self {
        let arch = arch.into();
        let tensor = |t: Tensor| -> Vec<R> { params[arch.range(t)].iter().map(|&v| R::from_f64(v as f64)).collect() };
        let (v, d, h) = (arch.dims.vocab, arch.dims.embed, arch.dims.hidden);
        let layers = (0..arch.layers)
            .map(|l| {
                let weights = [tensor(Tensor::Wx(l)), tensor(Tensor::Wh(l)), tensor(Tensor::B(l))];
                time_layer(arch.cell, (arch.input_size(l), h), window, weights)
            })
            .collect();
        ReferenceRnnlm {
            arch,
            window,
            embed: Embedding { w: tensor(Tensor::EmbedW), dw: zeros(v * d), dim: d, ids: Vec::new() },
            layers,
            // Empty beside an adaptive softmax, which has no affine layer.
            affine: Affine {
                w: match (arch.adaptive(), arch.tied) {
                    (Some(_), _) => Vec::new(),
                    (None, true) => zeros(h * v),
                    (None, false) => tensor(Tensor::AffineW),
                },
                b: if arch.adaptive().is_some() { Vec::new() } else { tensor(Tensor::AffineB) },
                dw: zeros(if arch.adaptive().is_some() { 0 } else { h * v }),
                db: zeros(if arch.adaptive().is_some() { 0 } else { v }),
                inputs: h,
                outputs: v,
                x: Vec::new(),
            },
            loss: SoftmaxWithLoss { classes: v, probs: Vec::new(), targets: Vec::new(), kept: 0 },
            adaptive: arch.adaptive().map(|shape| {
                let block = arch.range(Tensor::Adaptive(AdaptiveTensor::HeadWeight)).start;
                let values = params[block..].iter().map(|&v| R::from_f64(v as f64)).collect();
                AdaptiveSoftmax::new(shape, values)
            }),
            word_order: if arch.adaptive().is_some() { (0..v as u32).collect() } else { Vec::new() },
            dropout: None,
            training_windows: 0,
            masks: Vec::new(),
        }
    }

    /// Trains with dropout of ratio `p` and masks from `seed` (none for `p = 0`), as
    /// [`Rnnlm::set_dropout`](crate::Rnnlm::set_dropout).
    pub fn set_dropout(&mut self, p: f32, seed: u64) {
        self.dropout = (p > 0.0).then_some((p, seed));
    }

    /// Ranks the words for the adaptive softmax: `order[rank]` is the id of that rank.
    pub fn set_word_order(&mut self, order: &[u32]) {
        self.word_order = order.to_vec();
    }

    /// The output layer's input after every position of one window, `[b][t][H]`, dropping out
    /// at every site with the masks of training window `training_windows` when `dropout` is on.
    fn hidden_states(&mut self, xs: &[u32], dropout: bool) -> Vec<R> {
        self.masks.clear();
        let mut hs = self.embed.forward(xs);
        for l in 0..self.layers.len() {
            hs = self.drop_out(hs, dropout);
            hs = self.layers[l].forward(&hs);
        }
        self.drop_out(hs, dropout)
    }

    /// The scores after every position of one window, `[b][t][V]` (with an adaptive softmax,
    /// the log-probabilities of the words by id), as [`hidden_states`](Self::hidden_states).
    fn scores(&mut self, xs: &[u32], dropout: bool) -> Vec<R> {
        let hs = self.hidden_states(xs, dropout);
        if let Some(adaptive) = &self.adaptive {
            let hidden = self.arch.dims.hidden;
            let mut scores = zeros(hs.len() / hidden * self.arch.dims.vocab);
            for (h, row) in hs.chunks(hidden).zip(scores.chunks_mut(self.arch.dims.vocab)) {
                for (rank, log_prob) in adaptive.log_probs(h).into_iter().enumerate() {
                    row[self.word_order[rank] as usize] = log_prob;
                }
            }
            return scores;
        }
        if self.arch.tied {
            self.affine.w = transposed(&self.embed.w, self.arch.dims.vocab, self.arch.dims.hidden);
        }
        self.affine.forward(&hs)
    }

    /// The mean loss of the output layer over the hidden states of a window.
    fn output_loss(&mut self, hs: Vec<R>, ts: &[i32]) -> R {
        match &mut self.adaptive {
            Some(adaptive) => {
                let mut rank = vec![0i32; self.word_order.len()];
                for (r, &id) in self.word_order.iter().enumerate() {
                    rank[id as usize] = r as i32;
                }
                let ranks: Vec<i32> = ts.iter().map(|&t| if t == -1 { -1 } else { rank[t as usize] }).collect();
                adaptive.forward(&hs, &ranks)
            }
            None => {
                if self.arch.tied {
                    self.affine.w = transposed(&self.embed.w, self.arch.dims.vocab, self.arch.dims.hidden);
                }
                let scores = self.affine.forward(&hs);
                self.loss.forward(&scores, ts)
            }
        }
    }

    /// `values` (`[b][t][width]`) times the next site's mask, which it keeps for the backward
    /// pass; `values` as they are without dropout.
    fn drop_out(&mut self, values: Vec<R>, dropout: bool) -> Vec<R> {
        let Some((p, seed)) = self.dropout.filter(|_| dropout) else { return values };
        let key = MaskKey { seed, window: self.training_windows, site: self.masks.len() as u32, first_row: 0 };
        let scale = R::from_f64(1.0 / (1.0 - p as f64));
        let mask: Vec<R> =
            (0..values.len()).map(|e| if dropout_keeps(p, key, e as u64) { scale } else { R::zero() }).collect();
        let dropped = values.iter().zip(&mask).map(|(&v, &m)| v * m).collect();
        self.masks.push(mask);
        dropped
    }

    /// The gradient at a site's input from the gradient at its dropped output.
    fn drop_out_backward(&self, site: usize, grads: Vec<R>) -> Vec<R> {
        match self.masks.get(site) {
            Some(mask) => grads.iter().zip(mask).map(|(&g, &m)| g * m).collect(),
            None => grads,
        }
    }

    /// Mean loss of one window without dropout; `xs`, `ts` are `[b][t]`.
    pub fn forward(&mut self, xs: &[u32], ts: &[i32]) -> R {
        let hs = self.hidden_states(xs, false);
        self.output_loss(hs, ts)
    }

    /// The forward pass of a training step: with dropout, if on, then counts the window.
    pub fn forward_training(&mut self, xs: &[u32], ts: &[i32]) -> R {
        let hs = self.hidden_states(xs, true);
        self.training_windows += 1;
        self.output_loss(hs, ts)
    }

    /// Gradients of the last forward window (overwritten, not accumulated).
    pub fn backward(&mut self) {
        let mut d = match &mut self.adaptive {
            Some(adaptive) => adaptive.backward(),
            None => {
                let dscores = self.loss.backward();
                self.affine.backward(&dscores)
            }
        };
        for l in (0..self.layers.len()).rev() {
            d = self.drop_out_backward(l + 1, d);
            d = self.layers[l].backward(&d);
        }
        d = self.drop_out_backward(0, d);
        self.embed.backward(&d);
        if self.arch.tied {
            // The tied matrix's gradient is the sum of both uses.
            let (v, h) = (self.arch.dims.vocab, self.arch.dims.hidden);
            for (g, a) in self.embed.dw.iter_mut().zip(transposed(&self.affine.dw, h, v)) {
                *g += a;
            }
        }
    }

    /// Parameters and their gradients, tensor by tensor in [`Arch::tensors`] order.
    fn tensors_mut(&mut self) -> Vec<(&mut Vec<R>, &mut Vec<R>)> {
        let mut tensors = vec![(&mut self.embed.w, &mut self.embed.dw)];
        for layer in &mut self.layers {
            tensors.extend(layer.tensors_mut());
        }
        if let Some(adaptive) = &mut self.adaptive {
            // The layer's tensors are one block, in the flat buffer's order.
            tensors.push((&mut adaptive.params, &mut adaptive.grads));
            return tensors;
        }
        if !self.arch.tied {
            tensors.push((&mut self.affine.w, &mut self.affine.dw));
        }
        tensors.push((&mut self.affine.b, &mut self.affine.db));
        tensors
    }

    /// Forward, backward, clipping by global norm when `clip` is given, and `p -= lr * g`.
    pub fn train_step(&mut self, xs: &[u32], ts: &[i32], lr: R, clip: Option<R>) -> R {
        let loss = self.forward_training(xs, ts);
        self.backward();
        if let Some(max_norm) = clip {
            let mut squares = R::zero();
            for (_, grad) in self.tensors_mut() {
                for &g in grad.iter() {
                    squares += g * g;
                }
            }
            let norm = R::from_f64(squares.to_f64().sqrt());
            if norm > max_norm {
                let factor = max_norm / (norm + R::from_f64(1e-6));
                for (_, grad) in self.tensors_mut() {
                    grad.iter_mut().for_each(|g| *g = *g * factor);
                }
            }
        }
        for (param, grad) in self.tensors_mut() {
            for (p, &g) in param.iter_mut().zip(grad.iter()) {
                *p = *p - lr * g;
            }
        }
        loss
    }

    /// Argmax of the scores at every position, `[b][t]` (the most probable word id); advances
    /// the state like `forward`.
    pub fn predict(&mut self, xs: &[u32]) -> Vec<u32> {
        let scores = self.scores(xs, false);
        scores
            .chunks(self.arch.dims.vocab)
            .map(|row| {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                best as u32
            })
            .collect()
    }

    /// The carried state of every layer, bottom first, in the model's layout
    /// ([`Rnnlm::state`](crate::Rnnlm::state)).
    pub fn state(&self) -> Vec<R> {
        self.layers.iter().flat_map(|layer| layer.state()).collect()
    }

    /// Replaces the carried state (layout of [`state`](Self::state)).
    pub fn set_state(&mut self, state: &[R]) {
        let per_layer = state.len() / self.layers.len();
        for (layer, part) in self.layers.iter_mut().zip(state.chunks_exact(per_layer)) {
            layer.set_state(part);
        }
    }

    /// All parameters, flattened in the layout of [`Arch::range`], as f64.
    pub fn params(&mut self) -> Vec<f64> {
        self.tensors_mut().into_iter().flat_map(|(p, _)| p.iter().map(|v| v.to_f64()).collect::<Vec<_>>()).collect()
    }

    /// All gradients, flattened like [`params`](Self::params).
    pub fn grads(&mut self) -> Vec<f64> {
        self.tensors_mut().into_iter().flat_map(|(_, g)| g.iter().map(|v| v.to_f64()).collect::<Vec<_>>()).collect()
    }

    /// Mutable access to one parameter element of the flat layout (for finite differences).
    pub fn param_mut(&mut self, index: usize) -> &mut R {
        let mut index = index;
        for (param, _) in self.tensors_mut() {
            if index < param.len() {
                return &mut param[index];
            }
            index -= param.len();
        }
        panic!("parameter index out of range")
    }
}
