//! `cnn visualize`: the post's figure of the first convolution layer.
//!
//! * Feature maps: the input digit, then each output channel of the first
//!   `conv2d` layer (after the ReLU that follows it, if one does), as tiles of
//!   one grey PNG. Each map is scaled to its own range (its minimum black, its
//!   maximum white); a constant map (e.g. all zero after the ReLU) is black.
//! * Filters (`--filters`): each kernel of that layer, one tile per (output,
//!   input) channel pair, on one symmetric range shared by all kernels,
//!   `[-m, m]` with `m` the largest absolute weight, in a diverging colour map:
//!   blue negative, white zero, red positive. Sharing the range shows which
//!   filters are strong as well as their shapes.
//!
//! Tiles are enlarged `scale` times with nearest-neighbour sampling and laid
//! out left to right, top to bottom, `cols` per row. Feature maps have `gap`
//! pixels of mid grey between them (no outer margin), so a figure of `n`
//! tiles of `w` x `h` is `cols*w*scale + (cols-1)*gap` wide and
//! `rows*h*scale + (rows-1)*gap` high, `rows = ceil(n / cols)`. The kernels
//! figure is on white, with a title naming the layer, each kernel's channel
//! number under it, and the colour scale with its end values below.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use mnist_io::{Dataset, Split};
use tensor::Tensor;

use crate::image_io::{GreyImage, RgbImage};
use trainer::checkpoint::{write_atomic, Checkpoint};

/// Colour of the gaps between tiles.
pub const GAP_GREY: u8 = 128;

/// Tiles per row by default: all in one row up to 9 tiles (the seed network's
/// input + 8 maps), else a near-square grid.
pub fn default_cols(tiles: usize) -> usize {
    if tiles <= 9 {
        tiles.max(1)
    } else {
        (tiles as f64).sqrt().ceil() as usize
    }
}

/// Width and height of a grid of `tiles` cells of `w` x `h` (before scaling).
pub fn grid_size(
    tiles: usize,
    cols: usize,
    w: usize,
    h: usize,
    scale: usize,
    gap: usize,
) -> (usize, usize) {
    let cols = cols.clamp(1, tiles.max(1));
    let rows = tiles.div_ceil(cols).max(1);
    (
        cols * w * scale + (cols - 1) * gap,
        rows * h * scale + (rows - 1) * gap,
    )
}

/// One tile: `w` x `h` pixels of any type.
struct Tile<T> {
    w: usize,
    h: usize,
    pixels: Vec<T>,
}

/// Lays tiles out on a grid (see the module docs); cells are the size of the
/// largest tile, smaller tiles are centred in theirs.
fn compose<T: Copy>(
    tiles: &[Tile<T>],
    cols: usize,
    scale: usize,
    gap: usize,
    background: T,
) -> (usize, usize, Vec<T>) {
    let cw = tiles.iter().map(|t| t.w).max().unwrap_or(1);
    let ch = tiles.iter().map(|t| t.h).max().unwrap_or(1);
    let cols = cols.clamp(1, tiles.len().max(1));
    let (width, height) = grid_size(tiles.len(), cols, cw, ch, scale, gap);
    let mut out = vec![background; width * height];
    for (i, t) in tiles.iter().enumerate() {
        let (col, row) = (i % cols, i / cols);
        let x0 = col * (cw * scale + gap) + (cw - t.w) * scale / 2;
        let y0 = row * (ch * scale + gap) + (ch - t.h) * scale / 2;
        for y in 0..t.h * scale {
            for x in 0..t.w * scale {
                out[(y0 + y) * width + x0 + x] = t.pixels[(y / scale) * t.w + x / scale];
            }
        }
    }
    (width, height, out)
}

/// The largest `--scale` and `--gap`.
pub const MAX_SCALE: usize = 64;
/// The most pixels a figure may have: 64 million (a 8000 x 8000 picture).
pub const MAX_FIGURE_PIXELS: u128 = 64_000_000;

/// Refuses a figure too large to draw (plotters takes sides below 2^15).
fn check_figure_size(width: usize, height: usize) -> Result<()> {
    if width > 32_000 || height > 32_000 || width as u128 * height as u128 > MAX_FIGURE_PIXELS {
        bail!("the figure would be {width}x{height} pixels, more than the {MAX_FIGURE_PIXELS} drawn at most; lower --scale, --gap or --cols");
    }
    Ok(())
}

