//! `rnnlm.train` and `rnnlm.ptb`: the command line's own code, run from Python. The command
//! line's modules are compiled into this extension as they are (they call the library; the
//! binding adds nothing to them), so a run from Python is the run `rnnlm train` makes, with its
//! options, presets, messages and files.

#[allow(dead_code)]
#[path = "../../src/cli/mod.rs"]
mod cli;

use crate::errors::cli_error;
use clap::Parser;
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rnnlm::files::corpus::{Prepared, Split};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the command line with `argv` (its first element the program name); returns its exit
/// status (0, or 130/143 for a training run stopped by a signal). `--help` prints and returns 0.
#[pyfunction]
pub fn run_cli(py: Python<'_>, argv: Vec<String>) -> PyResult<u8> {
    let args = match cli::Cli::try_parse_from(&argv) {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return Ok(0);
        }
        Err(error) => {
            let rendered = error.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            return Err(PyValueError::new_err(first.to_owned()));
        }
    };
    let status = py.detach(|| cli::run(args)).map_err(|e| cli_error(&e))?;
    Ok(if status == ExitCode::SUCCESS {
        0
    } else if status == ExitCode::from(130) {
        130
    } else if status == ExitCode::from(143) {
        143
    } else {
        1
    })
}

/// One split of the Penn Treebank (`train`, `val`/`valid` or `test`) as ids (int64), and the
/// vocabulary by id: from `directory` holding the three `ptb.*.txt` files, or from a data
/// directory as the command line finds it (`<dir>/ptb/`, `$RNNLM_DATA`, `./data`; downloaded
/// when missing).
#[pyfunction]
#[pyo3(signature = (split, directory=None))]
pub fn ptb_split<'py>(
    py: Python<'py>,
    split: &str,
    directory: Option<PathBuf>,
) -> PyResult<(Bound<'py, PyArray1<i64>>, Vec<String>)> {
    let which = match split {
        "train" => Split::Train,
        "val" | "valid" => Split::Valid,
        "test" => Split::Test,
        other => {
            return Err(PyValueError::new_err(format!(
                "data_type must be 'train', 'val' (or 'valid') or 'test', got {other:?}"
            )))
        }
    };
    let log = |line: &str| eprintln!("{line}");
    let prepared = py
        .detach(|| -> anyhow::Result<PathBuf> {
            Ok(match &directory {
                Some(dir) if dir.join("ptb.train.txt").exists() => rnnlm::files::data::prepared_ptb_from(dir, log)?,
                Some(dir) => rnnlm::files::data::prepared_ptb(dir, &rnnlm::files::data::ptb_base_url(None), log)?,
                None => rnnlm::files::data::prepared_ptb(
                    &rnnlm::files::data::data_dir(None),
                    &rnnlm::files::data::ptb_base_url(None),
                    log,
                )?,
            })
        })
        .map_err(|e| cli_error(&e))?;
    let corpus = Prepared::open(&prepared).map_err(|e| cli_error(&e.into()))?;
    let file = corpus
        .split(which)
        .ok_or_else(|| PyValueError::new_err(format!("{} has no {split} split", prepared.display())))?;
    let ids = file.ids();
    let values: Vec<i64> = (0..ids.len()).map(|i| ids.get(i) as i64).collect();
    Ok((PyArray1::from_vec(py, values), corpus.vocab.tokens().to_vec()))
}
