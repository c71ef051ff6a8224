//! The `rnnlm._native` extension module: a thin layer over the rnnlm crate for the Python
//! package. The book's model classes (`rnnlm/book.py`) drive [`book::BookModel`]; the rest
//! (`rnnlm.load`, `rnnlm.train`, `rnnlm.ptb`) call the crate and its command line's code.
//!
//! Errors: the crate's errors about what the caller passed become `ValueError`, errors of
//! files and the system `OSError` (see [`errors`]).

mod book;
mod errors;
mod loaded;
mod runs;
mod threads;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<book::BookModel>()?;
    m.add_class::<loaded::LoadedModel>()?;
    m.add_function(wrap_pyfunction!(threads::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(threads::get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(threads::simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(loaded::load, m)?)?;
    m.add_function(wrap_pyfunction!(runs::run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(runs::ptb_split, m)?)?;
    Ok(())
}
