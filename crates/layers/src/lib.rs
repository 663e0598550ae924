//! Layers and losses, each forward and backward pass written by hand, and
//! networks built from a serde config.
//!
//! | file | what |
//! |---|---|
//! | [`layer`](Layer) | the [`Layer`] trait, [`Param`] (a tensor, its gradient, its name) and [`Buffer`] (a tensor the optimizer does not train) |
//! | `conv2d.rs` | [`Conv2d`], around the kernels of the `im2col` crate |
//! | `relu.rs`, `sigmoid.rs` | [`Relu`], [`Sigmoid`] |
//! | `pool2d.rs` | [`Pool2d`]: average and max pooling |
//! | `linear.rs` | [`Linear`] |
//! | `flatten.rs` | [`Flatten`] (the post's Reshape) |
//! | `dropout.rs` | [`Dropout`]: inverted dropout, its mask drawn from `noise`, the caller's random stream |
//! | `batch_norm.rs` | [`BatchNorm`]: `batch_norm2d` and `batch_norm1d`, with running statistics ([`Buffer`]s) |
//! | `loss.rs` | [`Loss`]: softmax cross-entropy, MSE, sigmoid + binary cross-entropy |
//! | `config.rs` | [`NetworkConfig`], [`LayerConfig`]: a network as data |
//! | `network.rs` | [`Network`]: forward in order, backward in reverse; a ReLU after a convolution fused into it |
//! | [`flops`] | FLOP counts from the layers and their shapes |
//! | `gradcheck.rs` | [`gradcheck`]: central finite differences |
//!
//! Every layer keeps the determinism rule of the `im2col` crate: parallel
//! work is split only into independent pieces, and every sum over a batch
//! runs in a fixed order, so results are bit-identical on any number of threads.
//!
//! ```
//! use layers::{Conv2dConfig, Loss, NetworkConfig};
//! use tensor::{Rng, Tensor};
//!
//! let config = NetworkConfig::new([1, 8, 8]) // one example: 1 channel, 8 x 8
//!     .conv2d(Conv2dConfig::new(1, 4, 3).pad(1))
//!     .relu()
//!     .max_pool2d(2)
//!     .flatten()
//!     .linear(10); // 10 outputs; its 4 x 4 x 4 inputs are counted when built
//! let mut net = config.build(&mut Rng::seed_from_u64(1)).unwrap();
//! let x = Tensor::zeros(vec![2, 1, 8, 8]);
//! let logits = net.forward_train(&x).unwrap();
//! assert_eq!(logits.shape(), &[2, 10]);
//!
//! // The loss against class labels, and its gradient.
//! let (loss, grad) = Loss::SoftmaxCrossEntropy.with_labels(logits, &[3, 7]).unwrap();
//! assert!((loss - 10f64.ln()).abs() < 1e-6); // zero input: all logits equal the zero biases
//! net.backward(&grad).unwrap();
//! net.params().into_iter().for_each(|p| assert_eq!(p.grad.shape(), p.value.shape()));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod batch_norm;
mod build;
mod config;
mod conv2d;
mod dropout;
mod error;
mod flatten;
pub mod flops;
pub mod gradcheck;
mod layer;
mod linear;
mod loss;
mod network;
mod pool2d;
mod relu;
mod sigmoid;

pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use config::{LayerConfig, Named, NetworkConfig};
pub use conv2d::{Conv2d, Conv2dConfig};
pub use dropout::{Dropout, DropoutConfig};
pub use error::{ConfigError, LayerError};
pub use flatten::Flatten;
/// How a convolution layer is computed (its config key `algorithm`).
pub use im2col::ConvAlgorithm;
pub use layer::{Buffer, Layer, Param};
pub use linear::{Linear, LinearConfig};
pub use loss::{accuracy, count_correct, one_hot_into, Loss};
pub use network::Network;
pub use pool2d::{Pool2d, Pool2dConfig, PoolKind};
pub use relu::Relu;
pub use sigmoid::Sigmoid;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;

/// `docs/04-backward.md`, whose code blocks run as doctests so the book cannot drift from the code.
#[doc = include_str!("../../../docs/04-backward.md")]
#[cfg(doctest)]
pub struct ChapterBackward;

/// `docs/06-gradient-check.md`, whose code blocks run as doctests so the book cannot drift from the code.
#[doc = include_str!("../../../docs/06-gradient-check.md")]
#[cfg(doctest)]
pub struct ChapterGradientCheck;
