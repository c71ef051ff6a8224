//! The adaptive softmax as its definition writes it, one row at a time: the head's
//! log-softmax, plus the target's cluster's log-softmax over its projected state. Classes are
//! ranks (0 the most frequent word), as in [`AdaptiveShape`].

use super::{zeros, Real};
use crate::kernels::{AdaptiveShape, AdaptiveTensor, Slot};

/// `y = W x` for one row `x` (`inputs`) and `W` of `outputs x inputs` (PyTorch's `Linear`).
fn linear<R: Real>(x: &[R], w: &[R], outputs: usize) -> Vec<R> {
    let inputs = x.len();
    (0..outputs)
        .map(|j| {
            let mut sum = R::zero();
            for i in 0..inputs {
                sum += w[j * inputs + i] * x[i];
            }
            sum
        })
        .collect()
}

/// `z - log(sum(exp(z)))`, the sum taken after the maximum.
fn log_softmax<R: Real>(z: &[R]) -> Vec<R> {
    let max = z.iter().fold(z[0], |m, &v| if v > m { v } else { m });
    let mut sum = R::zero();
    for &v in z {
        sum += (v - max).exp();
    }
    let shift = max + sum.ln();
    z.iter().map(|&v| v - shift).collect()
}

/// The adaptive softmax with its parameters and the gradients of the last backward pass.
pub struct AdaptiveSoftmax<R> {
    /// The shape.
    pub shape: AdaptiveShape,
    /// The parameters, the layer's flat block (order of [`AdaptiveShape::tensors`]).
    pub params: Vec<R>,
    /// Their gradients from the last backward pass.
    pub grads: Vec<R>,
    hs: Vec<R>,
    targets: Vec<i32>,
}

impl<R: Real> AdaptiveSoftmax<R> {
    /// The layer of `shape` holding `params`.
    pub fn new(shape: AdaptiveShape, params: Vec<R>) -> Self {
        assert_eq!(Some(params.len()), shape.param_count(), "AdaptiveSoftmax: parameter count");
        let grads = zeros(params.len());
        AdaptiveSoftmax { shape, params, grads, hs: Vec::new(), targets: Vec::new() }
    }

    fn tensor(&self, tensor: AdaptiveTensor) -> &[R] {
        &self.params[self.shape.range(tensor)]
    }

    /// The head's logits for one hidden state.
    fn head_logits(&self, h: &[R]) -> Vec<R> {
        let mut z = linear(h, self.tensor(AdaptiveTensor::HeadWeight), self.shape.head_classes());
        if self.shape.head_bias() {
            for (z, &b) in z.iter_mut().zip(self.tensor(AdaptiveTensor::HeadBias)) {
                *z += b;
            }
        }
        z
    }

    /// Cluster `k`'s projection of `h` and its logits.
    fn cluster_logits(&self, h: &[R], k: usize) -> (Vec<R>, Vec<R>) {
        let projected = linear(h, self.tensor(AdaptiveTensor::Projection(k)), self.shape.projection(k));
        let u = linear(&projected, self.tensor(AdaptiveTensor::ClusterWeight(k)), self.shape.cluster_size(k));
        (projected, u)
    }

    /// `log P(class)` of every class, in rank order, after the hidden state `h`.
    pub fn log_probs(&self, h: &[R]) -> Vec<R> {
        let shortlist = self.shape.shortlist();
        let head = log_softmax(&self.head_logits(h));
        let mut out = head[..shortlist].to_vec();
        for k in 0..self.shape.clusters() {
            let within = log_softmax(&self.cluster_logits(h, k).1);
            out.extend(within.iter().map(|&v| head[shortlist + k] + v));
        }
        out
    }

    /// `-log P(target)` of one row.
    fn row_loss(&self, h: &[R], target: usize) -> R {
        let head = log_softmax(&self.head_logits(h));
        match self.shape.slot(target) {
            Slot::Head(column) => -head[column],
            Slot::Cluster { cluster, index } => {
                let within = log_softmax(&self.cluster_logits(h, cluster).1);
                -(head[self.shape.shortlist() + cluster] + within[index])
            }
        }
    }

