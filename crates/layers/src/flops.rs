//! FLOP counts of a network, from its layers and their shapes
//! (multiply-add = 2): what `Network::summary` prints and `cnn bench` divides by.
//!
//! Only the layers with a matrix product count (convolutions and linear
//! layers); elementwise layers, pooling, the loss and the optimizer do not.
//!
//! ```
//! use layers::{flops, Conv2dConfig, NetworkConfig};
//! use tensor::Rng;
//!
//! let net = NetworkConfig::new([1, 8, 8])
//!     .conv2d(Conv2dConfig::new(1, 4, 3).pad(1))
//!     .flatten()
//!     .linear(10) // 4 x 8 x 8 = 256 features in, counted when built
//!     .build(&mut Rng::seed_from_u64(1))
//!     .unwrap();
//! // conv: 4 x 8 x 8 outputs of 9 multiply-adds; linear: 256 x 10.
//! assert_eq!(flops::layer_forward_flops(&net), [2 * 4 * 64 * 9, 0, 2 * 256 * 10]);
//! assert_eq!(flops::forward_flops(&net), 4608 + 5120);
//! assert_eq!(flops::train_flops(&net), 2 * 4608 + 3 * 5120);
//! ```

use crate::{Conv2d, Linear, Network};

/// Each layer's FLOPs of one example's forward pass, in layer order.
pub fn layer_forward_flops(net: &Network) -> Vec<u64> {
    let inputs = std::iter::once(&net.config().input).chain(net.output_shapes());
    net.layers()
        .iter()
        .zip(inputs)
        .map(|(layer, input)| {
            if let Some(conv) = layer.downcast_ref::<Conv2d>() {
                conv.geometry(input).map(|g| g.forward_flops()).unwrap_or(0)
            } else if let Some(linear) = layer.downcast_ref::<Linear>() {
                2 * (linear.in_features() * linear.config().out_features) as u64
            } else {
                0
            }
        })
        .collect()
}

/// FLOPs of one example's forward pass. Backward costs about twice this.
pub fn forward_flops(net: &Network) -> u64 {
    layer_forward_flops(net).iter().sum()
}

/// FLOPs of one example's training step (forward and backward).
///
/// Per layer with a matrix product, the backward pass costs twice its
/// forward (one product of the same size for the weight gradient, one for
/// the input gradient), except the first layer, which is never asked for
/// its input gradient: `3·F − F₁`.
pub fn train_flops(net: &Network) -> u64 {
    layer_forward_flops(net)
        .iter()
        .enumerate()
        .map(|(i, &f)| if i == 0 { 2 * f } else { 3 * f })
        .sum()
}
