//! rnnlm: fast CPU training of the SimpleRnnlm language model of `../shared/SPEC.md`.
//!
//! - [`kernels`]: the allocation-free f32 kernels, public for embedding in other tools.

pub mod kernels;
