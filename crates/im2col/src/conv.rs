//! Convolution: one forward and one backward pass, by either of two algorithms.
//!
//! * [`ConvAlgorithm::Im2col`], the one the book teaches: unroll every patch
//!   into a column (`im2col`), multiply by the filter matrix, and for the
//!   input gradient fold the columns back (`col2im`). Any geometry, any CPU.
//!   The maths is at the top of `src/im2col_gemm.rs`.
//! * [`ConvAlgorithm::Direct`]: an implicit GEMM that reads its columns
//!   straight out of a zero-padded copy of the input (`src/direct.rs`).
//!   Stride 1 on x86-64 with AVX2 and FMA; elsewhere it falls back to im2col.
//!
//! Both give the same sums within rounding, and each is bit-identical on any
//! number of threads. [`Convolution::forward`] returns a [`ConvCache`] that
//! holds what its backward pass needs (the im2col matrix, or the padded
//! input), and [`Convolution::backward`] consumes it: a backward pass always
//! runs on the state of its own forward pass. The buffers travel with the
//! cache and come back to the `Convolution` after the backward pass (or
//! through [`Convolution::recycle`]), so that a training step allocates
//! nothing once the batch size is fixed.

use serde::{Deserialize, Serialize};

use crate::direct::{self, DirectBuffers};
use crate::im2col_gemm::{self, Im2colBuffers};
use crate::shared::Activation;
use crate::ConvGeometry;

/// How a [`Convolution`] computes its passes; written `"auto"`, `"im2col"`
/// or `"direct"` in configs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgorithm {
    /// [`Direct`](ConvAlgorithm::Direct) where it runs, the fastest here,
    /// [`Im2col`](ConvAlgorithm::Im2col) elsewhere.
    #[default]
    Auto,
    /// im2col / col2im and `matrixmultiply::sgemm`: any geometry, any CPU.
    Im2col,
    /// The implicit GEMM over a padded input: stride 1, padding smaller than
    /// the kernel, x86-64 with AVX2 and FMA. Falls back to
    /// [`Im2col`](ConvAlgorithm::Im2col) where it does not run.
    Direct,
}

impl ConvAlgorithm {
    /// The algorithm that actually runs geometry `g` on this machine:
    /// `Im2col` or `Direct`, never `Auto`.
    ///
    /// ```
    /// use im2col::{ConvAlgorithm, ConvGeometry};
    ///
    /// let strided = ConvGeometry::builder(1, 4, 3).input(9, 9).stride(2).build().unwrap();
    /// assert_eq!(ConvAlgorithm::Direct.resolve(&strided), ConvAlgorithm::Im2col);
    /// let g = ConvGeometry::builder(1, 4, 3).input(9, 9).pad(1).build().unwrap();
    /// assert_eq!(ConvAlgorithm::Im2col.resolve(&g), ConvAlgorithm::Im2col);
    /// ```
    pub fn resolve(self, g: &ConvGeometry) -> ConvAlgorithm {
        match self {
            ConvAlgorithm::Auto | ConvAlgorithm::Direct if direct::available(g) => {
                ConvAlgorithm::Direct
            }
            _ => ConvAlgorithm::Im2col,
        }
    }

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgorithm::Auto => "auto",
            ConvAlgorithm::Im2col => "im2col",
            ConvAlgorithm::Direct => "direct",
        }
    }
}

impl std::fmt::Display for ConvAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A convolution's algorithm and the buffers it reuses from step to step, so
/// that a training step allocates nothing once the batch size is fixed.
///
/// ```
/// use im2col::{reference, Activation, ConvAlgorithm, ConvGeometry, ConvGrads, Convolution};
///
/// // Two 1x5x5 images, three 3x3 filters, padding 1, stride 2.
/// let g = ConvGeometry::builder(1, 3, 3).input(5, 5).pad(1).stride(2).build().unwrap();
/// let x: Vec<f32> = (0..2 * 25).map(|v| (v % 7) as f32 - 3.0).collect();
/// let w: Vec<f32> = (0..27).map(|v| (v % 5) as f32 / 4.0 - 0.5).collect();
/// let b = [0.0, 1.0, -1.0];
///
/// let mut conv = Convolution::new(ConvAlgorithm::Im2col);
/// let mut y = vec![0.0; 2 * g.out_size()];
/// let cache = conv.forward(&g, 2, &x, &w, &b, Activation::Identity, &mut y);
/// assert_eq!(y, reference::conv2d_forward(&g, 2, &x, &w, &b));
///
/// // The gradients for an upstream gradient of ones.
/// let dy = vec![1.0; y.len()];
/// let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 3]);
/// let grads = ConvGrads { input: Some(&mut dx), weight: &mut dw, bias: &mut db };
/// conv.backward(cache, &w, None, &dy, grads);
/// assert_eq!(db, [18.0, 18.0, 18.0]); // 2 images x 9 output pixels
/// ```
#[derive(Debug, Default)]
pub struct Convolution {
    algorithm: ConvAlgorithm,
    /// Buffers of an earlier pass, for the next forward pass to reuse.
    spare: Spare,
}

