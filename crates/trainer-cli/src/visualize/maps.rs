//! The feature maps figure: the input image beside each map of the first
//! convolution (after its ReLU), each scaled to its own range, in grey.

use anyhow::{anyhow, bail, Result};
use layers::Network;
use tensor::Tensor;

use super::conv::first_conv;
use super::figure::{
    check_figure_size, default_cols, tile_origin, to_own_range, Figure, Tile, LABEL, MARGIN, TITLE,
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
    let what = if shown == conv {
        names[conv].clone()
    } else {
        format!("{} after {}", names[conv], names[shown])
    };
    let title = format!(
        "the input, then the {maps} maps of {what}, numbered by channel; each map on its own scale"
    );
    let (width, height, png) = labelled_grid(&tiles, &title, cols, scale, gap)?;
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

/// The least width of the feature maps figure, in pixels.
const MAPS_MIN_WIDTH: usize = 560;

/// The size of the feature maps figure of `tiles` cells of `cw` x `ch` (see [`tile_origin`]).
pub fn maps_figure_size(
    tiles: usize,
    cols: usize,
    (cw, ch): (usize, usize),
    scale: usize,
    gap: usize,
) -> (usize, usize) {
    let cols = cols.clamp(1, tiles.max(1));
    let rows = tiles.div_ceil(cols).max(1);
    let grid_w = cols * cw * scale + (cols - 1) * gap;
    let grid_h = rows * (ch * scale + LABEL) + (rows - 1) * gap;
    (
        grid_w.max(MAPS_MIN_WIDTH) + 2 * MARGIN,
        MARGIN + TITLE + grid_h + MARGIN / 2,
    )
}

/// The tiles on white, `title` above them and each tile's label under it
/// (`input`, then the channel numbers), as a grey PNG: (width, height, PNG bytes).
fn labelled_grid(
    tiles: &[Tile<u8>],
    title: &str,
    cols: Option<usize>,
    scale: usize,
    gap: usize,
) -> Result<(usize, usize, Vec<u8>)> {
    let cols = cols
        .unwrap_or_else(|| default_cols(tiles.len()))
        .clamp(1, tiles.len().max(1));
    let cell = |f: fn(&Tile<u8>) -> usize| tiles.iter().map(f).max().unwrap_or(1);
    let (cw, ch) = (cell(|t| t.w), cell(|t| t.h));
    let (width, height) = maps_figure_size(tiles.len(), cols, (cw, ch), scale, gap);
    check_figure_size(width, height)?;
    crate::plot::register_font()?;
    let mut rgb = vec![255u8; 3 * width * height];
    for (i, t) in tiles.iter().enumerate() {
        let (x0, y0) = tile_origin(i, cols, (cw, ch), scale, gap);
        let (x0, y0) = (x0 + (cw - t.w) * scale / 2, y0 + (ch - t.h) * scale / 2);
        for y in 0..t.h * scale {
            for x in 0..t.w * scale {
                let at = 3 * ((y0 + y) * width + x0 + x);
                rgb[at..at + 3].fill(t.pixels[(y / scale) * t.w + x / scale]);
            }
        }
    }
    draw_labels(
        &mut rgb,
        (width, height),
        title,
        tiles.len(),
        cols,
        (cw, ch),
        scale,
        gap,
    )?;
    // Everything drawn is grey: the red channel is the picture.
    let pixels = rgb.chunks_exact(3).map(|p| p[0]).collect();
    let png = GreyImage {
        width,
        height,
        pixels,
    }
    .to_png()?;
    Ok((width, height, png))
}

/// The title, and each tile's label centred under it, in black.
fn draw_labels(
    rgb: &mut [u8],
    (width, height): (usize, usize),
    title: &str,
    tiles: usize,
    cols: usize,
    (cw, ch): (usize, usize),
    scale: usize,
    gap: usize,
) -> Result<()> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("drawing the feature maps' labels: {e}");
    let root =
        crate::glyphs::Bitmap::with_buffer(rgb, (width as u32, height as u32)).into_drawing_area();
    let at = |x: usize, y: usize| (x as i32, y as i32);
    let title_style = ("sans-serif", 15).into_font().color(&BLACK);
    root.draw_text(title, &title_style, at(MARGIN, MARGIN - 2))
        .map_err(err)?;
    let label_style = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for i in 0..tiles {
        let (x0, y0) = tile_origin(i, cols, (cw, ch), scale, gap);
        let label = match i {
            0 => "input".to_string(),
            k => (k - 1).to_string(),
        };
        let (x, y) = (x0 + cw * scale / 2, y0 + ch * scale + 1);
        root.draw_text(&label, &label_style, at(x, y))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
