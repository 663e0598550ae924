//! 2-D convolution: the layer around the kernels of the `im2col` crate,
//! where the maths is written out.

use im2col::{Activation, ConvAlgorithm, ConvCache, ConvGeometry, ConvGrads, Convolution};
use serde::{Deserialize, Serialize};
use tensor::{Init, Rng, Tensor};

use crate::layer::{data, data_mut, ensure_shape, expect_shape};
use crate::{Layer, LayerError, Param};

fn default_stride() -> usize {
    1
}

fn default_weight_init() -> Init {
    Init::HeNormal
}

fn default_bias_init() -> Init {
    Init::Zeros
}

fn is_auto(algorithm: &ConvAlgorithm) -> bool {
    *algorithm == ConvAlgorithm::Auto
}

/// How to build a [`Conv2d`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2dConfig {
    /// The layer's name; default `<kind><k>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels (filters) O.
    pub out_channels: usize,
    /// Kernel side K (square kernels).
    pub kernel: usize,
    /// Zero padding on every side.
    #[serde(default)]
    pub pad: usize,
    /// Step between kernel positions.
    #[serde(default = "default_stride")]
    pub stride: usize,
    /// Initialiser of the weights (default He normal).
    #[serde(default = "default_weight_init")]
    pub init: Init,
    /// Initialiser of the biases (default zeros).
    #[serde(default = "default_bias_init")]
    pub bias_init: Init,
    /// How the convolution is computed: `"auto"` (default), `"im2col"` or
    /// `"direct"` ([`ConvAlgorithm`]). Not written out when `auto`.
    #[serde(default, skip_serializing_if = "is_auto")]
    pub algorithm: ConvAlgorithm,
}

impl Conv2dConfig {
    /// A config with default padding 0, stride 1, He-normal weights and zero
    /// biases; the setters below change one field each:
    /// `Conv2dConfig::new(1, 8, 3).pad(1).init(Init::Normal { std: 0.1 })`.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv2dConfig {
            name: None,
            in_channels,
            out_channels,
            kernel,
            pad: 0,
            stride: 1,
            init: default_weight_init(),
            bias_init: default_bias_init(),
            algorithm: ConvAlgorithm::Auto,
        }
    }

    /// Names the layer (default `conv<k>`, counting convolutions).
    pub fn name(self, name: impl Into<String>) -> Self {
        Conv2dConfig {
            name: Some(name.into()),
            ..self
        }
    }

    /// Zero padding on every side.
    pub fn pad(self, pad: usize) -> Self {
        Conv2dConfig { pad, ..self }
    }

    /// Step between kernel positions.
    pub fn stride(self, stride: usize) -> Self {
        Conv2dConfig { stride, ..self }
    }

    /// Initialiser of the weights.
    pub fn init(self, init: Init) -> Self {
        Conv2dConfig { init, ..self }
    }

    /// Initialiser of the biases.
    pub fn bias_init(self, bias_init: Init) -> Self {
        Conv2dConfig { bias_init, ..self }
    }

    /// How the convolution is computed.
    pub fn algorithm(self, algorithm: ConvAlgorithm) -> Self {
        Conv2dConfig { algorithm, ..self }
    }

    /// The convolution's geometry for an input of shape `input` (one
    /// example), or an error naming the layer `name` and the shape.
    pub(crate) fn geometry(&self, name: &str, input: &[usize]) -> Result<ConvGeometry, LayerError> {
        let err = |m: String| LayerError::new(name, "conv2d", m);
        if input.len() != 3 || input[0] != self.in_channels {
            return Err(err(format!(
                "expected input [N, {}, H, W], got {}",
                self.in_channels,
                crate::error::batch_shape(input)
            )));
        }
        ConvGeometry::builder(self.in_channels, self.out_channels, self.kernel)
            .input(input[1], input[2])
            .pad(self.pad)
            .stride(self.stride)
            .build()
            .map_err(|e| err(format!("input {}: {e}", crate::error::batch_shape(input))))
    }

    /// Builds the layer called `name`, drawing its weights from `rng`.
    pub fn build(&self, name: &str, rng: &mut Rng) -> Conv2d {
        let k = self.kernel;
        let fan_in = self.in_channels * k * k;
        let fan_out = self.out_channels * k * k;
        let weight = self.init.tensor(
            rng,
            &[self.out_channels, self.in_channels, k, k],
            fan_in,
            fan_out,
        );
        let bias = self
            .bias_init
            .tensor(rng, &[self.out_channels], fan_in, fan_out);
        Conv2d {
            name: name.to_string(),
            config: self.clone(),
            weight: Param::new(format!("{name}.weight"), weight),
            bias: Param::new(format!("{name}.bias"), bias),
            input_shape: Vec::new(),
            output: Tensor::zeros(vec![0]),
            grad_input: Tensor::zeros(vec![0]),
            conv: Convolution::new(self.algorithm),
            cache: None,
            input_grad_needed: true,
            relu_fused: false,
        }
    }
}

