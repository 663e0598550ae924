//! `cnn gradcheck` and `cnn bench`: checks of the code rather than of a
//! trained model (are the gradients right, how fast is a step).

use std::path::PathBuf;

use anyhow::{Context, Result};
use trainer::config::TrainConfig;
use trainer_cli::{bench, gradcheck_cmd};

/// The largest batch `cnn gradcheck --batch` takes.
const MAX_GRADCHECK_BATCH: usize = 64;

/// `cnn gradcheck`'s flags.
#[derive(clap::Args)]
pub(crate) struct GradcheckArgs {
    /// A TOML file or a built-in config name.
    #[arg(long, default_value = "seed")]
    config: String,
    /// Examples in the random batch (1 to 64).
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Seed of the random input and weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compute every convolution layer with this algorithm: im2col (im2col/col2im
    /// and matrix products, as the book teaches), direct (implicit GEMM, AVX2 and
    /// stride 1; im2col elsewhere) or auto (direct where it runs) [default: the config's].
    #[arg(long, value_name = "ALGORITHM", value_parser = trainer::config::parse_conv_algorithm)]
    conv: Option<layers::ConvAlgorithm>,
}

/// `cnn bench`'s flags.
#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// A TOML file or a built-in config name.
    #[arg(long, default_value = "seed")]
    config: String,
    /// Mini-batch size (default: the config's).
    #[arg(long)]
    batch: Option<usize>,
    /// Timed training steps (at most 10,000).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Untimed steps first (at most 10,000).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Folder with the IDX files (default: random images).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Images to evaluate after the training steps (at most 1,000,000).
    #[arg(long, default_value_t = 10_000)]
    eval_images: usize,
    /// Compute every convolution layer with this algorithm: im2col, direct or auto
    /// [default: the config's]. The table shows the one each layer took.
    #[arg(long, value_name = "ALGORITHM", value_parser = trainer::config::parse_conv_algorithm)]
    conv: Option<layers::ConvAlgorithm>,
}

/// Checks every layer's gradients; fails when one disagrees by more than 1e-2.
pub(crate) fn gradcheck(args: GradcheckArgs) -> Result<()> {
    let GradcheckArgs {
        config,
        batch,
        seed,
        conv,
    } = args;
    if !(1..=MAX_GRADCHECK_BATCH).contains(&batch) {
        anyhow::bail!("--batch {batch}: give 1 to {MAX_GRADCHECK_BATCH} examples (each costs two passes per parameter checked)");
    }
    let mut config = TrainConfig::load(&config)?;
    if let Some(conv) = conv {
        config.network.set_conv_algorithm(conv);
    }
    // The batch's layer outputs are bounded as a training batch's are.
    config.training.batch = batch;
    config.check().context("--batch")?;
    let reports = gradcheck_cmd::run(&config, batch, seed)?;
    let (table, ok) = gradcheck_cmd::table(&reports, 1e-2);
    print!("{table}");
    if !ok {
        anyhow::bail!("some gradients disagree with central differences by more than 1e-2");
    }
    println!("all gradients agree with central differences to within 1e-2 (relative)");
    Ok(())
}

/// Times training steps and evaluation, and prints the table.
pub(crate) fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        config,
        batch,
        steps,
        warmup,
        data,
        eval_images,
        conv,
    } = args;
    let report = bench::run(&bench::BenchOptions {
        config,
        batch,
        steps,
        warmup,
        data,
        eval_images,
        conv,
    })?;
    print!("{}", report.table());
    Ok(())
}
