//! Which layer a figure shows: the first convolution, and the layer whose
//! output holds a convolution's feature maps.

use anyhow::{anyhow, Result};
use layers::Network;

/// The first `conv2d` layer: its index, and the index of the layer whose
/// output to show ([`maps_of_conv`]).
pub(crate) fn first_conv(net: &Network) -> Result<(usize, usize)> {
    let i = net
        .layers()
        .iter()
        .position(|l| l.kind() == "conv2d")
        .ok_or_else(|| anyhow!("the network has no conv2d layer to visualise"))?;
    Ok((i, maps_of_conv(net, i)))
}

/// The layer whose output shows convolution `i`'s feature maps: the ReLU
/// right after it, or after its batch norm, if there is one; else `i` itself.
pub(crate) fn maps_of_conv(net: &Network, i: usize) -> usize {
    let kinds: Vec<&str> = net.layers()[i + 1..]
        .iter()
        .take(2)
        .map(|l| l.kind())
        .collect();
    match kinds[..] {
        ["relu", ..] => i + 1,
        ["batch_norm2d", "relu"] => i + 2,
        _ => i,
    }
}
