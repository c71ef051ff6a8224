//! The model's output layer behind one interface, so that the passes never ask which one it
//! is: the full softmax over `V` ([`OutputLayer`], on `affine.W` or the tied `embed.W`) or the
//! adaptive softmax ([`AdaptiveOutput`], on the `adaptive.*` tensors). Both take the model's
//! whole parameter and gradient buffers and find their own tensors in them, and both count
//! classes as the layer does: word ids for the full softmax, ranks for the adaptive one (the
//! model maps ids to ranks before and after).

use super::arch::{Arch, Softmax, Tensor, Window};
use super::cost::{LayerCost, Phase};
use super::ModelError;
use crate::kernels::{
    sgd_update, AdaptiveOutput, AdaptivePacked, GemmShape, OutputLayer, OutputUpdate, PackedWeights, WeightLayout,
    MAX_CLUSTERS,
};
use std::ops::Range;

/// The output layer of a window: its buffers and passes.
pub(super) trait OutputHead: Send + Sync {
    /// A copy of the layer with its buffers as they are.
    fn boxed_clone(&self) -> Box<dyn OutputHead>;

    /// Each row's loss into `row_loss` (0 for ignored targets), keeping what
    /// [`backward`](Self::backward) needs; `inv_n` is `1 / (rows with a target)`.
    fn forward(&mut self, hs: &[f32], params: &[f32], targets: &[i32], inv_n: f32, row_loss: &mut [f32]);

    /// Each row's loss alone, bit for bit as [`forward`](Self::forward) computes it, with the
    /// weights packed once for as long as they do not change ([`params_changed`](Self::params_changed));
    /// errors only if the packed copy cannot be allocated.
    fn forward_loss_only(
        &mut self,
        hs: &[f32],
        params: &[f32],
        targets: &[i32],
        row_loss: &mut [f32],
    ) -> Result<(), ModelError>;

    /// Every class's score over every row, for [`scores_row`](Self::scores_row) and
    /// [`argmax_row`](Self::argmax_row); errors only if packed weights cannot be allocated.
    fn forward_scores(&mut self, hs: &[f32], params: &[f32]) -> Result<(), ModelError>;

    /// Row `row`'s scores of every class (`V` values in the layer's class order): logits
    /// whose softmax is the model's distribution (the adaptive layer gives log-probabilities).
    fn scores_row(&mut self, row: usize, out: &mut [f32]);

    /// The class of row `row`'s largest score, the lowest among equals.
    fn argmax_row(&mut self, row: usize) -> u32;

    /// Whether the last pass was a [`forward`](Self::forward).
    fn ready_for_backward(&self) -> bool;

    /// The backward pass of the last [`forward`](Self::forward): `dhs`, and the layer's
    /// gradients into `grads`, or with `fold_lr` its SGD update applied to `params` in their
    /// place (its gradients are then not kept).
    fn backward(&mut self, hs: &[f32], params: &mut [f32], grads: &mut [f32], fold_lr: Option<f32>, dhs: &mut [f32]);

    /// Rows of the last pass with targets that each tail cluster computed (adaptive only).
    fn cluster_rows(&self) -> Option<[usize; MAX_CLUSTERS]>;

    /// The parameters may have changed: a packed copy must be made again.
    fn params_changed(&mut self);

    /// What a training pass costs, with `cluster_rows[k]` rows in tail cluster `k` (adaptive
    /// only): its GEMMs forward and backward, its parallel tasks, its buffers' bytes.
    fn cost(&self, cluster_rows: &[usize]) -> LayerCost;
}

/// An output layer's cost from its GEMMs forward and backward, tasks and bytes.
fn output_cost(name: &str, gemms: (&[GemmShape], &[GemmShape]), tasks: (usize, usize), bytes: usize) -> LayerCost {
    let forward = gemms.0.iter().map(|&gemm| (Phase::OutputForward, gemm));
    LayerCost {
        name: name.to_string(),
        gemms: forward.chain(gemms.1.iter().map(|&gemm| (Phase::OutputBackward, gemm))).collect(),
        tasks: vec![(Phase::OutputForward, tasks.0), (Phase::OutputBackward, tasks.1)],
        buffer_bytes: bytes,
    }
}

/// Rows of a pass up to which the adaptive softmax reads every cluster's weights from a copy
/// packed once, not packed again at every pass (one row is a generated token, whose time was
/// mostly the packing).
const FEW_ROWS: usize = 16;

