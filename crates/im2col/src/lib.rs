//! The convolution and pooling kernels: the hot path of the whole project.
//!
//! * [`conv`]: the convolution's forward pass and its three gradients, by
//!   [`im2col`] / [`col2im`] and matrix products (`matrixmultiply::sgemm`),
//!   the algorithm the book teaches, or by a direct implicit GEMM; one
//!   [`Convolution`] runs either ([`ConvAlgorithm`]). Parallel over images
//!   and rows with rayon.
//! * [`dense`]: a fully connected layer's products on the same micro-kernels.
//! * [`pool`]: average and max pooling, forward and backward.
//! * [`reference`](mod@reference): the same operations written from their
//!   definitions, for tests and benchmarks only.
//!
//! Kernels work on dense row-major `f32` slices in NCHW order and know
//! nothing of layers or tensors: shapes come in as [`ConvGeometry`] and
//! [`PoolGeometry`]. A slice of the wrong length is a bug in the caller and
//! panics; shapes that come from users are checked a level up, in `layers`.
//! Every `unsafe` line (SIMD kernels, CPU detection, the call into
//! `matrixmultiply`) lives in the private `simd` module, behind checked
//! wrappers.
//!
//! ```
//! use im2col::{reference, Activation, ConvAlgorithm, ConvGeometry, ConvGrads, Convolution};
//!
//! // One 1x4x4 image, two 3x3 filters, padding 1.
//! let g = ConvGeometry::builder(1, 2, 3).input(4, 4).pad(1).build().unwrap();
//! let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
//! let w = vec![0.5; g.weight_len()];
//! let mut y = vec![0.0; g.out_size()];
//! let mut conv = Convolution::new(ConvAlgorithm::Im2col);
//! // The forward pass returns the cache its backward pass consumes.
//! let cache = conv.forward(&g, 1, &x, &w, &[0.0, 1.0], Activation::Identity, &mut y);
//! assert_eq!(y, reference::conv2d_forward(&g, 1, &x, &w, &[0.0, 1.0]));
//! let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; 2]);
//! let dy = vec![1.0; y.len()];
//! conv.backward(cache, &w, None, &dy, ConvGrads { input: None, weight: &mut dw, bias: &mut db });
//! assert_eq!(db, [16.0, 16.0]); // 16 output pixels per channel
//! ```
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
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod conv;
pub mod dense;
mod direct;
mod geometry;
mod im2col_gemm;
pub mod pool;
pub mod reference;
mod shared;
mod simd;

pub use conv::{ConvAlgorithm, ConvCache, ConvGrads, Convolution};
pub use dense::{dense_available, dense_backward, dense_forward, DenseScratch};
pub use geometry::{ConvGeometry, ConvGeometryBuilder, GeometryError, PoolGeometry};
pub use im2col_gemm::{col2im, im2col};
pub use pool::{avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward};
pub use shared::Activation;
pub use simd::peak::{fma_peak_one_thread, FmaPeak};
pub use simd::{sgemm, MatLayout};

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
