use std::fmt;

/// A layer refused its input, or was used out of order.
///
/// The message names the layer and, for shape errors, the expected and the
/// actual shape, e.g. ``conv2 (conv2d): expected input [N, 8, H, W], got [100, 1, 28, 28]``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerError {
    /// The layer's name (`conv1`), or the network position if it has none yet.
    pub layer: String,
    /// The layer's kind (`conv2d`).
    pub kind: &'static str,
    /// What was wrong.
    pub message: String,
}

impl LayerError {
    /// An error of the layer `name` of `kind`.
    pub fn new(layer: impl Into<String>, kind: &'static str, message: impl Into<String>) -> Self {
        LayerError {
            layer: layer.into(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.layer, self.kind, self.message)
    }
}

impl std::error::Error for LayerError {}

/// A network config that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Position of the offending layer in the config (0-based), if one is at
    /// fault; the message numbers it from 1, as `Network::summary` does.
    pub index: Option<usize>,
    /// Its kind, if one is at fault.
    pub kind: Option<&'static str>,
    /// What was wrong, with both shapes for a mismatch.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, self.kind) {
            (Some(i), Some(k)) => write!(f, "layer {} ({k}): {}", i + 1, self.message),
            (Some(i), None) => write!(f, "layer {}: {}", i + 1, self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Formats a per-image shape with a leading batch placeholder: `[N, 8, 14, 14]`.
pub(crate) fn batch_shape(shape: &[usize]) -> String {
    let mut s = String::from("[N");
    for d in shape {
        s.push_str(&format!(", {d}"));
    }
    s.push(']');
    s
}
