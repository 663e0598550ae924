//! A sequential network: layers applied in order, gradients back in reverse.
//!
//! A ReLU right after a convolution is *fused* into it unless the config says
//! `fuse_relu = false`: the convolution applies the ReLU to its own output in
//! the same pass ([`Conv2d::relu_fused`]), and the passes skip the ReLU layer,
//! which saves two passes over the feature maps and gives the same bits. The
//! ReLU layer still exists, keeps its name and output shape, and
//! [`Network::summary`] shows it as `fused into conv1`.

use std::collections::BTreeMap;

use tensor::{Rng, Tensor};

use crate::{BatchNorm, Buffer, ConfigError, Conv2d, Layer, LayerError, NetworkConfig, Param};

/// Layers in order, built from (and remembering) a [`NetworkConfig`].
pub struct Network {
    config: NetworkConfig,
    layers: Vec<Box<dyn Layer>>,
    /// Each layer's output shape for one example.
    shapes: Vec<Vec<usize>>,
    /// `skipped[i]`: layer i is a ReLU that layer i − 1 applies itself, so
    /// the passes skip it.
    skipped: Vec<bool>,
    /// A layer that [`Network::forward_to`] ran without its fused ReLU, to be
    /// fused again before the next pass.
    unfused: Option<usize>,
}

