//! Text into the ids a scorer takes: each sentence's tokens in a model's vocabulary, then its
//! end token; words outside the vocabulary become `<unk>` when it has one.

use crate::files::corpus::{Level, Tokenizer, Vocab, EOS, UNK};
use std::ops::{ControlFlow, Range};

/// How a model and its vocabulary read a sentence.
#[derive(Clone, Debug)]
pub struct SentenceReader<'a> {
    tokenizer: Tokenizer,
    vocab: &'a Vocab,
    /// The model's vocabulary size (a checkpoint's vocabulary may list more tokens).
    classes: usize,
    end: u32,
    unk: Option<u32>,
}

impl<'a> SentenceReader<'a> {
    /// A reader at `tokenizer`'s level for a model of `classes` classes whose tokens are
    /// `vocab`'s first ones; `None` if the vocabulary lacks the end-of-line token (`<eos>` at
    /// word level, `\n` at character level) that sentences start and end with.
    pub fn new(tokenizer: Tokenizer, vocab: &'a Vocab, classes: usize) -> Option<Self> {
        let mut reader = SentenceReader { tokenizer, vocab, classes, end: 0, unk: None };
        reader.end = reader.id(Self::end_token(tokenizer.level))?;
        reader.unk = reader.id(UNK);
        Some(reader)
    }

    /// The end-of-line token of a level: `<eos>` for words, `\n` for characters.
    pub fn end_token(level: Level) -> &'static str {
        match level {
            Level::Word => EOS,
            Level::Char => "\n",
        }
    }

    /// The id of the end-of-line token (a sentence's start and end).
    pub fn end(&self) -> u32 {
        self.end
    }

    /// The id of `token`, if the model has it.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.vocab.id(token).filter(|&id| (id as usize) < self.classes)
    }

    /// The token of `id` (`"?"` for an id outside the vocabulary).
    pub fn token(&self, id: u32) -> &str {
        self.vocab.token(id).unwrap_or("?")
    }

    /// Appends the ids of `text` and the end token to `ids` and returns where they are; adds
    /// the tokens mapped to `<unk>` to `unknown`. If a token is unknown and there is no
    /// `<unk>`, leaves `ids` and `unknown` as they were and returns the number of tokens the
    /// line has (end included).
    pub fn tokenize(&self, text: &str, ids: &mut Vec<u32>, unknown: &mut usize) -> Result<Range<usize>, usize> {
        let (before, unknown_before) = (ids.len(), *unknown);
        // The end token, then every token of the text, known or not.
        let (mut count, mut missing) = (1, false);
        let _ = self.tokenizer.for_each_token(text, |token, _| {
            count += 1;
            match (self.id(token), self.unk) {
                (Some(id), _) => ids.push(id),
                (None, Some(unk)) => {
                    ids.push(unk);
                    *unknown += 1;
                }
                (None, None) => missing = true,
            }
            ControlFlow::<()>::Continue(())
        });
        if missing {
            ids.truncate(before);
            *unknown = unknown_before;
            return Err(count);
        }
        ids.push(self.end);
        Ok(before..ids.len())
    }
}

/// `log10(p)` for a natural-log loss `-ln p`.
pub fn log10_prob(loss: f64) -> f64 {
    -loss / std::f64::consts::LN_10
}
