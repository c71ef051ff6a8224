//! The shape of an adaptive softmax: which ranks the head and each tail cluster hold, how wide
//! each cluster's projection is, and where every parameter tensor lives in the layer's one
//! flat block. Everything else (buffers, FLOPs, checkpoint tensors) is derived from it.

use super::super::gemm::{GemmShape, Transpose};
use std::ops::Range;

/// Most tail clusters an adaptive softmax may have.
pub const MAX_CLUSTERS: usize = 8;

/// The sizes of an adaptive softmax over `vocab` classes ranked by frequency (rank 0 the most
/// frequent) for hidden states of `hidden` values: the head's shortlist holds ranks
/// `0..cutoffs[0]`, tail cluster `k` ranks `cutoffs[k]..cutoffs[k + 1]` (the last one up to
/// `vocab`), and cluster `k` projects the hidden state to `max(1, floor(hidden / div^(k+1)))`
/// values before its own softmax, as PyTorch's `nn.AdaptiveLogSoftmaxWithLoss` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptiveShape {
    vocab: usize,
    hidden: usize,
    /// The first `clusters` are the cutoffs; the rest 0.
    cutoffs: [usize; MAX_CLUSTERS],
    clusters: usize,
    /// Each cluster's projection width.
    projections: [usize; MAX_CLUSTERS],
    /// `div_value`, as its bits (so that the shape can be compared and hashed).
    div_bits: u32,
    head_bias: bool,
}

/// One parameter tensor of an adaptive softmax, named as in the state dict of PyTorch's
/// `nn.AdaptiveLogSoftmaxWithLoss` ([`name`](AdaptiveTensor::name)); each is row-major,
/// `out x in` like PyTorch's `Linear` weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdaptiveTensor {
    /// `head.weight`: `(shortlist + clusters) x hidden`.
    HeadWeight,
    /// `head.bias`: `shortlist + clusters` (only when the head has a bias).
    HeadBias,
    /// `tail.{k}.0.weight`: cluster `k`'s projection, `projection(k) x hidden`.
    Projection(usize),
    /// `tail.{k}.1.weight`: cluster `k`'s output weights, `cluster_size(k) x projection(k)`.
    ClusterWeight(usize),
}

impl AdaptiveTensor {
    /// The name in PyTorch's state dict: `head.weight`, `head.bias`, `tail.0.0.weight`, ...
    pub fn name(self) -> String {
        match self {
            AdaptiveTensor::HeadWeight => "head.weight".to_owned(),
            AdaptiveTensor::HeadBias => "head.bias".to_owned(),
            AdaptiveTensor::Projection(k) => format!("tail.{k}.0.weight"),
            AdaptiveTensor::ClusterWeight(k) => format!("tail.{k}.1.weight"),
        }
    }
}

/// Where one class (a rank) is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// In the head's shortlist, at this column.
    Head(usize),
    /// In tail cluster `cluster`, at column `index` of its softmax (the head's column for the
    /// cluster is `shortlist + cluster`).
    Cluster {
        /// The cluster.
        cluster: usize,
        /// The class's column within the cluster.
        index: usize,
    },
}

impl AdaptiveShape {
    /// The shape for `vocab` classes, `hidden` inputs, the given cutoffs and `div_value`, with
    /// or without a bias on the head. Errors, in a sentence, unless there are 1 to
    /// [`MAX_CLUSTERS`] cutoffs, strictly ascending, each in `1..vocab` (so that every cluster
    /// has a word), and `div_value` is a positive finite number.
    pub fn new(
        vocab: usize,
        hidden: usize,
        cutoffs: &[usize],
        div_value: f32,
        head_bias: bool,
    ) -> Result<Self, String> {
        if vocab < 2 || hidden == 0 {
            return Err(format!(
                "an adaptive softmax needs at least 2 classes and 1 hidden unit, not {vocab} and {hidden}"
            ));
        }
        if cutoffs.is_empty() {
            return Err("the cutoffs are empty: give at least one".to_owned());
        }
        if cutoffs.len() > MAX_CLUSTERS {
            return Err(format!("{} cutoffs given, at most {MAX_CLUSTERS} are supported", cutoffs.len()));
        }
        if let Some(pair) = cutoffs.windows(2).find(|pair| pair[1] <= pair[0]) {
            let why = if pair[0] == pair[1] { "is repeated" } else { "comes after a larger one" };
            return Err(format!("the cutoffs must be strictly ascending: {} {why}", pair[1]));
        }
        if cutoffs[0] == 0 {
            return Err("a cutoff of 0 leaves the head's shortlist with no word".to_owned());
        }
        let last = cutoffs[cutoffs.len() - 1];
        if last >= vocab {
            return Err(format!(
                "the cutoff {last} is not below the vocabulary size {vocab}: its cluster would have no word"
            ));
        }
        if !(div_value.is_finite() && div_value > 0.0) {
            return Err(format!("the div value must be a positive number, not {div_value}"));
        }
        let mut shape = AdaptiveShape {
            vocab,
            hidden,
            cutoffs: [0; MAX_CLUSTERS],
            clusters: cutoffs.len(),
            projections: [0; MAX_CLUSTERS],
            div_bits: div_value.to_bits(),
            head_bias,
        };
        shape.cutoffs[..cutoffs.len()].copy_from_slice(cutoffs);
        for k in 0..cutoffs.len() {
            // As PyTorch: `in_features // (div_value ** (k + 1))`, in doubles; at least 1.
            let width = (hidden as f64).div_euclid((div_value as f64).powi(k as i32 + 1));
            shape.projections[k] = (width as usize).max(1);
        }
        Ok(shape)
    }

