use std::any::Any;

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
///
/// The trait holds what every layer has: computation and parameters (and
/// buffers, the state a checkpoint stores besides the parameters). What only
/// some layers have is theirs, reached by downcasting
/// ([`downcast_ref`](#method.downcast_ref)) in the code that uses it:
/// batch norm's batch statistics (`BatchNorm::batch_stats`, which the
/// data-parallel step folds in through [`Network::track_running_stats_of`](crate::Network::track_running_stats_of)),
/// a convolution's fused ReLU ([`Conv2d::relu_fused`](crate::Conv2d::relu_fused),
/// set by the [`Network`](crate::Network)). FLOP counts are computed from
/// the config and the shapes, in [`flops`](crate::flops).
pub trait Layer: Any + Send + Sync {
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
}

impl dyn Layer {
    /// The layer as its own type `T`, if it is one:
    /// `layer.downcast_ref::<Conv2d>()`.
    pub fn downcast_ref<T: Layer>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }

    /// The layer as its own type `T`, mutably, if it is one.
    pub(crate) fn downcast_mut<T: Layer>(&mut self) -> Option<&mut T> {
        (self as &mut dyn Any).downcast_mut()
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