/// Buffers a backward pass gave back, one set per algorithm.
#[derive(Debug, Default)]
struct Spare {
    im2col: Im2colBuffers,
    direct: DirectBuffers,
}

/// What a [`Convolution::forward`] left for its backward pass, which
/// consumes it: the pass's shape and algorithm, and the buffers holding what
/// the backward pass reads again (the im2col matrix, or the padded input).
#[must_use = "the backward pass needs the cache of its forward pass"]
pub struct ConvCache {
    geometry: ConvGeometry,
    batch: usize,
    buffers: Buffers,
}

/// The buffers of the algorithm that ran. (A few hundred bytes of vector
/// headers, moved twice a step: not worth a box.)
#[allow(clippy::large_enum_variant)]
enum Buffers {
    Im2col(Im2colBuffers),
    Direct(DirectBuffers),
}

impl std::fmt::Debug for ConvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvCache")
            .field("geometry", &self.geometry)
            .field("batch", &self.batch)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl ConvCache {
    /// The algorithm that ran: `Im2col` or `Direct`.
    pub fn algorithm(&self) -> ConvAlgorithm {
        match self.buffers {
            Buffers::Im2col(_) => ConvAlgorithm::Im2col,
            Buffers::Direct(_) => ConvAlgorithm::Direct,
        }
    }

    /// The forward pass's geometry.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geometry
    }

    /// The forward pass's batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// Where [`Convolution::backward`] writes the gradients (overwriting them):
/// the input's (N x C x H x W) when wanted, the weights' (O x C x KH x KW)
/// and the biases' (O).
#[derive(Debug)]
pub struct ConvGrads<'a> {
    /// d(loss)/d(input), or `None` when nobody needs it (a first layer).
    pub input: Option<&'a mut [f32]>,
    /// d(loss)/d(weight).
    pub weight: &'a mut [f32],
    /// d(loss)/d(bias).
    pub bias: &'a mut [f32],
}

impl Convolution {
    /// A convolution that computes with `algorithm`.
    ///
    /// ```
    /// use im2col::{ConvAlgorithm, Convolution};
    ///
    /// let conv = Convolution::new(ConvAlgorithm::Direct);
    /// assert_eq!(conv.algorithm(), ConvAlgorithm::Direct);
    /// ```
    pub fn new(algorithm: ConvAlgorithm) -> Convolution {
        Convolution {
            algorithm,
            ..Convolution::default()
        }
    }

    /// The algorithm asked for (see [`ConvAlgorithm::resolve`] for the one
    /// that runs, or [`ConvCache::algorithm`]).
    pub fn algorithm(&self) -> ConvAlgorithm {
        self.algorithm
    }