/// Values scaled to 0..=255 by their own range; constant or empty → all 0.
/// Non-finite values count as the minimum.
pub fn to_own_range(values: &[f32]) -> Vec<u8> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if hi <= lo || hi.is_nan() || lo.is_nan() {
        return vec![0; values.len()];
    }
    values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                ((v - lo) / (hi - lo) * 255.0).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect()
}

/// Blue (−1) through white (0) to red (+1); `t` is clamped to [−1, 1], NaN is white.
pub fn diverging(t: f32) -> [u8; 3] {
    const BLUE: [f32; 3] = [33.0, 102.0, 172.0];
    const RED: [f32; 3] = [178.0, 24.0, 43.0];
    let t = if t.is_nan() { 0.0 } else { t.clamp(-1.0, 1.0) };
    let end = if t < 0.0 { BLUE } else { RED };
    let a = t.abs();
    let mix = |i: usize| (255.0 * (1.0 - a) + end[i] * a).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// The first `conv2d` layer: its index, and the index of the layer whose
/// output to show ([`maps_of_conv`]).
pub fn first_conv(net: &Network) -> Result<(usize, usize)> {
    let i = net
        .layers()
        .iter()
        .position(|l| l.kind() == "conv2d")
        .ok_or_else(|| anyhow!("the network has no conv2d layer to visualise"))?;
    Ok((i, maps_of_conv(net, i)))
}

/// The layer whose output shows convolution `i`'s feature maps: the ReLU
/// right after it, or after its batch norm, if there is one; else `i` itself.
pub fn maps_of_conv(net: &Network, i: usize) -> usize {
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

/// A figure, ready to write.
pub struct Figure {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The PNG file's bytes.
    pub png: Vec<u8>,
    /// What it shows, in a sentence.
    pub description: String,
}

/// The input image (bytes, white on black) beside the feature maps of the
/// first conv layer for that input (scaled as in training by `norm`).
pub fn feature_maps_figure(
    net: &mut Network,
    image: &[u8],
    norm: Option<(f32, f32)>,
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
fn input_tensor(image: &[u8], h: usize, w: usize, norm: Option<(f32, f32)>) -> Result<Tensor> {
    let values: Vec<f32> = image
        .iter()
        .map(|&v| {
            let x = f32::from(v) / 255.0;
            norm.map_or(x, |(m, s)| (x - m) / s)
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

/// The kernels of the first conv layer, on one symmetric range, in a diverging colour map.
pub fn filters_figure(
    net: &Network,
    scale: usize,
    gap: usize,
    cols: Option<usize>,
) -> Result<Figure> {
    let (conv, _) = first_conv(net)?;
    let k = Kernels::of(net, conv)?;
    let layout = FiltersLayout::new(&k, scale, gap, cols);
    check_figure_size(layout.width, layout.height)?;
    crate::plot::register_font()?;
    let pixels = draw_filters(&k, &layout)?;
    let png = RgbImage {
        width: layout.width,
        height: layout.height,
        pixels,
    }
    .to_png()?;
    let Kernels {
        name,
        o,
        c,
        kh,
        kw,
        m,
        ..
    } = &k;
    Ok(Figure {
        width: layout.width,
        height: layout.height,
        png,
        description: format!(
            "the {o}x{c} kernels ({kw}x{kh}) of {name}, blue -{m:.3} .. white 0 .. red +{m:.3} (one range for all)"
        ),
    })
}

/// A conv layer's weights: `o` x `c` kernels of `kh` x `kw`, and `m`, the
/// largest finite absolute weight (the colour range is `[-m, m]`).
struct Kernels {
    name: String,
    o: usize,
    c: usize,
    kh: usize,
    kw: usize,
    data: Vec<f32>,
    m: f32,
}

impl Kernels {
    /// The weights of layer `conv`, which must be `[out, in, kh, kw]`.
    fn of(net: &Network, conv: usize) -> Result<Self> {
        let name = net.layers()[conv].name().to_string();
        let params = net.named_params();
        let weight = params
            .get(&format!("{name}.weight"))
            .ok_or_else(|| anyhow!("layer {name} has no parameter `{name}.weight`"))?;
        let shape = weight.shape().to_vec();
        if shape.len() != 4 {
            bail!("{name}.weight has shape {shape:?}, expected [out, in, k, k]");
        }
        let data: Vec<f32> = weight.iter().copied().collect();
        let m = data
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |m, v| m.max(v.abs()));
        Ok(Kernels {
            name,
            o: shape[0],
            c: shape[1],
            kh: shape[2],
            kw: shape[3],
            data,
            m,
        })
    }

    /// A weight's colour on the shared range.
    fn colour(&self, v: f32) -> [u8; 3] {
        diverging(if self.m > 0.0 { v / self.m } else { 0.0 })
    }

    /// The figure's title.
    fn title(&self) -> String {
        let Kernels {
            name, o, c, kh, kw, ..
        } = self;
        if *c == 1 {
            format!("{name}: {o} kernels {kw}x{kh}, numbered by output channel")
        } else {
            format!("{name}: {o}x{c} kernels {kw}x{kh}, labelled output,input channel")
        }
    }

    /// The label under kernel `i`: its output channel, and its input channel when there are several.
    fn label(&self, i: usize) -> String {
        if self.c == 1 {
            format!("{}", i / self.c)
        } else {
            format!("{},{}", i / self.c, i % self.c)
        }
    }
}

/// Where the kernels figure's parts go, in pixels.
struct FiltersLayout {
    cols: usize,
    scale: usize,
    gap: usize,
    /// A kernel's tile: width and height.
    tw: usize,
    th: usize,
    /// The colour bar's width and top.
    bar_w: usize,
    bar_top: usize,
    width: usize,
    height: usize,
}

impl FiltersLayout {
    fn new(k: &Kernels, scale: usize, gap: usize, cols: Option<usize>) -> Self {
        let (o, c) = (k.o, k.c);
        // One input channel: all kernels in one row (or a grid); else one row per output channel.
        let cols = cols
            .unwrap_or(if c == 1 { default_cols(o) } else { c })
            .clamp(1, o * c);
        let rows = (o * c).div_ceil(cols);
        let (tw, th) = (k.kw * scale, k.kh * scale);
        let grid_w = cols * tw + (cols - 1) * gap;
        let bar_w = grid_w.max(FILTERS_MIN_WIDTH);
        let row_pitch = th + FILTERS_LABEL + gap;
        let grid_top = FILTERS_MARGIN + FILTERS_TITLE;
        let bar_top = grid_top + rows * row_pitch + FILTERS_MARGIN / 2;
        FiltersLayout {
            cols,
            scale,
            gap,
            tw,
            th,
            bar_w,
            bar_top,
            width: bar_w + 2 * FILTERS_MARGIN,
            height: bar_top + FILTERS_BAR + FILTERS_LABEL + FILTERS_MARGIN / 2,
        }
    }
}

/// The plotters drawing area of the kernels figure.
type Canvas<'a> =
    plotters::drawing::DrawingArea<plotters::prelude::BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("drawing the kernels: {e}")
}

fn px(x: usize, y: usize) -> (i32, i32) {
    (x as i32, y as i32)
}

fn rgb(c: [u8; 3]) -> plotters::style::RGBColor {
    plotters::style::RGBColor(c[0], c[1], c[2])
}

/// Black text of `size`, centred under the point it is drawn at when `centred`.
fn text(size: u32, centred: bool) -> plotters::style::TextStyle<'static> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    use plotters::style::{IntoFont, BLACK};
    let style = ("sans-serif", size).into_font().color(&BLACK);
    if centred {
        style.pos(Pos::new(HPos::Center, VPos::Top))
    } else {
        style
    }
}

/// The kernels figure's RGB pixels: the title, each kernel with its label, the colour scale.
fn draw_filters(k: &Kernels, l: &FiltersLayout) -> Result<Vec<u8>> {
    use plotters::prelude::*;
    let mut buf = vec![255u8; 3 * l.width * l.height];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (l.width as u32, l.height as u32))
            .into_drawing_area();
        root.draw_text(
            &k.title(),
            &text(15, false),
            px(FILTERS_MARGIN, FILTERS_MARGIN - 2),
        )
        .map_err(draw_err)?;
        for (i, kernel) in k.data.chunks_exact(k.kh * k.kw).enumerate() {
            draw_kernel(&root, k, l, i, kernel)?;
        }
        draw_colour_scale(&root, l, k.m)?;
        root.present().map_err(draw_err)?;
    }
    Ok(buf)
}

/// Kernel `i` in its grey frame, and its label under it.
fn draw_kernel(
    root: &Canvas<'_>,
    k: &Kernels,
    l: &FiltersLayout,
    i: usize,
    kernel: &[f32],
) -> Result<()> {
    use plotters::prelude::*;
    let (x0, y0) = filters_tile_origin(i, l.cols, (k.kw, k.kh), l.scale, l.gap);
    // A grey frame keeps near-white kernels apart from each other and the page.
    root.draw(&Rectangle::new(
        [px(x0 - 1, y0 - 1), px(x0 + l.tw, y0 + l.th)],
        rgb([GAP_GREY; 3]),
    ))
    .map_err(draw_err)?;
    let scale = l.scale;
    for (j, &v) in kernel.iter().enumerate() {
        let (x, y) = (x0 + (j % k.kw) * scale, y0 + (j / k.kw) * scale);
        root.draw(&Rectangle::new(
            [px(x, y), px(x + scale, y + scale)],
            rgb(k.colour(v)).filled(),
        ))
        .map_err(draw_err)?;
    }
    root.draw_text(
        &k.label(i),
        &text(12, true),
        px(x0 + l.tw / 2, y0 + l.th + 1),
    )
    .map_err(draw_err)?;
    Ok(())
}

/// The colour scale: -m at the left end, 0 in the middle, +m at the right.
fn draw_colour_scale(root: &Canvas<'_>, l: &FiltersLayout, m: f32) -> Result<()> {
    use plotters::prelude::*;
    let (bar_w, bar_top) = (l.bar_w, l.bar_top);
    for x in 0..bar_w {
        let t = 2.0 * x as f32 / (bar_w - 1).max(1) as f32 - 1.0;
        root.draw(&Rectangle::new(
            [
                px(FILTERS_MARGIN + x, bar_top),
                px(FILTERS_MARGIN + x + 1, bar_top + FILTERS_BAR),
            ],
            rgb(diverging(t)).filled(),
        ))
        .map_err(draw_err)?;
    }
    let label_y = bar_top + FILTERS_BAR + 1;
    for (x, label) in [
        (FILTERS_MARGIN + 12, format!("-{m:.3}")),
        (FILTERS_MARGIN + bar_w / 2, "0".to_string()),
        (FILTERS_MARGIN + bar_w - 12, format!("+{m:.3}")),
    ] {
        root.draw_text(&label, &text(12, true), px(x, label_y))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// The kernels figure's layout, in pixels: margin around it, the title's
/// height, a label's height, the colour bar's height, and the least width
/// (room for the title and the scale's labels).
const FILTERS_MARGIN: usize = 10;
const FILTERS_TITLE: usize = 24;
const FILTERS_LABEL: usize = 16;
const FILTERS_BAR: usize = 12;
const FILTERS_MIN_WIDTH: usize = 400;

/// Where kernel `i` of the kernels figure drawn with `cols` columns of
/// `kw` x `kh` kernels at `scale` and `gap` begins: (column, row) in pixels.
pub fn filters_tile_origin(
    i: usize,
    cols: usize,
    (kw, kh): (usize, usize),
    scale: usize,
    gap: usize,
) -> (usize, usize) {
    (
        FILTERS_MARGIN + (i % cols) * (kw * scale + gap),
        FILTERS_MARGIN + FILTERS_TITLE + (i / cols) * (kh * scale + FILTERS_LABEL + gap),
    )
}

/// What `cnn visualize` was asked to do.
#[derive(Clone, Debug)]
pub struct VisualizeOptions<'a> {
    /// The checkpoint.
    pub model: &'a Path,
    /// Folder of IDX files (needed for feature maps, and for standardised inputs).
    pub data: Option<&'a Path>,
    /// Example index in the split.
    pub index: usize,
    /// Take the example from the training set instead of the test set.
    pub train_set: bool,
    /// Draw the kernels instead of feature maps.
    pub filters: bool,
    /// The PNG to write.
    pub out: &'a Path,
    /// Enlargement of each tile (default 4 for maps, 16 for kernels).
    pub scale: Option<usize>,
    /// Pixels between tiles.
    pub gap: usize,
    /// Tiles per row.
    pub cols: Option<usize>,
}

/// Draws the figure `opts` asks for and writes it atomically; returns it (with the PNG bytes).
pub fn run(opts: &VisualizeOptions) -> Result<Figure> {
    let ext_ok = opts
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !ext_ok {
        bail!(
            "{}: the figure is written as PNG; give a file name ending in .png",
            opts.out.display()
        );
    }
    if opts.scale == Some(0) || opts.cols == Some(0) {
        bail!("--scale and --cols must be at least 1");
    }
    if opts.scale.unwrap_or(1) > MAX_SCALE || opts.gap > MAX_SCALE {
        bail!("--scale and --gap must be at most {MAX_SCALE}");
    }
    trainer::files::check_output(opts.out, &[opts.model])?;
    let ckpt = Checkpoint::load(opts.model)?;
    let mut net = ckpt
        .network()
        .with_context(|| format!("{}", opts.model.display()))?;
    if first_conv(&net).is_err() {
        bail!(
            "{}: the network of config `{}` has no conv2d layer; `cnn visualize` draws a convolution layer's kernels and feature maps",
            opts.model.display(),
            ckpt.config.name
        );
    }
    let figure = if opts.filters {
        filters_figure(&net, opts.scale.unwrap_or(16), opts.gap, opts.cols)?
    } else {
        let dir = opts
            .data
            .ok_or_else(|| anyhow!("feature maps need an input image: pass --data <dir>"))?;
        let split = if opts.train_set {
            Split::Train
        } else {
            Split::Test
        };
        let set_name = if opts.train_set { "training" } else { "test" };
        let ds = Dataset::load(dir, split)
            .with_context(|| format!("loading the {set_name} set from {}", dir.display()))?;
        trainer::data::check_fits(
            &net,
            &ds,
            &format!("the {set_name} set in {}", dir.display()),
        )?;
        if opts.index >= ds.len() {
            bail!(
                "--index {}: the {set_name} set in {} has {} images (indices 0..{})",
                opts.index,
                dir.display(),
                ds.len(),
                ds.len().saturating_sub(1)
            );
        }
        let norm = crate::predict::input_norm(&ckpt.config, Some(dir))?;
        let mut f = feature_maps_figure(
            &mut net,
            ds.image(opts.index),
            norm,
            opts.scale.unwrap_or(4),
            opts.gap,
            opts.cols,
        )?;
        f.description = format!(
            "{set_name} image {} (label {}): {}",
            opts.index,
            ds.label(opts.index),
            f.description
        );
        f
    };
    write_atomic(opts.out, &figure.png)?;
    Ok(figure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_range_and_constant_maps() {
        assert_eq!(to_own_range(&[0.0, 0.0, 0.0]), vec![0, 0, 0]);
        assert_eq!(to_own_range(&[1.0, 3.0, 2.0]), vec![0, 255, 128]);
        assert_eq!(to_own_range(&[f32::NAN, 1.0, 2.0]), vec![0, 0, 255]);
        assert_eq!(to_own_range(&[]), Vec::<u8>::new());
    }

    #[test]
    fn diverging_ends() {
        assert_eq!(diverging(0.0), [255, 255, 255]);
        assert_eq!(diverging(1.0), [178, 24, 43]);
        assert_eq!(diverging(-5.0), [33, 102, 172]);
        assert_eq!(diverging(f32::NAN), [255, 255, 255]);
    }

    #[test]
    fn compose_lays_out_with_gaps() {
        let tiles: Vec<Tile<u8>> = (0..3)
            .map(|i| Tile {
                w: 2,
                h: 1,
                pixels: vec![i * 10, i * 10 + 1],
            })
            .collect();
        let (w, h, px) = compose(&tiles, 2, 2, 1, 99);
        assert_eq!((w, h), grid_size(3, 2, 2, 1, 2, 1));
        assert_eq!((w, h), (9, 5));
        assert_eq!(&px[0..9], &[0, 0, 1, 1, 99, 10, 10, 11, 11]);
        assert_eq!(&px[2 * 9..3 * 9], &[99; 9]);
        assert_eq!(&px[3 * 9..4 * 9], &[20, 20, 21, 21, 99, 99, 99, 99, 99]);
    }
}
