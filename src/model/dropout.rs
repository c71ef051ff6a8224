//! Dropout in the model: where it applies and the buffers it needs.
//!
//! As in the next chapter's `BetterRnnlm`, dropout applies to the word vectors, between
//! recurrent layers and to the last layer's output before the affine layer: site 0 is the
//! input of layer 0, site `l` the input of layer `l`, site `layers` the input of the output
//! layer. Each site keeps the dropped copy its consumer reads and the multipliers the backward
//! pass applies; the masks are drawn from (seed, training window, site, element)
//! ([`crate::kernels::dropout_forward`]), so nothing is carried between windows.

use super::{zeroed, Arch, ModelError, Window};
use crate::kernels::{dropout_backward, dropout_forward, MaskKey};

/// The dropout ratio, its seed and every site's buffers.
#[derive(Clone)]
pub(super) struct DropoutSites {
    p: f32,
    seed: u64,
    /// Per site: the dropped copy and the multipliers, `T*B x width` each.
    sites: Vec<(Vec<f32>, Vec<f32>)>,
    window: Window,
}

impl DropoutSites {
    /// Buffers for every site of `arch` over windows of `window`; `p` in `(0, 1)`.
    pub(super) fn new(arch: Arch, window: Window, p: f32, seed: u64) -> Result<Self, ModelError> {
        let widths = (0..=arch.layers).map(|site| if site == 0 { arch.dims.embed } else { arch.dims.hidden });
        let buffer = |width: usize| {
            let len = window.tokens().checked_mul(width).ok_or(ModelError::InvalidSize {
                name: "window",
                value: window.tokens(),
                why: "the dropout buffers overflow the address space",
            })?;
            zeroed("window", len)
        };
        let sites = widths.map(|width| Ok((buffer(width)?, buffer(width)?))).collect::<Result<_, ModelError>>()?;
        Ok(DropoutSites { p, seed, sites, window })
    }

    /// The dropout ratio.
    pub(super) fn p(&self) -> f32 {
        self.p
    }

    /// The seed of the masks.
    pub(super) fn seed(&self) -> u64 {
        self.seed
    }

    /// Drops out `input` (`T*B x width`) at `site` with training window `window`'s mask, the
    /// window's rows being those from `first_row` on of the whole batch ([`MaskKey`]); returns
    /// the dropped copy.
    pub(super) fn forward(&mut self, site: usize, window: u64, first_row: usize, input: &[f32]) -> &[f32] {
        let key = MaskKey { seed: self.seed, window, site: site as u32, first_row: first_row as u64 };
        let Window { batch, time } = self.window;
        let (dropped, multipliers) = &mut self.sites[site];
        let width = input.len() / (batch * time);
        dropout_forward(self.p, key, (batch, time, width), input, dropped, multipliers);
        dropped
    }

    /// Bytes of `site`'s buffers (the dropped copy and the multipliers).
    pub(super) fn site_bytes(&self, site: usize) -> usize {
        let (dropped, multipliers) = &self.sites[site];
        (dropped.len() + multipliers.len()) * size_of::<f32>()
    }

    /// The dropped copy of the last forward at `site`.
    pub(super) fn dropped(&self, site: usize) -> &[f32] {
        &self.sites[site].0
    }

    /// Multiplies the gradient at `site`'s dropped copy by its mask: the gradient at its input.
    pub(super) fn backward(&self, site: usize, grads: &mut [f32]) {
        dropout_backward(&self.sites[site].1, grads);
    }
}
