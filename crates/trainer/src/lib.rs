//! The trainer: configs, batches, the training step, evaluation,
//! checkpoints, metrics and the run loop, as a library. The `cnn` program
//! (crate `trainer-cli`) is one user of it; `examples/train_mnist.rs` is another.
//!
//! One epoch of the post's network, step by step (here on 200 made-up
//! images; `DataSets::load("data/mnist")` gives the real ones):
//!
//! ```
//! use mnist_io::{batches, epoch_order, Dataset};
//! use optim::Optimizer;
//! use trainer::{batch::DatasetBatch, config::TrainConfig, eval::evaluate, step::step};
//!
//! let pixels = (0..200 * 784).map(|i| (i * 7 % 256) as u8).collect();
//! let labels = (0..200).map(|i| (i % 10) as u8).collect();
//! let train_set = Dataset::from_parts(pixels, labels, 28, 28).unwrap();
//!
//! let config = TrainConfig::load("seed").unwrap(); // the post's network and SGD
//! let mut net = config.build_network().unwrap();
//! let mut optimizer = Optimizer::new(config.optimizer.clone());
//! let normalize = config.normalize(&train_set).unwrap();
//! let t = &config.training;
//! for (b, indices) in batches(&epoch_order(train_set.len(), t.seed, 0), t.batch) {
//!     let batch = DatasetBatch { data: &train_set, indices, normalize, augment: None };
//!     // forward, loss, backward on each micro-batch; then the optimizer's update
//!     let result = step(&mut net, &config.loss_fn(), &batch, t.micro_batch, b as u64, &mut optimizer).unwrap();
//!     assert!(result.loss.is_finite());
//! }
//! let figures = evaluate(&net, &train_set, 100, normalize).unwrap();
//! assert_eq!(figures.count, 200);
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`config`] | [`config::TrainConfig`]: a run as data; the built-in configs |
//! | [`data`] | a training and a test set: a folder of IDX files or an image folder |
//! | [`batch`] | the examples of a step, and how they become tensors |
//! | [`step`] | one training step, the plain way: micro-batches one after another |
//! | [`parallel`] | the same step with the micro-batches in parallel, to the same bits |
//! | [`eval`] | loss, accuracy, per-class accuracy, confusion matrix |
//! | [`train`] | the run loop: epochs, checkpoints, metrics, resuming |
//! | [`checkpoint`] | checked, atomic checkpoints |
//! | [`metrics`] | `metrics.csv` |
//! | [`files`] | bounded reads, atomic writes, outputs that spare a run's files |
//! | [`image`] | PNG images as grey pixels, resizing, writing PNGs |
//! | [`prepare`] | an image or a drawing made ready for the network as MNIST's digits were made |
//! | [`image_folder`] | a training and a test set from folders of PNG images, one folder per class |
//! | [`safetensors_io`] | weights as a PyTorch `state_dict` in safetensors, out and in |
//! | [`onnx`] | the network as an ONNX graph with its weights, for ONNX Runtime and others |
#![deny(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod files;
pub mod image;
pub mod image_folder;
pub mod metrics;
pub mod onnx;
pub mod parallel;
pub mod prepare;
pub mod safetensors_io;
pub mod step;
pub mod train;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;