/// The output layer `arch` names, with buffers for `window`.
pub(super) fn new_output(arch: Arch, window: Window) -> Result<Box<dyn OutputHead>, ModelError> {
    let rows = window.tokens();
    let unavailable =
        ModelError::InvalidSize { name: "window", value: rows, why: "the output layer's buffers cannot be allocated" };
    Ok(match arch.output {
        Softmax::Full => {
            let layout = if arch.tied { WeightLayout::ClassesByHidden } else { WeightLayout::HiddenByClasses };
            let layer = OutputLayer::with_layout(rows, arch.dims.hidden, arch.dims.vocab, layout).ok_or(unavailable)?;
            let (weights, bias) = (arch.range(arch.output_weights()), arch.range(Tensor::AffineB));
            Box::new(FullSoftmax { layer, layout, weights, bias, packed: PackedCopy::new() })
        }
        Softmax::Adaptive(shape) => {
            let layer = AdaptiveOutput::new(rows, shape).ok_or(unavailable)?;
            Box::new(AdaptiveSoftmax { layer, block: arch.output_range(), packed: PackedCopy::new() })
        }
    })
}

/// The output weights packed once for many loss-only passes (scoring): made at the first, and
/// packed again at the first after the parameters changed.
#[derive(Clone)]
struct PackedCopy<T> {
    packed: Option<T>,
    current: bool,
}

impl<T> PackedCopy<T> {
    fn new() -> Self {
        PackedCopy { packed: None, current: false }
    }

    /// Bytes of the packed copy, once made (`bytes` of it).
    fn bytes(&self, bytes: impl Fn(&T) -> usize) -> usize {
        self.packed.as_ref().map_or(0, bytes)
    }

    /// The packed weights, made by `make` (`None`: they cannot be allocated) the first time and
    /// refreshed by `pack` when the parameters changed since.
    fn get(
        &mut self,
        vocab: usize,
        make: impl FnOnce() -> Option<T>,
        pack: impl FnOnce(&mut T),
    ) -> Result<&T, ModelError> {
        if self.packed.is_none() {
            let why = "the packed output weights cannot be allocated";
            self.packed = Some(make().ok_or(ModelError::InvalidSize { name: "vocabulary size", value: vocab, why })?);
            self.current = false;
        }
        let packed = self.packed.as_mut().expect("made above");
        if !self.current {
            pack(packed);
            self.current = true;
        }
        Ok(packed)
    }
}

/// The affine layer and the softmax over every word.
#[derive(Clone)]
struct FullSoftmax {
    layer: OutputLayer,
    layout: WeightLayout,
    /// `affine.W` (or, tied, `embed.W`) and `affine.b` in the parameter buffer.
    weights: Range<usize>,
    bias: Range<usize>,
    packed: PackedCopy<PackedWeights>,
}

impl OutputHead for FullSoftmax {
    fn boxed_clone(&self) -> Box<dyn OutputHead> {
        Box::new(self.clone())
    }

    fn forward(&mut self, hs: &[f32], params: &[f32], targets: &[i32], inv_n: f32, row_loss: &mut [f32]) {
        let (w, b) = (&params[self.weights.clone()], &params[self.bias.clone()]);
        self.layer.forward(hs, w, b, targets, inv_n, row_loss);
    }

    fn forward_loss_only(
        &mut self,
        hs: &[f32],
        params: &[f32],
        targets: &[i32],
        row_loss: &mut [f32],
    ) -> Result<(), ModelError> {
        let (w, b) = (&params[self.weights.clone()], &params[self.bias.clone()]);
        let (classes, hidden, layout) = (self.bias.len(), w.len() / self.bias.len(), self.layout);
        let packed = self.packed.get(classes, || PackedWeights::new(hidden, classes, layout), |p| p.pack(w))?;
        self.layer.forward_loss_only(hs, packed, b, targets, row_loss);
        Ok(())
    }

    fn forward_scores(&mut self, hs: &[f32], params: &[f32]) -> Result<(), ModelError> {
        self.layer.forward_logits(hs, &params[self.weights.clone()], &params[self.bias.clone()]);
        Ok(())
    }

    fn scores_row(&mut self, row: usize, out: &mut [f32]) {
        self.layer.logits_row(row, out);
    }

    fn argmax_row(&mut self, row: usize) -> u32 {
        self.layer.argmax_row(row)
    }

    fn ready_for_backward(&self) -> bool {
        self.layer.ready_for_backward()
    }

