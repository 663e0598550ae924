//! The modules of `cnn`, the program (`src/main.rs` parses the arguments
//! and `src/commands/` calls them): benchmarks, gradient checks, pictures,
//! plots, reports and the drawing page. Training itself is the `trainer` library.
#![deny(missing_docs)]

pub mod bench;
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
