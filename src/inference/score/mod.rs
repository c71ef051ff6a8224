//! Scoring text with a trained model: the probability it gives every token, for independent
//! sentences ([`SentenceScorer`], what n-best rescoring needs) or for one stream carried from
//! call to call ([`StreamScorer`], what evaluation does).
//!
//! Both drive the model's own window kernels, so a score is the model's forward pass, not a
//! re-implementation. Losses are natural-log (`-ln p`), one f32 per token, as the model
//! computes them; callers add them up in f64.
//!
//! **Sentences.** A sentence is given with its end token (`<eos>` at word level, `\n` at
//! character level) as its last token. It starts from a zero state with a start token (the end
//! token again, as the model saw every sentence start in training) as its first input, so a
//! sentence of `n` tokens (the end token included) has `n` scored tokens. Each of the `B` rows
//! of the model's window scores one sentence at a time, `T` tokens per window, the state carried
//! from window to window. The sentences are taken longest first, and a row whose sentence ends
//! takes the next one at the next window, from a zero state, so a row idles only within a
//! sentence's last window and once the sentences run out (batches of length-sorted sentences,
//! padded to their longest, spent 17 % of their steps on padding on the Penn Treebank's test
//! sentences in windows of 64 x 8). A row's arithmetic never depends on the other rows, on `B`,
//! on `T` or on the number of threads, so every score is bit-identical to scoring its sentence
//! alone (tested).
//!
//! ```
//! use rnnlm::inference::score::SentenceScorer;
//! use rnnlm::{Dims, Rnnlm, Window};
//!
//! // Two sentences of a 30-word model whose end token is id 0, scored side by side.
//! let model = Rnnlm::new(Dims { vocab: 30, embed: 8, hidden: 8 }, Window { batch: 2, time: 1 }, 9)?;
//! let mut scorer = SentenceScorer::new(model, 0)?;
//! let (ids, lengths) = ([4, 5, 0, 7, 0], [3, 2]); // "4 5 <eos>", "7 <eos>"
//! let mut losses = [0.0f32; 5];
//! scorer.score(&ids, &lengths, &mut losses)?;
//! let log10_first: f64 = losses[..3].iter().map(|&l| -(l as f64) / std::f64::consts::LN_10).sum();
//! assert!(log10_first < 0.0 && losses.iter().all(|&l| l > 0.0));
//! # Ok::<(), rnnlm::inference::score::ScoreError>(())
//! ```

mod reader;

pub use reader::{log10_prob, SentenceReader};

use crate::kernels::IGNORE_TARGET;
use crate::model::{ModelError, Rnnlm, Window};
use std::fmt;

/// Why sentences could not be scored.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ScoreError {
    /// A slice has the wrong length.
    WrongLength {
        /// The slice, such as `"losses"`.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// A sentence has no tokens (it needs at least its end token).
    EmptySentence {
        /// Its index.
        sentence: usize,
    },
    /// A token id is not in the model's vocabulary.
    TokenOutOfRange {
        /// The sentence (or, for a stream, 0).
        sentence: usize,
        /// The token's place in it.
        position: usize,
        /// The id.
        id: u32,
        /// The vocabulary size it must be below.
        vocab: usize,
    },
    /// The model cannot be used as asked.
    Model(ModelError),
}