impl Network {
    pub(crate) fn from_parts(
        config: NetworkConfig,
        mut layers: Vec<Box<dyn Layer>>,
        shapes: Vec<Vec<usize>>,
    ) -> Self {
        let mut skipped = vec![false; layers.len()];
        if config.fuse_relu {
            for i in 1..layers.len() {
                if layers[i].kind() == "relu" {
                    if let Some(conv) = layers[i - 1].downcast_mut::<Conv2d>() {
                        conv.fuse_relu(true);
                        skipped[i] = true;
                    }
                }
            }
        }
        Network {
            config,
            layers,
            shapes,
            skipped,
            unfused: None,
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

    /// The config this network was built from, every omitted linear
    /// `in_features` written in ([`NetworkConfig::with_inferred_sizes`]).
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

    /// Number of outputs (classes) of the last layer.
    pub fn outputs(&self) -> usize {
        self.shapes.last().map(|s| s.iter().product()).unwrap_or(0)
    }

    /// The layer whose output shows convolution `conv`'s feature maps, as
    /// the figures and pages draw them: the ReLU right after it, or after its
    /// batch norm, if there is one; else `conv` itself.
    pub fn maps_of_conv(&self, conv: usize) -> usize {
        let kinds: Vec<&str> = self.layers[conv + 1..]
            .iter()
            .take(2)
            .map(|l| l.kind())
            .collect();
        match kinds[..] {
            ["relu", ..] => conv + 1,
            ["batch_norm2d", "relu"] => conv + 2,
            _ => conv,
        }
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
            self.set_relu_fused(last, false);
            self.unfused = Some(last);
        }
        let mut x = input;
        for (_, layer) in self.running().take_while(|&(i, _)| i <= last) {
            x = layer.forward(x)?;
        }
        Ok(x)
    }

    /// The output for a batch in training mode (see [`Layer::forward_train`]),
    /// for a network without dropout: batch norm layers use and track the
    /// batch's statistics; every other layer runs as in [`Network::forward`].
    /// A network with dropout layers draws their masks from a random stream:
    /// [`Network::forward_train_with_noise`]; here it is an error naming the layer.
    pub fn forward_train<'a>(&'a mut self, input: &'a Tensor) -> Result<&'a Tensor, LayerError> {
        if let Some(dropout) = self.layers.iter().find(|l| l.kind() == "dropout") {
            return Err(LayerError::new(
                dropout.name(),
                "dropout",
                "a dropout layer draws its mask from a random stream: \
                 use `Network::forward_train_with_noise`",
            ));
        }
        // No layer draws from the stream, so any stream gives the same result.
        self.forward_train_with_noise(input, &mut Rng::seed_from_u64(0))
    }

    /// The output for a batch in training mode (see [`Layer::forward_train`]):
    /// dropout layers draw their masks from `noise`, in layer order, and batch
    /// norm layers use and track the batch's statistics. For a network
    /// without such layers this is [`Network::forward`], and draws nothing.
    pub fn forward_train_with_noise<'a>(
        &'a mut self,
        input: &'a Tensor,
        noise: &mut Rng,
    ) -> Result<&'a Tensor, LayerError> {
        self.check_input(input)?;
        let mut x = input;
        for (_, layer) in self.layers_to_run() {
            x = layer.forward_train(x, noise)?;
        }
        Ok(x)
    }

    /// Folds the batch statistics that `copy`, a network of the same config,
    /// measured in its last [`Network::forward_train`] into this network's
    /// running statistics, batch norm layer by batch norm layer
    /// (`BatchNorm::track_running_stats`), as if this network had run that
    /// forward pass itself. The data-parallel step calls it for each replica.
    ///
    /// # Panics
    /// If `copy` was not built from the same config.
    pub fn track_running_stats_of(&mut self, copy: &Network) {
        assert!(
            copy.config == self.config,
            "track_running_stats_of: a network of another config"
        );
        for (mine, theirs) in self.layers.iter_mut().zip(&copy.layers) {
            if let (Some(mine), Some(theirs)) = (
                mine.downcast_mut::<BatchNorm>(),
                theirs.downcast_ref::<BatchNorm>(),
            ) {
                mine.track_running_stats(theirs.batch_stats());
            }
        }
    }

    fn set_relu_fused(&mut self, i: usize, fused: bool) {
        if let Some(conv) = self.layers[i].downcast_mut::<Conv2d>() {
            conv.fuse_relu(fused);
        }
    }

    fn restore_fusion(&mut self) {
        if let Some(i) = self.unfused.take() {
            self.set_relu_fused(i, true);
        }
    }

    /// The layers a pass runs, with their index: every layer but the ReLUs
    /// fused into the layer before them. Forward passes go through them in
    /// order, backward passes in reverse (`.rev()`).
    fn running(&mut self) -> impl DoubleEndedIterator<Item = (usize, &mut dyn Layer)> {
        self.layers
            .iter_mut()
            .zip(&self.skipped)
            .enumerate()
            .filter(|(_, (_, &skipped))| !skipped)
            .map(|(i, (layer, _))| (i, layer.as_mut()))
    }

    /// The layers a pass runs, with their index, as [`Network::forward`]
    /// and [`Network::backward`] run them: every layer but the fused ReLUs.
    /// For tools that time or inspect layer by layer (`cnn bench`): running
    /// each layer's `forward` on the last one's output is `forward`.
    pub fn layers_to_run(&mut self) -> impl DoubleEndedIterator<Item = (usize, &mut dyn Layer)> {
        self.restore_fusion();
        self.running()
    }

    /// Back-propagates d(loss)/d(output) of the last forward batch through
    /// every layer, leaving each parameter's gradient in `Param::grad`.
    pub fn backward(&mut self, grad_output: &Tensor) -> Result<(), LayerError> {
        let mut g = grad_output;
        for (_, layer) in self.layers_to_run().rev() {
            g = layer.backward(g)?;
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

    /// Every parameter's and then every buffer's value with its name, each
    /// in network order: what a checkpoint stores, and what PyTorch's
    /// `state_dict` holds (`conv1.weight`, `bn1.running_mean`, ...).
    /// [`Network::state_dict`] is the same, copied and by name.
    pub fn state_values(&self) -> Vec<(&str, &Tensor)> {
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

    /// The parameters and the buffers, copied, by name: PyTorch's
    /// `state_dict` (for the trainable parameters alone, [`Network::params`]).
    pub fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.state_values()
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    /// Replaces every parameter's and buffer's value with those of a
    /// [`Network::state_dict`]. Refuses, changing nothing, when a tensor is
    /// missing, extra, of the wrong shape, or holds a value impossible for
    /// what it is (a non-finite value, a negative variance or count), naming it.
    pub fn load_state_dict(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
    ) -> Result<(), ConfigError> {
        let shapes = tensors.iter().map(|(n, t)| (n.as_str(), t.shape()));
        let problems = self.state_problems(shapes.collect(), |name| {
            impossible_value(name, &tensors[name])
        });
        first_problem(problems)?;
        for p in self.params_mut() {
            p.value.assign(&tensors[&p.name]);
        }
        for b in self.buffers_mut() {
            b.value.assign(&tensors[&b.name]);
        }
        Ok(())
    }

    /// Checks tensors of these names and shapes against the network's state
    /// dict before any of them is read: what [`Network::load_state_dict`]
    /// would refuse for a missing, extra or misshapen tensor, in its words.
    pub fn check_state_shapes<'a>(
        &self,
        shapes: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    ) -> Result<(), ConfigError> {
        first_problem(self.state_problems(shapes.into_iter().collect(), |_| None))
    }

    /// Every problem of a state dict of `given` names and shapes: in the
    /// network's order, a missing tensor, a wrong shape or what `value`
    /// says of a tensor; then, if none, each tensor the network lacks.
    fn state_problems(
        &self,
        given: BTreeMap<&str, &[usize]>,
        value: impl Fn(&str) -> Option<String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let wanted = self.state_values();
        for &(name, t) in &wanted {
            match given.get(name) {
                None => problems.push(format!("missing tensor `{name}` of shape {:?}", t.shape())),
                Some(&shape) if shape != t.shape() => problems.push(format!(
                    "tensor `{name}` has shape {shape:?}, the network needs {:?}",
                    t.shape()
                )),
                Some(_) => problems.extend(value(name)),
            }
        }
        if problems.is_empty() && given.len() != wanted.len() {
            let known: std::collections::HashSet<&str> =
                wanted.iter().map(|&(name, _)| name).collect();
            for name in given.keys().filter(|n| !known.contains(*n)) {
                problems.push(format!(
                    "unexpected tensor `{name}`: the network has no such parameter"
                ));
            }
        }
        problems
    }

    /// A table of the layers: name, kind, output shape, parameters, and
    /// where a fused ReLU runs (`fused into conv1`).
    pub fn summary(&self) -> String {
        let row = |i: &str, name: &str, kind: &str, shape: String, params: String| {
            format!("{i:<4} {name:<10} {kind:<11} {shape:<16} {params:>9}")
        };
        let mut lines = vec![
            row("#", "name", "kind", "output".into(), "params".into()),
            row(
                "",
                "input",
                "",
                format!("{:?}", self.config.input),
                "".into(),
            ),
        ];
        for (i, (layer, shape)) in self.layers.iter().zip(&self.shapes).enumerate() {
            let n: usize = layer.params().iter().map(|p| p.value.len()).sum();
            let mut line = row(
                &(i + 1).to_string(),
                layer.name(),
                layer.kind(),
                format!("{shape:?}"),
                n.to_string(),
            );
            if self.skipped[i] {
                line.push_str(&format!("  fused into {}", self.layers[i - 1].name()));
            }
            lines.push(line);
        }
        lines.push(format!(
            "total parameters {}, forward {:.2} MFLOP per example, loss {}",
            self.param_count(),
            crate::flops::forward_flops(self) as f64 / 1e6,
            self.config.loss.name()
        ));
        lines.join("\n") + "\n"
    }
}

/// The first of `problems` as an error, with how many more there are.
fn first_problem(problems: Vec<String>) -> Result<(), ConfigError> {
    let Some(first) = problems.first() else {
        return Ok(());
    };
    let message = match problems.len() {
        1 => first.clone(),
        n => format!("{first} (and {} more)", n - 1),
    };
    Err(ConfigError {
        index: None,
        kind: None,
        message,
    })
}

/// A value that tensor `name` cannot hold, for what it is: a non-finite
/// number anywhere, a negative variance (`running_var`), a count
/// (`num_batches_tracked`) that is negative or not a whole number.
pub(crate) fn impossible_value(name: &str, t: &Tensor) -> Option<String> {
    let bad = |i: usize, v: f32, what: &str| {
        Some(format!("tensor `{name}` holds {v} at index {i}; {what}"))
    };
    for (i, &v) in t.iter().enumerate() {
        if !v.is_finite() {
            return bad(i, v, "values must be finite numbers");
        }
        if name.ends_with("running_var") && v < 0.0 {
            return bad(i, v, "a variance is never negative");
        }
        if name.ends_with("num_batches_tracked") && (v < 0.0 || v.fract() != 0.0) {
            return bad(i, v, "a count is a whole number of at least 0");
        }
    }
    None
}
