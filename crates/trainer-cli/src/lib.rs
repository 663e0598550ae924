//! `cnn`, the trainer: configs, checkpoints, the training loop, evaluation
//! and the pictures. The binary (`src/main.rs`) only parses arguments.
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`config::TrainConfig`]: a run as data; the built-in configs |
//! | `checkpoint.rs` | [`checkpoint::Checkpoint`]: checked, atomic save and load |
//! | `train.rs` | the training loop, in one place |
//! | `eval.rs` | loss, accuracy, per-class accuracy, confusion matrix |
#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod gradcheck_cmd;
pub mod train;
