//! The convolution and pooling kernels: the hot path of the whole project.
//!
//! * [`conv`]: im2col / col2im and the convolution's forward pass and its
//!   three gradients as matrix products (`matrixmultiply::sgemm`), parallel
//!   over images and rows with rayon. The maths is written out at the top of
//!   that module.
//! * [`pool`]: average and max pooling, forward and backward.
//! * [`reference`](mod@reference): the same operations as plain nested loops, for tests and
//!   benchmarks only.
//!
//! Kernels work on dense row-major `f32` slices in NCHW order and know
//! nothing of layers or tensors: shapes come in as [`ConvGeometry`] and
//! [`PoolGeometry`]. A slice of the wrong length is a bug in the caller and
//! panics; shapes that come from users are checked a level up, in `layers`.
//!
//! # The determinism rule
//!
//! Every kernel gives bit-identical results whatever the number of threads.
//! Work is split only where the pieces are independent (one output element
//! is always computed by one task, in one order); every sum across a batch
//! (weight and bias gradients) runs in a fixed order that depends on the data
//! shape alone, never on how rayon schedules tasks. A new kernel must keep
//! this rule: no `par_iter().sum()`, no reduction whose grouping follows the
//! thread count.
//!
//! ```
//! use im2col::{conv, ConvGeometry, reference};
//!
//! // One 1x4x4 image, two 3x3 filters, padding 1.
//! let g = ConvGeometry::builder(1, 2, 3).input(4, 4).pad(1).build().unwrap();
//! let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
//! let w: Vec<f32> = (0..18).map(|v| (v as f32 - 9.0) / 10.0).collect();
//! let b = [0.5, -0.5];
//! let mut y = vec![0.0; g.out_size()];
//! conv::conv2d_forward(&g, 1, &x, &w, &b, &mut y, &mut conv::ConvScratch::default());
//! let expected = reference::conv2d_forward(&g, 1, &x, &w, &b);
//! assert!(y.iter().zip(&expected).all(|(a, e)| (a - e).abs() < 1e-4));
//! ```
#![deny(missing_docs)]

pub mod conv;
pub mod dense;
mod direct;
mod gemm;
mod geometry;
pub mod pool;
pub mod reference;

pub use conv::{
    col2im, conv2d_backward, conv2d_forward, direct_available, im2col, Activation, ConvAlgorithm,
    ConvScratch,
};
pub use dense::{dense_available, dense_backward, dense_forward, DenseScratch};
pub use gemm::{sgemm, MatLayout};
pub use geometry::{ConvGeometry, ConvGeometryBuilder, GeometryError, PoolGeometry};
pub use pool::{avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;

/// `docs/03-im2col.md`, whose code blocks run as doctests so the book cannot drift from the code.
#[doc = include_str!("../../../docs/03-im2col.md")]
#[cfg(doctest)]
pub struct ChapterIm2col;

/// `docs/07-determinism.md`, whose code blocks run as doctests so the book cannot drift from the code.
#[doc = include_str!("../../../docs/07-determinism.md")]
#[cfg(doctest)]
pub struct ChapterDeterminism;
