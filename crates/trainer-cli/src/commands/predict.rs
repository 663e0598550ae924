//! `cnn predict` and `cnn serve`: a trained network on your own images, from
//! PNG files or drawn in the browser.

use std::path::PathBuf;

use anyhow::Result;
use trainer_cli::serve::ServeOptions;

use super::model_args::ModelArgs;

/// `cnn predict`'s flags.
#[derive(clap::Args)]
pub(crate) struct PredictArgs {
    #[command(flatten)]
    net: ModelArgs,
    /// Folder with the training IDX files; needed only when the checkpoint
    /// standardises inputs with the training set's mean and std.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print one JSON document (model, classes, and per file: class, class_name,
    /// probabilities, notes, or error) instead of text.
    #[arg(long)]
    json: bool,
    /// Use each image as it is (inverted and resized only), without centring
    /// the digit as MNIST's digits were.
    #[arg(long)]
    no_preprocess: bool,
    /// PNG files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// `cnn serve`'s flags.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    net: ModelArgs,
    /// Folder with the IDX files: test images to show (and the training set,
    /// for a checkpoint that standardises its inputs).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address and port to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Folder of the training page's WebAssembly module (/train), as `cargo xtask web` writes it.
    #[arg(long, default_value = "target/web")]
    web: PathBuf,
}

/// Classifies each image and prints the classes and probabilities.
pub(crate) fn predict(args: PredictArgs) -> Result<()> {
    trainer_cli::predict::run_any_model(
        &args.net.model,
        args.net.config.as_deref(),
        args.data.as_deref(),
        &args.images,
        args.json,
        !args.no_preprocess,
    )
}

/// Serves the drawing page until Ctrl-C.
pub(crate) fn serve(args: ServeArgs) -> Result<()> {
    let ServeArgs {
        net: ModelArgs { model, config },
        data,
        addr,
        web,
    } = args;
    trainer_cli::serve::run(&ServeOptions {
        model,
        config,
        data,
        addr,
        web,
    })
}
