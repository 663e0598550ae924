//! A network config and its weights as ONNX nodes, one config layer at a
//! time; each node reads the value the one before it wrote.
//!
//! | layer | ONNX | notes |
//! |---|---|---|
//! | input scaling | `Sub`, `Div` | only when the config standardises or centres inputs |
//! | `conv2d` | `Conv` | weights `[O, C, K, K]`, pads and strides as configured |
//! | `relu`, `sigmoid` | `Relu`, `Sigmoid` | |
//! | `avg_pool2d` | `AveragePool` | `count_include_pad = 1`: padded zeros count, as here |
//! | `max_pool2d` | `MaxPool` | |
//! | `flatten` | `Flatten` | `axis = 1`: C x H x W in row-major order |
//! | `linear` | `Gemm` | `transB = 1`: the weight is `[out, in]`, as here and in PyTorch |
//! | `batch_norm2d`, `batch_norm1d` | `BatchNormalization` | the running statistics |
//! | `dropout` | nothing | inference keeps every unit |

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use layers::{LayerConfig, NetworkConfig};
use mnist_io::Normalize;
use tensor::Tensor;

use super::schema::{node, tensor, Attr};
use super::wire::Message;

/// Name of the graph's input: images N x C x H x W, floats in [0, 1].
pub const INPUT: &str = "images";
/// Name of the graph's output: N x classes logits.
pub const OUTPUT: &str = "logits";

/// Nodes and initializers under construction; `last` names the value the
/// next node reads.
struct Builder<'a> {
    state: &'a BTreeMap<String, Tensor>,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    last: String,
}

impl Builder<'_> {
    /// Adds `name` from the weights as an initializer; returns its name.
    fn weight(&mut self, name: &str) -> Result<String> {
        let t = self
            .state
            .get(name)
            .ok_or_else(|| anyhow!("the weights have no tensor `{name}`"))?;
        let values: Vec<f32> = t.iter().copied().collect();
        self.initializers.push(tensor(name, t.shape(), &values));
        Ok(name.to_string())
    }

    /// Adds a one-value constant as an initializer.
    fn scalar(&mut self, name: &str, v: f32) -> String {
        self.initializers.push(tensor(name, &[], &[v]));
        name.to_string()
    }

    /// Adds a node reading `last` and `extra` inputs, writing `out`.
    fn push(&mut self, op: &str, name: &str, extra: &[String], out: &str, attrs: &[Attr]) {
        let mut inputs = vec![self.last.as_str()];
        inputs.extend(extra.iter().map(String::as_str));
        self.nodes.push(node(op, name, &inputs, &[out], attrs));
        self.last = out.to_string();
    }
}

/// The nodes and initializers of `network` with weights `state` (parameters
/// and running statistics by name, as [`layers::Network::state_dict`] gives
/// them); `norm` is what the inputs go through first.
pub fn nodes(
    network: &NetworkConfig,
    state: &BTreeMap<String, Tensor>,
    norm: Option<Normalize>,
) -> Result<(Vec<Message>, Vec<Message>)> {
    let mut b = Builder {
        state,
        nodes: Vec::new(),
        initializers: Vec::new(),
        last: INPUT.to_string(),
    };
    if let Some(Normalize { mean, std }) = norm {
        // (x − mean) / std, as the trainer's batches compute it.
        let m = b.scalar("input_mean", mean);
        let s = b.scalar("input_std", std);
        b.push("Sub", "input_sub_mean", &[m], "input_centred", &[]);
        b.push("Div", "input_div_std", &[s], "input_standardised", &[]);
    }
    let names = network.layer_names();
    // The last layer that has a node (dropout has none) writes the graph's output.
    let last_writer = network
        .layers
        .iter()
        .rposition(|l| !matches!(l, LayerConfig::Dropout(_)));
    for (i, (layer, name)) in network.layers.iter().zip(&names).enumerate() {
        let out = if last_writer == Some(i) {
            OUTPUT.to_string()
        } else {
            format!("{name}_out")
        };
        layer_node(&mut b, layer, name, &out)?;
    }
    if last_writer.is_none() {
        // A network of dropouts alone: the output is the (scaled) input.
        b.push("Identity", "output", &[], OUTPUT, &[]);
    }
    Ok((b.nodes, b.initializers))
}

/// The square window attributes of a convolution or pooling layer.
fn window(kernel: usize, stride: usize, pad: usize) -> [Attr; 3] {
    let (k, s, p) = (kernel as i64, stride as i64, pad as i64);
    [
        Attr::Ints("kernel_shape", vec![k, k]),
        Attr::Ints("strides", vec![s, s]),
        Attr::Ints("pads", vec![p, p, p, p]),
    ]
}

/// Adds the node (none for dropout) of one layer called `name`, writing `out`.
fn layer_node(b: &mut Builder, layer: &LayerConfig, name: &str, out: &str) -> Result<()> {
    match layer {
        LayerConfig::Conv2d(c) => {
            let w = b.weight(&format!("{name}.weight"))?;
            let bias = b.weight(&format!("{name}.bias"))?;
            b.push(
                "Conv",
                name,
                &[w, bias],
                out,
                &window(c.kernel, c.stride, c.pad),
            );
        }
        LayerConfig::Linear(_) => {
            let w = b.weight(&format!("{name}.weight"))?;
            let bias = b.weight(&format!("{name}.bias"))?;
            b.push("Gemm", name, &[w, bias], out, &[Attr::Int("transB", 1)]);
        }
        LayerConfig::AvgPool2d(p) => {
            let mut attrs = window(p.kernel, p.stride.unwrap_or(p.kernel), p.pad).to_vec();
            attrs.push(Attr::Int("count_include_pad", 1));
            b.push("AveragePool", name, &[], out, &attrs);
        }
        LayerConfig::MaxPool2d(p) => {
            let attrs = window(p.kernel, p.stride.unwrap_or(p.kernel), p.pad);
            b.push("MaxPool", name, &[], out, &attrs);
        }
        LayerConfig::BatchNorm2d(c) | LayerConfig::BatchNorm1d(c) => {
            let inputs = ["weight", "bias", "running_mean", "running_var"]
                .iter()
                .map(|t| b.weight(&format!("{name}.{t}")))
                .collect::<Result<Vec<_>>>()?;
            let eps = [Attr::Float("epsilon", c.eps)];
            b.push("BatchNormalization", name, &inputs, out, &eps);
        }
        LayerConfig::Relu(_) => b.push("Relu", name, &[], out, &[]),
        LayerConfig::Sigmoid(_) => b.push("Sigmoid", name, &[], out, &[]),
        LayerConfig::Flatten(_) => b.push("Flatten", name, &[], out, &[Attr::Int("axis", 1)]),
        LayerConfig::Dropout(_) => {}
    }
    Ok(())
}
