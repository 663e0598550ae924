//! Batch normalisation: `batch_norm2d` over the channels of N x C x H x W
//! feature maps, `batch_norm1d` over the features of N x F vectors. Both
//! are the same computation on the input seen as N x C x S (S = H·W, or 1).
//!
//! Training, for channel c, over its M = N·S values:
//!
//! ```text
//! μ = (1/M) Σ x          σ² = (1/M) Σ (x − μ)²        (the batch's statistics)
//! x̂ = (x − μ) / √(σ² + ε)      y = γ·x̂ + β           (γ: `weight`, β: `bias`)
//! ```
//!
//! Backward, with `g = dy` over the same M values (μ and σ² depend on every
//! x, which gives the two mean terms):
//!
//! ```text
//! dβ = Σ g      dγ = Σ g·x̂
//! dx = γ / √(σ² + ε) · (g − (1/M) Σ g − x̂ · (1/M) Σ g·x̂)
//! ```
//!
//! Running statistics, updated by every training forward with momentum m
//! (PyTorch's rule and names): `running_mean ← (1 − m)·running_mean + m·μ`,
//! `running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)` (the unbiased
//! variance), `num_batches_tracked += 1`. Evaluation normalises with them
//! instead of the batch's: `x̂ = (x − running_mean) / √(running_var + ε)`,
//! so an example's output does not depend on the others in its batch; its
//! backward is `dx = γ·g / √(running_var + ε)`.
//!
//! Sums run in f64 in a fixed order (batch, then position), one channel per
//! task, so the bits do not depend on the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tensor::{Rng, Tensor};

use crate::layer::{data, data_mut, ensure_shape, expect_shape};
use crate::{Buffer, Layer, LayerError, Param};

fn default_eps() -> f32 {
    1e-5
}

fn default_momentum() -> f32 {
    0.1
}

/// How to build a [`BatchNorm`] layer (`batch_norm2d` or `batch_norm1d`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormConfig {
    /// The layer's name; default `bn<k>`, counting both kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Channels (2d) or features (1d): C of N x C x H x W, F of N x F.
    pub num_features: usize,
    /// Added to the variance before the square root (default 1e-5, as PyTorch).
    #[serde(default = "default_eps")]
    pub eps: f32,
    /// Weight of the new batch in the running statistics (default 0.1, as PyTorch).
    #[serde(default = "default_momentum")]
    pub momentum: f32,
}

impl BatchNormConfig {
    /// Normalises `num_features` channels or features, with PyTorch's ε and momentum.
    pub fn new(num_features: usize) -> Self {
        BatchNormConfig {
            name: None,
            num_features,
            eps: default_eps(),
            momentum: default_momentum(),
        }
    }

    /// The output shape for an input of shape `input` (one example), the
    /// input's own, or an error naming the layer `name` of kind `kind`
    /// (`batch_norm2d` or `batch_norm1d`) and the shape.
    pub(crate) fn output_shape(
        &self,
        name: &str,
        kind: &'static str,
        input: &[usize],
    ) -> Result<Vec<usize>, LayerError> {
        let c = self.num_features;
        let fits = match kind {
            "batch_norm2d" => input.len() == 3 && input[0] == c,
            _ => input == [c],
        };
        if !fits {
            let want = if kind == "batch_norm2d" {
                format!("[N, {c}, H, W]")
            } else {
                format!("[N, {c}]")
            };
            return Err(LayerError::new(
                name,
                kind,
                format!(
                    "expected input {want}, got {}",
                    crate::error::batch_shape(input)
                ),
            ));
        }
        if !(self.eps > 0.0 && (0.0..=1.0).contains(&self.momentum)) {
            return Err(LayerError::new(
                name,
                kind,
                format!(
                    "eps must be positive and momentum in [0, 1], got eps {} and momentum {}",
                    self.eps, self.momentum
                ),
            ));
        }
        Ok(input.to_vec())
    }

    /// Builds the layer called `name`: `spatial` for `batch_norm2d`. γ
    /// starts at 1, β at 0, the running mean at 0 and variance at 1.
    pub fn build(&self, name: &str, spatial: bool) -> BatchNorm {
        let c = self.num_features;
        let buffer = |what: &str, value: Tensor| Buffer {
            name: format!("{name}.{what}"),
            value,
        };
        BatchNorm {
            name: name.to_string(),
            kind: if spatial {
                "batch_norm2d"
            } else {
                "batch_norm1d"
            },
            config: self.clone(),
            weight: Param::new(format!("{name}.weight"), Tensor::ones(vec![c])),
            bias: Param::new(format!("{name}.bias"), Tensor::zeros(vec![c])),
            running_mean: buffer("running_mean", Tensor::zeros(vec![c])),
            running_var: buffer("running_var", Tensor::ones(vec![c])),
            num_batches_tracked: buffer("num_batches_tracked", Tensor::zeros(vec![])),
            batch_mean: Tensor::zeros(vec![c]),
            batch_var: Tensor::zeros(vec![c]),
            training: false,
            inv_std: vec![0.0; c],
            x_hat: Tensor::zeros(vec![0]),
            output: Tensor::zeros(vec![0]),
            grad_input: Tensor::zeros(vec![0]),
        }
    }
}

