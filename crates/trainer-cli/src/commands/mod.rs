//! One function per command, with the flags it takes; `main.rs` lists the
//! commands and calls these.
//!
//! | file | commands |
//! |---|---|
//! | `train.rs`, `progress.rs` | `cnn train` (its progress bar and Ctrl-C) |
//! | `eval.rs` | `cnn eval` |
//! | `predict.rs` | `cnn predict`, `cnn serve` |
//! | `pictures.rs` | `cnn visualize`, `cnn plot` |
//! | `pages.rs` | `cnn report`, `cnn results`, `cnn seed-table` |
//! | `export.rs` | `cnn export`, `cnn import` |
//! | `configs.rs` | `cnn configs` |
//! | `checks.rs` | `cnn gradcheck`, `cnn bench` |
//! | `model_args.rs` | `--model` and `--config`, shared by eval, predict and serve |

pub(crate) mod checks;
pub(crate) mod configs;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod model_args;
pub(crate) mod pages;
pub(crate) mod pictures;
pub(crate) mod predict;
pub(crate) mod progress;
pub(crate) mod train;
