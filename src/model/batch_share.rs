//! Data-parallel training: several processes train one model on one batch, each on a share of
//! its rows, and add up their gradients before every update.
//!
//! Each process holds the whole model and a window of its own rows ([`share_rows`]). A step on
//! a share ([`Rnnlm::train_step_shared`]) is the training step of the whole batch cut by rows:
//! the forward pass over the share's rows (with the dropout masks those rows have in the whole
//! batch), its loss and gradients divided by the whole batch's number of targets, so that the
//! shares' gradients add up to the batch's; then the caller's reduction of the gradient buffer
//! (an allreduce summing it over the processes), then the same clipping and update as
//! [`Rnnlm::train_step`]. Every process then holds the same gradient and applies the same
//! update, so their weights stay identical. The sums run in another order than one process's
//! (the shares' partial sums, then the reduction), so the result agrees with one process to
//! the rounding of f32 sums, not bit for bit.

use super::{check_step, ModelError, Rnnlm};
use std::ops::Range;

/// Where a model's window lies in a batch shared out between processes: its rows are rows
/// `first_row..first_row + B` of the whole batch (they draw that batch's dropout masks), and
/// the loss is the mean over the whole batch's `batch_targets` targets (those that are not
/// ignored, over every share).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShare {
    /// The window's first row within the whole batch.
    pub first_row: usize,
    /// Targets in the whole batch's window.
    pub batch_targets: usize,
}

/// The rows of a batch of `batch` rows that share `share` of `shares` takes: the rows split as
/// evenly as possible, in order, the first `batch % shares` shares one row more. A function
/// of `batch` and `shares` alone. Empty when there are more shares than rows.
pub fn share_rows(batch: usize, shares: usize, share: usize) -> Range<usize> {
    assert!(share < shares, "share_rows: share {share} of {shares}");
    let (base, extra) = (batch / shares, batch % shares);
    let start = share * base + share.min(extra);
    start..start + base + usize::from(share < extra)
}

impl Rnnlm {
    /// A training step on this model's share of a batch trained by several processes:
    /// forward and backward over the share's rows (the model's window, `xs` and `ts` as for
    /// [`train_step`](Self::train_step)) with the loss divided by `share.batch_targets`, then
    /// `reduce` on the whole flat gradient buffer (every tensor, in the layout of
    /// [`Arch::range`](crate::Arch::range); an allreduce summing it over the processes), then
    /// clipping to the global norm of the reduced gradient and the SGD update. Returns this
    /// share's part of the batch's mean loss (the shares' parts add up to it). Allocates
    /// nothing after the first call, besides what `reduce` does.
    pub fn train_step_shared(
        &mut self,
        xs: &[u32],
        ts: &[i32],
        share: BatchShare,
        (lr, clip): (f32, Option<f32>),
        reduce: impl FnOnce(&mut [f32]),
    ) -> Result<f32, ModelError> {
        check_step(lr, clip)?;
        self.ws.output.params_changed();
        let loss = self.forward_with_loss(xs, ts, true, Some(share))?;
        self.training_windows += 1;
        self.backward()?;
        reduce(&mut self.grads);
        self.grads_reduced = true;
        self.clip_and_update(lr, clip, true);
        Ok(loss)
    }

    /// The forward pass of evaluation ([`forward`](Self::forward), no dropout) over this
    /// model's share of a batch: returns the share's part of the whole batch's mean loss, the
    /// loss summed over its rows and divided by `share.batch_targets`.
    pub fn forward_shared(&mut self, xs: &[u32], ts: &[i32], share: BatchShare) -> Result<f32, ModelError> {
        self.forward_with_loss(xs, ts, false, Some(share))
    }
}

#[cfg(test)]
mod tests {
    use super::{share_rows, BatchShare};
    use crate::{Dims, ModelError, Rnnlm, Window};

    #[test]
    fn a_share_counting_fewer_batch_targets_than_its_own_is_refused_before_any_change() {
        let mut model = Rnnlm::new(Dims { vocab: 9, embed: 4, hidden: 4 }, Window { batch: 2, time: 3 }, 1).unwrap();
        let before = model.params().to_vec();
        let (xs, ts) = ([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7]);
        let share = BatchShare { first_row: 2, batch_targets: 5 };
        let error = model.train_step_shared(&xs, &ts, share, (0.1, None), |_| panic!("no reduction")).unwrap_err();
        assert!(matches!(error, ModelError::InvalidSize { name: "batch targets", value: 5, .. }), "{error}");
        assert_eq!(model.params(), before);
        assert_eq!(model.training_windows(), 0);
    }

    #[test]
    fn shares_cover_the_batch_in_order_as_evenly_as_possible() {
        for batch in 1..30 {
            for shares in 1..8 {
                let rows: Vec<_> = (0..shares).map(|share| share_rows(batch, shares, share)).collect();
                assert_eq!(rows[0].start, 0);
                assert_eq!(rows[shares - 1].end, batch);
                assert!(rows.windows(2).all(|pair| pair[0].end == pair[1].start));
                let (min, max) = (rows.iter().map(|r| r.len()).min(), rows.iter().map(|r| r.len()).max());
                assert!(max.unwrap() - min.unwrap() <= 1, "{batch} rows, {shares} shares: {rows:?}");
            }
        }
        assert_eq!(share_rows(20, 3, 0), 0..7);
        assert_eq!(share_rows(20, 3, 2), 14..20);
    }
}
