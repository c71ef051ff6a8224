//! What a model is made of: its sizes, its recurrent layers, and where each parameter tensor
//! lives in the one flat parameter buffer.

use crate::kernels::{AdaptiveShape, AdaptiveTensor};
use std::ops::Range;

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

/// The recurrent cell of every layer. Each has one name, [`Cell::name`], used on the command
/// line, in checkpoints (its layers' tensor names and the `cell` metadata) and in the kernels'
/// and the reference's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `rnn`: the chapter's plain RNN, `h = tanh(x Wx + h Wh + b)`.
    Rnn,
    /// `lstm`: the LSTM, gate blocks `[f | g | i | o]`, with a cell state carried beside `h`.
    Lstm,
    /// `gru`: the GRU whose reset gate multiplies the state before `Wh`, gate blocks
    /// `[z | r | h~]`.
    Gru,
}

impl Cell {
    /// Every cell.
    pub const ALL: [Cell; 3] = [Cell::Rnn, Cell::Lstm, Cell::Gru];

    /// Gate blocks per hidden unit: the width of `Wx`, `Wh` and `b` is `gates() * H`.
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// `B x H` blocks of state carried between windows per layer: `h`, and `c` for the LSTM.
    pub fn state_blocks(self) -> usize {
        match self {
            Cell::Lstm => 2,
            Cell::Rnn | Cell::Gru => 1,
        }
    }

    /// Its name: `rnn` (as the chapter names the layer), `lstm` or `gru`; the prefix of its
    /// layers' tensor names in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "rnn",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }

    /// The cell named `name` ([`name`](Self::name)); also `tanh`, the plain RNN's name on the
    /// command line and in the metadata of checkpoints and run states of earlier versions.
    pub fn from_name(name: &str) -> Option<Cell> {
        match name {
            "tanh" => Some(Cell::Rnn),
            _ => Cell::ALL.into_iter().find(|cell| cell.name() == name),
        }
    }
}

/// The output layer: a softmax over every word, or an adaptive softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Softmax {
    /// The affine layer (`affine.W`, `H x V`, or the tied `embed.W^T`; `affine.b`) and a
    /// softmax over all `V` words.
    Full,
    /// An adaptive softmax over the words ranked by frequency (its shape's `vocab` and `hidden`
    /// are the model's `V` and `H`): the `adaptive.*` tensors, named as the state dict of
    /// PyTorch's `nn.AdaptiveLogSoftmaxWithLoss`. It cannot be tied to the embedding.
    Adaptive(AdaptiveShape),
}

impl Softmax {
    /// The adaptive softmax's shape, if that is the layer.
    pub fn adaptive_shape(self) -> Option<AdaptiveShape> {
        match self {
            Softmax::Full => None,
            Softmax::Adaptive(shape) => Some(shape),
        }
    }
}

/// The model's architecture: sizes, cell, number of stacked recurrent layers, output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// `V`, `D`, `H`.
    pub dims: Dims,
    /// The cell of every layer.
    pub cell: Cell,
    /// Recurrent layers, at least 1; layer 0 reads the word vectors (`D` wide), each later
    /// layer the hidden states of the one below (`H` wide).
    pub layers: usize,
    /// Tied weights (needs `D = H`): the affine layer uses `embed.W^T` as its `H x V` matrix
    /// and has no `affine.W` of its own (it keeps its bias).
    pub tied: bool,
    /// The output layer.
    pub output: Softmax,
}

/// Sizes alone are the chapter's SimpleRnnlm: one tanh layer.
impl From<Dims> for Arch {
    fn from(dims: Dims) -> Arch {
        Arch { dims, cell: Cell::Rnn, layers: 1, tied: false, output: Softmax::Full }
    }
}

/// A parameter tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tensor {
    /// `embed.W`, `V x D`.
    EmbedW,
    /// Layer `l`'s input weights, `input x G H` (`input` is `D` for layer 0, else `H`).
    Wx(usize),
    /// Layer `l`'s recurrent weights, `H x G H`.
    Wh(usize),
    /// Layer `l`'s bias, `G H`.
    B(usize),
    /// `affine.W`, `H x V`.
    AffineW,
    /// `affine.b`, `V`.
    AffineB,
    /// A tensor of the adaptive softmax, `adaptive.` + its PyTorch name.
    Adaptive(AdaptiveTensor),
}

