//! `rnnlm.load(path)`: a checkpoint of the command line, to score text and generate, as
//! `rnnlm score` and `rnnlm generate` do (the same library calls).

use crate::errors::model_error;
use crate::threads::install;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rnnlm::files::checkpoint::{self, Checkpoint, CheckpointError};
use rnnlm::files::corpus::{Level, Tokenizer, Unknown, Vocab};
use rnnlm::inference::generate;
use rnnlm::inference::score::{log10_prob, ScoreError, SentenceReader, SentenceScorer, StreamScorer};
use rnnlm::Window;
use std::ops::Range;

/// Sentences scored side by side, and time steps per window (the command line's).
const SCORE_WINDOW: Window = Window { batch: 256, time: 1 };
/// The window of a stream (`perplexity`).
const STREAM_WINDOW: Window = Window { batch: 1, time: 32 };

/// A trained model with its vocabulary.
#[pyclass(module = "rnnlm._native", frozen)]
pub struct LoadedModel {
    ckpt: Checkpoint,
    vocab: Vocab,
    path: String,
}

/// Reads a checkpoint written by `rnnlm train` (or any safetensors file with the crate's
/// tensor names and a vocabulary in its metadata).
#[pyfunction]
pub fn load(path: std::path::PathBuf) -> PyResult<LoadedModel> {
    let name = path.display().to_string();
    let ckpt = checkpoint::load(&path).map_err(|e| match e {
        CheckpointError::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    })?;
    let vocab = ckpt.meta.vocab.clone().ok_or_else(|| {
        PyValueError::new_err(format!("{name} has no vocabulary in its metadata to read and write text with"))
    })?;
    Ok(LoadedModel { ckpt, vocab, path: name })
}

fn score_error(path: &str, error: ScoreError) -> PyErr {
    match error {
        ScoreError::Model(e) => model_error(path, e),
        other => PyValueError::new_err(format!("{path}: {other}")),
    }
}

impl LoadedModel {
    fn tokenizer(&self) -> Tokenizer {
        Tokenizer { level: self.ckpt.meta.level.unwrap_or(Level::Word), lowercase: self.ckpt.meta.lowercase }
    }

    fn reader(&self) -> PyResult<SentenceReader<'_>> {
        SentenceReader::new(self.tokenizer(), &self.vocab, self.ckpt.arch.dims.vocab).ok_or_else(|| {
            let end = SentenceReader::end_token(self.tokenizer().level);
            PyValueError::new_err(format!("{}'s vocabulary has no end-of-line token {end:?} to score with", self.path))
        })
    }

    /// The ids of every sentence (its tokens and end token), or `None` for one with a word
    /// outside the vocabulary when it has no `<unk>`.
    fn tokenize(&self, reader: &SentenceReader<'_>, sentences: &[String]) -> (Vec<u32>, Vec<Option<Range<usize>>>) {
        let (mut ids, mut unknown) = (Vec::new(), 0);
        let places = sentences.iter().map(|s| reader.tokenize(s, &mut ids, &mut unknown).ok()).collect();
        (ids, places)
    }
}