    fn backward(&mut self, hs: &[f32], params: &mut [f32], grads: &mut [f32], fold_lr: Option<f32>, dhs: &mut [f32]) {
        let (weights, bias) = (self.weights.clone(), self.bias.clone());
        let update = match fold_lr {
            Some(lr) => {
                let (w, b) = two_mut(params, weights, bias);
                OutputUpdate::Sgd { w, b, lr }
            }
            None => {
                let (dw, db) = two_mut(grads, weights.clone(), bias);
                OutputUpdate::Gradients { w: &params[weights], dw, db }
            }
        };
        self.layer.backward(hs, update, dhs);
    }

    fn cluster_rows(&self) -> Option<[usize; MAX_CLUSTERS]> {
        None
    }

    fn params_changed(&mut self) {
        self.packed.current = false;
    }

    fn cost(&self, _cluster_rows: &[usize]) -> LayerCost {
        let (forward, backward) = self.layer.gemms();
        let bytes = self.layer.buffer_bytes() + self.packed.bytes(PackedWeights::bytes);
        output_cost("full softmax", (&forward, &backward), self.layer.tasks(), bytes)
    }
}

/// The adaptive softmax on the `adaptive.*` tensors, one block of the parameter buffer.
#[derive(Clone)]
struct AdaptiveSoftmax {
    layer: AdaptiveOutput,
    block: Range<usize>,
    packed: PackedCopy<AdaptivePacked>,
}

impl OutputHead for AdaptiveSoftmax {
    fn boxed_clone(&self) -> Box<dyn OutputHead> {
        Box::new(self.clone())
    }

    fn forward(&mut self, hs: &[f32], params: &[f32], targets: &[i32], inv_n: f32, row_loss: &mut [f32]) {
        self.layer.forward(hs, &params[self.block.clone()], targets, inv_n, row_loss);
    }

    fn forward_loss_only(
        &mut self,
        hs: &[f32],
        params: &[f32],
        targets: &[i32],
        row_loss: &mut [f32],
    ) -> Result<(), ModelError> {
        let block = &params[self.block.clone()];
        let shape = *self.layer.shape();
        let packed = self.packed.get(shape.vocab(), || AdaptivePacked::new(shape), |p| p.pack(block))?;
        self.layer.forward_loss_only(hs, block, packed, targets, row_loss);
        Ok(())
    }

    fn forward_scores(&mut self, hs: &[f32], params: &[f32]) -> Result<(), ModelError> {
        // Few rows (generating text): the weights packed once, not at every call.
        let block = &params[self.block.clone()];
        let packed = if self.layer.rows() <= FEW_ROWS {
            let shape = *self.layer.shape();
            Some(self.packed.get(shape.vocab(), || AdaptivePacked::new(shape), |p| p.pack(block))?)
        } else {
            None
        };
        self.layer.forward_log_probs(hs, block, packed);
        Ok(())
    }

    fn scores_row(&mut self, row: usize, out: &mut [f32]) {
        self.layer.log_probs_row(row, out);
    }

    fn argmax_row(&mut self, row: usize) -> u32 {
        self.layer.argmax_row(row)
    }

    fn ready_for_backward(&self) -> bool {
        self.layer.ready_for_backward()
    }

    fn backward(&mut self, hs: &[f32], params: &mut [f32], grads: &mut [f32], fold_lr: Option<f32>, dhs: &mut [f32]) {
        let (block, block_grads) = (&mut params[self.block.clone()], &mut grads[self.block.clone()]);
        self.layer.backward(hs, block, block_grads, dhs);
        if let Some(lr) = fold_lr {
            sgd_update(block, block_grads, lr);
        }
    }

    fn cluster_rows(&self) -> Option<[usize; MAX_CLUSTERS]> {
        Some(self.layer.cluster_rows())
    }

    fn params_changed(&mut self) {
        self.packed.current = false;
    }

    fn cost(&self, cluster_rows: &[usize]) -> LayerCost {
        let (forward, backward) = self.layer.shape().gemms(self.layer.rows(), cluster_rows);
        let bytes = self.layer.buffer_bytes() + self.packed.bytes(AdaptivePacked::bytes);
        output_cost("adaptive softmax", (&forward, &backward), self.layer.tasks(), bytes)
    }
}

/// Two disjoint parts of `buffer`: `first` and `second`, `first` before `second`.
fn two_mut(buffer: &mut [f32], first: Range<usize>, second: Range<usize>) -> (&mut [f32], &mut [f32]) {
    let (head, tail) = buffer.split_at_mut(second.start);
    (&mut head[first], &mut tail[..second.len()])
}