impl fmt::Display for ScoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScoreError::WrongLength { what, expected, got } => {
                write!(f, "{what} has {got} elements, expected {expected}")
            }
            ScoreError::EmptySentence { sentence } => {
                write!(f, "sentence {sentence} has no tokens (it needs at least its end token)")
            }
            ScoreError::TokenOutOfRange { sentence, position, id, vocab } => write!(
                f,
                "token {position} of sentence {sentence} has id {id}, outside the model's vocabulary 0..{vocab}"
            ),
            ScoreError::Model(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ScoreError {}

impl From<ModelError> for ScoreError {
    fn from(error: ModelError) -> Self {
        ScoreError::Model(error)
    }
}

/// One window's inputs, targets and per-token losses, batch-major (`[b][t]`), as the model
/// takes them.
struct WindowBuffers {
    window: Window,
    xs: Vec<u32>,
    ts: Vec<i32>,
    losses: Vec<f32>,
}

impl WindowBuffers {
    fn new(window: Window) -> Self {
        let n = window.tokens();
        WindowBuffers { window, xs: vec![0; n], ts: vec![IGNORE_TARGET; n], losses: vec![0.0; n] }
    }

    /// Every row padded: input `pad`, target ignored.
    fn clear(&mut self, pad: u32) {
        self.xs.fill(pad);
        self.ts.fill(IGNORE_TARGET);
    }

    /// Puts input `x` and target `target` at row `b`, step `t`.
    fn set(&mut self, b: usize, t: usize, x: u32, target: u32) {
        let i = b * self.window.time + t;
        self.xs[i] = x;
        self.ts[i] = target as i32;
    }

    /// The loss at row `b`, step `t` after [`run`](Self::run).
    fn loss(&self, b: usize, t: usize) -> f32 {
        self.losses[b * self.window.time + t]
    }

    fn run(&mut self, model: &mut Rnnlm) -> Result<(), ModelError> {
        model.forward_losses(&self.xs, &self.ts, &mut self.losses)
    }
}

/// Fails unless `start` is in `model`'s vocabulary.
fn check_start(model: &Rnnlm, start: u32) -> Result<(), ScoreError> {
    let vocab = model.dims().vocab;
    if start as usize >= vocab {
        return Err(ScoreError::TokenOutOfRange { sentence: 0, position: 0, id: start, vocab });
    }
    Ok(())
}

/// Scores independent sentences, many at once; see the module documentation. Allocates
/// nothing after its first call with as many sentences.
pub struct SentenceScorer {
    model: Rnnlm,
    start: u32,
    buffers: WindowBuffers,
    /// Sentence indices, longest first.
    order: Vec<usize>,
    /// Where each sentence starts in the caller's `ids`.
    offsets: Vec<usize>,
    /// What each batch row is scoring: `(sentence, next position)`, or `None` once the
    /// sentences have run out.
    rows: Vec<Option<(usize, usize)>>,
}

impl SentenceScorer {
    /// A scorer running `model` (its window `B x T` is the batch of sentences and the steps
    /// per window), feeding `start` as every sentence's first input.
    pub fn new(model: Rnnlm, start: u32) -> Result<Self, ScoreError> {
        check_start(&model, start)?;
        let buffers = WindowBuffers::new(model.window());
        let rows = vec![None; model.window().batch];
        Ok(SentenceScorer { model, start, buffers, order: Vec::new(), offsets: Vec::new(), rows })
    }

    /// The model.
    pub fn model(&self) -> &Rnnlm {
        &self.model
    }

    /// Scores sentences given back to back in `ids`, `lengths[i]` tokens each (end token
    /// included, so at least 1): `losses[j] = -ln p(ids[j] | the tokens of its sentence before
    /// it)`. `losses` has the length of `ids`.
    ///
    /// The batch rows take the sentences longest first; a row whose sentence ends takes the
    /// next one at the next window, from a zero state, so rows idle only within a sentence's
    /// last window and once the sentences run out.
    pub fn score(&mut self, ids: &[u32], lengths: &[usize], losses: &mut [f32]) -> Result<(), ScoreError> {
        self.check(ids, lengths, losses)?;
        self.order.clear();
        self.order.extend(0..lengths.len());
        // Unique keys: the order does not depend on the sort's stability.
        self.order.sort_unstable_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
        let mut next = 0;
        self.rows.fill(None);
        self.model.reset_state();
        loop {
            self.take_next_sentences(&mut next, lengths);
            if self.rows.iter().all(Option::is_none) {
                return Ok(());
            }
            self.fill_window(ids, lengths);
            self.buffers.run(&mut self.model)?;
            self.take_losses(lengths, losses);
        }
    }

    /// Puts the next `T` tokens of every row's sentence into the window (the rest padded).
    fn fill_window(&mut self, ids: &[u32], lengths: &[usize]) {
        let time = self.model.window().time;
        self.buffers.clear(self.start);
        for (b, row) in self.rows.iter().enumerate() {
            let Some((s, first)) = *row else { continue };
            let sentence = &ids[self.offsets[s]..self.offsets[s] + lengths[s]];
            for p in first..(first + time).min(sentence.len()) {
                let input = if p == 0 { self.start } else { sentence[p - 1] };
                self.buffers.set(b, p - first, input, sentence[p]);
            }
        }
    }

    /// Copies the window's losses to their sentences' places in `losses` and moves every row
    /// on by `T` tokens.
    fn take_losses(&mut self, lengths: &[usize], losses: &mut [f32]) {
        let time = self.model.window().time;
        for (b, row) in self.rows.iter_mut().enumerate() {
            let Some((s, first)) = row else { continue };
            let out = &mut losses[self.offsets[*s]..self.offsets[*s] + lengths[*s]];
            for p in *first..(*first + time).min(out.len()) {
                out[p] = self.buffers.loss(b, p - *first);
            }
            *first += time;
        }
    }

    /// Gives every row whose sentence is done (or that has none) the sentence `order[*next]`,
    /// moving `next` on, and zeroes the state of the rows that got one.
    fn take_next_sentences(&mut self, next: &mut usize, lengths: &[usize]) {
        for (b, row) in self.rows.iter_mut().enumerate() {
            if row.is_none_or(|(s, position)| position >= lengths[s]) {
                *row = self.order.get(*next).map(|&s| (s, 0));
                if row.is_some() {
                    *next += 1;
                    self.model.reset_state_row(b).expect("a row of the window");
                }
            }
        }
    }

    /// Checks the shapes and ids, and records where each sentence starts.
    fn check(&mut self, ids: &[u32], lengths: &[usize], losses: &[f32]) -> Result<(), ScoreError> {
        let vocab = self.model.dims().vocab;
        self.offsets.clear();
        let mut offset = 0usize;
        for (sentence, &len) in lengths.iter().enumerate() {
            if len == 0 {
                return Err(ScoreError::EmptySentence { sentence });
            }
            self.offsets.push(offset);
            offset = offset.saturating_add(len);
        }
        if offset != ids.len() {
            return Err(ScoreError::WrongLength { what: "ids (the sum of lengths)", expected: offset, got: ids.len() });
        }
        if losses.len() != ids.len() {
            return Err(ScoreError::WrongLength { what: "losses", expected: ids.len(), got: losses.len() });
        }
        if let Some(j) = ids.iter().position(|&id| id as usize >= vocab) {
            let sentence = self.offsets.partition_point(|&start| start <= j) - 1;
            let position = j - self.offsets[sentence];
            return Err(ScoreError::TokenOutOfRange { sentence, position, id: ids[j], vocab });
        }
        Ok(())
    }
}

/// Scores one stream of tokens given in pieces, the state carried from piece to piece as
/// evaluation carries it: the stream starts from a zero state with a start token as its first
/// input, and every token is predicted from all the tokens before it. The model's window must
/// have one batch row; the stream is cut into windows of `T` tokens from its first token
/// whatever the pieces, so the scores do not depend on how the stream is cut into pieces.
pub struct StreamScorer {
    model: Rnnlm,
    start: u32,
    buffers: WindowBuffers,
    /// The input before the first pending token (or before the next token, if none pend).
    context: u32,
    /// Tokens of an unfinished window, already scored (padded) but to be run again, with the
    /// next piece's tokens, from `saved_state`.
    pending: Vec<u32>,
    /// The state before the unfinished window.
    saved_state: Vec<f32>,
    /// Where the next `pending` is gathered.
    scratch: Vec<u32>,
}

impl StreamScorer {
    /// A scorer running `model` (window `1 x T`), starting the stream with input `start`.
    pub fn new(mut model: Rnnlm, start: u32) -> Result<Self, ScoreError> {
        check_start(&model, start)?;
        let window = model.window();
        if window.batch != 1 {
            return Err(ModelError::InvalidSize {
                name: "batch size",
                value: window.batch,
                why: "a stream is scored in one batch row",
            }
            .into());
        }
        model.reset_state();
        let saved_state = model.state().to_vec();
        Ok(StreamScorer {
            model,
            start,
            buffers: WindowBuffers::new(window),
            context: start,
            pending: Vec::with_capacity(window.time),
            saved_state,
            scratch: Vec::with_capacity(window.time),
        })
    }

    /// Starts a new stream.
    pub fn reset(&mut self) {
        self.model.reset_state();
        self.context = self.start;
        self.pending.clear();
    }

    /// Scores the next `ids` of the stream: `losses[j] = -ln p(ids[j] | every token before it)`.
    pub fn score(&mut self, ids: &[u32], losses: &mut [f32]) -> Result<(), ScoreError> {
        if losses.len() != ids.len() {
            return Err(ScoreError::WrongLength { what: "losses", expected: ids.len(), got: losses.len() });
        }
        let vocab = self.model.dims().vocab;
        if let Some(position) = ids.iter().position(|&id| id as usize >= vocab) {
            return Err(ScoreError::TokenOutOfRange { sentence: 0, position, id: ids[position], vocab });
        }
        if !self.pending.is_empty() {
            self.model.set_state(&self.saved_state)?;
        }
        let time = self.model.window().time;
        let rerun = self.pending.len();
        // Token `i` of this run is `pending[i]`, then `ids[i - rerun]`.
        let token = |pending: &[u32], i: usize| if i < rerun { pending[i] } else { ids[i - rerun] };
        let total = rerun + ids.len();
        let mut first = 0;
        while first < total {
            let steps = time.min(total - first);
            if steps < time {
                self.model.state().clone_into(&mut self.saved_state);
            }
            self.buffers.clear(self.start);
            for t in 0..steps {
                let input = if first + t == 0 { self.context } else { token(&self.pending, first + t - 1) };
                self.buffers.set(0, t, input, token(&self.pending, first + t));
            }
            self.buffers.run(&mut self.model)?;
            for t in 0..steps {
                if let Some(out) = (first + t).checked_sub(rerun) {
                    losses[out] = self.buffers.loss(0, t);
                }
            }
            if steps < time {
                // Keep the unfinished window to run again with the next piece.
                let context = if first == 0 { self.context } else { token(&self.pending, first - 1) };
                self.scratch.clear();
                self.scratch.extend((first..total).map(|i| token(&self.pending, i)));
                std::mem::swap(&mut self.pending, &mut self.scratch);
                self.context = context;
            } else if first + steps == total {
                self.context = token(&self.pending, total - 1);
                self.pending.clear();
            }
            first += steps;
        }
        Ok(())
    }
}
