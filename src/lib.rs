//! rnnlm: fast CPU training of recurrent-network language models (embedding, stacked plain
//! RNN, LSTM or GRU layers, affine and softmax cross-entropy or an adaptive softmax; truncated
//! BPTT, SGD).
//!
//! The modules in the order the data flows:
//!
//! - [`kernels`]: the allocation-free f32 kernels on plain slices, public for embedding in other
//!   tools;
//! - [`model`]: [`Rnnlm`], the whole network on one flat parameter buffer and a preallocated
//!   workspace, built from the kernels;
//! - [`reference`](mod@reference): the naive implementation every optimized path is tested
//!   against, and that other kernels can be tested against too;
//! - `train` (feature `train`): the truncated-BPTT batching, the training loop, the schedules
//!   and evaluation;
//! - `distributed` (feature `mpi`): training over several processes and hosts with MPI;
//! - [`inference`]: scoring text and sampling from a trained model;
//! - [`files`]: corpora and token files, checkpoints, the data directory, the chart, atomic
//!   writes;
//! - `bench` (feature `cli`): training throughput next to the GEMM ceiling and the FMA peak,
//!   measured in one run; the command line itself is the `rnnlm` binary, a thin layer over all
//!   of it;
//! - [`rng`]: the seeded generator behind initialisation and dropout.
//!
//! Features: `train` (the training loop, schedules and resumable run states), `checkpoint`
//! (safetensors files) and `cli` (the command line with downloading, plotting and
//! benchmarking, and the two others). `cli` is the default; without default features the
//! crate is the kernels, the model, the reference, the generator, scoring and the corpus
//! reader, and depends on `wide`, `rayon`, `bytemuck`, `memmap2`, `crc32fast` and `tempfile`
//! alone.

#![warn(missing_docs)]

pub mod kernels;
pub mod model;
pub mod reference;
#[cfg(feature = "train")]
pub mod train;
#[cfg(feature = "mpi")]
pub mod distributed;
pub mod inference;
pub mod files;
#[cfg(feature = "cli")]
pub mod bench;
pub mod rng;

pub use model::{Arch, Cell, Dims, LayerCost, ModelError, Phase, Rnnlm, Softmax, Tensor, Window, WindowCost};
