//! A sequential network: layers applied in order, gradients back in reverse.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use im2col::{ConvAlgorithm, ConvGeometry};
use tensor::{Rng, Tensor};

use crate::{Buffer, ConfigError, Layer, LayerConfig, LayerError, NetworkConfig, Param};

/// Layers in order, built from (and remembering) a [`NetworkConfig`].
pub struct Network {
    config: NetworkConfig,
    layers: Vec<Box<dyn Layer>>,
    /// Each layer's output shape for one example.
    shapes: Vec<Vec<usize>>,
    /// `skipped[i]`: layer i is a ReLU that layer i − 1 applies itself
    /// ([`Layer::fuse_relu`]), so the passes skip it.
    skipped: Vec<bool>,
    /// A layer that [`Network::forward_to`] ran without its fused ReLU, to be
    /// fused again before the next pass.
    unfused: Option<usize>,
}

impl Network {
    pub(crate) fn from_parts(
        config: NetworkConfig,
        layers: Vec<Box<dyn Layer>>,
        shapes: Vec<Vec<usize>>,
    ) -> Self {
        let mut network = Network {
            skipped: vec![false; layers.len()],
            unfused: None,
            config,
            layers,
            shapes,
        };
        network.set_fusion(true);
        network
    }

    /// Turns the fusion of ReLU layers into the layer before them on or off
    /// (on by default). Results are the same bits either way; fusion saves
    /// the ReLU's two passes over the feature maps. Each ReLU layer still
    /// exists, keeps its name and output shape, and [`Network::forward_to`]
    /// can stop before or after it.
    pub fn set_fusion(&mut self, on: bool) {
        self.unfused = None;
        for i in 1..self.layers.len() {
            let fusable = self.layers[i].kind() == "relu";
            self.skipped[i] = fusable && self.layers[i - 1].fuse_relu(on && fusable) && on;
        }
    }

    /// The names of the ReLU layers that the layer before them applies.
    pub fn fused_layers(&self) -> Vec<&str> {
        self.layers
            .iter()
            .zip(&self.skipped)
            .filter(|(_, &s)| s)
            .map(|(l, _)| l.name())
            .collect()
    }

    /// The config this network was built from.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Each layer's output shape for one example.
    pub fn output_shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// Per layer, the algorithm that computes it on this machine when it is
    /// a convolution (`Im2col` or `Direct`), `None` for other layers.
    pub fn conv_algorithms(&self) -> Vec<Option<ConvAlgorithm>> {
        let inputs = std::iter::once(&self.config.input).chain(&self.shapes);
        self.config
            .layers
            .iter()
            .zip(inputs)
            .map(|(layer, input)| match layer {
                LayerConfig::Conv2d(c) => {
                    ConvGeometry::builder(c.in_channels, c.out_channels, c.kernel)
                        .input(input[1], input[2])
                        .pad(c.pad)
                        .stride(c.stride)
                        .build()
                        .ok()
                        .map(|g| c.algorithm.resolve(&g))
                }
                _ => None,
            })
            .collect()
    }

    /// Number of outputs (classes) of the last layer.
    pub fn outputs(&self) -> usize {
        self.shapes.last().map(|s| s.iter().product()).unwrap_or(0)
    }

    fn check_input(&self, input: &Tensor) -> Result<(), LayerError> {
        let want = &self.config.input;
        if input.ndim() != want.len() + 1 || input.shape()[1..] != want[..] {
            return Err(LayerError::new(
                "input",
                "network",
                format!(
                    "expected a batch {} of examples of the input shape {:?}, got {}",
                    crate::error::batch_shape(want),
                    want,
                    tensor::shape_string(input.shape())
                ),
            ));
        }
        Ok(())
    }

    /// The output for a batch `input` of shape `[N, input...]`: N x C x H x W
    /// for an image input C x H x W, N x F for F features. Evaluation mode:
    /// dropout passes its input through, batch norm uses its running statistics.
    pub fn forward<'a>(&'a mut self, input: &'a Tensor) -> Result<&'a Tensor, LayerError> {
        let last = self.layers.len() - 1;
        self.forward_to(input, last)
    }

