//! The model's passes over one window: the embedding, each recurrent layer (its input
//! projection as one GEMM, then its recurrence) and the output layer forward; the same in
//! reverse backward, with dropout at its sites when the forward pass applied it.

use super::{BatchShare, Dims, ModelError, Phase, Rnnlm, Tensor, Workspace};
use super::{DropoutSites, Recurrence};
use crate::kernels::{column_sums, embedding_gather, embedding_scatter_add, gemm_parallel, Transpose, IGNORE_TARGET};

impl Rnnlm {
    /// The forward pass with the loss, with dropout at training's sites if `training` and the
    /// model has dropout; returns the mean loss, over the window's targets or, for a share of a
    /// larger batch, the whole batch's ([`BatchShare`]).
    pub(super) fn forward_with_loss(
        &mut self,
        xs: &[u32],
        ts: &[i32],
        training: bool,
        share: Option<BatchShare>,
    ) -> Result<f32, ModelError> {
        self.load_window(xs, Some(ts))?;
        let kept = self.ws.targets.iter().filter(|&&t| t != IGNORE_TARGET).count();
        let targets = match share {
            None => kept,
            Some(share) if share.batch_targets >= kept => share.batch_targets,
            Some(share) => {
                return Err(ModelError::InvalidSize {
                    name: "batch targets",
                    value: share.batch_targets,
                    why: "fewer than the targets of this share of the batch",
                })
            }
        };
        self.forward_hidden(training, share.map_or(0, |share| share.first_row));
        let inv_n = if targets == 0 { 0.0 } else { 1.0 / targets as f32 };
        let start = self.clock();
        let ws = &mut self.ws;
        let hs = output_input(&ws.layers, self.dropout.as_ref().filter(|_| ws.dropped), self.arch.layers);
        ws.output.forward(hs, &self.params, &ws.targets, inv_n, &mut ws.row_loss);
        self.add_time(start, Phase::OutputForward);
        let total: f64 = self.ws.row_loss.iter().map(|&l| l as f64).sum();
        Ok((total * inv_n as f64) as f32)
    }

    /// The forward pass up to each row's loss (in the workspace's `row_loss`), keeping nothing
    /// for a backward pass.
    pub(super) fn forward_loss_only(&mut self, xs: &[u32], ts: &[i32]) -> Result<(), ModelError> {
        self.load_window(xs, Some(ts))?;
        self.forward_hidden(false, 0);
        let start = self.clock();
        let ws = &mut self.ws;
        let hs = output_input(&ws.layers, None, self.arch.layers);
        ws.output.forward_loss_only(hs, &self.params, &ws.targets, &mut ws.row_loss)?;
        self.add_time(start, Phase::OutputForward);
        Ok(())
    }

    /// The forward pass up to the logits, for inputs only; what `backward` could use is gone.
    pub(super) fn forward_without_loss(&mut self, xs: &[u32]) -> Result<(), ModelError> {
        self.load_window(xs, None)?;
        self.forward_hidden(false, 0);
        let start = self.clock();
        let ws = &mut self.ws;
        let hs = output_input(&ws.layers, self.dropout.as_ref().filter(|_| ws.dropped), self.arch.layers);
        ws.output.forward_scores(hs, &self.params)?;
        self.add_time(start, Phase::OutputForward);
        Ok(())
    }

    /// The embedding and every recurrent layer over the window: each layer's input (dropped
    /// out first when `training` and the model has dropout), its input projection as one GEMM
    /// over the window, then its recurrence from its carried state.
    fn forward_hidden(&mut self, training: bool, first_row: usize) {
        let arch = self.arch;
        let (n, h) = (self.window.tokens(), arch.dims.hidden);
        let width = arch.cell.gates() * h;
        let state_len = arch.cell.state_blocks() * self.window.batch * h;
        let start = self.clock();
        let ws = &mut self.ws;
        ws.dropped = training && self.dropout.is_some();
        let mask_window = self.training_windows;
        embedding_gather(
            arch.dims.vocab,
            arch.dims.embed,
            &self.params[arch.range(Tensor::EmbedW)],
            &ws.ids,
            &mut ws.x,
        );
        self.add_time(start, Phase::Embedding);
        let start = self.clock();
        let ws = &mut self.ws;
        for (layer, state) in self.state.chunks_exact_mut(state_len).enumerate() {
            let input = arch.input_size(layer);
            let [wx, wh, b] =
                [Tensor::Wx(layer), Tensor::Wh(layer), Tensor::B(layer)].map(|t| &self.params[arch.range(t)]);
            let (below, from_here) = ws.layers.split_at_mut(layer);
            let this = &mut from_here[0];
            let raw = below.last().map_or(&ws.x[..], |lower| lower.outputs());
            let inputs = match &mut self.dropout {
                Some(dropout) if ws.dropped => dropout.forward(layer, mask_window, first_row, raw),
                _ => raw,
            };
            let projection = this.projection();
            gemm_parallel(
                n,
                width,
                input,
                1.0,
                inputs,
                input,
                Transpose::No,
                wx,
                width,
                Transpose::No,
                0.0,
                projection,
                width,
            );
            this.forward(wh, b, state);
        }
        if let Some(dropout) = self.dropout.as_mut().filter(|_| ws.dropped) {
            let outputs = ws.layers.last().expect("at least one layer").outputs();
            dropout.forward(arch.layers, mask_window, first_row, outputs);
        }
        self.add_time(start, Phase::RecurrentForward);
    }

    /// Backward pass for the last forward window: overwrites every gradient.
    pub fn backward(&mut self) -> Result<(), ModelError> {
        self.backward_impl(None)
    }

