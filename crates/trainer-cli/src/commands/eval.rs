//! `cnn eval`: a trained network's figures on a test (or training) set.

use std::path::PathBuf;

use anyhow::{Context, Result};
use trainer::data::{class_names, DataSets};

use super::model_args::ModelArgs;

/// `cnn eval`'s flags.
#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    net: ModelArgs,
    /// Folder with the IDX files.
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
    let sets = DataSets::load(&data)?;
    let norm = ckpt.config.normalize(&sets.train)?;
    let ds = if train_set { &sets.train } else { &sets.test };
    trainer::data::check_fits(
        &net,
        ds,
        &format!(
            "the {} set in {}",
            if train_set { "training" } else { "test" },
            data.display()
        ),
    )?;
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
