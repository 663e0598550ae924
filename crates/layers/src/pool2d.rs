//! Average and max pooling layers around the `im2col::pool` kernels.

use im2col::{pool, PoolGeometry};
use serde::{Deserialize, Serialize};
use tensor::Tensor;

use crate::layer::{data, data_mut, ensure_shape, expect_shape};
use crate::{Layer, LayerError};

/// How to build a pooling layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool2dConfig {
    /// The layer's name; default `<kind><k>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Window side K.
    pub kernel: usize,
    /// Step between windows; default K (non-overlapping windows).
    #[serde(default)]
    pub stride: Option<usize>,
    /// Padding on every side.
    #[serde(default)]
    pub pad: usize,
}

impl Pool2dConfig {
    /// Non-overlapping K x K windows.
    pub fn new(kernel: usize) -> Self {
        Pool2dConfig {
            name: None,
            kernel,
            stride: None,
            pad: 0,
        }
    }

    /// Names the layer (default `pool<k>`, counting pooling layers).
    pub fn name(self, name: impl Into<String>) -> Self {
        Pool2dConfig {
            name: Some(name.into()),
            ..self
        }
    }

    /// Step between windows (default the window side).
    pub fn stride(self, stride: usize) -> Self {
        Pool2dConfig {
            stride: Some(stride),
            ..self
        }
    }

    /// Padding on every side.
    pub fn pad(self, pad: usize) -> Self {
        Pool2dConfig { pad, ..self }
    }

    /// The pooling geometry for an input of shape `input` (one example), or
    /// an error naming the layer `name` of kind `kind` and the shape.
    pub(crate) fn geometry(
        &self,
        name: &str,
        kind: &'static str,
        input: &[usize],
    ) -> Result<PoolGeometry, LayerError> {
        let err = |m: String| LayerError::new(name, kind, m);
        if input.len() != 3 {
            return Err(err(format!(
                "expected input [N, C, H, W], got {}",
                crate::error::batch_shape(input)
            )));
        }
        PoolGeometry::new(
            input[0],
            input[1],
            input[2],
            self.kernel,
            self.stride.unwrap_or(self.kernel),
            self.pad,
        )
        .map_err(|e| err(format!("input {}: {e}", crate::error::batch_shape(input))))
    }
}

/// Non-overlapping K x K windows, [`Pool2dConfig::new`]`(K)`: what
/// `NetworkConfig::new(..).max_pool2d(2)` means.
impl From<usize> for Pool2dConfig {
    fn from(kernel: usize) -> Self {
        Pool2dConfig::new(kernel)
    }
}

/// Which statistic of a window a pooling layer keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The mean: backward gives each input `dy / K²`.
    Average,
    /// The maximum: backward gives `dy` to the arg-max alone.
    Max,
}

/// A 2-D pooling layer over NCHW input.
pub struct Pool2d {
    name: String,
    kind: PoolKind,
    config: Pool2dConfig,
    input_shape: Vec<usize>,
    output: Tensor,
    argmax: Vec<u32>,
    grad_input: Tensor,
}

impl Pool2d {
    /// A pooling layer called `name`.
    pub fn new(name: &str, kind: PoolKind, config: Pool2dConfig) -> Self {
        Pool2d {
            name: name.to_string(),
            kind,
            config,
            input_shape: Vec::new(),
            output: Tensor::zeros(vec![0]),
            argmax: Vec::new(),
            grad_input: Tensor::zeros(vec![0]),
        }
    }

    fn geometry(&self, input: &[usize]) -> Result<PoolGeometry, LayerError> {
        self.config.geometry(&self.name, self.kind(), input)
    }
}

impl Layer for Pool2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        match self.kind {
            PoolKind::Average => "avg_pool2d",
            PoolKind::Max => "max_pool2d",
        }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        let g = self.geometry(input)?;
        Ok(vec![g.channels, g.out_h(), g.out_w()])
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        if input.ndim() != 4 {
            let got = tensor::shape_string(input.shape());
            return Err(LayerError::new(
                &self.name,
                self.kind(),
                format!("expected input [N, C, H, W], got {got}"),
            ));
        }
        let g = self.geometry(&input.shape()[1..])?;
        expect_shape(self, input, &[g.channels, g.in_h, g.in_w])?;
        let n = input.shape()[0];
        self.input_shape = input.shape().to_vec();
        ensure_shape(&mut self.output, &[n, g.channels, g.out_h(), g.out_w()]);
        match self.kind {
            PoolKind::Average => {
                pool::avg_pool_forward(&g, n, data(input), data_mut(&mut self.output))
            }
            PoolKind::Max => {
                self.argmax.resize(n * g.out_size(), 0);
                pool::max_pool_forward(
                    &g,
                    n,
                    data(input),
                    data_mut(&mut self.output),
                    &mut self.argmax,
                )
            }
        }
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        if self.input_shape.is_empty() {
            return Err(LayerError::new(
                &self.name,
                self.kind(),
                "backward called before forward",
            ));
        }
        if grad_output.shape() != self.output.shape() {
            return Err(LayerError::new(
                &self.name,
                self.kind(),
                format!(
                    "output gradient {:?} does not match the forward output {:?}",
                    grad_output.shape(),
                    self.output.shape()
                ),
            ));
        }
        let g = self.geometry(&self.input_shape[1..])?;
        let n = self.input_shape[0];
        ensure_shape(&mut self.grad_input, &self.input_shape);
        match self.kind {
            PoolKind::Average => {
                pool::avg_pool_backward(&g, n, data(grad_output), data_mut(&mut self.grad_input))
            }
            PoolKind::Max => pool::max_pool_backward(
                &g,
                n,
                data(grad_output),
                &self.argmax,
                data_mut(&mut self.grad_input),
            ),
        }
        Ok(&self.grad_input)
    }
}
