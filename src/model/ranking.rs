//! The word ranking of an adaptive softmax: its classes are ranks (most frequent word first),
//! and the model maps word ids to ranks and back around it.

use super::{check_len, ModelError, Rnnlm, Window};

impl Rnnlm {
    /// A model with this one's architecture, parameters and word ranking, and a workspace for
    /// `window` (to score or generate with a model trained on another window shape).
    pub fn with_window(&self, window: Window) -> Result<Rnnlm, ModelError> {
        let mut model = Rnnlm::from_params(self.arch, window, &self.params)?;
        model.word_order.clone_from(&self.word_order);
        model.word_rank.clone_from(&self.word_rank);
        Ok(model)
    }

    /// With an adaptive softmax, the word id of each rank (`order[rank]`, most frequent first):
    /// which words the head's shortlist and each cluster hold. `None` with a full softmax.
    pub fn word_order(&self) -> Option<&[u32]> {
        self.arch.adaptive().map(|_| &self.word_order[..])
    }

    /// Sets the ranking of the words for an adaptive softmax: `order[rank]` is the id of the
    /// word of that rank, a permutation of `0..V` (a new model ranks the ids as they are). An
    /// error, changing nothing, with a full softmax or if `order` is not a permutation.
    pub fn set_word_order(&mut self, order: &[u32]) -> Result<(), ModelError> {
        let vocab = self.arch.dims.vocab;
        if self.arch.adaptive().is_none() {
            let why = "the model has a full softmax, which ranks no words".to_owned();
            return Err(ModelError::InvalidArchitecture { why });
        }
        check_len("word order", vocab, order.len())?;
        let mut rank = vec![u32::MAX; vocab];
        for (r, &id) in order.iter().enumerate() {
            match rank.get_mut(id as usize) {
                Some(slot) if *slot == u32::MAX => *slot = r as u32,
                Some(_) => {
                    let why = format!("the word order is not a permutation of 0..{vocab}: id {id} appears twice");
                    return Err(ModelError::InvalidArchitecture { why });
                }
                None => {
                    let why = format!("the word order is not a permutation of 0..{vocab}: it holds id {id}");
                    return Err(ModelError::InvalidArchitecture { why });
                }
            }
        }
        self.word_order.copy_from_slice(order);
        self.word_rank = rank;
        Ok(())
    }
}
