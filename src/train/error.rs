//! Why a training run could not start or go on.

use crate::model::ModelError;
use std::fmt;

/// Why training stopped early.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrainError {
    /// The model rejected its input (a bug in the caller: ids out of range, wrong sizes).
    Model(ModelError),
    /// The corpus does not fill one `B x T` window.
    CorpusTooShort {
        /// Tokens in the corpus.
        tokens: usize,
        /// Tokens one window needs (`B * T + 1`).
        needed: usize,
    },
    /// Divergence came back after [`MAX_RECOVERIES`] recoveries.
    Diverged {
        /// The epoch (from 1).
        epoch: usize,
        /// The window within the epoch (from 1).
        window: usize,
        /// The loss of the window that diverged.
        loss: f64,
        /// The rate it was trained at.
        lr: f32,
    },
    /// The first window after the last save point diverged: its weights are already bad, and
    /// going back to them cannot help.
    DivergedAtSavePoint {
        /// The epoch (from 1).
        epoch: usize,
        /// The window within the epoch (from 1).
        window: usize,
        /// The loss of the window that diverged.
        loss: f64,
        /// The iteration of the last save point.
        saved_after: usize,
    },
    /// A hyper-parameter makes no sense, or a state to resume from does not fit.
    Invalid(String),
}

/// How many times a run recovers from divergence before it gives up.
pub const MAX_RECOVERIES: usize = 3;

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Model(e) => write!(f, "{e}"),
            TrainError::CorpusTooShort { tokens, needed } => write!(
                f,
                "the training corpus has {tokens} tokens, shorter than one batch x time window plus one ({needed})"
            ),
            TrainError::Diverged { epoch, window, loss, lr } => write!(
                f,
                "training diverged in epoch {epoch}, window {window} (loss {loss} at lr {lr}) after {MAX_RECOVERIES} \
                 recoveries that each halved the rate; lower --lr or set --clip"
            ),
            TrainError::DivergedAtSavePoint { epoch, window, loss, saved_after } => write!(
                f,
                "training diverged in epoch {epoch}, window {window} (loss {loss}), the first window after the \
                 save point of window {saved_after}, whose weights give that loss at any rate; lower --lr or set --clip"
            ),
            TrainError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<ModelError> for TrainError {
    fn from(e: ModelError) -> Self {
        TrainError::Model(e)
    }
}
