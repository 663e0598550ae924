//! Fully connected layer: `y = x · Wᵀ + b`, with W stored out x in as in PyTorch.
//!
//! Backward, for a batch x (N x in) and dy (N x out):
//! `dW = dyᵀ · x` (out x in), `db = Σₙ dyₙ`, `dx = dy · W` (N x in).

use im2col::{dense_available, dense_backward, dense_forward, sgemm, DenseScratch, MatLayout};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tensor::{Init, Rng, Tensor};

use crate::layer::{data, data_mut, ensure_shape, expect_shape};
use crate::{Layer, LayerError, Param};

fn default_weight_init() -> Init {
    Init::HeNormal
}

fn default_bias_init() -> Init {
    Init::Zeros
}

/// Rows handled by one task: the row blocks are independent, so the split never changes a result.
const ROWS_PER_TASK: usize = 16;

/// How to build a [`Linear`] layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// The layer's name; default `<kind><k>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Input features. `None` (not written in TOML): the features of the
    /// layer before it, counted when the network is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_features: Option<usize>,
    /// Output features.
    pub out_features: usize,
    /// Initialiser of the weights (default He normal).
    #[serde(default = "default_weight_init")]
    pub init: Init,
    /// Initialiser of the biases (default zeros).
    #[serde(default = "default_bias_init")]
    pub bias_init: Init,
}

impl LinearConfig {
    /// A config with He-normal weights and zero biases; the setters below
    /// change one field each: `LinearConfig::new(784, 256).init(Init::Normal { std: 0.1 })`.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        LinearConfig {
            in_features: Some(in_features),
            ..LinearConfig::outputs(out_features)
        }
    }

    /// A layer of `out_features` outputs whose input features are those of
    /// the layer before it, counted when the network is built (what
    /// `NetworkConfig::new(..).linear(10)` means). Building it on its own,
    /// with [`LinearConfig::build`], needs [`LinearConfig::new`] instead.
    pub fn outputs(out_features: usize) -> Self {
        LinearConfig {
            name: None,
            in_features: None,
            out_features,
            init: default_weight_init(),
            bias_init: default_bias_init(),
        }
    }

    /// Names the layer (default `fc<k>`, counting linear layers).
    pub fn name(self, name: impl Into<String>) -> Self {
        LinearConfig {
            name: Some(name.into()),
            ..self
        }
    }

    /// Initialiser of the weights.
    pub fn init(self, init: Init) -> Self {
        LinearConfig { init, ..self }
    }

    /// Initialiser of the biases.
    pub fn bias_init(self, bias_init: Init) -> Self {
        LinearConfig { bias_init, ..self }
    }

    /// The output shape, `[out_features]`, for an input of shape `input`
    /// (one example), or an error naming the layer `name` and the shape.
    /// Omitted in-features take any vector.
    pub(crate) fn output_shape(
        &self,
        name: &str,
        input: &[usize],
    ) -> Result<Vec<usize>, LayerError> {
        let fits = match self.in_features {
            Some(i) => input == [i],
            None => input.len() == 1,
        };
        if !fits {
            let want = self.in_features.map_or("F".to_string(), |i| i.to_string());
            let hint = if input.len() > 1 {
                " (add a flatten layer before it)"
            } else {
                ""
            };
            return Err(LayerError::new(
                name,
                "linear",
                format!(
                    "expected input [N, {want}], got {}{hint}",
                    crate::error::batch_shape(input)
                ),
            ));
        }
        Ok(vec![self.out_features])
    }

    /// Builds the layer called `name`, drawing its weights from `rng`.
    ///
    /// # Panics
    /// If the config does not give its in-features ([`LinearConfig::outputs`]):
    /// only a network, which knows the shape before the layer, can count them.
    pub fn build(&self, name: &str, rng: &mut Rng) -> Linear {
        let i = self.in_features.unwrap_or_else(|| {
            panic!("LinearConfig::build: `{name}` has no in_features; give them (LinearConfig::new) or build the layer in a network")
        });
        let o = self.out_features;
        Linear {
            name: name.to_string(),
            config: LinearConfig {
                in_features: Some(i),
                ..self.clone()
            },
            weight: Param::new(
                format!("{name}.weight"),
                self.init.tensor(rng, &[o, i], i, o),
            ),
            bias: Param::new(
                format!("{name}.bias"),
                self.bias_init.tensor(rng, &[o], i, o),
            ),
            input: Tensor::zeros(vec![0]),
            output: Tensor::zeros(vec![0]),
            grad_input: Tensor::zeros(vec![0]),
            in_features: i,
            input_grad_needed: true,
            scratch: DenseScratch::default(),
        }
    }
}

/// A fully connected layer: weight out x in, bias out.
pub struct Linear {
    name: String,
    config: LinearConfig,
    /// out x in.
    pub weight: Param,
    /// out.
    pub bias: Param,
    input: Tensor,
    output: Tensor,
    grad_input: Tensor,
    /// Input features (the config's, or those counted when the network was built).
    in_features: usize,
    input_grad_needed: bool,
    /// Buffers of the `im2col::dense` kernels, used where they are available.
    scratch: DenseScratch,
}

impl Linear {
    /// The layer's config.
    pub fn config(&self) -> &LinearConfig {
        &self.config
    }

