//! How the output layer's weights are stored: as `W` (`hidden x classes`), the affine layer's
//! own, or as `W^T` (`classes x hidden`), an embedding table standing in for `W` when the
//! weights are tied. Everything that differs between the two is here: where a panel of
//! classes is, and how its weight gradient is computed.

use super::super::gemm::{gemm_packed_a_into, gemm_packed_into, PackedA, PackedB, Transpose};
use super::super::out_matrix::OutMatrix;

/// How the output layer's weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `W`, `hidden x classes`: the affine layer's own weights.
    HiddenByClasses,
    /// `W^T`, `classes x hidden`: an embedding table used as the affine layer's weights
    /// (tied weights).
    ClassesByHidden,
}

impl WeightLayout {
    /// How the stored matrix's shape is named in messages.
    pub(super) fn shape_name(self) -> &'static str {
        match self {
            WeightLayout::HiddenByClasses => "hidden x classes",
            WeightLayout::ClassesByHidden => "classes x hidden",
        }
    }

    /// The stored matrix's `(rows, cols)`.
    pub(super) fn stored(self, hidden: usize, classes: usize) -> (usize, usize) {
        match self {
            WeightLayout::HiddenByClasses => (hidden, classes),
            WeightLayout::ClassesByHidden => (classes, hidden),
        }
    }

    /// The `hidden x width` panel of `W` for classes `j0..`, as a GEMM operand `(data, ld,
    /// transpose)` over the stored matrix `w`.
    pub(super) fn panel(self, w: &[f32], j0: usize, (hidden, classes): (usize, usize)) -> (&[f32], usize, Transpose) {
        match self {
            WeightLayout::HiddenByClasses => (&w[j0..], classes, Transpose::No),
            WeightLayout::ClassesByHidden => (&w[j0 * hidden..], hidden, Transpose::Yes),
        }
    }

    /// The block of the stored matrix (or its gradient) holding classes `j0..j0 + width`:
    /// `(first row, rows), (first column, columns)`.
    pub(super) fn block(self, (j0, width): (usize, usize), hidden: usize) -> ((usize, usize), (usize, usize)) {
        match self {
            WeightLayout::HiddenByClasses => ((0, hidden), (j0, width)),
            WeightLayout::ClassesByHidden => ((j0, width), (0, hidden)),
        }
    }

    /// The same panel, but from a copy of its block (row-major, as [`block`](Self::block)
    /// cut it).
    pub(super) fn panel_of_copy(self, copy: &[f32], (hidden, width): (usize, usize)) -> (&[f32], usize, Transpose) {
        match self {
            WeightLayout::HiddenByClasses => (copy, width, Transpose::No),
            WeightLayout::ClassesByHidden => (copy, hidden, Transpose::Yes),
        }
    }
}

/// `hs` packed for the weight gradients of every panel of a backward pass: as `hs^T`, the left
/// operand of `dW[:, panel] = hs^T * dz`, or as `hs`, the right operand of
/// `dW^T[panel, :] = dz^T * hs`.
#[derive(Clone, Debug)]
pub(super) enum PackedForGradient {
    Transposed(PackedA),
    AsRight(PackedB),
}

impl PackedForGradient {
    /// Room for `hs` (`rows x hidden`) packed for `layout`; `None` if it cannot be had.
    pub(super) fn new(layout: WeightLayout, rows: usize, hidden: usize) -> Option<Self> {
        Some(match layout {
            WeightLayout::HiddenByClasses => PackedForGradient::Transposed(PackedA::new(hidden, rows)?),
            WeightLayout::ClassesByHidden => PackedForGradient::AsRight(PackedB::new(rows, hidden)?),
        })
    }

    /// Packs `hs`, `rows x hidden` row-major.
    pub(super) fn pack(&mut self, hs: &[f32], hidden: usize) {
        match self {
            PackedForGradient::Transposed(packed) => packed.pack(hs, hidden, Transpose::Yes),
            PackedForGradient::AsRight(packed) => packed.pack(hs, hidden, Transpose::No),
        }
    }

    /// `block = alpha * (the panel's weight gradient) + beta * block`, where `dz` is the
    /// panel's gradient (`rows x width`) and `block` the panel's block of `W`'s layout.
    pub(super) fn weight_gradient(&self, alpha: f32, dz: &[f32], width: usize, beta: f32, block: &mut OutMatrix<'_>) {
        match self {
            PackedForGradient::Transposed(hs_t) => {
                gemm_packed_a_into(alpha, hs_t, (dz, width, Transpose::No), beta, block)
            }
            PackedForGradient::AsRight(hs) => gemm_packed_into(alpha, (dz, width, Transpose::Yes), hs, beta, block),
        }
    }
}