    /// Forward pass over a batch: `output[n] = activation(W ⋆ input[n] + b)`.
    ///
    /// `input` is N x C x H x W, `weight` O x C x KH x KW, `bias` O, `output`
    /// N x O x OH x OW; all dense, row-major. The returned cache holds what
    /// [`Convolution::backward`] needs; the pass reuses the buffers of the
    /// last cache given back (by a backward pass or [`Convolution::recycle`]).
    ///
    /// ```
    /// use im2col::{reference, Activation, ConvAlgorithm, ConvGeometry, Convolution};
    ///
    /// // One 1x4x4 image, two 3x3 filters, padding 1, by both algorithms.
    /// let g = ConvGeometry::builder(1, 2, 3).input(4, 4).pad(1).build().unwrap();
    /// let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    /// let w: Vec<f32> = (0..18).map(|v| (v as f32 - 9.0) / 10.0).collect();
    /// let expected = reference::conv2d_forward(&g, 1, &x, &w, &[0.5, -0.5]);
    /// for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Direct] {
    ///     let mut y = vec![0.0; g.out_size()];
    ///     let mut conv = Convolution::new(algorithm);
    ///     let _ = conv.forward(&g, 1, &x, &w, &[0.5, -0.5], Activation::Identity, &mut y);
    ///     assert!(y.iter().zip(&expected).all(|(a, e)| (a - e).abs() < 1e-4));
    /// }
    /// ```
    ///
    /// # Panics
    /// On a slice of the wrong length: a bug in the caller.
    pub fn forward(
        &mut self,
        g: &ConvGeometry,
        batch: usize,
        input: &[f32],
        weight: &[f32],
        bias: &[f32],
        activation: Activation,
        output: &mut [f32],
    ) -> ConvCache {
        let what = "Convolution::forward";
        assert_eq!(input.len(), batch * g.in_size(), "{what}: input length");
        assert_eq!(weight.len(), g.weight_len(), "{what}: weight length");
        assert_eq!(bias.len(), g.out_channels, "{what}: bias length");
        assert_eq!(output.len(), batch * g.out_size(), "{what}: output length");
        let buffers = match self.algorithm.resolve(g) {
            ConvAlgorithm::Direct => {
                let mut bufs = std::mem::take(&mut self.spare.direct);
                if batch > 0 {
                    direct::forward(g, batch, input, weight, bias, activation, output, &mut bufs);
                }
                Buffers::Direct(bufs)
            }
            _ => {
                let mut bufs = std::mem::take(&mut self.spare.im2col);
                if batch > 0 {
                    im2col_gemm::forward(
                        g, batch, input, weight, bias, activation, output, &mut bufs,
                    );
                }
                Buffers::Im2col(bufs)
            }
        };
        ConvCache {
            geometry: *g,
            batch,
            buffers,
        }
    }

    /// Gives the buffers of a cache no backward pass will consume back to
    /// this convolution, for its next forward pass (as an evaluation loop
    /// that runs forward passes only does).
    pub fn recycle(&mut self, cache: ConvCache) {
        match cache.buffers {
            Buffers::Im2col(bufs) => self.spare.im2col = bufs,
            Buffers::Direct(bufs) => self.spare.direct = bufs,
        }
    }

    /// Backward pass of the forward pass that returned `cache`: writes every
    /// gradient of `grads`. `weight` is the forward pass's, `grad_output` is
    /// N x O x OH x OW. For a forward pass run with [`Activation::Relu`],
    /// `relu_output` is its output and the gradient flows only where that is
    /// positive; `None` for [`Activation::Identity`]. Every sum runs in a
    /// fixed order, so the result does not depend on the number of threads.
    ///
    /// ```
    /// use im2col::{reference, Activation, ConvAlgorithm, ConvGeometry, ConvGrads, Convolution};
    ///
    /// let g = ConvGeometry::builder(2, 3, 3).input(5, 4).pad(1).build().unwrap();
    /// let x: Vec<f32> = (0..2 * g.in_size()).map(|v| (v % 7) as f32 - 3.0).collect();
    /// let w: Vec<f32> = (0..g.weight_len()).map(|v| (v % 5) as f32 / 4.0 - 0.5).collect();
    /// let dy: Vec<f32> = (0..2 * g.out_size()).map(|v| (v % 3) as f32 - 1.0).collect();
    /// let (rdx, rdw, rdb) = reference::conv2d_backward(&g, 2, &x, &w, &dy);
    ///
    /// let mut conv = Convolution::new(ConvAlgorithm::Auto);
    /// let mut y = vec![0.0; dy.len()];
    /// let cache = conv.forward(&g, 2, &x, &w, &[0.0; 3], Activation::Identity, &mut y);
    /// let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 3]);
    /// conv.backward(cache, &w, None, &dy, ConvGrads { input: Some(&mut dx), weight: &mut dw, bias: &mut db });
    /// let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-4);
    /// assert!(close(&dx, &rdx) && close(&dw, &rdw) && close(&db, &rdb));
    /// ```
    ///
    /// # Panics
    /// On a slice of the wrong length: a bug in the caller.
    pub fn backward(
        &mut self,
        mut cache: ConvCache,
        weight: &[f32],
        relu_output: Option<&[f32]>,
        grad_output: &[f32],
        grads: ConvGrads<'_>,
    ) {
        let (g, batch) = (&cache.geometry, cache.batch);
        let what = "Convolution::backward";
        assert_eq!(weight.len(), g.weight_len(), "{what}: weight length");
        let out_len = batch * g.out_size();
        assert_eq!(grad_output.len(), out_len, "{what}: grad_output length");
        assert_eq!(
            grads.weight.len(),
            g.weight_len(),
            "{what}: grad weight length"
        );
        assert_eq!(grads.bias.len(), g.out_channels, "{what}: grad bias length");
        if let Some(dx) = &grads.input {
            assert_eq!(dx.len(), batch * g.in_size(), "{what}: grad input length");
        }
        if let Some(y) = relu_output {
            assert_eq!(y.len(), out_len, "{what}: relu_output length");
        }
        if batch == 0 {
            grads.weight.fill(0.0);
            grads.bias.fill(0.0);
        } else {
            cache.run_backward(weight, relu_output, grad_output, grads);
        }
        self.recycle(cache);
    }
}