impl Arch {
    /// Every tensor in the order of the flat buffer: `embed.W`, each layer's `Wx`, `Wh`, `b`,
    /// then `affine.W` (unless tied) and `affine.b`, or the adaptive softmax's tensors. For one
    /// tanh layer that is the spec's order.
    pub fn tensors(&self) -> impl Iterator<Item = Tensor> + Clone {
        let layers = (0..self.layers).flat_map(|l| [Tensor::Wx(l), Tensor::Wh(l), Tensor::B(l)]);
        let (full, adaptive) = match self.output {
            Softmax::Full => {
                let affine_w = (!self.tied).then_some(Tensor::AffineW);
                (Some(affine_w.into_iter().chain([Tensor::AffineB])), None)
            }
            Softmax::Adaptive(shape) => (None, Some(shape.tensors().map(Tensor::Adaptive))),
        };
        let output = full.into_iter().flatten().chain(adaptive.into_iter().flatten());
        std::iter::once(Tensor::EmbedW).chain(layers).chain(output)
    }

    /// The adaptive softmax's shape, when that is the output layer.
    pub fn adaptive(&self) -> Option<AdaptiveShape> {
        self.output.adaptive_shape()
    }

    /// The elements of the output layer's own tensors in the flat buffer (`affine.W` and
    /// `affine.b`, only `affine.b` when tied, or every adaptive tensor): the end of the buffer.
    pub fn output_range(&self) -> Range<usize> {
        let first = match self.output {
            Softmax::Full if self.tied => Tensor::AffineB,
            Softmax::Full => Tensor::AffineW,
            Softmax::Adaptive(_) => Tensor::Adaptive(AdaptiveTensor::HeadWeight),
        };
        let end = self.param_count().expect("sizes checked when the model was made");
        self.range(first).start..end
    }

    /// The tensor the output layer reads as its weights: `affine.W` (`H x V`), or `embed.W`
    /// (`V x D`, read transposed) when tied.
    pub fn output_weights(&self) -> Tensor {
        if self.tied {
            Tensor::EmbedW
        } else {
            Tensor::AffineW
        }
    }

