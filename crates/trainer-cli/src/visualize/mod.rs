//! `cnn visualize`: the post's figure of the first convolution layer.
//!
//! * Feature maps: the input digit, then each output channel of the first
//!   `conv2d` layer (after the ReLU that follows it, if one does), as tiles of
//!   one grey PNG on white, under a title, each labelled (`input`, then its
//!   channel number). Each map is scaled to its own range (its minimum black,
//!   its maximum white); a constant map (e.g. all zero after the ReLU) is black.
//! * Filters (`--filters`): each kernel of that layer, one tile per (output,
//!   input) channel pair, on one symmetric range shared by all kernels,
//!   `[-m, m]` with `m` the largest absolute weight, in a diverging colour map:
//!   blue negative, white zero, red positive. Sharing the range shows which
//!   filters are strong as well as their shapes.
//!
//! Tiles are enlarged `scale` times with nearest-neighbour sampling and laid
//! out left to right, top to bottom, `cols` per row, `gap` pixels apart
//! ([`tile_origin`] says where each begins,
//! [`maps_figure_size`] how large the maps figure is). The kernels figure
//! has a title naming the layer, each kernel's channel number under it,
//! and the colour scale with its end values below.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`run`]: the checks, the figure asked for, the file |
//! | `maps.rs` | the feature maps figure |
//! | `filters.rs` | the kernels figure |
//! | `figure.rs` | tiles, the grid, grey and colour scales, size limits |
//! | `conv.rs` | which layer is drawn |

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use mnist_io::{Dataset, Split};
use trainer::checkpoint::Checkpoint;
use trainer::files::write_atomic;

mod conv;
mod figure;
mod filters;
mod maps;

pub(crate) use conv::first_conv;
pub use figure::{tile_origin, Figure, GAP_GREY};
pub(crate) use figure::{to_own_range, MAX_SCALE};
pub(crate) use filters::filters_figure;
pub(crate) use maps::feature_maps_figure;
pub use maps::maps_figure_size;

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
    /// Replace `out` even when it is a run's file or the model (`--force`).
    pub force: bool,
}

/// Draws the figure `opts` asks for and writes it atomically; returns it (with the PNG bytes).
pub fn run(opts: &VisualizeOptions) -> Result<Figure> {
    check_options(opts)?;
    trainer::files::check_output(opts.out, &[opts.model], opts.force)?;
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
        maps_of_image(opts, &ckpt, &mut net)?
    };
    write_atomic(opts.out, &figure.png)?;
    Ok(figure)
}

/// Refuses a file name other than .png, and sizes out of range.
fn check_options(opts: &VisualizeOptions) -> Result<()> {
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
    Ok(())
}

/// The feature maps of image `opts.index` of the test (or training) set in `opts.data`.
fn maps_of_image(opts: &VisualizeOptions, ckpt: &Checkpoint, net: &mut Network) -> Result<Figure> {
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
        net,
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
        net,
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
    Ok(f)
}
