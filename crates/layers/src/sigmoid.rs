//! Sigmoid: `y = 1 / (1 + e^(−x))`, so `dx = dy · y · (1 − y)`.

use tensor::Tensor;

use crate::layer::{data, data_mut, ensure_shape};
use crate::{Layer, LayerError};

/// The logistic function, elementwise, any shape.
pub struct Sigmoid {
    name: String,
    output: Tensor,
    grad_input: Tensor,
}

impl Sigmoid {
    /// A sigmoid layer called `name`.
    pub fn new(name: &str) -> Self {
        Sigmoid {
            name: name.to_string(),
            output: Tensor::zeros(vec![0]),
            grad_input: Tensor::zeros(vec![0]),
        }
    }
}

/// σ(x), written so that neither branch overflows.
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Layer for Sigmoid {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "sigmoid"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        crate::layer::expect_shape(self, input, &input.shape()[1.min(input.ndim())..])?;
        ensure_shape(&mut self.output, input.shape());
        for (y, &x) in data_mut(&mut self.output).iter_mut().zip(data(input)) {
            *y = sigmoid(x);
        }
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        if grad_output.shape() != self.output.shape() {
            return Err(LayerError::new(
                &self.name,
                "sigmoid",
                format!(
                    "output gradient {:?} does not match the forward output {:?}",
                    grad_output.shape(),
                    self.output.shape()
                ),
            ));
        }
        ensure_shape(&mut self.grad_input, grad_output.shape());
        for ((dx, &y), &dy) in data_mut(&mut self.grad_input)
            .iter_mut()
            .zip(data(&self.output))
            .zip(data(grad_output))
        {
            *dx = dy * y * (1.0 - y);
        }
        Ok(&self.grad_input)
    }
}
