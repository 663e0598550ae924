//! Checked readers for the IDX files of MNIST and Fashion-MNIST.
//!
//! * [`Dataset::load`] reads one split from a folder (files gzipped or not),
//!   checking every header field against the bytes present; any malformed
//!   input is an [`IdxError`] naming the file, never a panic.
//! * Pixels are kept as `u8`; [`Dataset::fill_batch`] turns a mini-batch into
//!   `f32` (N x 1 x rows x cols) without allocating.
//! * [`Motion`] rotates and shifts an image (data augmentation).
//! * [`epoch_order`] and [`batches`] give a reproducible order of examples per
//!   epoch, a pure function of `(n, seed, epoch)`.
//! * [`MNIST`] and [`FASHION_MNIST`] describe the known data sets: file names,
//!   SHA-256 of the decompressed files, class names and download mirrors.
//!   This crate does no networking; `cargo xtask fetch-data` does.
//!
//! ```no_run
//! use mnist_io::{batches, epoch_order, Dataset, Split};
//! # fn main() -> Result<(), mnist_io::IdxError> {
//! let train = Dataset::load("data/mnist", Split::Train)?;
//! let norm = Some(train.pixel_mean_std());
//! let order = epoch_order(train.len(), 42, 0);
//! let (mut x, mut y) = (vec![0f32; 64 * 28 * 28], vec![0usize; 64]);
//! for (_, idx) in batches(&order, 64) {
//!     let n = idx.len();
//!     train.fill_batch(idx, norm, &mut x[..n * 28 * 28], &mut y[..n]);
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod augment;
mod dataset;
mod error;
mod idx;
mod order;
mod spec;

pub use augment::Motion;
pub use dataset::{Dataset, Normalize};
pub use error::IdxError;
pub use idx::{
    encode_images, encode_labels, find_file, is_gzip, read_maybe_gz, read_maybe_gz_limited,
    MAX_FILE_BYTES,
};
pub use order::{batches, epoch_order};
pub use spec::{
    sha256_hex, spec_by_name, verify_bytes, verify_file, DatasetSpec, FileSpec, Split,
    FASHION_MNIST, KNOWN_DATASETS, MNIST,
};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;

/// `docs/02-idx-format.md`, whose code blocks run as doctests so the book cannot drift from the code.
#[doc = include_str!("../../../docs/02-idx-format.md")]
#[cfg(doctest)]
pub struct ChapterIdxFormat;
