//! Networks as data: a serde description of each layer, checked and built.
//!
//! In TOML (the trainer's format), the seed network starts
//!
//! ```toml
//! input = [1, 28, 28]
//! loss = { kind = "softmax_cross_entropy" }
//!
//! [[layers]]
//! kind = "conv2d"
//! in_channels = 1
//! out_channels = 8
//! kernel = 3
//! pad = 1
//! init = { kind = "normal", std = 0.1 }
//!
//! [[layers]]
//! kind = "relu"
//! ```
//!
//! Layers without a `name` are named by kind and position among their kind:
//! `conv1`, `conv2`, `fc1`, `relu3`, `pool1`, ... Parameter names follow:
//! `conv1.weight`, `fc2.bias`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tensor::Rng;

use crate::batch_norm::BatchNormConfig;
use crate::conv2d::Conv2dConfig;
use crate::dropout::{Dropout, DropoutConfig};
use crate::linear::LinearConfig;
use crate::pool2d::{Pool2d, Pool2dConfig, PoolKind};
use crate::{ConfigError, Flatten, Layer, LayerError, Loss, Relu, Sigmoid};
use im2col::ConvAlgorithm;

/// A layer with no hyper-parameters but an optional name. Written through
/// [`LayerConfig::relu`], [`LayerConfig::sigmoid`], [`LayerConfig::flatten`]
/// and [`LayerConfig::name`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    /// The layer's name; default `<kind><k>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One layer of a network config, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerConfig {
    /// [`crate::Conv2d`].
    Conv2d(Conv2dConfig),
    /// [`Relu`].
    Relu(Named),
    /// [`Sigmoid`].
    Sigmoid(Named),
    /// Average pooling, [`Pool2d`].
    AvgPool2d(Pool2dConfig),
    /// Max pooling, [`Pool2d`].
    MaxPool2d(Pool2dConfig),
    /// [`crate::Linear`].
    Linear(LinearConfig),
    /// [`Flatten`] (the post's Reshape).
    Flatten(Named),
    /// [`Dropout`]: inverted dropout, in training only.
    Dropout(DropoutConfig),
    /// [`crate::BatchNorm`] over the channels of N x C x H x W maps.
    BatchNorm2d(BatchNormConfig),
    /// [`crate::BatchNorm`] over the features of N x F vectors.
    BatchNorm1d(BatchNormConfig),
}

impl LayerConfig {
    /// A [`Relu`] layer, named by position (`relu1`, ...).
    pub fn relu() -> Self {
        LayerConfig::Relu(Named::default())
    }

    /// A [`Sigmoid`] layer, named by position (`sigmoid1`, ...).
    pub fn sigmoid() -> Self {
        LayerConfig::Sigmoid(Named::default())
    }

    /// A [`Flatten`] layer, named by position (`flatten1`, ...).
    pub fn flatten() -> Self {
        LayerConfig::Flatten(Named::default())
    }

