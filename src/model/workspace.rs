//! Every activation of one window, in buffers allocated once per window shape.

use super::layers::{new_layer, Recurrence};
use super::output::{new_output, OutputHead};
use super::{zeroed, Arch, Dims, ModelError, Window};

/// Every activation of one window, allocated once. Rows are time-major (`t * batch + b`).
pub(super) struct Workspace {
    /// Input ids, `B*T`.
    pub(super) ids: Vec<u32>,
    /// Target ids or `-1`, `B*T`.
    pub(super) targets: Vec<i32>,
    /// Gathered word vectors `x_t`, `B*T x D`.
    pub(super) x: Vec<f32>,
    /// The recurrent layers' buffers, bottom first.
    pub(super) layers: Vec<Box<dyn Recurrence>>,
    /// The output layer's buffers (logits in column panels, or the adaptive softmax's).
    pub(super) output: Box<dyn OutputHead>,
    /// One row of scores in the output layer's class order (ranks), before they are put in
    /// word-id order (adaptive softmax only; empty otherwise).
    pub(super) class_scores: Vec<f32>,
    /// Loss of each row, `B*T`.
    pub(super) row_loss: Vec<f32>,
    /// Gradient with respect to the gathered word vectors, `B*T x D`.
    pub(super) dx: Vec<f32>,
    /// Distinct ids of the last backward window, in order of first appearance: the only rows
    /// of the embedding gradient that may be non-zero.
    pub(super) touched: Vec<u32>,
    /// `touched_mark[id]` is true while `id` is in `touched`.
    pub(super) touched_mark: Vec<bool>,
    /// Whether the last forward pass applied dropout (its backward pass then goes through it).
    pub(super) dropped: bool,
}

impl Clone for Workspace {
    fn clone(&self) -> Self {
        Workspace {
            ids: self.ids.clone(),
            targets: self.targets.clone(),
            x: self.x.clone(),
            layers: self.layers.iter().map(|layer| layer.boxed_clone()).collect(),
            output: self.output.boxed_clone(),
            class_scores: self.class_scores.clone(),
            row_loss: self.row_loss.clone(),
            dx: self.dx.clone(),
            touched: self.touched.clone(),
            touched_mark: self.touched_mark.clone(),
            dropped: self.dropped,
        }
    }
}

impl Workspace {
    /// Every buffer of a `window` of `arch`, zeroed.
    pub(super) fn new(arch: Arch, window: Window) -> Result<Self, ModelError> {
        let Dims { vocab: v, embed: d, hidden: h } = arch.dims;
        let n = window.tokens();
        let rows_of = |width: usize| {
            n.checked_mul(width).ok_or(ModelError::InvalidSize {
                name: "window",
                value: n,
                why: "the buffers it needs overflow the address space",
            })
        };
        Ok(Workspace {
            ids: zeroed("window", n)?,
            targets: zeroed("window", n)?,
            x: zeroed("window", rows_of(d)?)?,
            layers: (0..arch.layers).map(|_| new_layer(arch.cell, h, window)).collect::<Result<_, _>>()?,
            output: new_output(arch, window)?,
            class_scores: zeroed("vocabulary", if arch.adaptive().is_some() { v } else { 0 })?,
            row_loss: zeroed("window", n)?,
            dx: zeroed("window", rows_of(d)?)?,
            touched: Vec::with_capacity(n.min(v)),
            touched_mark: zeroed("vocabulary", v)?,
            dropped: false,
        })
    }
}

/// The length of the state carried between windows of `window`: per layer, `B x H` per state
/// block.
pub(super) fn state_len(arch: Arch, window: Window) -> Result<usize, ModelError> {
    let blocks = arch.layers * arch.cell.state_blocks();
    blocks.checked_mul(window.batch).and_then(|len| len.checked_mul(arch.dims.hidden)).ok_or(ModelError::InvalidSize {
        name: "batch size",
        value: window.batch,
        why: "the state it needs overflows the address space",
    })
}