impl ConvCache {
    /// [`Convolution::backward`] for a batch of at least one image, its
    /// lengths checked: the backward pass of the algorithm that ran.
    fn run_backward(
        &mut self,
        weight: &[f32],
        relu_output: Option<&[f32]>,
        grad_output: &[f32],
        grads: ConvGrads<'_>,
    ) {
        let (g, batch) = (&self.geometry, self.batch);
        let ConvGrads {
            input,
            weight: grad_weight,
            bias: grad_bias,
        } = grads;
        match &mut self.buffers {
            Buffers::Direct(bufs) => direct::backward(
                g,
                batch,
                weight,
                relu_output,
                grad_output,
                input,
                grad_weight,
                grad_bias,
                bufs,
            ),
            Buffers::Im2col(bufs) => im2col_gemm::backward(
                g,
                batch,
                weight,
                relu_output,
                grad_output,
                input,
                grad_weight,
                grad_bias,
                bufs,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> ConvGeometry {
        ConvGeometry::builder(1, 2, 3)
            .input(4, 4)
            .pad(1)
            .build()
            .unwrap()
    }

    /// The weight gradient for an output gradient of ones.
    fn backward(conv: &mut Convolution, cache: ConvCache) -> Vec<f32> {
        let g = geometry();
        let (w, dy) = (vec![0.0; g.weight_len()], vec![1.0; g.out_size()]);
        let (mut dw, mut db) = (vec![0.0; g.weight_len()], vec![0.0; 2]);
        let grads = ConvGrads {
            input: None,
            weight: &mut dw,
            bias: &mut db,
        };
        conv.backward(cache, &w, None, &dy, grads);
        dw
    }

    /// A forward pass on an input whose pixels are `value`, value + 1, ...
    fn forward(conv: &mut Convolution, value: f32) -> ConvCache {
        let g = geometry();
        let x: Vec<f32> = (0..g.in_size()).map(|i| value + i as f32).collect();
        let w = vec![0.0; g.weight_len()];
        let mut y = vec![0.0; g.out_size()];
        conv.forward(&g, 1, &x, &w, &[0.0; 2], Activation::Identity, &mut y)
    }

    #[test]
    fn backward_takes_the_cache_of_the_last_forward() {
        for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Direct] {
            let mut conv = Convolution::new(algorithm);
            let cache = forward(&mut conv, 1.0);
            backward(&mut conv, cache);
        }
    }

    /// Two forward passes before their backward passes: each cache holds its
    /// own input's state, so each backward pass gives its own gradients.
    #[test]
    fn each_cache_keeps_the_state_of_its_own_forward_pass() {
        for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Direct] {
            let alone = |x: f32| {
                let mut conv = Convolution::new(algorithm);
                let cache = forward(&mut conv, x);
                backward(&mut conv, cache)
            };
            let mut conv = Convolution::new(algorithm);
            let first = forward(&mut conv, 1.0);
            let second = forward(&mut conv, -2.0);
            assert_eq!(backward(&mut conv, second), alone(-2.0), "{algorithm:?}");
            assert_eq!(backward(&mut conv, first), alone(1.0), "{algorithm:?}");
        }
    }

    /// A cache of another convolution of the same algorithm works as well:
    /// what its backward pass reads is inside it.
    #[test]
    fn another_convolutions_cache_gives_its_own_gradients() {
        let (mut a, mut b) = (Convolution::default(), Convolution::default());
        let _ = forward(&mut a, 3.0);
        let of_b = forward(&mut b, 1.0);
        let mut fresh = Convolution::default();
        let expected = {
            let cache = forward(&mut fresh, 1.0);
            backward(&mut fresh, cache)
        };
        assert_eq!(backward(&mut a, of_b), expected);
    }
}