    /// The same layer called `name` instead of its default `<prefix><k>`:
    /// `LayerConfig::relu().name("act1")`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let slot = match &mut self {
            LayerConfig::Conv2d(c) => &mut c.name,
            LayerConfig::Linear(c) => &mut c.name,
            LayerConfig::AvgPool2d(c) | LayerConfig::MaxPool2d(c) => &mut c.name,
            LayerConfig::Relu(n) | LayerConfig::Sigmoid(n) | LayerConfig::Flatten(n) => &mut n.name,
            LayerConfig::Dropout(c) => &mut c.name,
            LayerConfig::BatchNorm2d(c) | LayerConfig::BatchNorm1d(c) => &mut c.name,
        };
        *slot = Some(name.into());
        self
    }

    /// The kind as written in configs.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerConfig::Conv2d(_) => "conv2d",
            LayerConfig::Relu(_) => "relu",
            LayerConfig::Sigmoid(_) => "sigmoid",
            LayerConfig::AvgPool2d(_) => "avg_pool2d",
            LayerConfig::MaxPool2d(_) => "max_pool2d",
            LayerConfig::Linear(_) => "linear",
            LayerConfig::Flatten(_) => "flatten",
            LayerConfig::Dropout(_) => "dropout",
            LayerConfig::BatchNorm2d(_) => "batch_norm2d",
            LayerConfig::BatchNorm1d(_) => "batch_norm1d",
        }
    }

    /// The explicit name, if the config gives one.
    pub fn explicit_name(&self) -> Option<&str> {
        match self {
            LayerConfig::Conv2d(c) => c.name.as_deref(),
            LayerConfig::Linear(c) => c.name.as_deref(),
            LayerConfig::AvgPool2d(c) | LayerConfig::MaxPool2d(c) => c.name.as_deref(),
            LayerConfig::Relu(n) | LayerConfig::Sigmoid(n) | LayerConfig::Flatten(n) => {
                n.name.as_deref()
            }
            LayerConfig::Dropout(c) => c.name.as_deref(),
            LayerConfig::BatchNorm2d(c) | LayerConfig::BatchNorm1d(c) => c.name.as_deref(),
        }
    }

    /// Prefix of default names: `conv`, `fc`, `pool`, `relu`, `sigmoid`,
    /// `flatten`, `dropout`, `bn` (both batch norm kinds).
    fn default_prefix(&self) -> &'static str {
        match self {
            LayerConfig::Conv2d(_) => "conv",
            LayerConfig::Linear(_) => "fc",
            LayerConfig::AvgPool2d(_) | LayerConfig::MaxPool2d(_) => "pool",
            LayerConfig::Relu(_) => "relu",
            LayerConfig::Sigmoid(_) => "sigmoid",
            LayerConfig::Flatten(_) => "flatten",
            LayerConfig::Dropout(_) => "dropout",
            LayerConfig::BatchNorm2d(_) | LayerConfig::BatchNorm1d(_) => "bn",
        }
    }

    /// The number of parameters the layer holds, from its config alone (no
    /// weight is allocated): an error when a size is zero or the count does
    /// not fit in a `usize`.
    pub fn param_count(&self) -> Result<usize, String> {
        let positive = |fields: &[(&str, usize)]| match fields.iter().find(|(_, v)| *v == 0) {
            Some((field, _)) => Err(format!("`{field}` is 0; it must be at least 1")),
            None => Ok(()),
        };
        let too_many = || "its parameter count does not fit in 64 bits".to_string();
        match self {
            LayerConfig::Conv2d(c) => {
                positive(&[
                    ("in_channels", c.in_channels),
                    ("out_channels", c.out_channels),
                    ("kernel", c.kernel),
                    ("stride", c.stride),
                ])?;
                c.out_channels
                    .checked_mul(c.in_channels)
                    .and_then(|n| n.checked_mul(c.kernel))
                    .and_then(|n| n.checked_mul(c.kernel))
                    .and_then(|n| n.checked_add(c.out_channels))
                    .ok_or_else(too_many)
            }
            LayerConfig::Linear(c) => {
                let Some(in_features) = c.in_features else {
                    return Err("`in_features` is counted when the network is built".into());
                };
                positive(&[
                    ("in_features", in_features),
                    ("out_features", c.out_features),
                ])?;
                c.out_features
                    .checked_mul(in_features)
                    .and_then(|n| n.checked_add(c.out_features))
                    .ok_or_else(too_many)
            }
            LayerConfig::AvgPool2d(c) | LayerConfig::MaxPool2d(c) => {
                positive(&[("kernel", c.kernel), ("stride", c.stride.unwrap_or(1))])?;
                Ok(0)
            }
            LayerConfig::BatchNorm2d(c) | LayerConfig::BatchNorm1d(c) => {
                positive(&[("num_features", c.num_features)])?;
                // γ and β; the running statistics are buffers, not parameters.
                c.num_features.checked_mul(2).ok_or_else(too_many)
            }
            LayerConfig::Relu(_)
            | LayerConfig::Sigmoid(_)
            | LayerConfig::Flatten(_)
            | LayerConfig::Dropout(_) => Ok(0),
        }
    }

    /// The layer's output shape for an input of shape `input` (one
    /// example), from the config alone (no weight is allocated), or an error
    /// naming the layer `name` and the shape.
    pub(crate) fn output_shape(
        &self,
        name: &str,
        input: &[usize],
    ) -> Result<Vec<usize>, LayerError> {
        match self {
            LayerConfig::Conv2d(c) => {
                let g = c.geometry(name, input)?;
                Ok(vec![g.out_channels, g.out_h(), g.out_w()])
            }
            LayerConfig::Linear(c) => c.output_shape(name, input),
            LayerConfig::AvgPool2d(c) | LayerConfig::MaxPool2d(c) => {
                let g = c.geometry(name, self.kind(), input)?;
                Ok(vec![g.channels, g.out_h(), g.out_w()])
            }
            LayerConfig::BatchNorm2d(c) | LayerConfig::BatchNorm1d(c) => {
                c.output_shape(name, self.kind(), input)
            }
            LayerConfig::Dropout(c) => Dropout::new(name, c.p).output_shape(input),
            LayerConfig::Relu(_) | LayerConfig::Sigmoid(_) => Ok(input.to_vec()),
            LayerConfig::Flatten(_) => Ok(vec![input.iter().product()]),
        }
    }

    /// Checks the layer's initialisers (`init`, `bias_init`) before any
    /// weight is drawn; the error names the key, as `init.std`.
    pub fn check_inits(&self) -> Result<(), String> {
        let (init, bias) = match self {
            LayerConfig::Conv2d(c) => (&c.init, &c.bias_init),
            LayerConfig::Linear(c) => (&c.init, &c.bias_init),
            _ => return Ok(()),
        };
        init.check().map_err(|e| format!("init.{e}"))?;
        bias.check().map_err(|e| format!("bias_init.{e}"))
    }

    /// Builds the layer, drawing initial weights from `rng`.
    pub fn build(&self, name: &str, rng: &mut Rng) -> Box<dyn Layer> {
        match self {
            LayerConfig::Conv2d(c) => Box::new(c.build(name, rng)),
            LayerConfig::Linear(c) => Box::new(c.build(name, rng)),
            LayerConfig::Relu(_) => Box::new(Relu::new(name)),
            LayerConfig::Sigmoid(_) => Box::new(Sigmoid::new(name)),
            LayerConfig::Flatten(_) => Box::new(Flatten::new(name)),
            LayerConfig::AvgPool2d(c) => Box::new(Pool2d::new(name, PoolKind::Average, c.clone())),
            LayerConfig::MaxPool2d(c) => Box::new(Pool2d::new(name, PoolKind::Max, c.clone())),
            LayerConfig::Dropout(c) => Box::new(Dropout::new(name, c.p)),
            LayerConfig::BatchNorm2d(c) => Box::new(c.build(name, true)),
            LayerConfig::BatchNorm1d(c) => Box::new(c.build(name, false)),
        }
    }
}

