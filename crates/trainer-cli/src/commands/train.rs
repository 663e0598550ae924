//! `cnn train`: the flags, the config they make, the run, and what is
//! printed at its end (or, after Ctrl-C, the command that resumes it).

use std::path::PathBuf;

use anyhow::{Context, Result};
use trainer::config::TrainConfig;
use trainer::train::TrainOptions;
use trainer_cli::post::plural;

use super::progress::{stop_after_batch_on_ctrl_c, ProgressBar};

/// `cnn train`'s flags.
#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// A TOML file or a built-in config name (see `cnn configs`) [default: seed; with --resume: the run's own].
    #[arg(long)]
    config: Option<String>,
    /// Folder with the four IDX files (e.g. data/mnist), or an image folder:
    /// train/CLASS/*.png and test/CLASS/*.png (classes: the folder names, sorted).
    #[arg(long)]
    data: PathBuf,
    /// Run directory: metrics.csv, config.toml, last.ckpt, best.ckpt.
    #[arg(long)]
    out: PathBuf,
    /// Epochs (default: the config's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size (default: the config's).
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of the initial weights and the shuffles (default: the config's).
    #[arg(long)]
    seed: Option<u64>,
    /// Continue the run in --out from its last.ckpt.
    #[arg(long)]
    resume: bool,
    /// Start a new run in a folder holding an earlier run's files, deleting them
    /// (without it, such a folder is refused).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Allow a network of up to N parameters (default: the config's
    /// training.max_params, 20 million unless it says otherwise); recorded in the run's config.
    #[arg(long, value_name = "N")]
    max_params: Option<usize>,
    /// After each epoch, evaluate the whole training set (the post's train loss and
    /// accuracy); recorded in the run's config.toml as `eval_train = true`.
    #[arg(long)]
    eval_train: bool,
    /// Also checkpoint every K batches.
    #[arg(long, value_name = "K")]
    checkpoint_every: Option<u64>,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    train_subset: Option<usize>,
    /// Compute every convolution layer with this algorithm: im2col (im2col/col2im
    /// and matrix products, as the book teaches), direct (implicit GEMM, AVX2 and
    /// stride 1; im2col elsewhere) or auto (direct where it runs) [default: the config's].
    #[arg(long, value_name = "ALGORITHM", value_parser = trainer::config::parse_conv_algorithm)]
    conv: Option<layers::ConvAlgorithm>,
}

/// Trains, then prints the last epoch's test accuracy and the times. A run
/// stopped by Ctrl-C ends in an [`Interrupted`] error.
pub(crate) fn train(args: TrainArgs, threads: Option<usize>, quiet: bool) -> Result<()> {
    let config = config(&args)?;
    if args.resume && (args.batch.is_some() || args.seed.is_some() || args.max_params.is_some()) {
        anyhow::bail!("--batch, --seed and --max-params cannot change a run being resumed: it would no longer be the same run");
    }
    stop_after_batch_on_ctrl_c()?;
    let resume_with = resume_command(threads, &args);
    let options = TrainOptions {
        config,
        epochs: args.epochs,
        data: args.data,
        out: args.out,
        resume: args.resume,
        force: args.force,
        eval_train: args.eval_train,
        conv: args.conv,
        checkpoint_every: args.checkpoint_every,
        train_subset: args.train_subset,
    };
    let mut progress = ProgressBar::new(quiet);
    let summary = trainer::train::train(&options, &mut progress)?;
    progress.clear();
    if let Some(at) = summary.stopped_at {
        return Err(Interrupted {
            at,
            last: options.out.join("last.ckpt"),
            resume: resume_with,
        }
        .into());
    }
    if let Some(last) = summary.history.last() {
        println!(
            "done: {}, test accuracy {:.2}% (best {:.2}%), {:.1} s training, {:.1} s in all",
            plural(last.epoch as usize, "epoch"),
            100.0 * last.test_acc,
            100.0
                * summary
                    .history
                    .iter()
                    .map(|r| r.test_acc)
                    .fold(0.0, f64::max),
            summary.train_seconds,
            summary.wall_seconds
        );
    }
    Ok(())
}

/// The config `--config` names (seed by default) with the flags that change
/// it, checked; none when resuming without `--config` (the run's own is used).
fn config(args: &TrainArgs) -> Result<Option<TrainConfig>> {
    if args.config.is_none() && args.resume {
        return Ok(None);
    }
    let name = args.config.as_deref().unwrap_or("seed");
    let mut config = TrainConfig::read(name)?;
    if let Some(n) = args.max_params {
        config.training.max_params = n;
    }
    if let Some(b) = args.batch {
        config.training.batch = b;
    }
    if let Some(s) = args.seed {
        config.training.seed = s;
    }
    if let Some(e) = args.epochs {
        config.training.epochs = e;
    }
    config.check().with_context(|| format!("config {name}"))?;
    Ok(Some(config))
}

/// `cnn train` stopped by Ctrl-C: where it stands and the command that continues it.
#[derive(Debug)]
pub(crate) struct Interrupted {
    at: trainer::train::Position,
    last: PathBuf,
    resume: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted at {}: {} holds it. Resume with:\n    {}",
            self.at,
            self.last.display(),
            self.resume
        )
    }
}

impl std::error::Error for Interrupted {}

/// A word for the shell: as it is when it is plain, else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `cnn train --resume` command that continues a run started with these arguments.
fn resume_command(threads: Option<usize>, args: &TrainArgs) -> String {
    let program = std::env::args().next().unwrap_or_else(|| "cnn".into());
    let mut words = vec![shell_word(&program)];
    if let Some(t) = threads {
        words.push(format!("--threads {t}"));
    }
    words.push("train --resume".into());
    words.push(format!(
        "--data {}",
        shell_word(&args.data.to_string_lossy())
    ));
    words.push(format!("--out {}", shell_word(&args.out.to_string_lossy())));
    if args.eval_train {
        words.push("--eval-train".into());
    }
    if let Some(k) = args.checkpoint_every {
        words.push(format!("--checkpoint-every {k}"));
    }
    if let Some(n) = args.train_subset {
        words.push(format!("--train-subset {n}"));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("runs/seed-1"), "runs/seed-1");
        assert_eq!(shell_word("my runs/a"), "'my runs/a'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
