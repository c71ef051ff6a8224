//! The adaptive softmax (Grave et al., 2017): an output layer whose cost follows the words a
//! window really has, with exact probabilities normalized over every class.
//!
//! Classes are ranks (0 the most frequent word); [`AdaptiveShape`] splits them into the head's
//! shortlist and tail clusters. For a row whose target is of rank `r`:
//!
//! - the head, a softmax over the shortlist plus one column per cluster, gives
//!   `log P(head column of r)`; it is an [`OutputLayer`] over every row;
//! - if `r` is in cluster `k`, the row's hidden state is projected (`p = h P_k^T`, `h_k`
//!   values) and cluster `k`'s softmax over its words (an [`OutputLayer`] with `O_k` as its
//!   `classes x h_k` weights and no bias) adds `log P(r | cluster k)`.
//!
//! Training, evaluation and scoring know the targets, so each cluster runs only over the rows
//! whose target it holds: they are gathered (in row order), projected by one GEMM, put through
//! the cluster's softmax, and the gradient is scattered back; a cluster without such rows
//! costs nothing. Prediction and generation need every class: every cluster then runs over
//! every row ([`AdaptiveOutput::forward_log_probs`]).
//!
//! Every buffer is allocated by [`AdaptiveOutput::new`] for the worst case (all rows in the
//! largest cluster), so no pass allocates. The large ones are zeroed by the allocator and
//! touched only as far as the rows in a cluster reach, so memory in use follows the windows'
//! words, not the worst case. Results do not depend on the number of threads: the GEMMs and
//! softmaxes are the crate's deterministic ones, and each row belongs to one cluster, so the
//! scatter adds each value once.

mod shape;

pub use shape::{AdaptiveShape, AdaptiveTensor, Slot, MAX_CLUSTERS};

use super::gemm::{gemm_parallel, Transpose};
use super::output::{OutputLayer, OutputUpdate, PackedWeights, WeightLayout, IGNORE_TARGET};
use super::simd::{exp, lane_max, lane_sum, map_inplace, simd, zip_map_inplace, Simd};
use super::{check_len, check_targets, filled};

/// Buffers of one tail cluster's softmax, for up to a whole window of rows.
#[derive(Clone, Debug)]
struct Cluster {
    /// The softmax over the cluster's words, `O_k` (`words x h_k`) as its weights.
    softmax: OutputLayer,
    /// The window rows whose target is in the cluster, in row order (the first `count`).
    members: Vec<u32>,
    count: usize,
    /// Their targets as columns of the cluster.
    targets: Vec<i32>,
    /// Their hidden states, gathered (`count x H`), then the gradient at them.
    inputs: Vec<f32>,
    d_inputs: Vec<f32>,
    /// `inputs * P_k^T` (`count x h_k`) and the gradient at it.
    projected: Vec<f32>,
    d_projected: Vec<f32>,
    /// Their losses `-log P(target | cluster)`.
    loss: Vec<f32>,
    /// The cluster has no bias: a zero one for the softmax, and room for its unused gradient.
    zero_bias: Vec<f32>,
    bias_grad: Vec<f32>,
}

/// What the last pass left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contents {
    Nothing,
    /// The loss and what the backward pass needs.
    Loss,
    /// The head's logits and every cluster's over every row.
    LogProbs,
}

/// The adaptive softmax's buffers for windows of `rows` rows ([`new`](Self::new)); the
/// parameters are passed to every pass as the layer's flat block, tensor after tensor in the
/// order of [`AdaptiveShape::tensors`], and the gradients are written in the same layout.
#[derive(Clone, Debug)]
pub struct AdaptiveOutput {
    shape: AdaptiveShape,
    rows: usize,
    head: OutputLayer,
    /// Each row's head column (its rank, or its cluster's column).
    head_targets: Vec<i32>,
    /// A zero bias and room for its gradient, when the head has no bias.
    head_zero_bias: Vec<f32>,
    head_bias_grad: Vec<f32>,
    clusters: Vec<Cluster>,
    /// One row of the head's logits, and of the largest cluster's (reading log-probabilities).
    head_row: Vec<f32>,
    cluster_row: Vec<f32>,
    contents: Contents,
}

/// Every weight matrix of an adaptive softmax packed once for many loss-only passes (scoring),
/// as [`PackedWeights`] does for the full output layer.
#[derive(Clone, Debug)]
pub struct AdaptivePacked {
    shape: AdaptiveShape,
    head: PackedWeights,
    clusters: Vec<PackedWeights>,
}