    /// The output of layer `last` (0-based, inclusive), e.g. `forward_to(x, 1)`
    /// for the seed network's first feature maps after ReLU.
    pub fn forward_to<'a>(
        &'a mut self,
        input: &'a Tensor,
        last: usize,
    ) -> Result<&'a Tensor, LayerError> {
        self.check_input(input)?;
        // Stopping right before a fused ReLU: its layer must store the output
        // without the ReLU this time. (A later backward pass still works: the
        // mask y > 0 is the same before and after a ReLU.)
        self.restore_fusion();
        if self.skipped.get(last + 1) == Some(&true) {
            self.layers[last].fuse_relu(false);
            self.unfused = Some(last);
        }
        let mut x = input;
        for (layer, &skip) in self.layers.iter_mut().zip(&self.skipped).take(last + 1) {
            if !skip {
                x = layer.forward(x)?;
            }
        }
        Ok(x)
    }

    /// The output for a batch in training mode (see [`Layer::forward_train`]):
    /// dropout layers draw their masks from `noise`, in layer order, and batch
    /// norm layers use and track the batch's statistics. For a network
    /// without such layers this is [`Network::forward`], and draws nothing.
    pub fn forward_train<'a>(
        &'a mut self,
        input: &'a Tensor,
        noise: &mut Rng,
    ) -> Result<&'a Tensor, LayerError> {
        self.check_input(input)?;
        self.restore_fusion();
        let mut x = input;
        for (layer, &skip) in self.layers.iter_mut().zip(&self.skipped) {
            if !skip {
                x = layer.forward_train(x, noise)?;
            }
        }
        Ok(x)
    }

    /// Folds the batch statistics that `copy`, a network of the same config,
    /// measured in its last [`Network::forward_train`] into this network's
    /// running statistics, layer by layer ([`Layer::track_running_stats`]),
    /// as if this network had run that forward pass itself.
    ///
    /// # Panics
    /// If `copy` was not built from the same config.
    pub fn track_running_stats_of(&mut self, copy: &Network) {
        assert!(
            copy.config == self.config,
            "track_running_stats_of: a network of another config"
        );
        for (mine, theirs) in self.layers.iter_mut().zip(&copy.layers) {
            let stats = theirs.batch_stats();
            if !stats.is_empty() {
                mine.track_running_stats(&stats);
            }
        }
    }

    fn restore_fusion(&mut self) {
        if let Some(i) = self.unfused.take() {
            self.layers[i].fuse_relu(true);
        }
    }

    /// Back-propagates d(loss)/d(output) of the last forward batch through
    /// every layer, leaving each parameter's gradient in `Param::grad`.
    pub fn backward(&mut self, grad_output: &Tensor) -> Result<(), LayerError> {
        self.restore_fusion();
        let mut g = grad_output;
        for (layer, &skip) in self.layers.iter_mut().zip(&self.skipped).rev() {
            if !skip {
                g = layer.backward(g)?;
            }
        }
        Ok(())
    }

    /// [`Network::forward`], adding each layer's wall-clock time to
    /// `times[i]` (one slot per layer; extra slots are left alone). For
    /// benchmarks: the timing changes nothing in the results.
    ///
    /// # Panics
    /// If `times` has fewer slots than the network has layers.
    pub fn forward_timed<'a>(
        &'a mut self,
        input: &'a Tensor,
        times: &mut [Duration],
    ) -> Result<&'a Tensor, LayerError> {
        assert!(
            times.len() >= self.layers.len(),
            "forward_timed: one slot per layer"
        );
        self.check_input(input)?;
        self.restore_fusion();
        let mut x = input;
        for ((layer, t), &skip) in self
            .layers
            .iter_mut()
            .zip(times.iter_mut())
            .zip(&self.skipped)
        {
            if skip {
                continue;
            }
            let start = Instant::now();
            x = layer.forward(x)?;
            *t += start.elapsed();
        }
        Ok(x)
    }

    /// [`Network::backward`], adding each layer's wall-clock time to
    /// `times[i]` (indexed by layer, as in [`Network::forward_timed`]).
    ///
    /// # Panics
    /// If `times` has fewer slots than the network has layers.
    pub fn backward_timed(
        &mut self,
        grad_output: &Tensor,
        times: &mut [Duration],
    ) -> Result<(), LayerError> {
        assert!(
            times.len() >= self.layers.len(),
            "backward_timed: one slot per layer"
        );
        self.restore_fusion();
        let mut g = grad_output;
        for ((layer, t), &skip) in self
            .layers
            .iter_mut()
            .zip(times.iter_mut())
            .zip(&self.skipped)
            .rev()
        {
            if skip {
                continue;
            }
            let start = Instant::now();
            g = layer.backward(g)?;
            *t += start.elapsed();
        }
        Ok(())
    }

    /// Every parameter, layer by layer, in a fixed order.
    pub fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Every parameter, mutably, in the same order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// Every buffer (running statistics), layer by layer, in a fixed order.
    pub fn buffers(&self) -> Vec<&Buffer> {
        self.layers.iter().flat_map(|l| l.buffers()).collect()
    }

    /// Every buffer, mutably, in the same order.
    pub fn buffers_mut(&mut self) -> Vec<&mut Buffer> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.buffers_mut())
            .collect()
    }

    /// Number of trainable values.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.value.len()).sum()
    }

    /// FLOPs of one example's forward pass (multiply-add = 2). Backward costs about twice this.
    pub fn forward_flops(&self) -> u64 {
        let mut shape = self.config.input.clone();
        let mut total = 0;
        for (layer, out) in self.layers.iter().zip(&self.shapes) {
            total += layer.forward_flops(&shape);
            shape = out.clone();
        }
        total
    }

    /// Each layer's share of [`Network::forward_flops`], in layer order.
    pub fn layer_forward_flops(&self) -> Vec<u64> {
        let mut shape = self.config.input.clone();
        let mut out = Vec::with_capacity(self.layers.len());
        for (layer, next) in self.layers.iter().zip(&self.shapes) {
            out.push(layer.forward_flops(&shape));
            shape = next.clone();
        }
        out
    }

    /// FLOPs of one example's training step (forward and backward, multiply-add = 2).
    ///
    /// Per layer with a matrix product, the backward pass costs twice its
    /// forward (one product of the same size for the weight gradient, one for
    /// the input gradient), except the first layer, which is never asked for
    /// its input gradient: `3·F − F₁`. Elementwise layers, pooling, the loss
    /// and the optimizer are not counted (as in [`Network::forward_flops`]).
    pub fn train_flops(&self) -> u64 {
        self.layer_forward_flops()
            .iter()
            .enumerate()
            .map(|(i, &f)| if i == 0 { 2 * f } else { 3 * f })
            .sum()
    }

    /// Every parameter's and then every buffer's value with its name, each
    /// in network order: what a checkpoint stores, and what PyTorch's
    /// `state_dict` holds (`conv1.weight`, `bn1.running_mean`, ...).
    pub fn named_values(&self) -> Vec<(&str, &Tensor)> {
        let params = self
            .params()
            .into_iter()
            .map(|p| (p.name.as_str(), &p.value));
        let buffers = self
            .buffers()
            .into_iter()
            .map(|b| (b.name.as_str(), &b.value));
        params.chain(buffers).collect()
    }

    /// Copies of [`Network::named_values`], by name.
    pub fn named_params(&self) -> BTreeMap<String, Tensor> {
        self.named_values()
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    /// Replaces every parameter's and buffer's value. Refuses, changing
    /// nothing, when a tensor is missing, extra, or of the wrong shape, naming it.
    pub fn load_named_params(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
    ) -> Result<(), ConfigError> {
        let err = |m: String| ConfigError {
            index: None,
            kind: None,
            message: m,
        };
        let mut problems = Vec::new();
        let wanted = self.named_values();
        for &(name, value) in &wanted {
            match tensors.get(name) {
                None => problems.push(format!(
                    "missing tensor `{name}` of shape {:?}",
                    value.shape()
                )),
                Some(t) if t.shape() != value.shape() => problems.push(format!(
                    "tensor `{name}` has shape {:?}, the network needs {:?}",
                    t.shape(),
                    value.shape()
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() && tensors.len() != wanted.len() {
            let known: std::collections::HashSet<&str> =
                wanted.iter().map(|&(name, _)| name).collect();
            for name in tensors.keys().filter(|n| !known.contains(n.as_str())) {
                problems.push(format!(
                    "unexpected tensor `{name}`: the network has no such parameter"
                ));
            }
        }
        if let Some(first) = problems.first() {
            return Err(err(if problems.len() > 1 {
                format!("{first} (and {} more)", problems.len() - 1)
            } else {
                first.clone()
            }));
        }
        for p in self.params_mut() {
            p.value.assign(&tensors[&p.name]);
        }
        for b in self.buffers_mut() {
            b.value.assign(&tensors[&b.name]);
        }
        Ok(())
    }

    /// A table of the layers: name, kind, output shape, parameters.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:<4} {:<10} {:<11} {:<16} {:>9}\n",
            "#", "name", "kind", "output", "params"
        );
        s.push_str(&format!(
            "{:<4} {:<10} {:<11} {:<16} {:>9}\n",
            "",
            "input",
            "",
            format!("{:?}", self.config.input),
            ""
        ));
        for (i, (layer, shape)) in self.layers.iter().zip(&self.shapes).enumerate() {
            let n: usize = layer.params().iter().map(|p| p.value.len()).sum();
            s.push_str(&format!(
                "{:<4} {:<10} {:<11} {:<16} {:>9}\n",
                i + 1,
                layer.name(),
                layer.kind(),
                format!("{shape:?}"),
                n
            ));
        }
        s.push_str(&format!(
            "total parameters {}, forward {:.2} MFLOP per example, loss {}\n",
            self.param_count(),
            self.forward_flops() as f64 / 1e6,
            self.config.loss.name()
        ));
        s
    }
}
