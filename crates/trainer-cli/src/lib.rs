//! `cnn`, the trainer: configs, checkpoints, the training loop, evaluation
//! and the pictures. The binary (`src/main.rs`) only parses arguments.
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`config::TrainConfig`]: a run as data; the built-in configs |
//! | `checkpoint.rs` | [`checkpoint::Checkpoint`]: checked, atomic save and load |
//! | `train.rs` | the training loop, in one place |
//! | `eval.rs` | loss, accuracy, per-class accuracy, confusion matrix |
//! | `image_io.rs` | PNG in (any colour type, to grey) and out, area-averaging resize |
//! | `predict.rs` | `cnn predict`: classify PNG files |
//! | `visualize.rs` | `cnn visualize`: first-layer feature maps and kernels as one PNG |
//! | `plot.rs` | `cnn plot`: loss and accuracy curves from `metrics.csv` |
//! | `safetensors_io.rs` | `cnn export` / `cnn import`: weights as PyTorch `state_dict` safetensors; [`safetensors_io::load_model`] |
//! | `report.rs` | `cnn report`: one self-contained HTML page about a run |
//! | `bench.rs` | `cnn bench`: training-step and evaluation timings, layer by layer |
#![deny(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod gradcheck_cmd;
pub mod image_io;
pub mod plot;
pub mod predict;
pub mod report;
pub mod results_md;
pub mod safetensors_io;
pub mod step;
pub mod train;
pub mod visualize;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;
