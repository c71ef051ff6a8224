//! rnnlm: fast CPU training of recurrent-network language models (embedding, stacked tanh,
//! LSTM or GRU layers, affine and softmax cross-entropy or an adaptive softmax; truncated BPTT,
//! SGD).
//!
//! - [`kernels`]: the allocation-free f32 kernels, public for embedding in other tools;
//! - [`model`]: `Rnnlm` (embedding, stacked tanh, LSTM or GRU layers, affine) on one flat parameter buffer and a preallocated workspace;
//! - [`reference`](mod@reference): the naive implementation every optimized path is tested against;
//! - [`rng`]: the seeded generator behind initialisation;
//! - [`score`]: the probability a trained model gives each token of sentences or of a stream;
//! - [`atomic_file`]: writes that never leave a half-written file under the final name;
//! - [`corpus`]: tokenizers, vocabulary and token files, from text to a memory-mapped `&[u16]`;
//! - `data` (feature `cli`): the data and cache directories, and fetching and preparing the Penn Treebank;
//! - `train` (feature `train`): the spec's truncated-BPTT batching, the training loop and evaluation;
//! - `checkpoint` (feature `checkpoint`): safetensors checkpoints with the spec's tensor names;
//! - `plot` (feature `cli`): the perplexity chart;
//! - `bench` (feature `cli`): training throughput and the GEMM ceiling, measured in one run.
//!
//! Features: `train` (the training loop, schedules and resumable run states), `checkpoint`
//! (safetensors files) and `cli` (the command line with downloading, plotting and
//! benchmarking, and the two others). `cli` is the default; without default features the
//! crate is the kernels, the model, the reference, the generator and the corpus reader, and
//! depends on `wide`, `rayon`, `bytemuck`, `memmap2`, `crc32fast` and `tempfile` alone.

#![warn(missing_docs)]

pub mod atomic_file;
#[cfg(feature = "cli")]
pub mod bench;
#[cfg(feature = "checkpoint")]
pub mod checkpoint;
pub mod corpus;
#[cfg(feature = "cli")]
pub mod data;
pub mod generate;
pub mod kernels;
pub mod model;
#[cfg(feature = "cli")]
pub mod plot;
pub mod reference;
pub mod rng;
pub mod score;
#[cfg(feature = "train")]
pub mod train;

pub use model::{Arch, Cell, Dims, LayerCost, ModelError, Phase, Rnnlm, Softmax, Tensor, Window, WindowCost};
