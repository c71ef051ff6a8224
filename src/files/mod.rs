//! What the crate reads and writes: text corpora and token files ([`corpus`]), checkpoints
//! (`checkpoint`, feature `checkpoint`), the data directory and the Penn Treebank (`data`,
//! feature `cli`), the perplexity chart (`plot`, feature `cli`), and the atomic writes every
//! output goes through ([`atomic_file`]).
//!
//! Nothing here computes: the model and the kernels know nothing of files.

pub mod atomic_file;
#[cfg(feature = "checkpoint")]
pub mod checkpoint;
pub mod corpus;
#[cfg(feature = "cli")]
pub mod data;
#[cfg(feature = "cli")]
pub mod plot;