    /// Classes `V`.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Inputs per row `H`.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The cutoffs, ascending.
    pub fn cutoffs(&self) -> &[usize] {
        &self.cutoffs[..self.clusters]
    }

    /// The `div_value` the projections were sized by.
    pub fn div_value(&self) -> f32 {
        f32::from_bits(self.div_bits)
    }

    /// Whether the head has a bias.
    pub fn head_bias(&self) -> bool {
        self.head_bias
    }

    /// Tail clusters `K`.
    pub fn clusters(&self) -> usize {
        self.clusters
    }

    /// Words in the head's shortlist (`cutoffs[0]`).
    pub fn shortlist(&self) -> usize {
        self.cutoffs[0]
    }

    /// Columns of the head: the shortlist, then one per cluster.
    pub fn head_classes(&self) -> usize {
        self.shortlist() + self.clusters
    }

    /// The ranks of cluster `k`.
    pub fn cluster_ranks(&self, k: usize) -> Range<usize> {
        let end = if k + 1 < self.clusters { self.cutoffs[k + 1] } else { self.vocab };
        self.cutoffs[k]..end
    }

    /// Words in cluster `k`.
    pub fn cluster_size(&self, k: usize) -> usize {
        self.cluster_ranks(k).len()
    }

    /// Cluster `k`'s projection width.
    pub fn projection(&self, k: usize) -> usize {
        self.projections[k]
    }

    /// Where the class of rank `rank` (below `vocab`) is computed.
    pub fn slot(&self, rank: usize) -> Slot {
        if rank < self.shortlist() {
            return Slot::Head(rank);
        }
        let cluster = self.cutoffs().partition_point(|&c| c <= rank) - 1;
        Slot::Cluster { cluster, index: rank - self.cutoffs[cluster] }
    }

    /// The head's column for the class of rank `rank`: the rank itself in the shortlist, else
    /// its cluster's column.
    pub fn head_column(&self, rank: usize) -> usize {
        match self.slot(rank) {
            Slot::Head(column) => column,
            Slot::Cluster { cluster, .. } => self.shortlist() + cluster,
        }
    }

    /// The parameter tensors, in the order of the layer's flat block: the head's weight (and
    /// bias), then each cluster's projection and output weights.
    pub fn tensors(&self) -> impl Iterator<Item = AdaptiveTensor> + Clone {
        let bias = self.head_bias.then_some(AdaptiveTensor::HeadBias);
        let tails = (0..self.clusters).flat_map(|k| [AdaptiveTensor::Projection(k), AdaptiveTensor::ClusterWeight(k)]);
        std::iter::once(AdaptiveTensor::HeadWeight).chain(bias).chain(tails)
    }

    /// `(rows, cols)` of a tensor; the bias is one row.
    pub fn shape(&self, tensor: AdaptiveTensor) -> (usize, usize) {
        match tensor {
            AdaptiveTensor::HeadWeight => (self.head_classes(), self.hidden),
            AdaptiveTensor::HeadBias => (1, self.head_classes()),
            AdaptiveTensor::Projection(k) => (self.projection(k), self.hidden),
            AdaptiveTensor::ClusterWeight(k) => (self.cluster_size(k), self.projection(k)),
        }
    }

    /// Values in the layer's flat block, `None` if that overflows.
    pub fn param_count(&self) -> Option<usize> {
        self.tensors().try_fold(0usize, |total, t| {
            let (rows, cols) = self.shape(t);
            total.checked_add(rows.checked_mul(cols)?)
        })
    }

