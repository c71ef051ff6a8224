//! The threads the kernels run on: rayon's global pool, or one of the size
//! `rnnlm.set_num_threads(n)` asked for. Results do not depend on the count.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::{Arc, RwLock};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Runs `work` on the pool `set_num_threads` made, or on rayon's global pool.
pub fn install<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let pool = POOL.read().unwrap_or_else(|e| e.into_inner()).clone();
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Sets the number of threads the kernels use (default: one per core, or `RAYON_NUM_THREADS`).
#[pyfunction]
pub fn set_num_threads(n: i64) -> PyResult<()> {
    if n < 1 {
        return Err(PyValueError::new_err(format!("set_num_threads: n must be at least 1, got {n}")));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n as usize)
        .build()
        .map_err(|e| PyValueError::new_err(format!("set_num_threads: {e}")))?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(pool));
    Ok(())
}

/// The number of threads the kernels use.
#[pyfunction]
pub fn get_num_threads() -> usize {
    install(rayon::current_num_threads)
}

/// The instruction set the kernels run with: `avx512`, `avx2` or `baseline`.
#[pyfunction]
pub fn simd_level() -> String {
    rnnlm::kernels::simd_level().to_string()
}
