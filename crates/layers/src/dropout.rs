//! Dropout (inverted): in training, each value is kept with probability
//! `1 − p` and scaled by `1 / (1 − p)`, or set to zero; in evaluation the
//! layer passes its input through unchanged.
//!
//! Forward in training, with a mask `mᵢ ∈ {0, 1}`, `P(mᵢ = 1) = 1 − p`:
//! `yᵢ = mᵢ · xᵢ / (1 − p)`, so `E[yᵢ] = xᵢ` and evaluation needs no
//! rescaling (that is the "inverted" part). Backward, with the same mask:
//! `dxᵢ = mᵢ · dyᵢ / (1 − p)`. In evaluation `y = x` and `dx = dy`.
//!
//! The mask comes from the caller's random stream ([`Layer::forward_train`]'s
//! `noise`), one uniform draw per value in row-major order: value i is kept
//! when `uᵢ ≥ p`. The layer holds no generator of its own, so a training
//! step that derives each micro-batch's stream from the run's seed, the step
//! and the micro-batch gets the same masks on any number of threads.

use serde::{Deserialize, Serialize};
use tensor::{Rng, Tensor};

use crate::layer::{data, data_mut, ensure_shape, expect_shape};
use crate::{Layer, LayerError};

/// How to build a [`Dropout`] layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutConfig {
    /// The layer's name; default `dropout<k>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Probability of dropping a value, in [0, 1).
    pub p: f32,
}

impl DropoutConfig {
    /// Drops each value with probability `p`.
    pub fn new(p: f32) -> Self {
        DropoutConfig { name: None, p }
    }
}

/// Inverted dropout, any shape.
pub struct Dropout {
    name: String,
    p: f32,
    /// `mᵢ / (1 − p)` of the last training forward: 0 or the scale.
    mask: Vec<f32>,
    /// Whether the last forward was in training mode (else backward is `dx = dy`).
    training: bool,
    output: Tensor,
    grad_input: Tensor,
}

impl Dropout {
    /// A dropout layer called `name` dropping with probability `p`.
    pub fn new(name: &str, p: f32) -> Self {
        Dropout {
            name: name.to_string(),
            p,
            mask: Vec::new(),
            training: false,
            output: Tensor::zeros(vec![0]),
            grad_input: Tensor::zeros(vec![0]),
        }
    }

    /// The input's checks: any shape, and `p` in range ([`Layer::output_shape`]).
    fn check(&self, input: &Tensor) -> Result<(), LayerError> {
        let example = self.output_shape(&input.shape()[1.min(input.ndim())..])?;
        expect_shape(self, input, &example)
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "dropout"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(LayerError::new(
                &self.name,
                "dropout",
                format!("p must be in [0, 1), got {}", self.p),
            ));
        }
        Ok(input.to_vec())
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        self.check(input)?;
        self.training = false;
        ensure_shape(&mut self.output, input.shape());
        self.output.assign(input);
        Ok(&self.output)
    }

    fn forward_train(&mut self, input: &Tensor, noise: &mut Rng) -> Result<&Tensor, LayerError> {
        self.check(input)?;
        self.training = true;
        let scale = 1.0 / (1.0 - self.p);
        let p = f64::from(self.p);
        self.mask.clear();
        self.mask.extend((0..input.len()).map(
            |_| {
                if noise.uniform_f64() >= p {
                    scale
                } else {
                    0.0
                }
            },
        ));
        ensure_shape(&mut self.output, input.shape());
        for ((y, &x), &m) in data_mut(&mut self.output)
            .iter_mut()
            .zip(data(input))
            .zip(&self.mask)
        {
            *y = x * m;
        }
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        if grad_output.shape() != self.output.shape() || !grad_output.is_standard_layout() {
            return Err(LayerError::new(
                &self.name,
                "dropout",
                format!(
                    "output gradient {:?} does not match the forward output {:?}",
                    grad_output.shape(),
                    self.output.shape()
                ),
            ));
        }
        ensure_shape(&mut self.grad_input, grad_output.shape());
        if self.training {
            for ((dx, &dy), &m) in data_mut(&mut self.grad_input)
                .iter_mut()
                .zip(data(grad_output))
                .zip(&self.mask)
            {
                *dx = dy * m;
            }
        } else {
            self.grad_input.assign(grad_output);
        }
        Ok(&self.grad_input)
    }
}
