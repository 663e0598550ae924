//! `cnn eval`: a trained network's figures on a test (or training) set.

use std::path::PathBuf;

use anyhow::{Context, Result};
use mnist_io::Split;
use trainer::data::class_names;

use super::model_args::ModelArgs;

/// `cnn eval`'s flags.
#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    net: ModelArgs,
    /// Folder with the IDX files, or an image folder (train/CLASS/*.png, test/CLASS/*.png).
    #[arg(long)]
    data: PathBuf,
    /// Evaluate the training set instead of the test set.
    #[arg(long)]
    train_set: bool,
}

/// Prints the loss, accuracy, per-class accuracy and confusion matrix.
pub(crate) fn eval(args: EvalArgs) -> Result<()> {
    let EvalArgs {
        net: ModelArgs { model, config },
        data,
        train_set,
    } = args;
    let ckpt = trainer::safetensors_io::load_checkpoint(&model, config.as_deref())?;
    let net = ckpt
        .network()
        .with_context(|| format!("{}", model.display()))?;
    // Only the set evaluated is read; the training set too only when the
    // checkpoint standardises with it and does not record the constants.
    let norm = trainer_cli::predict::input_norm(&ckpt.config, Some(&data))?;
    let (split, which) = match train_set {
        true => (Split::Train, "training"),
        false => (Split::Test, "test"),
    };
    let ds = &trainer::data::load_set_for(&data, &ckpt.config, split)?;
    let what = format!("the {which} set in {}", data.display());
    trainer::data::check_fits(&net, ds, &what)?;
    let e = trainer::eval::evaluate(&net, ds, 100, norm)?;
    println!(
        "{} on {} ({} set)\n",
        model.display(),
        data.display(),
        if train_set { "training" } else { "test" }
    );
    print!("{}", e.table(&class_names(ds)));
    Ok(())
}
