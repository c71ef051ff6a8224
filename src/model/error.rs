//! What can go wrong when building or driving a model.

use std::fmt;

/// What can go wrong when building or driving a model.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ModelError {
    /// A size is zero or too large to allocate.
    InvalidSize {
        /// The size's name, such as `"vocab"`.
        name: &'static str,
        /// Its value.
        value: usize,
        /// Why it cannot be used.
        why: &'static str,
    },
    /// A slice passed to the model has the wrong length.
    WrongLength {
        /// The slice, such as `"xs"`.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// A token id is not in `0..vocab` (targets may also be `-1`).
    TokenOutOfRange {
        /// The slice holding it: `"xs"` or `"ts"`.
        what: &'static str,
        /// Its batch row.
        row: usize,
        /// Its time step.
        step: usize,
        /// The id.
        id: i64,
        /// The vocabulary size it must be below.
        vocab: usize,
    },
    /// A hyper-parameter has a value that makes no sense.
    InvalidHyperParameter {
        /// The parameter, such as `"lr"`.
        name: &'static str,
        /// Its value.
        value: f32,
        /// Why it cannot be used.
        why: &'static str,
    },
    /// `backward` was called before any `forward`.
    BackwardBeforeForward,
    /// Parts of the architecture that do not go together, or a ranking of the words that is
    /// not one.
    InvalidArchitecture {
        /// What is wrong, in a sentence.
        why: String,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::InvalidSize { name, value, why } => write!(f, "invalid {name} {value}: {why}"),
            ModelError::WrongLength { what, expected, got } => {
                write!(f, "{what} has {got} elements, expected {expected}")
            }
            ModelError::TokenOutOfRange { what, row, step, id, vocab } => {
                write!(f, "{what} id {id} at batch row {row}, time step {step} is outside the vocabulary 0..{vocab}")
            }
            ModelError::InvalidHyperParameter { name, value, why } => write!(f, "invalid {name} {value}: {why}"),
            ModelError::BackwardBeforeForward => write!(f, "backward called before any forward pass"),
            ModelError::InvalidArchitecture { why } => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ModelError {}
