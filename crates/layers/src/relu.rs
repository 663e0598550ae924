//! ReLU: `y = max(x, 0)`, so `dx = dy` where `x > 0` and 0 elsewhere.
//!
//! Where this forward runs: a ReLU right after a convolution (as in the seed
//! network) is *fused* into it by default, and then the [`Network`](crate::Network)
//! skips this layer. The same `max(x, 0)` runs in the convolution's own
//! output loop instead (`Activation::Relu` in `im2col`'s `direct::forward`
//! and `im2col_gemm::forward`), and this backward's mask `x > 0` in the
//! convolution's backward pass, which reads it off the output (`y > 0`).
//! `Network::summary` shows such a layer as `fused into conv1`; the config's
//! `fuse_relu = false` runs this file's passes instead, with the same bits.

use rayon::prelude::*;
use tensor::Tensor;

use crate::layer::{data, data_mut, ensure_shape};
use crate::{Layer, LayerError};

/// Rectified linear unit, elementwise, any shape.
pub struct Relu {
    name: String,
    output: Tensor,
    grad_input: Tensor,
}

impl Relu {
    /// A ReLU layer called `name`.
    pub fn new(name: &str) -> Self {
        Relu {
            name: name.to_string(),
            output: Tensor::zeros(vec![0]),
            grad_input: Tensor::zeros(vec![0]),
        }
    }
}

/// Elementwise work is split in blocks this long: big enough to amortise a task.
pub(crate) const BLOCK: usize = 1 << 14;

impl Layer for Relu {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "relu"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        crate::layer::expect_shape(self, input, &input.shape()[1.min(input.ndim())..])?;
        ensure_shape(&mut self.output, input.shape());
        data_mut(&mut self.output)
            .par_chunks_mut(BLOCK)
            .zip(data(input).par_chunks(BLOCK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x.max(0.0);
                }
            });
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        if grad_output.shape() != self.output.shape() {
            return Err(LayerError::new(
                &self.name,
                "relu",
                format!(
                    "output gradient {:?} does not match the forward output {:?}",
                    grad_output.shape(),
                    self.output.shape()
                ),
            ));
        }
        ensure_shape(&mut self.grad_input, grad_output.shape());
        // y > 0 exactly where x > 0, so the output serves as the mask.
        data_mut(&mut self.grad_input)
            .par_chunks_mut(BLOCK)
            .zip(data(&self.output).par_chunks(BLOCK))
            .zip(data(grad_output).par_chunks(BLOCK))
            .for_each(|((dx, y), dy)| {
                for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = if y > 0.0 { dy } else { 0.0 };
                }
            });
        Ok(&self.grad_input)
    }
}
