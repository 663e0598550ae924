//! The ONNX messages an exported network uses, written with [`super::wire`].
//! Field numbers are those of `onnx.proto` (onnx/onnx.proto in the ONNX
//! repository); fields not listed here are left out, which protobuf reads as
//! their defaults.

use super::wire::Message;

/// `TensorProto.DataType.FLOAT`.
pub const FLOAT: i64 = 1;
/// `AttributeProto.AttributeType` values.
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

/// An attribute of a node (`AttributeProto`).
#[derive(Clone)]
pub enum Attr {
    /// One integer: `axis`, `transB`, `count_include_pad`.
    Int(&'static str, i64),
    /// Integers: `kernel_shape`, `pads`, `strides`.
    Ints(&'static str, Vec<i64>),
    /// One float: `epsilon`.
    Float(&'static str, f32),
}

impl Attr {
    fn encode(&self) -> Message {
        // AttributeProto: name = 1, f = 2, i = 3, ints = 8, type = 20.
        match self {
            Attr::Int(name, v) => Message::new().string(1, name).int(3, *v).int(20, ATTR_INT),
            Attr::Ints(name, vs) => Message::new()
                .string(1, name)
                .packed_ints(8, vs)
                .int(20, ATTR_INTS),
            Attr::Float(name, v) => Message::new()
                .string(1, name)
                .float(2, *v)
                .int(20, ATTR_FLOAT),
        }
    }
}

/// A node of the graph (`NodeProto`): `op_type` applied to the values
/// named `inputs`, giving the values named `outputs`.
pub fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[Attr],
) -> Message {
    // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5.
    let mut m = Message::new();
    for i in inputs {
        m = m.string(1, i);
    }
    for o in outputs {
        m = m.string(2, o);
    }
    m = m.string(3, name).string(4, op_type);
    for a in attrs {
        m = m.message(5, &a.encode());
    }
    m
}

/// A float tensor with its values (`TensorProto`), for the initializers.
pub fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Message {
    // TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9
    // (little-endian values, as raw_data is defined).
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Message::new()
        .packed_ints(1, &dims)
        .int(2, FLOAT)
        .string(8, name)
        .bytes(9, &raw)
}

/// One dimension of a value's shape: a number, or a name for a size given
/// at run time (the batch).
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named, free size.
    Named(&'static str),
}

/// A graph input or output (`ValueInfoProto`): a float tensor of `dims`.
pub fn value_info(name: &str, dims: &[Dim]) -> Message {
    // TensorShapeProto.Dimension: dim_value = 1, dim_param = 2.
    let mut shape = Message::new();
    for d in dims {
        let dim = match d {
            Dim::Fixed(n) => Message::new().int(1, *n as i64),
            Dim::Named(s) => Message::new().string(2, s),
        };
        shape = shape.message(1, &dim); // TensorShapeProto: dim = 1
    }
    // TypeProto.Tensor: elem_type = 1, shape = 2; TypeProto: tensor_type = 1;
    // ValueInfoProto: name = 1, type = 2.
    let tensor_type = Message::new().int(1, FLOAT).message(2, &shape);
    let ty = Message::new().message(1, &tensor_type);
    Message::new().string(1, name).message(2, &ty)
}

/// The graph (`GraphProto`).
pub struct Graph {
    /// Its name.
    pub name: String,
    /// The nodes, in an order where each one's inputs come before it.
    pub nodes: Vec<Message>,
    /// The weights.
    pub initializers: Vec<Message>,
    /// The inputs (the image batch).
    pub inputs: Vec<Message>,
    /// The outputs (the logits).
    pub outputs: Vec<Message>,
}

/// ONNX's file format version written (IR version 8, ONNX 1.10 and later).
pub const IR_VERSION: i64 = 8;
/// The operator set the nodes follow (ONNX 1.8 and later).
pub const OPSET: i64 = 13;

/// The file's bytes (`ModelProto`): the graph, the IR version, the default
/// operator set, `producer` and key-value metadata.
pub fn model(graph: &Graph, producer: &str, metadata: &[(&str, String)]) -> Vec<u8> {
    // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
    let mut g = Message::new();
    for n in &graph.nodes {
        g = g.message(1, n);
    }
    g = g.string(2, &graph.name);
    for t in &graph.initializers {
        g = g.message(5, t);
    }
    for i in &graph.inputs {
        g = g.message(11, i);
    }
    for o in &graph.outputs {
        g = g.message(12, o);
    }
    // OperatorSetIdProto: domain = 1 (empty: the default ai.onnx), version = 2.
    let opset = Message::new().string(1, "").int(2, OPSET);
    // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3,
    // graph = 7, opset_import = 8, metadata_props = 14 (StringStringEntryProto:
    // key = 1, value = 2).
    let mut m = Message::new()
        .int(1, IR_VERSION)
        .string(2, producer)
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, &g)
        .message(8, &opset);
    for (k, v) in metadata {
        m = m.message(14, &Message::new().string(1, k).string(2, v));
    }
    m.into_bytes()
}
