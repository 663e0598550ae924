//! The kernels figure: each kernel of the first convolution on one
//! symmetric range shared by all (blue negative, white zero, red positive),
//! titled, each numbered, with the colour scale below.

use anyhow::{anyhow, bail, Result};
use layers::Network;

use super::conv::first_conv;
use super::figure::{
    check_figure_size, default_cols, diverging, tile_origin, Figure, GAP_GREY, LABEL, MARGIN, TITLE,
};
use crate::image_io::RgbImage;

/// The kernels of the first conv layer, on one symmetric range, in a diverging colour map.
pub(crate) fn filters_figure(
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
        let params = net.state_dict();
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
        let row_pitch = th + LABEL + gap;
        let grid_top = MARGIN + TITLE;
        let bar_top = grid_top + rows * row_pitch + MARGIN / 2;
        FiltersLayout {
            cols,
            scale,
            gap,
            tw,
            th,
            bar_w,
            bar_top,
            width: bar_w + 2 * MARGIN,
            height: bar_top + FILTERS_BAR + LABEL + MARGIN / 2,
        }
    }
}

/// The plotters drawing area of the kernels figure.
type Canvas<'a> = plotters::drawing::DrawingArea<crate::glyphs::Bitmap<'a>, plotters::coord::Shift>;

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
        let root = crate::glyphs::Bitmap::with_buffer(&mut buf, (l.width as u32, l.height as u32))
            .into_drawing_area();
        root.draw_text(&k.title(), &text(15, false), px(MARGIN, MARGIN - 2))
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
    let (x0, y0) = tile_origin(i, l.cols, (k.kw, k.kh), l.scale, l.gap);
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
                px(MARGIN + x, bar_top),
                px(MARGIN + x + 1, bar_top + FILTERS_BAR),
            ],
            rgb(diverging(t)).filled(),
        ))
        .map_err(draw_err)?;
    }
    let label_y = bar_top + FILTERS_BAR + 1;
    for (x, label) in [
        (MARGIN + 12, format!("-{m:.3}")),
        (MARGIN + bar_w / 2, "0".to_string()),
        (MARGIN + bar_w - 12, format!("+{m:.3}")),
    ] {
        root.draw_text(&label, &text(12, true), px(x, label_y))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// The kernels figure's colour bar height and least width (room for the
/// title and the scale's labels), in pixels; the rest of its layout is
/// every labelled figure's ([`tile_origin`]).
const FILTERS_BAR: usize = 12;
const FILTERS_MIN_WIDTH: usize = 400;
