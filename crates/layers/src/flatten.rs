//! Flatten (the post's Reshape): N x C x H x W -> N x (C·H·W). Backward reshapes back.

use tensor::Tensor;

use crate::layer::{data, data_mut, ensure_shape};
use crate::{Layer, LayerError};

/// Keeps the batch axis and joins all the others, in row-major order.
pub struct Flatten {
    name: String,
    input_shape: Vec<usize>,
    output: Tensor,
    grad_input: Tensor,
}

impl Flatten {
    /// A flatten layer called `name`.
    pub fn new(name: &str) -> Self {
        Flatten {
            name: name.to_string(),
            input_shape: Vec::new(),
            output: Tensor::zeros(vec![0]),
            grad_input: Tensor::zeros(vec![0]),
        }
    }
}

impl Layer for Flatten {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "flatten"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        Ok(vec![input.iter().product()])
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        if input.ndim() < 1 {
            return Err(LayerError::new(
                &self.name,
                "flatten",
                "expected a batch, got a scalar",
            ));
        }
        crate::layer::expect_shape(self, input, &input.shape()[1..])?;
        self.input_shape = input.shape().to_vec();
        let n = input.shape()[0];
        ensure_shape(&mut self.output, &[n, input.len() / n.max(1)]);
        data_mut(&mut self.output).copy_from_slice(data(input));
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        if grad_output.shape() != self.output.shape() || !grad_output.is_standard_layout() {
            return Err(LayerError::new(
                &self.name,
                "flatten",
                format!(
                    "output gradient {:?} does not match the forward output {:?}",
                    grad_output.shape(),
                    self.output.shape()
                ),
            ));
        }
        ensure_shape(&mut self.grad_input, &self.input_shape);
        data_mut(&mut self.grad_input).copy_from_slice(data(grad_output));
        Ok(&self.grad_input)
    }
}
