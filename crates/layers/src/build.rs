//! A network built from its config: the checks that come before any
//! weight is allocated, then each layer with its initial weights.

use tensor::Rng;

use crate::config::{LayerConfig, NetworkConfig};
use crate::{ConfigError, Conv2d, Linear, Network};

impl NetworkConfig {
    /// Builds the network: checks names and sizes (with
    /// [`NetworkConfig::param_count`], before any weight is allocated), then
    /// that each layer's input is the previous layer's output, and that the
    /// last output is a vector the loss can take. Reports the first layer
    /// that does not fit.
    pub fn build(&self, rng: &mut Rng) -> Result<Network, ConfigError> {
        self.with_inferred_sizes()?.build_resolved(rng)
    }

    /// The input shape: not empty, no zero, and a size that fits in 64 bits.
    fn check_input_shape(&self) -> Result<(), ConfigError> {
        if self
            .input
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_none()
        {
            return Err(ConfigError {
                index: None,
                kind: None,
                message: format!(
                    "input shape {:?} has more elements than fit in 64 bits",
                    self.input
                ),
            });
        }
        if self.input.is_empty() || self.input.contains(&0) {
            return Err(ConfigError {
                index: None,
                kind: None,
                message: format!(
                    "input shape {:?} is empty: give one example's shape, e.g. [20] for 20 features or [1, 28, 28] for an image",
                    self.input
                ),
            });
        }
        Ok(())
    }

    /// [`NetworkConfig::build`] of a config whose sizes are all given.
    fn build_resolved(&self, rng: &mut Rng) -> Result<Network, ConfigError> {
        let names = self.layer_names();
        self.param_count()?;
        self.check_input_shape()?;
        if self.layers.is_empty() {
            return Err(ConfigError {
                index: None,
                kind: None,
                message: "the network has no layers".into(),
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
        let mut shape = self.input.clone();
        for (i, (cfg, name)) in self.layers.iter().zip(&names).enumerate() {
            cfg.check_inits().map_err(|message| ConfigError {
                index: Some(i),
                kind: Some(cfg.kind()),
                message: format!("`{name}`: {message}"),
            })?;
            let mut layer = cfg.build(name, rng);
            shape = layer.output_shape(&shape).map_err(|e| ConfigError {
                index: Some(i),
                kind: Some(cfg.kind()),
                message: format!("`{}`: {}", e.layer, e.message),
            })?;
            if i == 0 {
                // Nobody reads the first layer's input gradient.
                if let Some(conv) = layer.downcast_mut::<Conv2d>() {
                    conv.set_input_grad_needed(false);
                } else if let Some(linear) = layer.downcast_mut::<Linear>() {
                    linear.set_input_grad_needed(false);
                }
            }
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