    /// The input width of layer `layer`: `D` for the first, `H` for the others.
    pub fn input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.dims.embed
        } else {
            self.dims.hidden
        }
    }

    /// The shape (rows, columns); vectors have one row.
    pub fn shape(&self, tensor: Tensor) -> (usize, usize) {
        let Dims { vocab, embed, hidden } = self.dims;
        let width = self.cell.gates() * hidden;
        match tensor {
            Tensor::EmbedW => (vocab, embed),
            Tensor::Wx(layer) => (self.input_size(layer), width),
            Tensor::Wh(_) => (hidden, width),
            Tensor::B(_) => (1, width),
            Tensor::AffineW => (hidden, vocab),
            Tensor::AffineB => (1, vocab),
            Tensor::Adaptive(t) => match self.output {
                Softmax::Adaptive(shape) => shape.shape(t),
                Softmax::Full => panic!("{tensor:?} is not a tensor of a model with a full softmax"),
            },
        }
    }

    /// The shape as the spec and checkpoints write it: `[rows, cols]` for matrices, `[len]` for
    /// bias vectors.
    pub fn spec_shape(&self, tensor: Tensor) -> Vec<usize> {
        let (rows, cols) = self.shape(tensor);
        match tensor {
            Tensor::B(_) | Tensor::AffineB | Tensor::Adaptive(AdaptiveTensor::HeadBias) => vec![cols],
            _ => vec![rows, cols],
        }
    }

    /// The name in checkpoints: `embed.W`, `affine.W`, `affine.b`, `adaptive.head.weight` and
    /// the other adaptive tensors ([`AdaptiveTensor::name`]); layer 0's `{cell}.Wx`,
    /// `{cell}.Wh`, `{cell}.b` and layer `l`'s `{cell}.{l}.Wx` and so on, with `{cell}` the
    /// cell's [`name`](Cell::name) (`rnn.Wx` for the chapter's model).
    pub fn name(&self, tensor: Tensor) -> String {
        let layer_name = |layer: usize, what: &str| {
            let prefix = self.cell.name();
            if layer == 0 {
                format!("{prefix}.{what}")
            } else {
                format!("{prefix}.{layer}.{what}")
            }
        };
        match tensor {
            Tensor::EmbedW => "embed.W".to_owned(),
            Tensor::Wx(layer) => layer_name(layer, "Wx"),
            Tensor::Wh(layer) => layer_name(layer, "Wh"),
            Tensor::B(layer) => layer_name(layer, "b"),
            Tensor::AffineW => "affine.W".to_owned(),
            Tensor::AffineB => "affine.b".to_owned(),
            Tensor::Adaptive(t) => format!("adaptive.{}", t.name()),
        }
    }

    /// Elements of `tensor`, `None` if that overflows.
    fn len(&self, tensor: Tensor) -> Option<usize> {
        let (rows, cols) = self.shape(tensor);
        rows.checked_mul(cols)
    }

    /// Elements of the whole parameter buffer, `None` if that overflows (or a size does).
    pub fn param_count(&self) -> Option<usize> {
        self.dims.hidden.checked_mul(self.cell.gates())?;
        self.tensors().try_fold(0usize, |total, tensor| total.checked_add(self.len(tensor)?))
    }

    /// The element range of `tensor` in the flat parameter (or gradient) buffer. Panics if the
    /// tensor is not one of this architecture's (a layer past the last). Never allocates.
    pub fn range(&self, tensor: Tensor) -> Range<usize> {
        let mut start = 0;
        for t in self.tensors() {
            let len = self.len(t).expect("sizes checked when the model was made");
            if t == tensor {
                return start..start + len;
            }
            start += len;
        }
        panic!("{tensor:?} is not a tensor of {self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cell_has_one_name_and_the_plain_rnn_answers_to_its_old_one() {
        for cell in Cell::ALL {
            assert_eq!(Cell::from_name(cell.name()), Some(cell));
        }
        assert_eq!(Cell::from_name("tanh"), Some(Cell::Rnn));
        assert_eq!(Cell::from_name("elman"), None);
    }

    #[test]
    fn the_chapter_model_keeps_the_spec_names_order_and_shapes() {
        let arch = Arch::from(Dims { vocab: 5, embed: 3, hidden: 2 });
        let names: Vec<String> = arch.tensors().map(|t| arch.name(t)).collect();
        assert_eq!(names, ["embed.W", "rnn.Wx", "rnn.Wh", "rnn.b", "affine.W", "affine.b"]);
        let ranges: Vec<_> = arch.tensors().map(|t| arch.range(t)).collect();
        assert_eq!(ranges, [0..15, 15..21, 21..25, 25..27, 27..37, 37..42]);
        assert_eq!(arch.param_count(), Some(42));
    }

    #[test]
    fn stacked_gated_layers_are_named_and_shaped_by_cell_and_layer() {
        let arch = Arch {
            dims: Dims { vocab: 7, embed: 3, hidden: 2 },
            cell: Cell::Lstm,
            layers: 3,
            tied: false,
            output: Softmax::Full,
        };
        let names: Vec<String> = arch.tensors().map(|t| arch.name(t)).collect();
        assert_eq!(names[1..7], ["lstm.Wx", "lstm.Wh", "lstm.b", "lstm.1.Wx", "lstm.1.Wh", "lstm.1.b"]);
        assert_eq!(names[10], "affine.W");
        assert_eq!(arch.spec_shape(Tensor::Wx(0)), [3, 8]);
        assert_eq!(arch.spec_shape(Tensor::Wx(2)), [2, 8]);
        assert_eq!(arch.spec_shape(Tensor::B(1)), [8]);
        let gru = Arch { cell: Cell::Gru, ..arch };
        assert_eq!(gru.name(Tensor::Wh(2)), "gru.2.Wh");
        assert_eq!(gru.spec_shape(Tensor::Wh(2)), [2, 6]);
        let total: usize = gru.tensors().map(|t| gru.range(t).len()).sum();
        assert_eq!(Some(total), gru.param_count());
        let tied = Arch { dims: Dims { vocab: 7, embed: 2, hidden: 2 }, tied: true, ..gru };
        let names: Vec<String> = tied.tensors().map(|t| tied.name(t)).collect();
        assert_eq!(names.last().map(String::as_str), Some("affine.b"));
        assert!(!names.iter().any(|n| n == "affine.W"), "{names:?}");
        assert_eq!(tied.output_weights(), Tensor::EmbedW);
    }
}
