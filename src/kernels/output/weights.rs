//! How the output layer's weights are stored: as `W` (`hidden x classes`), the affine layer's
//! own, or as `W^T` (`classes x hidden`), an embedding table standing in for `W` when the
//! weights are tied. Everything that differs between the two is here: where a panel of
//! classes is, and how its weight gradient is computed.

use super::super::gemm::{gemm_packed_a_into, gemm_packed_into, GemmShape, PackedA, PackedB, Transpose};
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

    /// The GEMMs of a pass over `rows` rows: forward `z = hs * W`; backward `dW` (stored in
    /// this layout) and `dhs = dz * W^T`.
    pub(super) fn gemms(self, (rows, hidden, classes): (usize, usize, usize)) -> ([GemmShape; 1], [GemmShape; 2]) {
        let (no, yes) = (Transpose::No, Transpose::Yes);
        match self {
            WeightLayout::HiddenByClasses => (
                [GemmShape::new((rows, classes, hidden), no, no)],
                [GemmShape::new((hidden, classes, rows), yes, no), GemmShape::new((rows, hidden, classes), no, yes)],
            ),
            WeightLayout::ClassesByHidden => (
                [GemmShape::new((rows, classes, hidden), no, yes)],
                [GemmShape::new((classes, hidden, rows), yes, no), GemmShape::new((rows, hidden, classes), no, no)],
            ),
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

/// The output layer's weights packed once, panel by panel, for many forward passes that only
/// read them ([`OutputLayer::forward_loss_only`](super::OutputLayer::forward_loss_only), what
/// scoring text runs): each pass then packs only its inputs. With few rows per pass, packing
/// `W` again every pass was a tenth of the time at `H = 100`, `V = 10,000`. [`new`](Self::new)
/// allocates (as much as `W`); [`pack`](Self::pack) does not.
#[derive(Clone, Debug)]
pub struct PackedWeights {
    hidden: usize,
    classes: usize,
    layout: WeightLayout,
    /// One per panel of [`PANEL_COLS`](super::PANEL_COLS) classes.
    panels: Vec<PackedB>,
}

impl PackedWeights {
    /// Bytes of the packed panels.
    pub fn bytes(&self) -> usize {
        self.panels.iter().map(PackedB::bytes).sum()
    }

    /// Room for `W` of `hidden x classes` stored as `layout` says; `None` if that much memory
    /// cannot be had. Panics if a size is 0.
    pub fn new(hidden: usize, classes: usize, layout: WeightLayout) -> Option<Self> {
        assert!(
            hidden > 0 && classes > 0,
            "PackedWeights::new: hidden ({hidden}) and classes ({classes}) must be positive"
        );
        let panels = (0..classes)
            .step_by(super::PANEL_COLS)
            .map(|j0| PackedB::new(hidden, super::PANEL_COLS.min(classes - j0)))
            .collect::<Option<Vec<_>>>()?;
        Some(PackedWeights { hidden, classes, layout, panels })
    }

    /// Packs `w` (in the layout given to [`new`](Self::new)). Panics if its length does not
    /// match.
    pub fn pack(&mut self, w: &[f32]) {
        let (hidden, classes) = (self.hidden, self.classes);
        super::check_len("PackedWeights::pack", "w", w.len(), self.layout.shape_name(), &[hidden, classes]);
        for (index, panel) in self.panels.iter_mut().enumerate() {
            let (data, ld, trans) = self.layout.panel(w, index * super::PANEL_COLS, (hidden, classes));
            panel.pack(data, ld, trans);
        }
    }

    /// `(hidden, classes, layout)`, to check against a layer's.
    pub(super) fn shape(&self) -> (usize, usize, WeightLayout) {
        (self.hidden, self.classes, self.layout)
    }

    /// The packed panel `index`.
    pub(super) fn panel(&self, index: usize) -> &PackedB {
        &self.panels[index]
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

    /// Room for `hs` of `rows` rows (at most those it was made for), without allocating.
    pub(super) fn set_rows(&mut self, rows: usize) {
        match self {
            PackedForGradient::Transposed(packed) => packed.set_depth(rows),
            PackedForGradient::AsRight(packed) => packed.set_depth(rows),
        }
    }

    /// Bytes of its buffer.
    pub(super) fn bytes(&self) -> usize {
        match self {
            PackedForGradient::Transposed(packed) => packed.bytes(),
            PackedForGradient::AsRight(packed) => packed.bytes(),
        }
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
