//! Using a trained model: scoring text ([`score`]) and sampling from it ([`generate`]).
//!
//! Both run the model's own forward kernels over windows of the model's shape, so what they
//! compute is the training forward pass, not a second implementation of it.

pub mod generate;
pub mod score;
