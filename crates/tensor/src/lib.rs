//! The array type every crate of the workspace shares, a reproducible random
//! number generator and the weight initialisers.
//!
//! * [`Tensor`] is an [`ndarray::ArrayD<f32>`]: images travel as NCHW
//!   (batch, channels, height, width), features as NF (batch, features).
//! * [`Rng`] is xoshiro256\*\* seeded through [`SplitMix64`], which also
//!   orders the data sets' examples (`mnist-io`). It is written here,
//!   not taken from a crate, so that one seed gives the same weights forever,
//!   whatever version of a dependency is resolved, and so that its state can
//!   be saved in a checkpoint.
//! * [`Init`] draws initial weights: a Gaussian with a given standard
//!   deviation (what the seed experiment uses), Xavier/Glorot, He/Kaiming, or
//!   zeros.
//!
//! ```
//! use tensor::{Init, Rng, Tensor};
//!
//! let mut rng = Rng::seed_from_u64(42);
//! // A 3x3 convolution kernel bank: 8 output channels, 1 input channel.
//! let w: Tensor = Init::Normal { std: 0.1 }.tensor(&mut rng, &[8, 1, 3, 3], 9, 72);
//! assert_eq!(w.shape(), &[8, 1, 3, 3]);
//! // The same seed gives the same weights.
//! let again = Init::Normal { std: 0.1 }.tensor(&mut Rng::seed_from_u64(42), &[8, 1, 3, 3], 9, 72);
//! assert_eq!(w, again);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod init;
mod rng;

pub use init::Init;
pub use ndarray;
pub use rng::{Rng, SplitMix64};

/// The n-dimensional f32 array used throughout: NCHW for images, NF for features.
pub type Tensor = ndarray::ArrayD<f32>;

/// Index of the largest value of `row` (the first one on ties); 0 for an empty row.
///
/// NaN never wins: a row of NaNs gives 0.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

/// One row per label, `classes` columns, 1.0 at the label's column.
///
/// Labels outside `0..classes` leave their row all zero.
pub fn one_hot(labels: &[usize], classes: usize) -> ndarray::Array2<f32> {
    let mut out = ndarray::Array2::zeros((labels.len(), classes));
    for (r, &l) in labels.iter().enumerate() {
        if l < classes {
            out[[r, l]] = 1.0;
        }
    }
    out
}

/// A shape as people write it: `[100, 1, 28, 28]`.
pub fn shape_string(shape: &[usize]) -> String {
    format!("{shape:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_picks_first_maximum_and_skips_nan() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -3.0, -2.0]), 2);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn one_hot_rows() {
        let t = one_hot(&[2, 0], 3);
        assert_eq!(t, ndarray::arr2(&[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]));
    }
}

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;