/// `sentences` as a list of strings: a str is split into its lines.
fn sentences_of(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if let Ok(text) = value.extract::<String>() {
        return Ok(text.lines().map(str::to_owned).collect());
    }
    value.extract::<Vec<String>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a str or a list of str, got {}",
            value.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

#[pymethods]
impl LoadedModel {
    /// The vocabulary size, embedding and hidden sizes, cell, layers, tying, output layer and
    /// level, as a dict.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let arch = self.ckpt.arch;
        let info = PyDict::new(py);
        info.set_item("vocab_size", arch.dims.vocab)?;
        info.set_item("wordvec_size", arch.dims.embed)?;
        info.set_item("hidden_size", arch.dims.hidden)?;
        info.set_item("cell", arch.cell.name())?;
        info.set_item("layers", arch.layers)?;
        info.set_item("tied", arch.tied)?;
        info.set_item("output", if arch.adaptive().is_some() { "adaptive" } else { "full" })?;
        info.set_item("level", self.tokenizer().level.to_string())?;
        Ok(info)
    }

    /// The model's tokens, by id.
    #[getter]
    fn vocab(&self) -> Vec<String> {
        self.vocab.tokens()[..self.ckpt.arch.dims.vocab.min(self.vocab.len())].to_vec()
    }

    /// Each sentence's log10 probability, its end token included, each from a zero state
    /// (as `rnnlm score`); `None` for a sentence with a word outside the vocabulary when the
    /// vocabulary has no `<unk>`. With `per_word`, `(log10, [(token, log10), ...])` for each.
    #[pyo3(signature = (sentences, per_word=false))]
    fn score(&self, py: Python<'_>, sentences: &Bound<'_, PyAny>, per_word: bool) -> PyResult<Vec<Py<PyAny>>> {
        let sentences = sentences_of(sentences, "sentences")?;
        let reader = self.reader()?;
        let (ids, places) = self.tokenize(&reader, &sentences);
        let lengths: Vec<usize> = places.iter().flatten().map(|r| r.len()).collect();
        let mut losses = vec![0.0f32; ids.len()];
        let model = self.ckpt.model(SCORE_WINDOW).map_err(|e| model_error(&self.path, e))?;
        let mut scorer = SentenceScorer::new(model, reader.end()).map_err(|e| score_error(&self.path, e))?;
        py.detach(|| install(|| scorer.score(&ids, &lengths, &mut losses))).map_err(|e| score_error(&self.path, e))?;
        places
            .into_iter()
            .map(|place| {
                let Some(range) = place else { return Ok(py.None()) };
                let total: f64 = losses[range.clone()].iter().map(|&l| log10_prob(l as f64)).sum();
                if !per_word {
                    return Ok(total.into_pyobject(py)?.into_any().unbind());
                }
                let words: Vec<(String, f64)> =
                    range.map(|j| (reader.token(ids[j]).to_owned(), log10_prob(losses[j] as f64))).collect();
                Ok((total, words).into_pyobject(py)?.into_any().unbind())
            })
            .collect()
    }

    /// The perplexity of `text` read as one stream, the state carried from line to line, every
    /// line's end token counted (as `rnnlm score --carry-state`); lines with a word outside a
    /// vocabulary without `<unk>` are left out.
    fn perplexity(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<f64> {
        let lines = sentences_of(text, "text")?;
        let reader = self.reader()?;
        let (ids, _) = self.tokenize(&reader, &lines);
        if ids.is_empty() {
            return Err(PyValueError::new_err("text: no line to score (each line needs words of the vocabulary)"));
        }
        let model = self.ckpt.model(STREAM_WINDOW).map_err(|e| model_error(&self.path, e))?;
        let mut scorer = StreamScorer::new(model, reader.end()).map_err(|e| score_error(&self.path, e))?;
        let mut losses = vec![0.0f32; ids.len()];
        py.detach(|| install(|| scorer.score(&ids, &mut losses))).map_err(|e| score_error(&self.path, e))?;
        let total: f64 = losses.iter().map(|&l| l as f64).sum();
        Ok((total / ids.len() as f64).exp())
    }

    /// `start` followed by `n` sampled tokens, as text (`rnnlm generate`): each drawn from the
    /// softmax of the scores divided by `temperature` (0: the most likely), reproducibly for
    /// `seed`.
    #[pyo3(signature = (start, n, seed=1, temperature=1.0))]
    fn generate(&self, py: Python<'_>, start: &str, n: usize, seed: u64, temperature: f32) -> PyResult<String> {
        let tokenizer = self.tokenizer();
        let start_ids = tokenizer
            .tokenize_fixed(start, &self.vocab, Unknown::Reject, None)
            .map_err(|e| PyValueError::new_err(format!("start: {e}")))?;
        if start_ids.is_empty() {
            return Err(PyValueError::new_err("start holds no tokens"));
        }
        if let Some(&id) = start_ids.iter().find(|&&id| id as usize >= self.ckpt.arch.dims.vocab) {
            return Err(PyValueError::new_err(format!(
                "start: {:?} is not in the model's vocabulary",
                self.vocab.token(id)
            )));
        }
        let mut model = self.ckpt.model(Window { batch: 1, time: 1 }).map_err(|e| model_error(&self.path, e))?;
        let sampled = py
            .detach(|| install(|| generate::generate(&mut model, &start_ids, n, temperature, seed)))
            .map_err(|e| model_error("generate", e))?;
        Ok(tokenizer.detokenize(start_ids.iter().chain(&sampled).copied(), &self.vocab))
    }

    fn __repr__(&self) -> String {
        let arch = self.ckpt.arch;
        format!(
            "rnnlm.load({:?}): {} x {} {}, V = {}, D = {}, H = {}",
            self.path,
            arch.layers,
            arch.cell.name(),
            if arch.adaptive().is_some() { "with an adaptive softmax" } else { "with a full softmax" },
            arch.dims.vocab,
            arch.dims.embed,
            arch.dims.hidden
        )
    }
}
