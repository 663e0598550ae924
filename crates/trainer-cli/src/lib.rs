//! The trainer: configs, the training step and loop, checkpoints, metrics
//! and evaluation, as a library; and, with the `cli` feature (on by
//! default), the modules of the `cnn` program (`src/main.rs`, which only
//! parses arguments): pictures, reports, export.
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`config::TrainConfig`]: a run as data; the built-in configs |
//! | `step.rs` | [`step::DataParallel`]: one training step, micro-batches in parallel |
//! | `train.rs` | [`train::train`]: the training loop, epoch after epoch |
//! | `files.rs` | bounded reads of outside files; output paths that spare a run's own files |
//! | `checkpoint.rs` | [`checkpoint::Checkpoint`]: checked, atomic save and load |
//! | `metrics.rs` | `metrics.csv`: its header and a parser |
//! | `eval.rs` | loss, accuracy, per-class accuracy, confusion matrix |
//! | `data.rs` | a folder of IDX files; batches as tensors |
//! | `bench.rs` | `cnn bench`: training-step and evaluation timings, layer by layer |
//! | `gradcheck_cmd.rs` | `cnn gradcheck`: every layer of a config against central differences |
//!
//! With `cli`:
//!
//! | file | what |
//! |---|---|
//! | `image_io.rs` | PNG in (any colour type, to grey) and out, area-averaging resize |
//! | `predict.rs` | `cnn predict`: classify PNG files |
//! | `visualize.rs` | `cnn visualize`: first-layer feature maps and kernels as one PNG |
//! | `plot.rs` | `cnn plot`: loss and accuracy curves from `metrics.csv` |
//! | `safetensors_io.rs` | `cnn export` / `cnn import`: weights as PyTorch `state_dict` safetensors; `safetensors_io::load_model` |
//! | `report.rs` | `cnn report`: one self-contained HTML page about a run |
//! | `results_md.rs` | `cnn results`: a run's metrics as Markdown |
//! | `serve.rs` | `cnn serve`: a page to draw a digit on, and the network's layers looking at it |
#![deny(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod files;
pub mod gradcheck_cmd;
pub mod metrics;
pub mod step;
pub mod train;

#[cfg(feature = "cli")]
pub mod image_io;
#[cfg(feature = "cli")]
pub mod plot;
#[cfg(feature = "cli")]
pub mod predict;
#[cfg(feature = "cli")]
pub mod report;
#[cfg(feature = "cli")]
pub mod results_md;
#[cfg(feature = "cli")]
pub mod safetensors_io;
#[cfg(feature = "cli")]
pub mod seed_table;
#[cfg(feature = "cli")]
pub mod serve;
#[cfg(feature = "cli")]
pub mod visualize;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;
