//! rnnlm: fast CPU training of the Rnnlm language model of `../shared/SPEC.md`.
//!
//! - [`kernels`]: the allocation-free f32 kernels, public for embedding in other tools;
//! - [`model`]: `Rnnlm` (embedding, stacked tanh, LSTM or GRU layers, affine) on one flat parameter buffer and a preallocated workspace;
//! - [`reference`](mod@reference): the naive implementation every optimized path is tested against;
//! - [`rng`]: the seeded generator behind initialisation;
//! - [`atomic_file`]: writes that never leave a half-written file under the final name;
//! - [`corpus`]: tokenizers, vocabulary and token files, from text to a memory-mapped `&[u16]`;
//! - [`data`]: the data and cache directories, and fetching and preparing the Penn Treebank;
//! - [`train`]: the spec's truncated-BPTT batching, the training loop and evaluation;
//! - [`checkpoint`]: safetensors checkpoints with the spec's tensor names;
//! - [`plot`]: the perplexity chart;
//! - [`bench`](mod@bench): training throughput and the GEMM ceiling, measured in one run.

pub mod atomic_file;
pub mod bench;
pub mod checkpoint;
pub mod corpus;
pub mod data;
pub mod generate;
pub mod kernels;
pub mod model;
pub mod plot;
pub mod reference;
pub mod rng;
pub mod train;

pub use model::{Arch, Cell, Dims, ModelError, PhaseTimes, Rnnlm, Tensor, Window};
