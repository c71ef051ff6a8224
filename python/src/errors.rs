//! The crate's errors as Python exceptions: what the caller passed (sizes, ids, options, file
//! contents) raises `ValueError`, files and the system `OSError`, a call out of order
//! (`backward` before `forward`) `RuntimeError`.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use rnnlm::ModelError;

/// A model error, its message prefixed with what the caller was doing.
pub fn model_error(context: &str, error: ModelError) -> PyErr {
    let message = format!("{context}: {error}");
    match error {
        ModelError::BackwardBeforeForward => PyRuntimeError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

/// An error of the command line's code: `OSError` when a file or the system failed somewhere
/// in its chain of causes, `ValueError` otherwise; the message is the command line's.
pub fn cli_error(error: &anyhow::Error) -> PyErr {
    let message = format!("{error:#}");
    if error.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some()) || io_error_inside(error) {
        PyOSError::new_err(message)
    } else {
        PyValueError::new_err(message)
    }
}

/// Whether one of the crate's own errors in the chain is a failed read or write.
fn io_error_inside(error: &anyhow::Error) -> bool {
    use rnnlm::files::checkpoint::CheckpointError;
    use rnnlm::files::corpus::CorpusError;
    use rnnlm::files::data::DataError;
    error.chain().any(|cause| {
        matches!(cause.downcast_ref::<CorpusError>(), Some(CorpusError::Io { .. }))
            || matches!(cause.downcast_ref::<CheckpointError>(), Some(CheckpointError::Io { .. }))
            || matches!(
                cause.downcast_ref::<DataError>(),
                Some(
                    DataError::Corpus(CorpusError::Io { .. })
                        | DataError::PtbMissing { .. }
                        | DataError::NowhereToWrite { .. }
                        | DataError::Download { .. }
                )
            )
    })
}
