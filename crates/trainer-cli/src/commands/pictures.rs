//! `cnn visualize` and `cnn plot`: the first conv layer, and a run's curves, as pictures.

use std::path::PathBuf;

use anyhow::Result;
use trainer_cli::visualize::VisualizeOptions;

/// `cnn visualize`'s flags.
#[derive(clap::Args)]
pub(crate) struct VisualizeArgs {
    /// A checkpoint.
    #[arg(long)]
    model: PathBuf,
    /// Folder with the IDX files (required for feature maps).
    #[arg(long, required_unless_present = "filters")]
    data: Option<PathBuf>,
    /// Which image of the test set (0-based).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Take the image from the training set instead of the test set.
    #[arg(long)]
    train_set: bool,
    /// Draw the first conv layer's kernels instead of feature maps.
    #[arg(long)]
    filters: bool,
    /// The PNG file to write.
    #[arg(long)]
    out: PathBuf,
    /// Enlargement of each tile, nearest neighbour, at most 64 [default: 4, or 16 with --filters].
    #[arg(long)]
    scale: Option<usize>,
    /// Pixels between tiles (at most 64).
    #[arg(long, default_value_t = 2)]
    gap: usize,
    /// Tiles per row [default: all in one row up to 9 tiles, else a square-ish grid].
    #[arg(long)]
    cols: Option<usize>,
    /// Replace --out even if it is a checkpoint, metrics.csv, a config, a data file or this command's input.
    #[arg(long)]
    force: bool,
}

/// `cnn plot`'s flags.
#[derive(clap::Args)]
pub(crate) struct PlotArgs {
    /// The run directory (with metrics.csv; config.toml gives the title).
    #[arg(long)]
    run: PathBuf,
    /// The file to write: .png or .svg.
    #[arg(long)]
    out: PathBuf,
    /// Width in pixels.
    #[arg(long, default_value_t = 1200)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 500)]
    height: u32,
    /// Replace --out even if it is a checkpoint, metrics.csv, a config, a data file or this command's input.
    #[arg(long)]
    force: bool,
}

/// Draws the first conv layer's feature maps of one image, or its kernels.
pub(crate) fn visualize(args: VisualizeArgs) -> Result<()> {
    let f = trainer_cli::visualize::run(&VisualizeOptions {
        model: &args.model,
        data: args.data.as_deref(),
        index: args.index,
        train_set: args.train_set,
        filters: args.filters,
        out: &args.out,
        scale: args.scale,
        gap: args.gap,
        cols: args.cols,
        force: args.force,
    })?;
    println!(
        "wrote {} ({}x{} pixels): {}",
        args.out.display(),
        f.width,
        f.height,
        f.description
    );
    Ok(())
}

/// Plots a run's loss and accuracy curves.
pub(crate) fn plot(args: PlotArgs) -> Result<()> {
    let PlotArgs {
        run,
        out,
        width,
        height,
        force,
    } = args;
    let epochs = trainer_cli::plot::run(&run, &out, width, height, force)?;
    println!(
        "wrote {} ({width}x{height}): loss and accuracy over {epochs} epoch{}",
        out.display(),
        if epochs == 1 { "" } else { "s" }
    );
    Ok(())
}