/// A feed-forward network: input shape, layers in order, loss.
///
/// Written in code, [`NetworkConfig::new`] and one method per layer give the
/// same value as the struct literal (and so the same TOML):
///
/// ```
/// use layers::{Conv2dConfig, LayerConfig, LinearConfig, Loss, NetworkConfig};
/// use tensor::Rng;
///
/// let config = NetworkConfig::new([1, 28, 28])
///     .conv2d(Conv2dConfig::new(1, 8, 3).pad(1))
///     .relu()
///     .avg_pool2d(2)
///     .flatten()
///     .linear(10) // 10 outputs; the 8 x 14 x 14 inputs are counted when built
///     .loss(Loss::SoftmaxCrossEntropy); // the default
/// let net = config.build(&mut Rng::seed_from_u64(1)).unwrap();
/// assert_eq!(net.output_shapes()[2], [8, 14, 14]);
/// // The network's config has them written in.
/// assert_eq!(net.config().layers[4], LayerConfig::Linear(LinearConfig::new(8 * 14 * 14, 10)));
///
/// // An MLP on 20 features takes batches of shape [N, 20].
/// let mlp = NetworkConfig::new([20])
///     .linear(LinearConfig::new(20, 32))
///     .relu()
///     .linear(LinearConfig::new(32, 3));
/// assert_eq!(mlp.build(&mut Rng::seed_from_u64(1)).unwrap().outputs(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// One example's shape, without the batch axis: C x H x W for images
    /// (`[1, 28, 28]` for MNIST), `[F]` for F features; any rank of at least 1.
    pub input: Vec<usize>,
    /// The layers, applied in order.
    pub layers: Vec<LayerConfig>,
    /// The training loss.
    #[serde(default)]
    pub loss: Loss,
    /// Whether a ReLU right after a convolution runs inside the convolution's
    /// own pass ([`crate::Conv2d::relu_fused`]): the same bits, two passes over the
    /// feature maps fewer. Default `true`; written out only when `false`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub fuse_relu: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl NetworkConfig {
    /// A network taking examples of shape `input` (e.g. `[1, 28, 28]`, or
    /// `[20]` for 20 features), with no layers yet and the default loss,
    /// softmax cross-entropy. The methods below append layers in order.
    pub fn new(input: impl Into<Vec<usize>>) -> Self {
        NetworkConfig {
            input: input.into(),
            layers: Vec::new(),
            loss: Loss::default(),
            fuse_relu: true,
        }
    }

    /// Appends `layer`, e.g. `.layer(LayerConfig::relu().name("act1"))`.
    pub fn layer(mut self, layer: LayerConfig) -> Self {
        self.layers.push(layer);
        self
    }

    /// Appends a convolution.
    pub fn conv2d(self, conv: Conv2dConfig) -> Self {
        self.layer(LayerConfig::Conv2d(conv))
    }

    /// Sets the algorithm of every convolution layer.
    pub fn set_conv_algorithm(&mut self, algorithm: ConvAlgorithm) {
        for layer in &mut self.layers {
            if let LayerConfig::Conv2d(c) = layer {
                c.algorithm = algorithm;
            }
        }
    }

    /// Appends a fully connected layer: its number of outputs
    /// (`.linear(10)`, the in-features counted when the network is built) or
    /// a [`LinearConfig`].
    pub fn linear(self, linear: impl Into<LinearConfig>) -> Self {
        self.layer(LayerConfig::Linear(linear.into()))
    }

    /// Appends average pooling: a window side K (`.avg_pool2d(2)`) or a [`Pool2dConfig`].
    pub fn avg_pool2d(self, pool: impl Into<Pool2dConfig>) -> Self {
        self.layer(LayerConfig::AvgPool2d(pool.into()))
    }

    /// Appends max pooling: a window side K (`.max_pool2d(2)`) or a [`Pool2dConfig`].
    pub fn max_pool2d(self, pool: impl Into<Pool2dConfig>) -> Self {
        self.layer(LayerConfig::MaxPool2d(pool.into()))
    }

    /// Appends a ReLU.
    pub fn relu(self) -> Self {
        self.layer(LayerConfig::relu())
    }

    /// Appends a sigmoid.
    pub fn sigmoid(self) -> Self {
        self.layer(LayerConfig::sigmoid())
    }

    /// Appends inverted dropout dropping with probability `p`.
    pub fn dropout(self, p: f32) -> Self {
        self.layer(LayerConfig::Dropout(DropoutConfig::new(p)))
    }

    /// Appends batch normalisation of `channels` feature maps (N x C x H x W).
    pub fn batch_norm2d(self, channels: usize) -> Self {
        self.layer(LayerConfig::BatchNorm2d(BatchNormConfig::new(channels)))
    }

    /// Appends batch normalisation of `features` features (N x F).
    pub fn batch_norm1d(self, features: usize) -> Self {
        self.layer(LayerConfig::BatchNorm1d(BatchNormConfig::new(features)))
    }

    /// Appends a flatten layer.
    pub fn flatten(self) -> Self {
        self.layer(LayerConfig::flatten())
    }

    /// Whether to fuse each ReLU that follows a convolution into it (default
    /// `true`; see [`NetworkConfig::fuse_relu`](NetworkConfig#structfield.fuse_relu)).
    pub fn fuse_relu(self, fuse_relu: bool) -> Self {
        NetworkConfig { fuse_relu, ..self }
    }

    /// Sets the training loss (default softmax cross-entropy).
    pub fn loss(self, loss: Loss) -> Self {
        NetworkConfig { loss, ..self }
    }

    /// Each layer's name: its own, or `<prefix><k>` counting layers of the same prefix.
    pub fn layer_names(&self) -> Vec<String> {
        let mut counts = std::collections::HashMap::new();
        self.layers
            .iter()
            .map(|l| {
                let k = counts.entry(l.default_prefix()).or_insert(0);
                *k += 1;
                l.explicit_name()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}{}", l.default_prefix(), k))
            })
            .collect()
    }

    /// The number of parameters of the network, computed from the config
    /// alone with checked arithmetic, before any weight is allocated. An
    /// error names the first layer with a zero size or a count that
    /// overflows. Check it against a limit before [`NetworkConfig::build`]
    /// when the config comes from outside.
    pub fn param_count(&self) -> Result<usize, ConfigError> {
        let resolved = self.with_inferred_sizes()?;
        let mut total = 0usize;
        for (i, layer) in resolved.layers.iter().enumerate() {
            let error = |message: String| ConfigError {
                index: Some(i),
                kind: Some(layer.kind()),
                message,
            };
            let n = layer.param_count().map_err(error)?;
            total = total.checked_add(n).ok_or_else(|| {
                error("the network's parameter count does not fit in 64 bits".into())
            })?;
        }
        Ok(total)
    }

    /// This config with every linear layer's omitted `in_features` filled in:
    /// the features of the layer before it, found by following the shapes
    /// from the input (no weight is allocated). The config itself when none
    /// is omitted.
    pub fn with_inferred_sizes(&self) -> Result<Cow<'_, NetworkConfig>, ConfigError> {
        let omitted =
            |l: &LayerConfig| matches!(l, LayerConfig::Linear(c) if c.in_features.is_none());
        if !self.layers.iter().any(omitted) {
            return Ok(Cow::Borrowed(self));
        }
        let mut resolved = self.clone();
        let mut shape = self.input.clone();
        for (i, (layer, name)) in resolved
            .layers
            .iter_mut()
            .zip(self.layer_names())
            .enumerate()
        {
            if let LayerConfig::Linear(c) = layer {
                if c.in_features.is_none() && shape.len() == 1 {
                    c.in_features = Some(shape[0]);
                }
            }
            shape = layer.output_shape(&name, &shape).map_err(|e| ConfigError {
                index: Some(i),
                kind: Some(layer.kind()),
                message: format!("`{}`: {}", e.layer, e.message),
            })?;
        }
        Ok(Cow::Owned(resolved))
    }
}
