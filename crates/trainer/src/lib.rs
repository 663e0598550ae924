//! The trainer: configs, batches, the training step, evaluation,
//! checkpoints, metrics and the run loop, as a library. The `cnn` program
//! (crate `trainer-cli`) is one user of it; `examples/train_mnist.rs` is another.
#![deny(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod files;
pub mod metrics;
pub mod parallel;
pub mod safetensors_io;
pub mod step;
pub mod train;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;
