//! What code outside the crate needs to drive the model step by step, as the book's Python
//! classes are driven: windows of another shape on the same parameter and gradient buffers,
//! and gradients it may read and write (an optimizer of its own, the book's `clip_grads` and
//! `remove_duplicate`).

use super::{check_window, state_len, zeroed, DropoutSites, ModelError, Rnnlm, Tensor, Window, Workspace};

/// The gradients while they are open ([`Rnnlm::set_open_gradients`]).
#[derive(Clone)]
pub(super) struct OpenGradients {
    /// With tied weights, the embedding's own gradient of `embed.W` (`V x D`), apart from the
    /// output layer's; empty otherwise.
    pub(super) embedding_apart: Vec<f32>,
}

impl Rnnlm {
    /// Rebuilds the workspace for windows of `window`, keeping the parameter and gradient
    /// buffers where they are (views onto them stay valid), the dropout ratio and seed and the
    /// word ranking. The carried state is kept when the batch size is the same and zeroed
    /// otherwise. Allocates; nothing happens when the window is the current one.
    pub fn set_window(&mut self, window: Window) -> Result<(), ModelError> {
        if window == self.window {
            return Ok(());
        }
        check_window(window)?;
        let mut ws = Workspace::new(self.arch, window)?;
        let state = if window.batch == self.window.batch {
            None
        } else {
            Some(zeroed("window", state_len(self.arch, window)?)?)
        };
        let dropout = match &self.dropout {
            Some(d) => Some(DropoutSites::new(self.arch, window, d.p(), d.seed())?),
            None => None,
        };
        // The rows of the embedding gradient the last window wrote are cleared by the next
        // backward pass, whatever its window: they go with the model.
        std::mem::swap(&mut ws.touched, &mut self.ws.touched);
        std::mem::swap(&mut ws.touched_mark, &mut self.ws.touched_mark);
        ws.touched.reserve(window.tokens().min(self.arch.dims.vocab));
        self.ws = ws;
        if let Some(state) = state {
            self.state = state;
        }
        self.dropout = dropout;
        self.window = window;
        Ok(())
    }

    /// Opens the gradients to code outside the crate, or closes them again. While they are
    /// open:
    ///
    /// - [`backward`](Self::backward) overwrites every gradient whole, the embedding's too
    ///   (closed, it clears only the rows the window before wrote, which is all that a step of
    ///   the crate's own can have made non-zero; open, anything may have been written anywhere);
    /// - with tied weights, `grad(Tensor::EmbedW)` holds the output layer's gradient of the
    ///   shared matrix alone and [`embedding_grad_apart`](Self::embedding_grad_apart) the
    ///   embedding's, as two layers that share a matrix each have their own gradient (their sum
    ///   is the closed gradient). [`train_step`](Self::train_step) and
    ///   [`grad_norm`](Self::grad_norm) count both.
    ///
    /// Opening allocates the second gradient of a tied model.
    pub fn set_open_gradients(&mut self, open: bool) -> Result<(), ModelError> {
        if open == self.open_grads.is_some() {
            return Ok(());
        }
        self.open_grads = if open {
            let len = if self.arch.tied { self.arch.range(Tensor::EmbedW).len() } else { 0 };
            Some(OpenGradients { embedding_apart: zeroed("vocabulary", len)? })
        } else {
            None
        };
        // Whatever either mode left behind, the next backward pass starts from zeros.
        self.grads.fill(0.0);
        self.ws.touched_mark.fill(false);
        self.ws.touched.clear();
        Ok(())
    }

    /// With open gradients and tied weights, the embedding's own gradient of `embed.W`
    /// (`V x D`, the rows of the window's words); `None` otherwise.
    pub fn embedding_grad_apart(&self) -> Option<&[f32]> {
        self.open_grads.as_ref().filter(|_| self.arch.tied).map(|open| &open.embedding_apart[..])
    }

    /// Raw pointers to the parameter buffer, the gradient buffer and, with open gradients and
    /// tied weights, the embedding's own gradient: for views that code outside the crate (the
    /// Python package's numpy arrays) keeps onto them. They stay valid as long as the model
    /// lives; nothing the model does moves them ([`set_window`](Self::set_window) included).
    /// Say so with [`params_written`](Self::params_written) after writing the parameters.
    pub fn buffer_pointers(&mut self) -> (*mut f32, *mut f32, Option<*mut f32>) {
        let apart = self.open_grads.as_mut().filter(|open| !open.embedding_apart.is_empty());
        (self.params.as_mut_ptr(), self.grads.as_mut_ptr(), apart.map(|open| open.embedding_apart.as_mut_ptr()))
    }

