//! `cnn export` and `cnn import`: a checkpoint's weights as safetensors, and back.

use std::path::PathBuf;

use anyhow::Result;

/// `cnn export`'s flags.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// The checkpoint.
    #[arg(long)]
    model: PathBuf,
    /// The .safetensors file to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even if it is a checkpoint, metrics.csv, a config, a data file or this command's input.
    #[arg(long)]
    force: bool,
}

/// `cnn import`'s flags.
#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    /// A TOML file or a built-in config name: the network the weights belong to.
    #[arg(long)]
    config: String,
    /// The .safetensors file (f32 tensors named as `cnn export` writes them).
    #[arg(long)]
    weights: PathBuf,
    /// The checkpoint to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even if it is a checkpoint, metrics.csv, a config, a data file or this command's input.
    #[arg(long)]
    force: bool,
}

/// Writes the checkpoint's weights as safetensors.
pub(crate) fn export(args: ExportArgs) -> Result<()> {
    let ExportArgs { model, out, force } = args;
    let n = trainer::safetensors_io::export(&model, &out, force)?;
    println!(
        "wrote {}: {n} f32 tensors named as PyTorch's state_dict",
        out.display()
    );
    Ok(())
}

/// Writes a checkpoint (epoch 0, no optimizer state) holding the weights.
pub(crate) fn import(args: ImportArgs) -> Result<()> {
    let ImportArgs {
        config,
        weights,
        out,
        force,
    } = args;
    let n = trainer::safetensors_io::import(&config, &weights, &out, force)?;
    println!(
        "wrote {}: {n} tensors from {} into the network of config `{config}` (epoch 0, no optimizer state)",
        out.display(),
        weights.display()
    );
    Ok(())
}
