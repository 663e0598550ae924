//! Which layer a figure shows: the first convolution, and the layer whose
//! output holds its feature maps ([`Network::maps_of_conv`]).

use anyhow::{anyhow, Result};
use layers::Network;

/// The first `conv2d` layer: its index, and the index of the layer whose
/// output to show ([`Network::maps_of_conv`]).
pub(crate) fn first_conv(net: &Network) -> Result<(usize, usize)> {
    let i = net
        .layers()
        .iter()
        .position(|l| l.kind() == "conv2d")
        .ok_or_else(|| anyhow!("the network has no conv2d layer to visualise"))?;
    Ok((i, net.maps_of_conv(i)))
}