    /// Each row's `-log P(target)` (0 for a target of -1); `hs` is `rows x H`.
    pub fn row_losses(&self, hs: &[R], targets: &[i32]) -> Vec<R> {
        let hidden = self.shape.hidden();
        targets
            .iter()
            .enumerate()
            .map(
                |(r, &t)| {
                    if t == -1 {
                        R::zero()
                    } else {
                        self.row_loss(&hs[r * hidden..(r + 1) * hidden], t as usize)
                    }
                },
            )
            .collect()
    }

    /// The mean of `-log P(target)` over the rows whose target is not -1 (0 if none);
    /// remembers the rows for the backward pass.
    pub fn forward(&mut self, hs: &[R], targets: &[i32]) -> R {
        self.hs = hs.to_vec();
        self.targets = targets.to_vec();
        let kept = targets.iter().filter(|&&t| t != -1).count();
        let mut total = R::zero();
        for loss in self.row_losses(hs, targets) {
            total += loss;
        }
        if kept == 0 {
            R::zero()
        } else {
            total / R::from_f64(kept as f64)
        }
    }

    /// Sets every gradient of the mean loss of the last forward pass and returns its gradient
    /// with respect to the hidden states.
    pub fn backward(&mut self) -> Vec<R> {
        let shape = self.shape;
        let hidden = shape.hidden();
        let kept = self.targets.iter().filter(|&&t| t != -1).count();
        let scale = R::one() / R::from_f64(kept.max(1) as f64);
        let mut grads: Vec<R> = zeros(self.params.len());
        let mut dhs: Vec<R> = zeros(self.hs.len());
        for (r, &target) in self.targets.iter().enumerate() {
            if target == -1 {
                continue;
            }
            let h = &self.hs[r * hidden..(r + 1) * hidden];
            let dh = &mut dhs[r * hidden..(r + 1) * hidden];
            // The head: dz = (softmax - onehot(head column)) / kept.
            let mut dz: Vec<R> = log_softmax(&self.head_logits(h)).iter().map(|&v| v.exp() * scale).collect();
            let column = shape.head_column(target as usize);
            dz[column] = dz[column] - scale;
            let (w_range, head_w) = (shape.range(AdaptiveTensor::HeadWeight), self.tensor(AdaptiveTensor::HeadWeight));
            for (j, &g) in dz.iter().enumerate() {
                for i in 0..hidden {
                    grads[w_range.start + j * hidden + i] += g * h[i];
                    dh[i] += g * head_w[j * hidden + i];
                }
                if shape.head_bias() {
                    grads[shape.range(AdaptiveTensor::HeadBias).start + j] += g;
                }
            }
            let Slot::Cluster { cluster: k, index } = shape.slot(target as usize) else { continue };
            // The cluster: du = (softmax - onehot(index)) / kept, back through O_k and P_k.
            let (projected, u) = self.cluster_logits(h, k);
            let mut du: Vec<R> = log_softmax(&u).iter().map(|&v| v.exp() * scale).collect();
            du[index] = du[index] - scale;
            let width = shape.projection(k);
            let (o_range, o) =
                (shape.range(AdaptiveTensor::ClusterWeight(k)), self.tensor(AdaptiveTensor::ClusterWeight(k)));
            let mut dprojected: Vec<R> = zeros(width);
            for (j, &g) in du.iter().enumerate() {
                for a in 0..width {
                    grads[o_range.start + j * width + a] += g * projected[a];
                    dprojected[a] += g * o[j * width + a];
                }
            }
            let (p_range, p) = (shape.range(AdaptiveTensor::Projection(k)), self.tensor(AdaptiveTensor::Projection(k)));
            for (a, &g) in dprojected.iter().enumerate() {
                for i in 0..hidden {
                    grads[p_range.start + a * hidden + i] += g * h[i];
                    dh[i] += g * p[a * hidden + i];
                }
            }
        }
        self.grads = grads;
        dhs
    }
}
