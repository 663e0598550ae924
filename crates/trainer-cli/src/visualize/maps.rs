//! The feature maps figure: the input image beside each map of the first
//! convolution (after its ReLU), each scaled to its own range, in grey.

use anyhow::{anyhow, bail, Result};
use layers::Network;
use tensor::Tensor;

use super::conv::first_conv;
use super::figure::{
    check_figure_size, compose, default_cols, grid_size, to_own_range, Figure, Tile, GAP_GREY,
};
use crate::image_io::GreyImage;

/// The input image (bytes, white on black) beside the feature maps of the
/// first conv layer for that input (scaled as in training by `norm`).
pub(crate) fn feature_maps_figure(
    net: &mut Network,
    image: &[u8],
    norm: Option<mnist_io::Normalize>,
    scale: usize,
    gap: usize,
    cols: Option<usize>,
) -> Result<Figure> {
    let [c, h, w] = trainer::config::image_input(net.config())?;
    if c != 1 || image.len() != h * w {
        bail!(
            "the network takes {c}x{h}x{w} inputs; the image has {} pixels",
            image.len()
        );
    }
    let (conv, shown) = first_conv(net)?;
    let names: Vec<String> = net.layers().iter().map(|l| l.name().to_string()).collect();
    let input = input_tensor(image, h, w, norm)?;
    let out = net.forward_to(&input, shown).map_err(|e| anyhow!("{e}"))?;
    let &[_, maps, mh, mw] = out.shape() else {
        bail!(
            "layer {} gives shape {:?}, not feature maps",
            names[shown],
            out.shape()
        );
    };
    let data = out
        .as_slice()
        .ok_or_else(|| anyhow!("feature maps are not contiguous"))?;
    let mut tiles = vec![Tile {
        w,
        h,
        pixels: image.to_vec(),
    }];
    tiles.extend(map_tiles(data, maps, mw, mh));
    let blank = tiles[1..]
        .iter()
        .filter(|t| t.pixels.iter().all(|&p| p == 0))
        .count();
    let (width, height, png) = grey_grid(&tiles, cols, scale, gap)?;
    let what = if shown == conv {
        names[conv].clone()
    } else {
        format!("{} after {}", names[conv], names[shown])
    };
    let mut description = format!(
        "the input and the {maps} feature maps of {what} ({mw}x{mh}), each scaled to its own range"
    );
    if blank > 0 {
        description.push_str(&format!("; {blank} constant (all black)"));
    }
    Ok(Figure {
        width,
        height,
        png,
        description,
    })
}

/// The image as a `[1, 1, h, w]` input, scaled to 0..=1 and standardised by `norm`.
fn input_tensor(
    image: &[u8],
    h: usize,
    w: usize,
    norm: Option<mnist_io::Normalize>,
) -> Result<Tensor> {
    let values: Vec<f32> = image
        .iter()
        .map(|&v| {
            let x = f32::from(v) / 255.0;
            norm.map_or(x, |n| (x - n.mean) / n.std)
        })
        .collect();
    Tensor::from_shape_vec(vec![1, 1, h, w], values).map_err(|e| anyhow!("input tensor: {e}"))
}

/// The `maps` maps of `mw` x `mh` in `data` as grey tiles, each scaled to its own range.
fn map_tiles(
    data: &[f32],
    maps: usize,
    mw: usize,
    mh: usize,
) -> impl Iterator<Item = Tile<u8>> + '_ {
    (0..maps).map(move |m| Tile {
        w: mw,
        h: mh,
        pixels: to_own_range(&data[m * mh * mw..(m + 1) * mh * mw]),
    })
}

/// The tiles on a grid with mid-grey gaps, as a grey PNG: (width, height, PNG bytes).
fn grey_grid(
    tiles: &[Tile<u8>],
    cols: Option<usize>,
    scale: usize,
    gap: usize,
) -> Result<(usize, usize, Vec<u8>)> {
    let cols = cols.unwrap_or_else(|| default_cols(tiles.len()));
    let cell = |f: fn(&Tile<u8>) -> usize| tiles.iter().map(f).max().unwrap_or(1);
    let (width, height) = grid_size(tiles.len(), cols, cell(|t| t.w), cell(|t| t.h), scale, gap);
    check_figure_size(width, height)?;
    let (width, height, pixels) = compose(tiles, cols, scale, gap, GAP_GREY);
    let png = GreyImage {
        width,
        height,
        pixels,
    }
    .to_png()?;
    Ok((width, height, png))
}