impl AdaptivePacked {
    /// Room for the packed weights of `shape`; `None` if that much memory cannot be had.
    pub fn new(shape: AdaptiveShape) -> Option<Self> {
        let layout = WeightLayout::ClassesByHidden;
        let head = PackedWeights::new(shape.hidden(), shape.head_classes(), layout)?;
        let clusters = (0..shape.clusters())
            .map(|k| PackedWeights::new(shape.projection(k), shape.cluster_size(k), layout))
            .collect::<Option<Vec<_>>>()?;
        Some(AdaptivePacked { shape, head, clusters })
    }

    /// Bytes of every packed matrix.
    pub fn bytes(&self) -> usize {
        self.head.bytes() + self.clusters.iter().map(PackedWeights::bytes).sum::<usize>()
    }

    /// Packs the weights of `params` (the layer's flat block). Panics if its length does not
    /// match the shape.
    pub fn pack(&mut self, params: &[f32]) {
        let shape = self.shape;
        check_params("AdaptivePacked::pack", "params", &shape, params.len());
        self.head.pack(&params[shape.range(AdaptiveTensor::HeadWeight)]);
        for (k, packed) in self.clusters.iter_mut().enumerate() {
            packed.pack(&params[shape.range(AdaptiveTensor::ClusterWeight(k))]);
        }
    }
}

#[track_caller]
fn check_params(kernel: &str, operand: &str, shape: &AdaptiveShape, len: usize) {
    let count = shape.param_count().unwrap_or(usize::MAX);
    check_len(kernel, operand, len, "the adaptive softmax's parameter count", &[count]);
}

/// The weights of one pass: `W` as stored, or packed in advance (loss only).
#[derive(Clone, Copy)]
enum Weights<'a> {
    Stored,
    Packed(&'a AdaptivePacked),
}

