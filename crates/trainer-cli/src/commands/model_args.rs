//! `--model` and `--config`: the trained network that `cnn eval`, `cnn
//! predict` and `cnn serve` load.

use std::path::PathBuf;

/// The trained network a command loads: `--model` and, for a .safetensors
/// file, `--config`.
#[derive(clap::Args)]
pub(crate) struct ModelArgs {
    /// A checkpoint (last.ckpt, best.ckpt), or a .safetensors file with --config.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// The config (TOML file or built-in name) of a .safetensors model's network
    /// [default: the one `cnn export` stored in the file].
    #[arg(long)]
    pub(crate) config: Option<String>,
}