/// A 2-D convolution (correlation) layer: weight O x C x K x K, bias O.
pub struct Conv2d {
    name: String,
    config: Conv2dConfig,
    /// Filters, O x C x K x K.
    pub weight: Param,
    /// One bias per output channel.
    pub bias: Param,
    /// The last forward input's shape. The input itself is not kept: what
    /// the backward pass needs of it (its im2col matrix, or its padded
    /// copy) is in `cache`.
    input_shape: Vec<usize>,
    output: Tensor,
    grad_input: Tensor,
    conv: Convolution,
    /// The last forward pass's cache, until a backward pass consumes it.
    cache: Option<ConvCache>,
    input_grad_needed: bool,
    /// Whether the ReLU after this layer is applied here ([`Conv2d::relu_fused`]).
    relu_fused: bool,
}

impl Conv2d {
    fn activation(&self) -> Activation {
        if self.relu_fused {
            Activation::Relu
        } else {
            Activation::Identity
        }
    }

    /// The layer's config.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// Whether this layer applies the ReLU that follows it in its own pass
    /// (and the ReLU's mask to its output gradient), so that the
    /// [`Network`](crate::Network) skips that ReLU layer. The network fuses
    /// each ReLU that follows a convolution unless its config says
    /// `fuse_relu = false`; results are the same bits either way.
    pub fn relu_fused(&self) -> bool {
        self.relu_fused
    }

    /// Turns the fused ReLU on or off. A forward pass already run stays
    /// valid for backward: its mask y > 0 is the same with the ReLU applied or not.
    pub(crate) fn fuse_relu(&mut self, fuse: bool) {
        self.relu_fused = fuse;
    }

    /// Whether `backward` computes the input gradient; the network tells its
    /// first layer `false`, which spares the costliest product.
    pub(crate) fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }

    /// The algorithm that computes this layer for an input of shape `input`
    /// (one example, C x H x W) on this machine: `Im2col` or `Direct`; `None`
    /// if the shape does not fit the layer.
    pub fn algorithm_for(&self, input: &[usize]) -> Option<ConvAlgorithm> {
        let g = self.geometry(input).ok()?;
        Some(self.config.algorithm.resolve(&g))
    }

    pub(crate) fn geometry(&self, input: &[usize]) -> Result<ConvGeometry, LayerError> {
        self.config.geometry(&self.name, input)
    }
}

impl Layer for Conv2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "conv2d"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        let g = self.geometry(input)?;
        Ok(vec![g.out_channels, g.out_h(), g.out_w()])
    }

    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError> {
        if input.ndim() != 4 || input.shape()[1] != self.config.in_channels {
            return Err(LayerError::new(
                &self.name,
                "conv2d",
                format!(
                    "expected input [N, {}, H, W], got {}",
                    self.config.in_channels,
                    tensor::shape_string(input.shape())
                ),
            ));
        }
        let g = self.geometry(&input.shape()[1..])?;
        expect_shape(self, input, &[g.in_channels, g.in_h, g.in_w])?;
        let n = input.shape()[0];
        self.input_shape.clear();
        self.input_shape.extend_from_slice(input.shape());
        ensure_shape(&mut self.output, &[n, g.out_channels, g.out_h(), g.out_w()]);
        let activation = self.activation();
        if let Some(unused) = self.cache.take() {
            // A forward pass with no backward pass after it (evaluation):
            // its buffers serve this pass.
            self.conv.recycle(unused);
        }
        self.cache = Some(self.conv.forward(
            &g,
            n,
            data(input),
            data(&self.weight.value),
            data(&self.bias.value),
            activation,
            data_mut(&mut self.output),
        ));
        Ok(&self.output)
    }

    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError> {
        let Some(cache) = self.cache.take() else {
            return Err(LayerError::new(
                &self.name,
                "conv2d",
                "backward called without a forward pass before it",
            ));
        };
        let g = *cache.geometry();
        let shape_ok = expect_shape(self, grad_output, &[g.out_channels, g.out_h(), g.out_w()]);
        if let Err(e) = shape_ok {
            self.cache = Some(cache); // still valid for a corrected call
            return Err(LayerError {
                message: format!("output gradient: {}", e.message),
                ..e
            });
        }
        let n = cache.batch();
        if grad_output.shape()[0] != n {
            self.cache = Some(cache);
            return Err(LayerError::new(
                &self.name,
                "conv2d",
                format!(
                    "output gradient for {} images, forward had {n}",
                    grad_output.shape()[0]
                ),
            ));
        }
        let grad_input = if self.input_grad_needed {
            ensure_shape(&mut self.grad_input, &self.input_shape);
            Some(data_mut(&mut self.grad_input))
        } else {
            // The first layer's input gradient is never used: a zero tensor, computed for free.
            ensure_shape(&mut self.grad_input, &self.input_shape);
            self.grad_input.fill(0.0);
            None
        };
        // A fused ReLU's mask is the output itself.
        let relu_output = self.relu_fused.then(|| data(&self.output));
        let grads = ConvGrads {
            input: grad_input,
            weight: data_mut(&mut self.weight.grad),
            bias: data_mut(&mut self.bias.grad),
        };
        self.conv.backward(
            cache,
            data(&self.weight.value),
            relu_output,
            data(grad_output),
            grads,
        );
        Ok(&self.grad_input)
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}