    /// Input features: the config's, or those counted when the network was built.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Whether `backward` computes the input gradient; the network tells its
    /// first layer `false`, which spares a matrix product.
    pub(crate) fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }
}

impl Layer for Linear {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "linear"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        self.config.output_shape(&self.name, input)
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        self.output_shape(&input.shape()[1.min(input.ndim())..])
            .map_err(|e| LayerError {
                message: e.message.replacen(
                    &crate::error::batch_shape(&input.shape()[1.min(input.ndim())..]),
                    &tensor::shape_string(input.shape()),
                    1,
                ),
                ..e
            })?;
        expect_shape(self, input, &[self.in_features])?;
        let (n, i, o) = (input.shape()[0], self.in_features, self.config.out_features);
        ensure_shape(&mut self.input, input.shape());
        self.input.assign(input);
        ensure_shape(&mut self.output, &[n, o]);
        let (w, b, x) = (
            data(&self.weight.value),
            data(&self.bias.value),
            data(&self.input),
        );
        if dense_available(i, o) {
            dense_forward(
                n,
                i,
                o,
                x,
                w,
                b,
                data_mut(&mut self.output),
                &mut self.scratch,
            );
            return Ok(&self.output);
        }
        data_mut(&mut self.output)
            .par_chunks_mut(ROWS_PER_TASK * o)
            .enumerate()
            .for_each(|(blk, y)| {
                let rows = y.len() / o;
                for row in y.chunks_exact_mut(o) {
                    row.copy_from_slice(b);
                }
                let xs = &x[blk * ROWS_PER_TASK * i..][..rows * i];
                sgemm(
                    1.0,
                    xs,
                    MatLayout::row_major(rows, i),
                    w,
                    MatLayout::row_major(o, i).t(),
                    1.0,
                    y,
                    MatLayout::row_major(rows, o),
                );
            });
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        if self.output.ndim() != 2 {
            return Err(LayerError::new(
                &self.name,
                "linear",
                "backward called before forward",
            ));
        }
        let (n, i, o) = (
            self.output.shape()[0],
            self.in_features,
            self.config.out_features,
        );
        if grad_output.shape() != [n, o] || !grad_output.is_standard_layout() {
            return Err(LayerError::new(
                &self.name,
                "linear",
                format!(
                    "output gradient {:?} does not match the forward output [{n}, {o}]",
                    grad_output.shape()
                ),
            ));
        }
        let (x, dy, w) = (
            data(&self.input),
            data(grad_output),
            data(&self.weight.value),
        );
        for (j, db) in data_mut(&mut self.bias.grad).iter_mut().enumerate() {
            *db = (0..n).map(|r| dy[r * o + j] as f64).sum::<f64>() as f32;
        }
        ensure_shape(&mut self.grad_input, &[n, i]);
        if dense_available(i, o) {
            let dx = if self.input_grad_needed {
                Some(data_mut(&mut self.grad_input))
            } else {
                self.grad_input.fill(0.0);
                None
            };
            dense_backward(
                n,
                i,
                o,
                x,
                w,
                dy,
                dx,
                data_mut(&mut self.weight.grad),
                &mut self.scratch,
            );
            return Ok(&self.grad_input);
        }
        let dx = if self.input_grad_needed {
            Some(data_mut(&mut self.grad_input))
        } else {
            self.grad_input.fill(0.0);
            None
        };
        sgemm_backward(n, i, o, x, w, dy, dx, data_mut(&mut self.weight.grad));
        Ok(&self.grad_input)
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}

/// A layer of `out_features` outputs, its in-features counted when the
/// network is built ([`LinearConfig::outputs`]): what `.linear(10)` means.
impl From<usize> for LinearConfig {
    fn from(out_features: usize) -> Self {
        LinearConfig::outputs(out_features)
    }
}

/// The weight gradient `dW = dyᵀ · x` (o x i), and the input gradient
/// `dx = dy · W` (n x i) when asked for, by `matrixmultiply` where the
/// `im2col::dense` kernels are not available.
fn sgemm_backward(
    n: usize,
    i: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
) {
    // dW rows (one per output feature) are independent: split them across tasks.
    dw.par_chunks_mut(ROWS_PER_TASK * i)
        .enumerate()
        .for_each(|(blk, dw)| {
            let rows = dw.len() / i;
            let dy_cols = MatLayout {
                rows,
                cols: n,
                row_stride: 1,
                col_stride: o,
            };
            sgemm(
                1.0,
                &dy[blk * ROWS_PER_TASK..],
                dy_cols,
                x,
                MatLayout::row_major(n, i),
                0.0,
                dw,
                MatLayout::row_major(rows, i),
            );
        });
    if let Some(dx) = dx {
        dx.par_chunks_mut(ROWS_PER_TASK * i)
            .enumerate()
            .for_each(|(blk, dx)| {
                let rows = dx.len() / i;
                let dys = &dy[blk * ROWS_PER_TASK * o..][..rows * o];
                sgemm(
                    1.0,
                    dys,
                    MatLayout::row_major(rows, o),
                    w,
                    MatLayout::row_major(o, i),
                    0.0,
                    dx,
                    MatLayout::row_major(rows, i),
                );
            });
    }
}
