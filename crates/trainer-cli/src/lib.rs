//! The modules of `cnn`, the program (`src/main.rs` parses the arguments
//! and `src/commands/` calls them): benchmarks, gradient checks, pictures,
//! plots, reports and the drawing page. Training itself is the `trainer` library.
//!
//! `cnn bench` from a program: one timed training step of the seed network
//! on random images, and its report.
//!
//! ```
//! use trainer_cli::bench::{run, BenchOptions};
//!
//! let report = run(&BenchOptions {
//!     config: "seed".into(),
//!     batch: Some(10),
//!     steps: 1,
//!     warmup: 0,
//!     data: None, // random images
//!     eval_images: 10,
//!     conv: None,
//! })
//! .unwrap();
//! assert_eq!(report.layers[0].name, "conv1");
//! assert!(report.table().contains("per 60,000-image epoch"));
//! ```
#![deny(missing_docs)]

pub mod bench;
mod glyphs;
pub mod gradcheck_cmd;
pub mod image_io;
pub mod plot;
pub mod post;
pub mod predict;
pub mod report;
pub mod results_md;
pub mod seed_table;
pub mod serve;
pub mod visualize;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;
