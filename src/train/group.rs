//! Training as one of a group: several processes (or threads) train one model together, each
//! on a share of every window's rows, and every figure a decision rests on is summed over the
//! group first, so that every member decides alike.
//!
//! Each member runs [`train_shared`](super::train_shared) with a model whose window holds its
//! rows ([`Group::rows`]). The group sums, at every window, the gradient
//! ([`step_in_group`]), the loss, and the stop flags (the observer's and the time budget's); at
//! every evaluation the members' loss sums; at every save point the carried state, so that the
//! run state is the whole batch's, the same as one process's: a run saved by a group resumes in
//! one process or in a group of another size.

use super::batcher::evaluation_loss;
use crate::files::corpus::Ids;
use crate::model::{share_rows, BatchShare, ModelError, Rnnlm};
use std::ops::Range;

/// The members of a group training one model, as the training loop needs them: a place each,
/// and sums over all of them. MPI's processes are one (`rnnlm::distributed::Processes`, with
/// the feature `mpi`).
pub trait Group {
    /// This member's place, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of members.
    fn size(&self) -> usize;
    /// Replaces `values` by their element-wise sums over the members; every member gets the
    /// same sums.
    fn sum(&mut self, values: &mut [f32]);
    /// [`sum`](Self::sum) for a few `f64`s (losses and flags), at most 16.
    fn sum_f64(&mut self, values: &mut [f64]);
    /// This member's rows of a batch of `batch` rows ([`share_rows`]).
    fn rows(&self, batch: usize) -> Range<usize> {
        share_rows(batch, self.size(), self.rank())
    }
}

/// A member's side of the sharing while a run lasts: the group, the whole batch and this
/// member's rows of it.
pub(super) struct Sharing<'g> {
    pub group: &'g mut dyn Group,
    pub batch: usize,
    pub rows: Range<usize>,
}

/// A training step of `model`, one member of `group`, on the whole batch's window `xs`, `ts`
/// (`B x T`, batch-major, as [`Batcher`](super::Batcher) cuts it): this member's rows
/// ([`Group::rows`]) trained with [`Rnnlm::train_step_shared`], the gradient summed over the
/// group. Returns the whole batch's loss, the same on every member.
pub fn step_in_group(
    model: &mut Rnnlm,
    group: &mut dyn Group,
    (xs, ts): (&[u32], &[i32]),
    (lr, clip): (f32, Option<f32>),
) -> Result<f32, ModelError> {
    let time = model.window().time;
    let rows = group.rows(xs.len() / time);
    let share = BatchShare { first_row: rows.start, batch_targets: xs.len() };
    let tokens = rows.start * time..rows.end * time;
    let loss = model.train_step_shared(&xs[tokens.clone()], &ts[tokens], share, (lr, clip), |g| group.sum(g))?;
    let mut loss = [loss as f64];
    group.sum_f64(&mut loss);
    Ok(loss[0] as f32)
}

impl Sharing<'_> {
    /// Whether any member's flag is up, for each flag.
    pub fn any(&mut self, flags: [bool; 2]) -> [bool; 2] {
        let mut sums = flags.map(|flag| f64::from(u8::from(flag)));
        self.group.sum_f64(&mut sums);
        sums.map(|sum| sum > 0.0)
    }

    /// The whole batch's carried state into `whole`, from every member's rows: each member
    /// writes its rows of the model's state (blocks of `rows x H`) and zeroes elsewhere, and
    /// the sum over the group is the gather; `whole` becomes blocks of `batch x H`.
    pub fn gather_state(&mut self, model: &Rnnlm, whole: &mut Vec<f32>) {
        let (local, hidden) = (model.state(), model.dims().hidden);
        let (local_block, whole_block) = (self.rows.len() * hidden, self.batch * hidden);
        let blocks = local.len() / local_block.max(1);
        whole.clear();
        whole.resize(blocks * whole_block, 0.0);
        for (block, rows) in whole.chunks_exact_mut(whole_block).zip(local.chunks_exact(local_block)) {
            block[self.rows.start * hidden..self.rows.end * hidden].copy_from_slice(rows);
        }
        self.group.sum(whole);
    }

    /// This member's rows of the whole batch's state `whole`, into the model; an error when
    /// `whole` is not a state of the whole batch for this model.
    pub fn scatter_state(&self, whole: &[f32], model: &mut Rnnlm) -> Result<(), ModelError> {
        let hidden = model.dims().hidden;
        let (local_block, whole_block) = (self.rows.len() * hidden, self.batch * hidden);
        let mut local = model.state().to_vec();
        let blocks = local.len() / local_block.max(1);
        if whole.len() != blocks * whole_block {
            return Err(ModelError::InvalidSize {
                name: "saved state",
                value: whole.len(),
                why: "is not the carried state of the whole batch",
            });
        }
        for (rows, block) in local.chunks_exact_mut(local_block).zip(whole.chunks_exact(whole_block)) {
            rows.copy_from_slice(&block[self.rows.start * hidden..self.rows.end * hidden]);
        }
        model.set_state(&local)
    }
}

/// Perplexity of the model on `corpus` with the spec's evaluation batching of the whole
/// batch, each member evaluating its rows: [`evaluate`](super::evaluate) as one process
/// computes it, to the rounding of the sums. Every member gets the same figure.
pub(super) fn evaluate_shared(
    model: &mut Rnnlm,
    corpus: Ids<'_>,
    sharing: &mut Sharing<'_>,
) -> Result<Option<f64>, ModelError> {
    let loss = evaluation_loss(model, corpus, sharing.batch, sharing.rows.clone())?;
    Ok(loss.map(|(total, iters)| {
        let mut total = [total];
        sharing.group.sum_f64(&mut total);
        (total[0] / iters as f64).exp()
    }))
}
