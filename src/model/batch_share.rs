//! Data-parallel training: several processes train one model on one batch, each on a share of
//! its rows, and add up their gradients before every update.
//!
//! Each process holds the whole model and a window of its own rows ([`share_rows`]). A step on
//! a share ([`Rnnlm::train_step_shared`]) is the training step of the whole batch cut by rows:
//! the forward pass over the share's rows (with the dropout masks those rows have in the whole
//! batch), its loss and gradients divided by the whole batch's number of targets, so that the
//! shares' gradients add up to the batch's; then the caller's reduction of the gradient buffer
//! (an allreduce summing it over the processes), then the same clipping and update as
//! [`Rnnlm::train_step`].
//!
//! An untied embedding's gradient is non-zero only in the rows of the window's inputs (700 of
//! PTB's 10,000 for a window of 20 x 35; of 267,735 for a large vocabulary), so it is not summed
//! whole: the processes first sum marks of the rows each touched, then pack the union of those
//! rows next to the other tensors and sum that, in one call over contiguous memory. Every process then holds the same gradient and applies the same
//! update, so their weights stay identical. The sums run in another order than one process's
//! (the shares' partial sums, then the reduction), so the result agrees with one process to
//! the rounding of f32 sums, not bit for bit.

use super::{check_step, Dims, ModelError, Rnnlm, Tensor};
use std::ops::Range;

/// What the sparse reduction of an untied embedding's gradient works in: a mark per word, and
/// the rows of the union being moved. Empty until the first shared step.
#[derive(Clone, Debug, Default)]
pub(super) struct ShareBuffers {
    marks: Vec<f32>,
    rows: Vec<f32>,
}

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
    /// the gradient summed over the processes with `reduce` (an allreduce: it replaces a buffer
    /// by its element-wise sums, every process calling it alike), then clipping to the global
    /// norm of the summed gradient and the SGD update. `reduce` is called on the whole flat
    /// gradient buffer (every tensor, in the layout of [`Arch::range`](crate::Arch::range))
    /// when the embedding is tied or the gradients are open
    /// ([`set_open_gradients`](Self::set_open_gradients); both, then once more on
    /// [`embedding_grad_apart`](Self::embedding_grad_apart)); otherwise twice: on a mark per word (the rows each process's
    /// window touched), then on the gradient from the union of those rows of `embed.W`, packed
    /// at the end of its range, to the last tensor. Returns this share's part of the batch's
    /// mean loss (the shares' parts add up to it). Allocates nothing after the first call,
    /// besides what `reduce` does.
    pub fn train_step_shared(
        &mut self,
        xs: &[u32],
        ts: &[i32],
        share: BatchShare,
        (lr, clip): (f32, Option<f32>),
        mut reduce: impl FnMut(&mut [f32]),
    ) -> Result<f32, ModelError> {
        check_step(lr, clip)?;
        self.ws.output.params_changed();
        let loss = self.forward_with_loss(xs, ts, true, Some(share))?;
        self.training_windows += 1;
        self.backward()?;
        match &mut self.open_grads {
            // The embedding's gradient reaches every row (tied: the output layer's; open: written
            // whole): summed whole, as the update covers it whole. Open and tied, the
            // embedding's own gradient is apart and summed after the buffer.
            Some(open) => {
                reduce(&mut self.grads);
                if !open.embedding_apart.is_empty() {
                    reduce(&mut open.embedding_apart);
                }
            }
            None if self.arch.tied => reduce(&mut self.grads),
            None => self.reduce_sparse_embedding(share, &mut reduce),
        }
        self.clip_and_update(lr, clip, true);
        Ok(loss)
    }

    /// Sums the gradient over the processes with an untied embedding's rows reduced to those
    /// some process touched: the union becomes this step's touched rows (the update's and the
    /// next backward's), in id order on every process.
    fn reduce_sparse_embedding(&mut self, share: BatchShare, reduce: &mut impl FnMut(&mut [f32])) {
        let Dims { vocab, embed: d, .. } = self.arch.dims;
        let embed = self.arch.range(Tensor::EmbedW);
        let ShareBuffers { marks, rows } = &mut self.share_buffers;
        if marks.len() != vocab {
            *marks = vec![0.0; vocab];
            *rows = Vec::with_capacity(vocab.min(share.batch_targets.max(self.window.tokens())) * d);
        }
        let ws = &mut self.ws;
        for &id in &ws.touched {
            marks[id as usize] = 1.0;
            ws.touched_mark[id as usize] = false;
        }
        reduce(marks);
        ws.touched.clear();
        for (id, mark) in marks.iter_mut().enumerate().filter(|(_, mark)| **mark > 0.0) {
            *mark = 0.0;
            ws.touched.push(id as u32);
            ws.touched_mark[id] = true;
        }
        // The union's rows move to the end of the embedding's range, where the rows outside
        // the union are zero, next to the tensors that follow it.
        let g_embed = &mut self.grads[embed.clone()];
        rows.clear();
        for &id in &ws.touched {
            let row = id as usize * d..(id as usize + 1) * d;
            rows.extend_from_slice(&g_embed[row.clone()]);
            g_embed[row].fill(0.0);
        }
        let packed = embed.end - rows.len()..embed.end;
        self.grads[packed.clone()].copy_from_slice(rows);
        reduce(&mut self.grads[packed.start..]);
        rows.copy_from_slice(&self.grads[packed.clone()]);
        self.grads[packed].fill(0.0);
        let g_embed = &mut self.grads[embed];
        for (&id, row) in ws.touched.iter().zip(rows.chunks_exact(d)) {
            g_embed[id as usize * d..(id as usize + 1) * d].copy_from_slice(row);
        }
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