impl AdaptiveOutput {
    /// Buffers for windows of `rows` rows of an adaptive softmax of `shape`; `None` if that
    /// much memory cannot be had. Panics if `rows` is 0.
    pub fn new(rows: usize, shape: AdaptiveShape) -> Option<Self> {
        assert!(rows > 0, "AdaptiveOutput::new: rows must be positive");
        let hidden = shape.hidden();
        let layout = WeightLayout::ClassesByHidden;
        let clusters = (0..shape.clusters())
            .map(|k| {
                let (words, width) = (shape.cluster_size(k), shape.projection(k));
                Some(Cluster {
                    softmax: OutputLayer::with_layout(rows, width, words, layout)?,
                    members: filled(Some(rows), 0)?,
                    count: 0,
                    targets: filled(Some(rows), 0)?,
                    inputs: filled(rows.checked_mul(hidden), 0.0)?,
                    d_inputs: filled(rows.checked_mul(hidden), 0.0)?,
                    projected: filled(rows.checked_mul(width), 0.0)?,
                    d_projected: filled(rows.checked_mul(width), 0.0)?,
                    loss: filled(Some(rows), 0.0)?,
                    zero_bias: filled(Some(words), 0.0)?,
                    bias_grad: filled(Some(words), 0.0)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let head_classes = shape.head_classes();
        let bias_room = if shape.head_bias() { 0 } else { head_classes };
        let largest = (0..shape.clusters()).map(|k| shape.cluster_size(k)).max().unwrap_or(0);
        Some(AdaptiveOutput {
            shape,
            rows,
            head: OutputLayer::with_layout(rows, hidden, head_classes, layout)?,
            head_targets: filled(Some(rows), 0)?,
            head_zero_bias: filled(Some(bias_room), 0.0)?,
            head_bias_grad: filled(Some(bias_room), 0.0)?,
            clusters,
            head_row: filled(Some(head_classes), 0.0)?,
            cluster_row: filled(Some(largest), 0.0)?,
            contents: Contents::Nothing,
        })
    }

    /// The layer's shape.
    pub fn shape(&self) -> &AdaptiveShape {
        &self.shape
    }

    /// Rows per pass.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the layer's buffers: the head's and every cluster's.
    pub fn buffer_bytes(&self) -> usize {
        let own = [&self.head_zero_bias, &self.head_bias_grad, &self.head_row, &self.cluster_row];
        let clusters: usize = self.clusters.iter().map(Cluster::buffer_bytes).sum();
        self.head.buffer_bytes()
            + (own.iter().map(|v| v.len()).sum::<usize>() + self.head_targets.len()) * size_of::<f32>()
            + clusters
    }

    /// Parallel tasks of the head's forward and backward passes (the tail clusters' are at
    /// most as many).
    pub fn tasks(&self) -> (usize, usize) {
        self.head.tasks()
    }

    /// Rows of the last pass with targets whose target is in each cluster (0 for clusters past
    /// the last): what the pass computed, for counting its work.
    pub fn cluster_rows(&self) -> [usize; MAX_CLUSTERS] {
        let mut rows = [0; MAX_CLUSTERS];
        for (count, cluster) in rows.iter_mut().zip(&self.clusters) {
            *count = cluster.count;
        }
        rows
    }

    /// Forward pass with the loss: `row_loss[r] = -log P(targets[r])` (0 where the target is
    /// [`IGNORE_TARGET`]); the mean loss is `sum(row_loss) * inv_n` for `n` rows with a target.
    /// Leaves what [`backward`](Self::backward) needs. `hs` is `rows x H`; `params` the layer's
    /// flat block; `targets` are ranks (below `V`) or `IGNORE_TARGET`. Panics, before writing
    /// anything, if a length does not match or a target is out of range.
    pub fn forward(&mut self, hs: &[f32], params: &[f32], targets: &[i32], inv_n: f32, row_loss: &mut [f32]) {
        self.check_pass("AdaptiveOutput::forward", hs, params, targets, row_loss);
        self.forward_with(hs, params, Weights::Stored, targets, inv_n, row_loss);
        self.contents = Contents::Loss;
    }

    /// Each row's loss alone, as [`forward`](Self::forward) computes it, with the weights
    /// packed in advance and nothing kept for a backward pass: what scoring text needs.
    /// `packed` must hold `params`' weights.
    pub fn forward_loss_only(
        &mut self,
        hs: &[f32],
        params: &[f32],
        packed: &AdaptivePacked,
        targets: &[i32],
        row_loss: &mut [f32],
    ) {
        const KERNEL: &str = "AdaptiveOutput::forward_loss_only";
        assert!(packed.shape == self.shape, "{KERNEL}: the weights were packed for another shape");
        self.check_pass(KERNEL, hs, params, targets, row_loss);
        self.forward_with(hs, params, Weights::Packed(packed), targets, 1.0, row_loss);
        self.contents = Contents::Nothing;
    }

    #[track_caller]
    fn check_pass(&self, kernel: &str, hs: &[f32], params: &[f32], targets: &[i32], row_loss: &[f32]) {
        check_len(kernel, "hs", hs.len(), "rows x hidden", &[self.rows, self.shape.hidden()]);
        check_params(kernel, "params", &self.shape, params.len());
        check_len(kernel, "targets", targets.len(), "rows", &[self.rows]);
        check_len(kernel, "row_loss", row_loss.len(), "rows", &[self.rows]);
        check_targets(kernel, targets, self.shape.vocab());
    }

    /// The loss of every row: the head over every row, then each cluster over its rows.
    fn forward_with(
        &mut self,
        hs: &[f32],
        params: &[f32],
        weights: Weights<'_>,
        targets: &[i32],
        inv_n: f32,
        row_loss: &mut [f32],
    ) {
        let shape = self.shape;
        for (column, &target) in self.head_targets.iter_mut().zip(targets) {
            *column = if target == IGNORE_TARGET { IGNORE_TARGET } else { shape.head_column(target as usize) as i32 };
        }
        let head_bias = head_bias(&shape, params, &self.head_zero_bias);
        match weights {
            Weights::Stored => {
                let w = &params[shape.range(AdaptiveTensor::HeadWeight)];
                self.head.forward(hs, w, head_bias, &self.head_targets, inv_n, row_loss);
            }
            Weights::Packed(packed) => {
                self.head.forward_loss_only(hs, &packed.head, head_bias, &self.head_targets, row_loss)
            }
        }
        for (k, cluster) in self.clusters.iter_mut().enumerate() {
            if cluster.gather(&shape, k, hs, targets) == 0 {
                continue;
            }
            cluster.project(&shape, k, params);
            let m = cluster.count;
            let (projected, cluster_targets) = (&cluster.projected[..m * shape.projection(k)], &cluster.targets[..m]);
            let loss = &mut cluster.loss[..m];
            match weights {
                Weights::Stored => {
                    let o = &params[shape.range(AdaptiveTensor::ClusterWeight(k))];
                    cluster.softmax.forward(projected, o, &cluster.zero_bias, cluster_targets, inv_n, loss);
                }
                Weights::Packed(packed) => cluster.softmax.forward_loss_only(
                    projected,
                    &packed.clusters[k],
                    &cluster.zero_bias,
                    cluster_targets,
                    loss,
                ),
            }
            for (&row, &loss) in cluster.members[..m].iter().zip(loss.iter()) {
                row_loss[row as usize] += loss;
            }
        }
    }

    /// Whether the last pass was a [`forward`](Self::forward) with the loss.
    pub fn ready_for_backward(&self) -> bool {
        self.contents == Contents::Loss
    }

    /// Backward pass of the last [`forward`](Self::forward): every parameter's gradient into
    /// `grads` (the layer's flat block, overwritten; a cluster without rows gets zeros) and
    /// `dhs` (`rows x H`, overwritten). `hs` and `params` are the forward's. Panics, before
    /// writing anything, if the last pass was not a `forward` or a length does not match.
    pub fn backward(&mut self, hs: &[f32], params: &[f32], grads: &mut [f32], dhs: &mut [f32]) {
        const KERNEL: &str = "AdaptiveOutput::backward";
        assert!(self.contents == Contents::Loss, "{KERNEL}: needs a forward with the loss first");
        let (shape, hidden) = (self.shape, self.shape.hidden());
        check_len(KERNEL, "hs", hs.len(), "rows x hidden", &[self.rows, hidden]);
        check_len(KERNEL, "dhs", dhs.len(), "rows x hidden", &[self.rows, hidden]);
        check_params(KERNEL, "params", &shape, params.len());
        check_params(KERNEL, "grads", &shape, grads.len());
        let head_w = &params[shape.range(AdaptiveTensor::HeadWeight)];
        let (dw, rest) = grads.split_at_mut(shape.range(AdaptiveTensor::HeadWeight).end);
        let db = if shape.head_bias() { &mut rest[..shape.head_classes()] } else { &mut self.head_bias_grad[..] };
        self.head.backward(hs, OutputUpdate::Gradients { w: head_w, dw, db }, dhs);
        for (k, cluster) in self.clusters.iter_mut().enumerate() {
            let (p_range, o_range) =
                (shape.range(AdaptiveTensor::Projection(k)), shape.range(AdaptiveTensor::ClusterWeight(k)));
            let (dp, d_o) = grads[p_range.start..o_range.end].split_at_mut(p_range.len());
            if cluster.count == 0 {
                dp.fill(0.0);
                d_o.fill(0.0);
                continue;
            }
            cluster.backward(&shape, k, (&params[p_range], &params[o_range]), (dp, d_o));
            for (&row, d_input) in cluster.members[..cluster.count].iter().zip(cluster.d_inputs.chunks_exact(hidden)) {
                let row = &mut dhs[row as usize * hidden..][..hidden];
                simd!(V => zip_map_inplace::<V>(row, d_input, #[inline(always)] |acc, d| acc + d));
            }
        }
    }

    /// Every class's score over every row, for [`log_probs_row`](Self::log_probs_row) and
    /// [`argmax_row`](Self::argmax_row): the head's logits and every cluster's, each cluster
    /// over all rows; with `packed` (which must hold `params`' weights), the weights are read
    /// from there instead of being packed again (the same results, bit for bit). `hs` is
    /// `rows x H`, `params` the layer's flat block. Panics, before writing anything, if a
    /// length does not match.
    pub fn forward_log_probs(&mut self, hs: &[f32], params: &[f32], packed: Option<&AdaptivePacked>) {
        const KERNEL: &str = "AdaptiveOutput::forward_log_probs";
        let shape = self.shape;
        check_len(KERNEL, "hs", hs.len(), "rows x hidden", &[self.rows, shape.hidden()]);
        check_params(KERNEL, "params", &shape, params.len());
        if let Some(packed) = packed {
            assert!(packed.shape == shape, "{KERNEL}: the weights were packed for another shape");
        }
        let head_bias = head_bias(&shape, params, &self.head_zero_bias);
        match packed {
            Some(packed) => self.head.forward_logits_packed(hs, &packed.head, head_bias),
            None => self.head.forward_logits(hs, &params[shape.range(AdaptiveTensor::HeadWeight)], head_bias),
        }
        for (k, cluster) in self.clusters.iter_mut().enumerate() {
            let width = shape.projection(k);
            let projected = &mut cluster.projected[..self.rows * width];
            let p = &params[shape.range(AdaptiveTensor::Projection(k))];
            let no = Transpose::No;
            gemm_parallel(
                self.rows,
                width,
                shape.hidden(),
                1.0,
                hs,
                shape.hidden(),
                no,
                p,
                shape.hidden(),
                Transpose::Yes,
                0.0,
                projected,
                width,
            );
            cluster.softmax.set_rows(self.rows);
            match packed {
                Some(packed) => {
                    cluster.softmax.forward_logits_packed(projected, &packed.clusters[k], &cluster.zero_bias)
                }
                None => {
                    let o = &params[shape.range(AdaptiveTensor::ClusterWeight(k))];
                    cluster.softmax.forward_logits(projected, o, &cluster.zero_bias);
                }
            }
            cluster.count = 0;
        }
        self.contents = Contents::LogProbs;
    }

    /// `log P(class)` of every class (rank order) after row `row`'s hidden state, into `out`
    /// (`V` values), after [`forward_log_probs`](Self::forward_log_probs): exact and
    /// normalized (they exponentiate to a distribution over all `V`). Panics if `row` is not
    /// below `rows`, `out` is not `V` long, or the last pass was not a `forward_log_probs`.
    pub fn log_probs_row(&mut self, row: usize, out: &mut [f32]) {
        const KERNEL: &str = "AdaptiveOutput::log_probs_row";
        self.check_log_probs(KERNEL, row);
        check_len(KERNEL, "out", out.len(), "vocab", &[self.shape.vocab()]);
        let shortlist = self.shape.shortlist();
        self.head.logits_row(row, &mut self.head_row);
        log_softmax_inplace(&mut self.head_row);
        out[..shortlist].copy_from_slice(&self.head_row[..shortlist]);
        for (k, cluster) in self.clusters.iter().enumerate() {
            let segment = &mut out[self.shape.cluster_ranks(k)];
            cluster.softmax.logits_row(row, segment);
            log_softmax_inplace(segment);
            let cluster_log_prob = self.head_row[shortlist + k];
            segment.iter_mut().for_each(|v| *v += cluster_log_prob);
        }
    }

    /// The most probable class (rank) after row `row`'s hidden state, the lowest among equals,
    /// after [`forward_log_probs`](Self::forward_log_probs). Panics as
    /// [`log_probs_row`](Self::log_probs_row) does.
    pub fn argmax_row(&mut self, row: usize) -> u32 {
        self.check_log_probs("AdaptiveOutput::argmax_row", row);
        let shortlist = self.shape.shortlist();
        self.head.logits_row(row, &mut self.head_row);
        log_softmax_inplace(&mut self.head_row);
        let mut best = (0, f32::NEG_INFINITY);
        for (rank, &value) in self.head_row[..shortlist].iter().enumerate() {
            if value > best.1 {
                best = (rank, value);
            }
        }
        for (k, cluster) in self.clusters.iter().enumerate() {
            let segment = &mut self.cluster_row[..self.shape.cluster_size(k)];
            cluster.softmax.logits_row(row, segment);
            log_softmax_inplace(segment);
            let index = cluster.softmax.argmax_row(row) as usize;
            let value = self.head_row[shortlist + k] + segment[index];
            if value > best.1 {
                best = (self.shape.cluster_ranks(k).start + index, value);
            }
        }
        best.0 as u32
    }

    #[track_caller]
    fn check_log_probs(&self, kernel: &str, row: usize) {
        assert!(self.contents == Contents::LogProbs, "{kernel}: needs forward_log_probs first");
        assert!(row < self.rows, "{kernel}: row {row} is not below rows = {}", self.rows);
    }
}

impl Cluster {
    /// Bytes of the cluster's buffers.
    fn buffer_bytes(&self) -> usize {
        let floats = [&self.inputs, &self.d_inputs, &self.projected, &self.d_projected, &self.loss, &self.zero_bias];
        let floats = floats.iter().map(|v| v.len()).sum::<usize>() + self.bias_grad.len();
        self.softmax.buffer_bytes() + (floats + self.members.len() + self.targets.len()) * size_of::<f32>()
    }

    /// Collects the rows whose target is in cluster `k` of `shape`, their targets as the
    /// cluster's columns, and their hidden states; returns how many.
    fn gather(&mut self, shape: &AdaptiveShape, k: usize, hs: &[f32], targets: &[i32]) -> usize {
        let (ranks, hidden) = (shape.cluster_ranks(k), shape.hidden());
        self.count = 0;
        for (row, &target) in targets.iter().enumerate() {
            if target != IGNORE_TARGET && ranks.contains(&(target as usize)) {
                let i = self.count;
                self.members[i] = row as u32;
                self.targets[i] = (target as usize - ranks.start) as i32;
                self.inputs[i * hidden..(i + 1) * hidden].copy_from_slice(&hs[row * hidden..(row + 1) * hidden]);
                self.count += 1;
            }
        }
        if self.count > 0 {
            self.softmax.set_rows(self.count);
        }
        self.count
    }

    /// `projected = inputs * P_k^T` for the gathered rows.
    fn project(&mut self, shape: &AdaptiveShape, k: usize, params: &[f32]) {
        let (m, hidden, width) = (self.count, shape.hidden(), shape.projection(k));
        let p = &params[shape.range(AdaptiveTensor::Projection(k))];
        let (inputs, projected) = (&self.inputs[..m * hidden], &mut self.projected[..m * width]);
        gemm_parallel(
            m,
            width,
            hidden,
            1.0,
            inputs,
            hidden,
            Transpose::No,
            p,
            hidden,
            Transpose::Yes,
            0.0,
            projected,
            width,
        );
    }

    /// The cluster's backward pass over its gathered rows: `dO_k` and `dP_k` (overwritten) and
    /// the gradient at the gathered hidden states (`d_inputs`).
    fn backward(
        &mut self,
        shape: &AdaptiveShape,
        k: usize,
        (p, o): (&[f32], &[f32]),
        (dp, d_o): (&mut [f32], &mut [f32]),
    ) {
        let (m, hidden, width) = (self.count, shape.hidden(), shape.projection(k));
        let (no, yes) = (Transpose::No, Transpose::Yes);
        let d_projected = &mut self.d_projected[..m * width];
        let update = OutputUpdate::Gradients { w: o, dw: d_o, db: &mut self.bias_grad };
        self.softmax.backward(&self.projected[..m * width], update, d_projected);
        let inputs = &self.inputs[..m * hidden];
        gemm_parallel(width, hidden, m, 1.0, d_projected, width, yes, inputs, hidden, no, 0.0, dp, hidden);
        let d_inputs = &mut self.d_inputs[..m * hidden];
        gemm_parallel(m, hidden, width, 1.0, d_projected, width, no, p, hidden, no, 0.0, d_inputs, hidden);
    }
}

/// The head's bias in `params`, or `zero` when the head has none.
fn head_bias<'a>(shape: &AdaptiveShape, params: &'a [f32], zero: &'a [f32]) -> &'a [f32] {
    if shape.head_bias() {
        &params[shape.range(AdaptiveTensor::HeadBias)]
    } else {
        zero
    }
}

/// `z - log(sum(exp(z)))` in place, the sum taken stably (after the maximum) with the
/// kernels' vector `exp` (a scalar f64 `exp` per word was most of generating a token).
fn log_softmax_inplace(z: &mut [f32]) {
    simd!(V => {
        let mut chunks = z.chunks_exact(V::LANES);
        let max_lanes = (&mut chunks).fold(V::splat(f32::NEG_INFINITY), |m, chunk| m.max(V::load(chunk)));
        let max = chunks.remainder().iter().fold(lane_max(max_lanes), |m, &v| m.max(v));
        let shift = V::splat(max);
        let mut sum_lanes = V::zero();
        let mut chunks = z.chunks_exact(V::LANES);
        for chunk in &mut chunks {
            sum_lanes += exp(V::load(chunk) - shift);
        }
        let tail: f32 = chunks.remainder().iter().map(|&v| (v - max).exp()).sum();
        let log_sum = V::splat(max + ((lane_sum(sum_lanes) + tail) as f64).ln() as f32);
        map_inplace::<V>(z, #[inline(always)] |v| v - log_sum);
    })
}

#[cfg(test)]
mod tests;
