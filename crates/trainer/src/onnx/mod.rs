//! `cnn export --format onnx`: a checkpoint's network as an [ONNX] file,
//! the graph and the weights together, which ONNX Runtime, OpenCV's DNN
//! module, TensorRT and ONNX Runtime Web run without this project's code.
//!
//! The graph's input `images` is a batch N x C x H x W of floats in [0, 1]
//! (pixel / 255); the config's input scaling, if any, is the graph's first
//! two nodes. Its output `logits` is N x classes, before any softmax. The
//! layers map one to one onto ONNX operators ([`graph`] lists them);
//! dropout, which keeps every unit at inference, is left out and batch
//! norm uses its running statistics. Metadata: the config as TOML
//! (`cnn.config`), the data set name (`cnn.dataset`) when known.
//!
//! The file is written by a small encoder of the protobuf wire format
//! ([`wire`]) and the few ONNX messages it needs ([`schema`], field numbers
//! from `onnx.proto`), not by a protobuf library: the messages needed are
//! a handful, the code generated from `onnx.proto` by `prost` would need
//! `protoc` at build time or thousands of checked-in lines, and no
//! maintained crate writes ONNX. What it writes is checked by ONNX's own
//! `onnx.checker.check_model` and run in ONNX Runtime by the tests.
//!
//! [ONNX]: https://onnx.ai/

pub mod graph;
pub mod schema;
pub mod wire;

use std::path::Path;

use anyhow::{bail, Context, Result};
use layers::Network;
use mnist_io::Normalize;

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::safetensors_io::{META_CONFIG, META_DATASET};
use schema::{value_info, Dim, Graph};

/// Whether `path` names an ONNX file (by its extension).
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// The bytes of an ONNX model of `net` (built from `config`), whose inputs
/// go through `norm` first; `dataset` is recorded in the metadata.
pub fn to_bytes(
    config: &TrainConfig,
    net: &Network,
    norm: Option<Normalize>,
    dataset: Option<&str>,
) -> Result<Vec<u8>> {
    let state = net.state_dict();
    let (nodes, initializers) = graph::nodes(&config.network, &state, norm)?;
    let mut input = vec![Dim::Named("N")];
    input.extend(config.network.input.iter().map(|&d| Dim::Fixed(d)));
    let output = [Dim::Named("N"), Dim::Fixed(net.outputs())];
    let graph = Graph {
        name: config.name.clone(),
        nodes,
        initializers,
        inputs: vec![value_info(graph::INPUT, &input)],
        outputs: vec![value_info(graph::OUTPUT, &output)],
    };
    let mut metadata = vec![(META_CONFIG, config.to_toml())];
    if let Some(d) = dataset {
        metadata.push((META_DATASET, d.to_string()));
    }
    Ok(schema::model(&graph, "cnn", &metadata))
}

/// `cnn export --format onnx`: writes the network of the checkpoint `model`
/// to `out` (atomically; an existing file only as
/// [`crate::files::check_output`] allows). `data`, the training set's
/// folder, is read only for a checkpoint that standardises its inputs
/// without having recorded the training set's mean and std. Returns the
/// file's size in bytes.
pub fn export(model: &Path, out: &Path, data: Option<&Path>, force: bool) -> Result<usize> {
    if !is_onnx(out) {
        bail!("{}: give a file name ending in .onnx", out.display());
    }
    crate::files::check_output(out, &[model], force)?;
    let ckpt = Checkpoint::load(model)?;
    let net = ckpt
        .network()
        .with_context(|| format!("{}", model.display()))?;
    let norm = crate::data::input_norm(&ckpt.config, data)?;
    let bytes = to_bytes(&ckpt.config, &net, norm, ckpt.body.dataset.as_deref())?;
    crate::files::write_atomic(out, &bytes)?;
    Ok(bytes.len())
}
