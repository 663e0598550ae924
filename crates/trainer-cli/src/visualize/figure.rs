//! What every figure of `cnn visualize` is made of: tiles laid out on a
//! grid, values turned into grey or colour, and the size limits.

use anyhow::{bail, Result};

/// Colour of the gaps between tiles.
pub const GAP_GREY: u8 = 128;

/// Tiles per row by default: all in one row up to 9 tiles (the seed network's
/// input + 8 maps), else a near-square grid.
pub(crate) fn default_cols(tiles: usize) -> usize {
    if tiles <= 9 {
        tiles.max(1)
    } else {
        (tiles as f64).sqrt().ceil() as usize
    }
}

/// The labelled figures' layout (the kernels and the feature maps), in
/// pixels: the margin around the figure, the title's height above the grid,
/// and a label's height under each tile.
pub(crate) const MARGIN: usize = 10;
pub(crate) const TITLE: usize = 24;
pub(crate) const LABEL: usize = 16;

/// Where tile `i` of a labelled figure begins, (column, row) in pixels, for
/// `cols` columns of cells of `cw` x `ch` enlarged `scale` times, `gap`
/// apart. In the feature maps figure tile 0 is the input and tile `k + 1`
/// channel `k`'s map; in the kernels figure tile `i` is kernel `i`.
pub fn tile_origin(
    i: usize,
    cols: usize,
    (cw, ch): (usize, usize),
    scale: usize,
    gap: usize,
) -> (usize, usize) {
    (
        MARGIN + (i % cols) * (cw * scale + gap),
        MARGIN + TITLE + (i / cols) * (ch * scale + LABEL + gap),
    )
}

/// One tile: `w` x `h` pixels of any type.
pub(crate) struct Tile<T> {
    pub(crate) w: usize,
    pub(crate) h: usize,
    pub(crate) pixels: Vec<T>,
}

/// The largest `--scale` and `--gap`.
pub(crate) const MAX_SCALE: usize = 64;
/// The most pixels a figure may have: 64 million (a 8000 x 8000 picture).
pub(crate) const MAX_FIGURE_PIXELS: u128 = 64_000_000;

/// Refuses a figure too large to draw (plotters takes sides below 2^15).
pub(crate) fn check_figure_size(width: usize, height: usize) -> Result<()> {
    if width > 32_000 || height > 32_000 || width as u128 * height as u128 > MAX_FIGURE_PIXELS {
        bail!("the figure would be {width}x{height} pixels, more than the {MAX_FIGURE_PIXELS} drawn at most; lower --scale, --gap or --cols");
    }
    Ok(())
}

/// Values scaled to 0..=255 by their own range; constant or empty → all 0.
/// Non-finite values count as the minimum.
pub(crate) fn to_own_range(values: &[f32]) -> Vec<u8> {
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
pub(crate) fn diverging(t: f32) -> [u8; 3] {
    const BLUE: [f32; 3] = [33.0, 102.0, 172.0];
    const RED: [f32; 3] = [178.0, 24.0, 43.0];
    let t = if t.is_nan() { 0.0 } else { t.clamp(-1.0, 1.0) };
    let end = if t < 0.0 { BLUE } else { RED };
    let a = t.abs();
    let mix = |i: usize| (255.0 * (1.0 - a) + end[i] * a).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// A figure, ready to write.
pub struct Figure {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The PNG file's bytes.
    pub(crate) png: Vec<u8>,
    /// What it shows, in a sentence.
    pub description: String,
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
}
