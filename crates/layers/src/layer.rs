use tensor::{Rng, Tensor};

use crate::LayerError;

/// A trainable tensor, its gradient, and its hierarchical name (`conv1.weight`),
/// which is also its name in checkpoints and exported weight files.
#[derive(Clone, Debug)]
pub struct Param {
    /// `<layer>.<tensor>`, e.g. `fc1.bias`.
    pub name: String,
    /// The values the optimizer updates.
    pub value: Tensor,
    /// d(loss)/d(value), written by the last backward pass.
    pub grad: Tensor,
}

impl Param {
    /// A parameter with a zero gradient of the same shape.
    pub fn new(name: String, value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { name, value, grad }
    }
}

/// A tensor a layer keeps but the optimizer does not train (batch norm's
/// running statistics), with its name in checkpoints and exported files
/// (`bn1.running_mean`).
#[derive(Clone, Debug)]
pub struct Buffer {
    /// `<layer>.<tensor>`, e.g. `bn1.running_var`.
    pub name: String,
    /// The values.
    pub value: Tensor,
}

/// One layer: a forward pass, its backward pass, and its parameters.
///
/// `forward` keeps what `backward` needs (the input, an arg-max, a mask) and
/// returns a reference to an output buffer the layer owns and reuses from
/// step to step; `backward` likewise returns the input gradient from its own
/// buffer, after writing the parameters' gradients. Shapes carry the batch
/// first: NCHW for images, NF for features.
pub trait Layer: Send + Sync {
    /// The layer's name, e.g. `conv1`.
    fn name(&self) -> &str;

    /// The layer's kind as written in configs, e.g. `conv2d`.
    fn kind(&self) -> &'static str;

    /// The output shape of one example (no batch dimension) for an input of `input`,
    /// or an error naming both shapes.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError>;

    /// Computes the output for a batch, in evaluation mode: dropout passes
    /// its input through, batch norm uses its running statistics.
    fn forward(&mut self, input: &Tensor) -> Result<&Tensor, LayerError>;

    /// Computes the output for a batch in training mode: dropout draws its
    /// mask from `noise`, batch norm normalises with the batch's own
    /// statistics and folds them into its running statistics. The caller
    /// owns `noise`, so the same stream gives the same mask. Layers that
    /// train as they evaluate (all others) run [`Layer::forward`] and draw nothing.
    fn forward_train(&mut self, input: &Tensor, _noise: &mut Rng) -> Result<&Tensor, LayerError> {
        self.forward(input)
    }

    /// Given d(loss)/d(output) for the last forward batch, writes the
    /// parameters' gradients and returns d(loss)/d(input).
    fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor, LayerError>;

    /// The layer's parameters, in a fixed order (none by default).
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }

    /// The same parameters, mutably, in the same order.
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }

    /// The layer's buffers (running statistics), in a fixed order (none by default).
    fn buffers(&self) -> Vec<&Buffer> {
        Vec::new()
    }

    /// The same buffers, mutably, in the same order.
    fn buffers_mut(&mut self) -> Vec<&mut Buffer> {
        Vec::new()
    }

    /// What the last [`Layer::forward_train`] measured that feeds the running
    /// statistics (batch norm: the batch's per-channel mean and unbiased
    /// variance), for [`Layer::track_running_stats`]; none by default.
    fn batch_stats(&self) -> Vec<&Tensor> {
        Vec::new()
    }

    /// Folds `stats`, what [`Layer::batch_stats`] of this layer or of a copy
    /// of it gave, into the running statistics, exactly as `forward_train`
    /// folds its own. Does nothing by default.
    fn track_running_stats(&mut self, _stats: &[&Tensor]) {}

    /// Whether `backward` must produce the input gradient. The first layer of
    /// a network is told `false`, which spares a convolution's costliest product.
    fn set_input_grad_needed(&mut self, _needed: bool) {}

    /// Asks the layer to apply a ReLU to its own output in the same pass, and
    /// the ReLU's mask to its output gradient, so that a [`Network`](crate::Network)
    /// can skip the ReLU layer that follows it. Returns whether the layer now
    /// does so; layers that cannot fuse say `false` (the default).
    fn fuse_relu(&mut self, _fuse: bool) -> bool {
        false
    }

    /// FLOPs of one example's forward pass for this input shape (multiply-add = 2).
    fn forward_flops(&self, _input: &[usize]) -> u64 {
        0
    }
}

/// Makes `buf` a zero-initialised tensor of `shape`, reusing its allocation when the shape already matches.
pub(crate) fn ensure_shape(buf: &mut Tensor, shape: &[usize]) {
    if buf.shape() != shape {
        *buf = Tensor::zeros(shape);
    }
}

/// The layer's input shape check: `input` must be `[N, expected...]`.
pub(crate) fn expect_shape(
    layer: &dyn Layer,
    input: &Tensor,
    expected: &[usize],
) -> Result<(), LayerError> {
    let got = input.shape();
    if !input.is_standard_layout() {
        return Err(LayerError::new(
            layer.name(),
            layer.kind(),
            "input is not in standard row-major layout (use `as_standard_layout()` first)",
        ));
    }
    if got.len() != expected.len() + 1 || &got[1..] != expected {
        return Err(LayerError::new(
            layer.name(),
            layer.kind(),
            format!(
                "expected input {}, got {}",
                crate::error::batch_shape(expected),
                tensor::shape_string(got)
            ),
        ));
    }
    Ok(())
}

/// The contiguous data of a tensor the layers created or checked.
pub(crate) fn data(t: &Tensor) -> &[f32] {
    t.as_slice()
        .expect("layer tensors are contiguous, row-major")
}

/// The contiguous data of a tensor the layers created or checked, mutably.
pub(crate) fn data_mut(t: &mut Tensor) -> &mut [f32] {
    t.as_slice_mut()
        .expect("layer tensors are contiguous, row-major")
}