    /// Says that the parameters were written through a view of
    /// [`buffer_pointers`](Self::buffer_pointers): copies of the weights packed for scoring are
    /// made again.
    pub fn params_written(&mut self) {
        self.ws.output.params_changed();
    }
}

#[cfg(test)]
mod tests {
    use crate::{Arch, Cell, Dims, Rnnlm, Softmax, Tensor, Window};

    fn arch(tied: bool) -> Arch {
        Arch { dims: Dims { vocab: 11, embed: 5, hidden: 5 }, cell: Cell::Lstm, layers: 2, tied, output: Softmax::Full }
    }

    const XS: [u32; 6] = [1, 2, 3, 4, 5, 1];
    const TS: [i32; 6] = [2, 3, 4, 5, 6, 7];

    #[test]
    fn another_window_keeps_the_buffers_and_computes_as_a_new_model() {
        let window = Window { batch: 2, time: 3 };
        let mut model = Rnnlm::new(arch(false), Window { batch: 1, time: 1 }, 3).unwrap();
        let (params, grads, _) = model.buffer_pointers();
        model.set_window(window).unwrap();
        assert_eq!(model.buffer_pointers().0, params);
        assert_eq!(model.buffer_pointers().1, grads);
        let mut fresh = Rnnlm::new(arch(false), window, 3).unwrap();
        assert_eq!(model.forward(&XS, &TS).unwrap(), fresh.forward(&XS, &TS).unwrap());
        model.backward().unwrap();
        fresh.backward().unwrap();
        assert_eq!(model.grads(), fresh.grads());
        assert_eq!(model.state(), fresh.state());
        // The same batch size keeps the carried state; another one zeroes it.
        model.set_window(Window { batch: 2, time: 1 }).unwrap();
        assert_eq!(model.state(), fresh.state());
        model.set_window(Window { batch: 3, time: 1 }).unwrap();
        assert!(model.state().iter().all(|&v| v == 0.0));
        assert!(model.set_window(Window { batch: 0, time: 1 }).is_err());
    }

    #[test]
    fn open_gradients_are_overwritten_whole_and_tied_ones_kept_apart() {
        for tied in [false, true] {
            let window = Window { batch: 2, time: 3 };
            let mut closed = Rnnlm::new(arch(tied), window, 5).unwrap();
            let mut open = closed.clone();
            open.set_open_gradients(true).unwrap();
            for model in [&mut closed, &mut open] {
                model.forward(&XS, &TS).unwrap();
                model.backward().unwrap();
            }
            let embed = arch(tied).range(Tensor::EmbedW);
            let apart = open.embedding_grad_apart().map(<[f32]>::to_vec);
            assert_eq!(apart.is_some(), tied);
            for (i, (&c, &o)) in closed.grads().iter().zip(open.grads()).enumerate() {
                let own = apart.as_ref().filter(|_| embed.contains(&i)).map_or(0.0, |a| a[i]);
                assert!(
                    (c - (o + own)).abs() <= 1e-6 * (1.0 + c.abs()),
                    "tied {tied}, element {i}: {c} vs {o} + {own}"
                );
            }
            // Whatever was written into the gradients, the next backward pass overwrites it.
            let (_, grads, apart_ptr) = open.buffer_pointers();
            let len = open.grads().len();
            // SAFETY: the pointers are the model's buffers of `len` and V x D elements, and
            // nothing else refers to them here.
            unsafe {
                std::slice::from_raw_parts_mut(grads, len).fill(7.0);
                if let Some(p) = apart_ptr {
                    std::slice::from_raw_parts_mut(p, embed.len()).fill(7.0);
                }
            }
            assert!(open.grads().iter().all(|&g| g == 7.0), "the writes went into the model's buffer");
            open.reset_state();
            open.set_training_windows(0);
            let mut again = closed.clone();
            again.set_open_gradients(true).unwrap();
            for model in [&mut open, &mut again] {
                model.reset_state();
                model.forward(&XS, &TS).unwrap();
                model.backward().unwrap();
            }
            assert_eq!(open.grads(), again.grads(), "tied {tied}");
            assert_eq!(open.embedding_grad_apart(), again.embedding_grad_apart(), "tied {tied}");
        }
    }
}
