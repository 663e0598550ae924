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

use serde::{Deserialize, Serialize};
use tensor::Rng;

use crate::conv2d::Conv2dConfig;
use crate::linear::LinearConfig;
use crate::pool2d::{Pool2d, Pool2dConfig, PoolKind};
use crate::{ConfigError, Flatten, Layer, Loss, Network, Relu, Sigmoid};

/// A layer with no hyper-parameters but an optional name.
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
}

impl LayerConfig {
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
        }
    }

    /// Prefix of default names: `conv`, `fc`, `pool`, `relu`, `sigmoid`, `flatten`.
    fn default_prefix(&self) -> &'static str {
        match self {
            LayerConfig::Conv2d(_) => "conv",
            LayerConfig::Linear(_) => "fc",
            LayerConfig::AvgPool2d(_) | LayerConfig::MaxPool2d(_) => "pool",
            LayerConfig::Relu(_) => "relu",
            LayerConfig::Sigmoid(_) => "sigmoid",
            LayerConfig::Flatten(_) => "flatten",
        }
    }

    /// Builds the layer, drawing initial weights from `rng`.
    pub fn build(&self, name: &str, rng: &mut Rng) -> Box<dyn Layer> {
        match self {
            LayerConfig::Conv2d(c) => Box::new(c.init(name, rng)),
            LayerConfig::Linear(c) => Box::new(c.init(name, rng)),
            LayerConfig::Relu(_) => Box::new(Relu::new(name)),
            LayerConfig::Sigmoid(_) => Box::new(Sigmoid::new(name)),
            LayerConfig::Flatten(_) => Box::new(Flatten::new(name)),
            LayerConfig::AvgPool2d(c) => Box::new(Pool2d::new(name, PoolKind::Average, c.clone())),
            LayerConfig::MaxPool2d(c) => Box::new(Pool2d::new(name, PoolKind::Max, c.clone())),
        }
    }
}

/// A feed-forward network: input shape, layers in order, loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// One example's shape, C x H x W (`[1, 28, 28]` for MNIST).
    pub input: [usize; 3],
    /// The layers, applied in order.
    pub layers: Vec<LayerConfig>,
    /// The training loss.
    #[serde(default)]
    pub loss: Loss,
}

impl NetworkConfig {
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

    /// Builds the network: checks names, then that each layer's input is the
    /// previous layer's output, and that the last output is a vector the loss
    /// can take. Reports the first layer that does not fit.
    pub fn build(&self, rng: &mut Rng) -> Result<Network, ConfigError> {
        let names = self.layer_names();
        if self.layers.is_empty() {
            return Err(ConfigError {
                index: None,
                kind: None,
                message: "the network has no layers".into(),
            });
        }
        if self.input.contains(&0) {
            return Err(ConfigError {
                index: None,
                kind: None,
                message: format!("input shape {:?} has an empty dimension", self.input),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || name.contains('.') || !seen.insert(name.as_str()) {
                return Err(ConfigError {
                    index: Some(i),
                    kind: Some(self.layers[i].kind()),
                    message: format!(
                        "layer name `{name}` is empty, contains '.', or is used twice"
                    ),
                });
            }
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut shape = self.input.to_vec();
        for (i, (cfg, name)) in self.layers.iter().zip(&names).enumerate() {
            let mut layer = cfg.build(name, rng);
            shape = layer.output_shape(&shape).map_err(|e| ConfigError {
                index: Some(i),
                kind: Some(cfg.kind()),
                message: format!("`{}`: {}", e.layer, e.message),
            })?;
            layer.set_input_grad_needed(i > 0);
            layers.push(layer);
            shapes.push(shape.clone());
        }
        if shape.len() != 1 {
            return Err(ConfigError {
                index: Some(self.layers.len() - 1),
                kind: Some(self.layers.last().map(LayerConfig::kind).unwrap_or("?")),
                message: format!("the network ends with shape {shape:?}; the loss needs a vector (add flatten and linear layers)"),
            });
        }
        Ok(Network::from_parts(self.clone(), layers, shapes))
    }
}
