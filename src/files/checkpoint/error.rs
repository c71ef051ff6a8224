//! Why a checkpoint could not be read or written: [`CheckpointError`] names the file, and
//! [`Problem`] says what kind of thing is wrong with it and which tensor or metadata key, for a
//! caller that matches on it, with a sentence for a person.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be read or written. Always names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read or written (missing, no permission, a full disk).
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a checkpoint, or its tensors and metadata do not fit together (or, when
    /// saving, the weights and metadata cannot make one).
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Problem,
    },
}

/// What is wrong with a checkpoint's bytes (or with weights that were to become one). Each
/// kind names the tensor or metadata key it is about; `why` (and `Display`) says it in a
/// sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Not a safetensors file, or cut short.
    NotSafetensors {
        /// The sentence.
        why: String,
    },
    /// A tensor the architecture needs is absent.
    MissingTensor {
        /// Its name.
        tensor: String,
        /// The sentence.
        why: String,
    },
    /// A tensor of another element type than rnnlm reads (`F32`; `I64` or `I32` for the word
    /// order).
    WrongDtype {
        /// Its name.
        tensor: String,
        /// The sentence.
        why: String,
    },
    /// A tensor whose shape does not fit the others.
    WrongShape {
        /// Its name.
        tensor: String,
        /// The sentence.
        why: String,
    },
    /// A tensor whose values cannot be what it stands for (a word order that is not a
    /// permutation).
    BadValues {
        /// Its name.
        tensor: String,
        /// The sentence.
        why: String,
    },
    /// A tensor that is no part of the model the others describe.
    ExtraTensor {
        /// Its name.
        tensor: String,
        /// The sentence.
        why: String,
    },
    /// A metadata value that is malformed, missing where it is needed, or contradicts the
    /// tensors.
    Metadata {
        /// The key.
        key: String,
        /// The sentence.
        why: String,
    },
    /// When saving: weights and metadata that cannot make a checkpoint (a wrong number of
    /// parameters, a non-finite weight, an adaptive softmax without its word order).
    Unwritable {
        /// The sentence.
        why: String,
    },
}

impl Problem {
    /// The sentence.
    pub fn why(&self) -> &str {
        match self {
            Problem::NotSafetensors { why }
            | Problem::MissingTensor { why, .. }
            | Problem::WrongDtype { why, .. }
            | Problem::WrongShape { why, .. }
            | Problem::BadValues { why, .. }
            | Problem::ExtraTensor { why, .. }
            | Problem::Metadata { why, .. }
            | Problem::Unwritable { why } => why,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why())
    }
}

impl std::error::Error for Problem {}

impl CheckpointError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CheckpointError::Io { path, .. } | CheckpointError::Invalid { path, .. } => path,
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => write!(f, "checkpoint {}: {source}", path.display()),
            CheckpointError::Invalid { path, problem } => write!(f, "checkpoint {}: {problem}", path.display()),
        }
    }
}

/// The message already holds what the system said, so `source` is `None` (a chain of causes
/// printed in full would say it twice); match on [`CheckpointError::Io`] to tell it apart.
impl std::error::Error for CheckpointError {}

pub(super) fn invalid(path: &Path, problem: Problem) -> CheckpointError {
    CheckpointError::Invalid { path: path.to_owned(), problem }
}

pub(super) fn io_error(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io { path: path.to_owned(), source }
}

pub(super) fn unwritable(why: impl Into<String>) -> Problem {
    Problem::Unwritable { why: why.into() }
}

pub(super) fn missing(tensor: &str) -> Problem {
    Problem::MissingTensor { tensor: tensor.to_owned(), why: format!("the tensor {tensor} is missing") }
}

pub(super) fn wrong_dtype(tensor: &str, why: String) -> Problem {
    Problem::WrongDtype { tensor: tensor.to_owned(), why }
}

pub(super) fn wrong_shape(tensor: &str, why: String) -> Problem {
    Problem::WrongShape { tensor: tensor.to_owned(), why }
}

pub(super) fn bad_metadata(key: &str, why: impl Into<String>) -> Problem {
    Problem::Metadata { key: key.to_owned(), why: why.into() }
}

/// The word order `adaptive.order` is not a permutation of `0..vocab`: `how`.
pub(super) fn not_a_permutation(how: String, vocab: usize) -> Problem {
    let tensor = "adaptive.order".to_owned();
    Problem::BadValues { why: format!("{tensor} is not a permutation of 0..{vocab}: {how}"), tensor }
}