    /// The element range of `tensor` in the layer's flat block. Panics if the layer has no
    /// such tensor.
    pub fn range(&self, tensor: AdaptiveTensor) -> Range<usize> {
        let mut start = 0;
        for t in self.tensors() {
            let (rows, cols) = self.shape(t);
            if t == tensor {
                return start..start + rows * cols;
            }
            start += rows * cols;
        }
        panic!("{tensor:?} is not a tensor of {self:?}")
    }

    /// The GEMMs of a training pass over `rows` rows, of which `cluster_rows[k]` have their
    /// target in cluster `k`, forward and backward: the head's over every row, and for each
    /// cluster's rows its projection's and its softmax's (a cluster without rows runs none).
    pub fn gemms(&self, rows: usize, cluster_rows: &[usize]) -> (Vec<GemmShape>, Vec<GemmShape>) {
        let (no, yes) = (Transpose::No, Transpose::Yes);
        let (h, head) = (self.hidden, self.head_classes());
        let mut forward = vec![GemmShape::new((rows, head, h), no, yes)];
        let mut backward = vec![GemmShape::new((head, h, rows), yes, no), GemmShape::new((rows, h, head), no, no)];
        for (k, &m) in cluster_rows.iter().enumerate().take(self.clusters).filter(|(_, &m)| m > 0) {
            let (p, size) = (self.projection(k), self.cluster_size(k));
            forward.extend([GemmShape::new((m, p, h), no, yes), GemmShape::new((m, size, p), no, yes)]);
            backward.extend([
                GemmShape::new((size, p, m), yes, no),
                GemmShape::new((m, p, size), no, no),
                GemmShape::new((p, h, m), yes, no),
                GemmShape::new((m, h, p), no, no),
            ]);
        }
        (forward, backward)
    }

    /// Floating-point operations of one training pass (forward and backward) over `rows` rows,
    /// of which `cluster_rows[k]` have their target in cluster `k`: those of its
    /// [`gemms`](Self::gemms).
    pub fn training_flops(&self, rows: usize, cluster_rows: &[usize]) -> f64 {
        let (forward, backward) = self.gemms(rows, cluster_rows);
        forward.iter().chain(&backward).map(GemmShape::flops).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_ranks_and_projections_follow_the_cutoffs() {
        let shape = AdaptiveShape::new(10_000, 200, &[2000, 6000], 4.0, true).unwrap();
        assert_eq!((shape.shortlist(), shape.head_classes(), shape.clusters()), (2000, 2002, 2));
        assert_eq!(shape.cluster_ranks(0), 2000..6000);
        assert_eq!(shape.cluster_ranks(1), 6000..10_000);
        assert_eq!((shape.projection(0), shape.projection(1)), (50, 12));
        assert_eq!(shape.slot(1999), Slot::Head(1999));
        assert_eq!(shape.slot(2000), Slot::Cluster { cluster: 0, index: 0 });
        assert_eq!(shape.slot(9999), Slot::Cluster { cluster: 1, index: 3999 });
        assert_eq!(shape.head_column(7000), 2001);
        let names: Vec<String> = shape.tensors().map(AdaptiveTensor::name).collect();
        assert_eq!(
            names,
            ["head.weight", "head.bias", "tail.0.0.weight", "tail.0.1.weight", "tail.1.0.weight", "tail.1.1.weight"]
        );
        let total = 2002 * 200 + 2002 + 50 * 200 + 4000 * 50 + 12 * 200 + 4000 * 12;
        assert_eq!(shape.param_count(), Some(total));
        assert_eq!(shape.range(AdaptiveTensor::ClusterWeight(1)).end, total);
        // A projection never shrinks to nothing.
        assert_eq!(AdaptiveShape::new(100, 3, &[10], 8.0, false).unwrap().projection(0), 1);
        assert_eq!(AdaptiveShape::new(100, 3, &[10], 8.0, false).unwrap().tensors().count(), 3);
    }

    #[test]
    fn bad_cutoffs_and_div_values_are_refused_with_a_reason() {
        let refused = |cutoffs: &[usize], div: f32| AdaptiveShape::new(100, 8, cutoffs, div, true).unwrap_err();
        assert!(refused(&[], 4.0).contains("empty"));
        assert!(refused(&[20, 10], 4.0).contains("ascending"));
        assert!(refused(&[20, 20], 4.0).contains("repeated"));
        assert!(refused(&[20, 100], 4.0).contains("not below the vocabulary size 100"));
        assert!(refused(&[0, 50], 4.0).contains("shortlist"));
        assert!(refused(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 4.0).contains("at most 8"));
        for div in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(refused(&[20], div).contains("div value"), "{div}");
        }
    }
}