/// Batch normalisation of channels (`batch_norm2d`) or features (`batch_norm1d`).
pub struct BatchNorm {
    name: String,
    kind: &'static str,
    config: BatchNormConfig,
    /// γ, one per channel.
    pub weight: Param,
    /// β, one per channel.
    pub bias: Param,
    running_mean: Buffer,
    running_var: Buffer,
    /// A count, stored as f32 (exact to 2²⁴); exported as PyTorch's int64.
    num_batches_tracked: Buffer,
    /// μ of the last training forward.
    batch_mean: Tensor,
    /// Unbiased σ²·M/(M − 1) of the last training forward.
    batch_var: Tensor,
    /// Whether the last forward used the batch's statistics.
    training: bool,
    /// 1/√(σ² + ε) per channel, of the statistics the last forward used.
    inv_std: Vec<f32>,
    x_hat: Tensor,
    output: Tensor,
    grad_input: Tensor,
}

impl BatchNorm {
    /// What the last [`Layer::forward_train`] measured that feeds the
    /// running statistics: the batch's per-channel mean and unbiased
    /// variance. A data-parallel step folds those of each replica into the
    /// network it trains ([`BatchNorm::track_running_stats`]).
    pub(crate) fn batch_stats(&self) -> [&Tensor; 2] {
        [&self.batch_mean, &self.batch_var]
    }

    /// Folds `[mean, var]`, what [`BatchNorm::batch_stats`] of this layer or
    /// of a copy of it gave, into the running statistics, exactly as
    /// `forward_train` folds its own.
    pub(crate) fn track_running_stats(&mut self, [mean, var]: [&Tensor; 2]) {
        fold_running_stats(
            self.config.momentum,
            [&mut self.running_mean, &mut self.running_var],
            &mut self.num_batches_tracked,
            [data(mean), data(var)],
        );
    }

    /// The layer's config.
    pub fn config(&self) -> &BatchNormConfig {
        &self.config
    }

    /// N, C, S of an input of this layer's shape.
    fn dims(&self, input: &Tensor) -> Result<(usize, usize, usize), LayerError> {
        let shape = self.output_shape(&input.shape()[1.min(input.ndim())..])?;
        expect_shape(self, input, &shape)?;
        Ok((
            input.shape()[0],
            self.config.num_features,
            shape[1..].iter().product(),
        ))
    }

    /// y = γ·x̂ + β with x̂ = (x − mean)·inv_std, channel by channel; the
    /// mean is the batch's in training, the running one otherwise.
    fn normalise(&mut self, input: &Tensor, c: usize, s: usize) {
        ensure_shape(&mut self.x_hat, input.shape());
        ensure_shape(&mut self.output, input.shape());
        let mean = if self.training {
            data(&self.batch_mean)
        } else {
            data(&self.running_mean.value)
        };
        let (gamma, beta, inv_std) = (
            data(&self.weight.value),
            data(&self.bias.value),
            &self.inv_std,
        );
        data_mut(&mut self.x_hat)
            .par_chunks_mut(c * s)
            .zip(data_mut(&mut self.output).par_chunks_mut(c * s))
            .zip(data(input).par_chunks(c * s))
            .for_each(|((xh, y), x)| {
                for ch in 0..c {
                    let r = ch * s..(ch + 1) * s;
                    for ((xh, y), &x) in xh[r.clone()].iter_mut().zip(&mut y[r.clone()]).zip(&x[r])
                    {
                        *xh = (x - mean[ch]) * inv_std[ch];
                        *y = gamma[ch] * *xh + beta[ch];
                    }
                }
            });
    }
}

