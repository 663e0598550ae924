//! `cnn export` and `cnn import`: a checkpoint's weights as safetensors, and
//! back; its network as ONNX.

use std::path::PathBuf;

use anyhow::Result;

/// What `cnn export` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// The weights as PyTorch's state_dict, in a .safetensors file.
    Safetensors,
    /// The network and its weights as an ONNX graph, in a .onnx file.
    Onnx,
}

/// `cnn export`'s flags.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// The checkpoint.
    #[arg(long)]
    model: PathBuf,
    /// The file to write: .safetensors or .onnx, as --format says.
    #[arg(long)]
    out: PathBuf,
    /// safetensors: the weights, named as PyTorch's state_dict; onnx: the
    /// network too, input N x C x H x W floats in [0, 1], output the logits.
    #[arg(long, value_enum, default_value = "safetensors")]
    format: Format,
    /// The training set's folder: needed only by a checkpoint that
    /// standardises its inputs and has not recorded the training set's mean and std.
    #[arg(long)]
    data: Option<PathBuf>,
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

/// Writes the checkpoint's weights as safetensors, or its network as ONNX.
pub(crate) fn export(args: ExportArgs) -> Result<()> {
    let ExportArgs {
        model,
        out,
        format,
        data,
        force,
    } = args;
    match format {
        Format::Safetensors => {
            let n = trainer::safetensors_io::export(&model, &out, force)?;
            println!(
                "wrote {}: {n} f32 tensors named as PyTorch's state_dict",
                out.display()
            );
        }
        Format::Onnx => {
            let bytes = trainer::onnx::export(&model, &out, data.as_deref(), force)?;
            println!(
                "wrote {}: {bytes} bytes, ONNX opset {}; input `images` N x C x H x W in [0, 1], output `logits`",
                out.display(),
                trainer::onnx::schema::OPSET
            );
        }
    }
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