    /// The backward pass. With `fold_lr = Some(lr)` the output layer is updated in place
    /// instead of storing its gradients ([`OutputUpdate::Sgd`]): `affine.W -= lr * dW` happens
    /// inside the GEMMs that compute `dW`, which saves writing the `H x V` gradient and sweeping
    /// it again for the update.
    pub(super) fn backward_impl(&mut self, fold_lr: Option<f32>) -> Result<(), ModelError> {
        if !self.ws.output.ready_for_backward() {
            return Err(ModelError::BackwardBeforeForward);
        }
        let start = self.clock();
        self.output_backward(fold_lr);
        self.add_time(start, Phase::OutputBackward);
        let start = self.clock();
        for layer in (0..self.arch.layers).rev() {
            self.layer_backward(layer);
        }
        self.add_time(start, Phase::RecurrentBackward);
        let start = self.clock();
        self.embedding_backward();
        self.add_time(start, Phase::Embedding);
        Ok(())
    }

    /// The output layer's backward pass: its weight gradients (or update), and the gradient at
    /// the last layer's outputs (through the dropout there, if any). With tied weights the
    /// gradient of `embed.W` is overwritten here, whole; the embedding's own adds to it.
    fn output_backward(&mut self, fold_lr: Option<f32>) {
        let arch = self.arch;
        let top = self.ws.layers.last_mut().expect("at least one layer");
        let dropout = self.dropout.as_ref().filter(|_| self.ws.dropped);
        let (hs, dhs) = match dropout {
            Some(dropout) => (dropout.dropped(arch.layers), top.output_grads()),
            None => top.outputs_and_grads(),
        };
        self.ws.output.backward(hs, &mut self.params, &mut self.grads, fold_lr, dhs);
        if let Some(dropout) = dropout {
            dropout.backward(arch.layers, dhs);
        }
    }

    /// Backward through recurrent layer `layer`, whose output gradients are in place: its
    /// weight gradients, and the gradient at its input (through the dropout there, if any),
    /// into the layer below's output gradients (or, for the first layer, the word vectors'
    /// `dx`).
    fn layer_backward(&mut self, layer: usize) {
        let arch = self.arch;
        let (n, h, input) = (self.window.tokens(), arch.dims.hidden, arch.input_size(layer));
        let width = arch.cell.gates() * h;
        let (wx, wh) = (&self.params[arch.range(Tensor::Wx(layer))], &self.params[arch.range(Tensor::Wh(layer))]);
        let grads = &mut self.grads[arch.range(Tensor::Wx(layer)).start..arch.range(Tensor::B(layer)).end];
        let (dwx, rest) = grads.split_at_mut(input * width);
        let (dwh, db) = rest.split_at_mut(h * width);
        let dropout = self.dropout.as_ref().filter(|_| self.ws.dropped);
        let (below, from_here) = self.ws.layers.split_at_mut(layer);
        let this = &mut from_here[0];
        this.backward(wh);
        let da = this.pre_activation_grads();
        let inputs = match dropout {
            Some(dropout) => dropout.dropped(layer),
            None => below.last().map_or(&self.ws.x[..], |lower| lower.outputs()),
        };
        gemm_parallel(input, width, n, 1.0, inputs, input, Transpose::Yes, da, width, Transpose::No, 0.0, dwx, width);
        this.wh_gradient(dwh);
        column_sums(n, width, da, db);
        let d_inputs = below.last_mut().map_or(&mut self.ws.dx[..], |lower| lower.output_grads());
        gemm_parallel(n, input, width, 1.0, da, width, Transpose::No, wx, width, Transpose::Yes, 0.0, d_inputs, input);
        if let Some(dropout) = dropout {
            dropout.backward(layer, d_inputs);
        }
    }

    /// The embedding gradient from `dx`: only rows of the embedding gradient that a window
    /// touches are ever non-zero, so the last window's are cleared and this one's scattered
    /// (after a step summed over processes, the touched rows are those of every process's
    /// window). With tied weights the output layer has just written the whole gradient: this one's are
    /// added to it. Open gradients ([`Rnnlm::set_open_gradients`]) are written whole, the
    /// tied embedding's apart from the output layer's.
    fn embedding_backward(&mut self) {
        let Dims { vocab, embed: d, .. } = self.arch.dims;
        let g_embed = &mut self.grads[self.arch.range(Tensor::EmbedW)];
        let Workspace { ids, dx, touched, touched_mark, .. } = &mut self.ws;
        if let Some(open) = &mut self.open_grads {
            // Open gradients may have been written anywhere: overwritten whole.
            let own = if self.arch.tied { &mut open.embedding_apart[..] } else { g_embed };
            own.fill(0.0);
            embedding_scatter_add(vocab, d, dx, ids, own);
            return;
        }
        if self.arch.tied {
            embedding_scatter_add(vocab, d, dx, ids, g_embed);
            return;
        }
        for &id in touched.iter() {
            g_embed[id as usize * d..(id as usize + 1) * d].fill(0.0);
            touched_mark[id as usize] = false;
        }
        touched.clear();
        for &id in ids.iter() {
            if !touched_mark[id as usize] {
                touched_mark[id as usize] = true;
                touched.push(id);
            }
        }
        embedding_scatter_add(vocab, d, dx, ids, g_embed);
    }
}

/// What the output layer reads: the last layer's states, or their dropped copy (site
/// `layers`) when the forward pass dropped out (`dropout` is then given).
fn output_input<'a>(layers: &'a [Box<dyn Recurrence>], dropout: Option<&'a DropoutSites>, site: usize) -> &'a [f32] {
    match dropout {
        Some(dropout) => dropout.dropped(site),
        None => layers.last().expect("at least one layer").outputs(),
    }
}