impl Layer for BatchNorm {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        self.kind
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        self.config.output_shape(&self.name, self.kind, input)
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        let (_, c, s) = self.dims(input)?;
        self.training = false;
        let eps = f64::from(self.config.eps);
        for (inv, &var) in self.inv_std.iter_mut().zip(data(&self.running_var.value)) {
            *inv = (1.0 / (f64::from(var) + eps).sqrt()) as f32;
        }
        self.normalise(input, c, s);
        Ok(&self.output)
    }

    fn forward_train(&mut self, input: &Tensor, _noise: &mut Rng) -> Result<&Tensor, LayerError> {
        let (n, c, s) = self.dims(input)?;
        let m = n * s;
        if m < 2 {
            return Err(LayerError::new(
                &self.name,
                self.kind,
                format!("training needs at least 2 values per channel to take a variance, got {m} (a batch of {n})"),
            ));
        }
        let x = data(input);
        // Per channel: (μ, biased σ²), two passes in f64.
        let stats: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let values = || (0..n).flat_map(move |i| &x[(i * c + ch) * s..][..s]);
                let mean = values().map(|&v| f64::from(v)).sum::<f64>() / m as f64;
                let var = values()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
                    / m as f64;
                (mean, var)
            })
            .collect();
        let eps = f64::from(self.config.eps);
        let unbiased = m as f64 / (m - 1) as f64;
        for (ch, &(mean, var)) in stats.iter().enumerate() {
            self.inv_std[ch] = (1.0 / (var + eps).sqrt()) as f32;
            data_mut(&mut self.batch_mean)[ch] = mean as f32;
            data_mut(&mut self.batch_var)[ch] = (var * unbiased) as f32;
        }
        self.training = true;
        self.normalise(input, c, s);
        fold_running_stats(
            self.config.momentum,
            [&mut self.running_mean, &mut self.running_var],
            &mut self.num_batches_tracked,
            [data(&self.batch_mean), data(&self.batch_var)],
        );
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        if grad_output.shape() != self.output.shape()
            || !grad_output.is_standard_layout()
            || self.output.ndim() < 2
        {
            return Err(LayerError::new(
                &self.name,
                self.kind,
                format!(
                    "output gradient {:?} does not match the forward output {:?}",
                    grad_output.shape(),
                    self.output.shape()
                ),
            ));
        }
        let shape = self.output.shape();
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        let (dy, x_hat) = (data(grad_output), data(&self.x_hat));
        // Per channel: (Σ g, Σ g·x̂).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut sum, mut dot) = (0f64, 0f64);
                for i in 0..n {
                    let at = (i * c + ch) * s;
                    for (&g, &xh) in dy[at..at + s].iter().zip(&x_hat[at..at + s]) {
                        sum += f64::from(g);
                        dot += f64::from(g) * f64::from(xh);
                    }
                }
                (sum, dot)
            })
            .collect();
        for (ch, &(sum, dot)) in sums.iter().enumerate() {
            data_mut(&mut self.bias.grad)[ch] = sum as f32;
            data_mut(&mut self.weight.grad)[ch] = dot as f32;
        }
        // In training, the mean terms of dx; in evaluation the statistics are constants.
        let m = (n * s) as f64;
        let means: Vec<(f32, f32)> = sums
            .iter()
            .map(|&(sum, dot)| {
                if self.training {
                    ((sum / m) as f32, (dot / m) as f32)
                } else {
                    (0.0, 0.0)
                }
            })
            .collect();
        ensure_shape(&mut self.grad_input, grad_output.shape());
        let (gamma, inv_std) = (data(&self.weight.value), &self.inv_std);
        data_mut(&mut self.grad_input)
            .par_chunks_mut(c * s)
            .zip(dy.par_chunks(c * s))
            .zip(x_hat.par_chunks(c * s))
            .for_each(|((dx, dy), xh)| {
                for ch in 0..c {
                    let r = ch * s..(ch + 1) * s;
                    let (scale, (mean_g, mean_gx)) = (gamma[ch] * inv_std[ch], means[ch]);
                    for ((dx, &g), &xh) in dx[r.clone()].iter_mut().zip(&dy[r.clone()]).zip(&xh[r])
                    {
                        *dx = scale * (g - mean_g - xh * mean_gx);
                    }
                }
            });
        Ok(&self.grad_input)
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn buffers(&self) -> Vec<&Buffer> {
        vec![
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ]
    }

    fn buffers_mut(&mut self) -> Vec<&mut Buffer> {
        vec![
            &mut self.running_mean,
            &mut self.running_var,
            &mut self.num_batches_tracked,
        ]
    }
}

/// `running = (1 − m)·running + m·batch` for the mean and the variance, and
/// one more batch counted.
fn fold_running_stats(m: f32, running: [&mut Buffer; 2], count: &mut Buffer, batch: [&[f32]; 2]) {
    for (running, batch) in running.into_iter().zip(batch) {
        for (r, &b) in data_mut(&mut running.value).iter_mut().zip(batch) {
            *r = (1.0 - m) * *r + m * b;
        }
    }
    data_mut(&mut count.value)[0] += 1.0;
}
