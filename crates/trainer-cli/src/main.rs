//! `cnn`: train, evaluate and inspect the seed CNN. See `cnn --help`.
//!
//! This file holds the global flags, the list of commands (each command's
//! help is its doc comment here) and the dispatch; each command's own flags
//! and its function are in `src/commands/`.

mod commands;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use commands::checks::{BenchArgs, GradcheckArgs};
use commands::configs::ConfigsArgs;
use commands::eval::EvalArgs;
use commands::export::{ExportArgs, ImportArgs};
use commands::pages::{ReportArgs, ResultsArgs, SeedTableArgs};
use commands::pictures::{PlotArgs, VisualizeArgs};
use commands::predict::{PredictArgs, ServeArgs};
use commands::train::{Interrupted, TrainArgs};

#[derive(Parser)]
#[command(
    name = "cnn",
    version,
    about = "A CNN written from first principles: train it on MNIST, evaluate it, look inside it."
)]
struct Cli {
    /// Worker threads of the commands that run the network: train, eval, bench,
    /// gradcheck, report, predict and visualize; the others ignore it (default and most: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Print errors and the final result only: no progress bar, no log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print debug logs too (each checkpoint written, ...).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network and write checkpoints and metrics to a run directory.
    Train(TrainArgs),
    /// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a test set.
    Eval(EvalArgs),
    /// List the built-in configs, or print one.
    Configs(ConfigsArgs),
    /// The seed experiment as a distribution: for each sweep folder (one run
    /// folder per seed, as `cargo xtask train --seeds` writes them), the mean,
    /// standard deviation, minimum and maximum test accuracy at epoch 1 and
    /// every tenth epoch beside the post's, and the fraction of seeds whose
    /// final model never predicts some class. Unfinished runs are left out.
    SeedTable(SeedTableArgs),
    /// Write a run's metrics as Markdown, the post's table beside ours (docs/results.md).
    Results(ResultsArgs),
    /// Check every layer's gradients against central differences.
    Gradcheck(GradcheckArgs),
    /// Classify grey PNG images of digits: the class and the probability of each class.
    ///
    /// Any PNG works: 8/16-bit grey, grey+alpha, RGB, RGBA and palette images are
    /// turned into 8-bit grey (luma; transparency over white). An image whose border
    /// is mostly bright (a dark digit on white paper) is inverted, since MNIST digits
    /// are white on black. Then the digit is prepared as MNIST's were: cropped to its
    /// bounding box (pixels brighter than a quarter of the way from the darkest to the
    /// brightest), fitted into 20x20 keeping its aspect ratio (area averaging), and
    /// placed in 28x28 with its centre of mass at the centre, so that a small digit in
    /// a corner of a large drawing is classified as a training digit would be. With
    /// --no-preprocess the image is only padded to a square with black and
    /// area-averaged to 28x28. Every step taken is printed as a note. A file that
    /// cannot be read (missing, not a PNG, corrupt) is reported and skipped; the
    /// others are still classified, and the exit status is then 1.
    Predict(PredictArgs),
    /// Draw the first conv layer: an image and its feature maps, or the kernels.
    ///
    /// Feature maps: the test image --index (white on black) then each map of the
    /// first conv2d layer after its ReLU, each scaled to its own range (a constant map
    /// is black), as one grey PNG. --filters: the layer's kernels on one symmetric
    /// range shared by all (blue negative, white zero, red positive), RGB PNG, titled
    /// with the layer's name, each kernel numbered by its output channel, the colour
    /// scale and its end values below. Tiles are enlarged --scale times (nearest
    /// neighbour) with --gap pixels between.
    Visualize(VisualizeArgs),
    /// Time training steps layer by layer, and evaluation; print throughput, GFLOP/s and peak memory.
    ///
    /// Warm-up steps first (untimed), then --steps timed training steps, each what
    /// `cnn train` does to a batch; then the evaluation of --eval-images images.
    /// Random data unless --data is given (the timings do not depend on pixel values).
    Bench(BenchArgs),
    /// Plot a run's loss and accuracy curves, train and test, from its metrics.csv.
    Plot(PlotArgs),
    /// Write a checkpoint's weights as safetensors, named and shaped as PyTorch's state_dict (or its network as ONNX).
    ///
    /// Tensors `conv1.weight` [out, in, kh, kw], `conv1.bias`, `fc1.weight` [out, in],
    /// `fc1.bias`, ... (the config's layer names), f32. In PyTorch,
    /// `model.load_state_dict(safetensors.torch.load_file(FILE))` loads them into a
    /// module whose submodules are attributes of the same names (conv1, conv2, fc1,
    /// fc2); an nn.Sequential names them 0, 3, 7, 9 instead and needs a renaming.
    ///
    /// With --format onnx: the network and its weights as an ONNX graph (Conv, Relu,
    /// AveragePool/MaxPool, Flatten, Gemm, BatchNormalization; dropout left out), for
    /// ONNX Runtime and others. Input `images`: N x C x H x W floats in [0, 1] (the
    /// config's input scaling is in the graph); output `logits`.
    Export(ExportArgs),
    /// Make a checkpoint (epoch 0, no optimizer state) from safetensors weights.
    Import(ImportArgs),
    /// One self-contained HTML page about a run: curves, the post's table, confusion
    /// matrix, first-layer figures and the most confident mistakes.
    ///
    /// Parts that do not apply are left out, and the page says so: the post's table
    /// unless the test set is MNIST, the first-layer figures when the network has no
    /// conv2d layer.
    Report(ReportArgs),
    /// Serve a page to draw a digit on and watch the network think: the
    /// prediction, every convolution's and pooling layer's feature maps, the
    /// first layer's kernels.
    ///
    /// The drawing is prepared as `cnn predict` prepares a PNG, and classified
    /// by the network as `cnn eval` runs it; the page only draws. With --data,
    /// the page can also show random test images beside their true label, and
    /// go through the test images the network gets wrong. Listens on this
    /// machine only unless --addr says otherwise; Ctrl-C stops it.
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // -q and -v say what to log; without them RUST_LOG may, else info.
    let filter = match (cli.quiet, cli.verbose) {
        (true, _) => "error".into(),
        (_, true) => "debug".into(),
        _ => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(use_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(stop) => {
                eprintln!("{stop}");
                // 128 + SIGINT, as shells report a process that Ctrl-C ended.
                ExitCode::from(130)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Colours on a terminal, unless NO_COLOR is set to anything but "" (no-color.org).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

fn run(cli: Cli) -> Result<()> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = cli.threads {
        pool = pool.num_threads(capped_threads(t));
    }
    let pool = pool.build().context("setting up the thread pool")?;
    // The command runs on one of the pool's own threads: a parallel loop is
    // then shared with the threads already running, instead of being handed
    // to the pool by a thread that sleeps until it is done (one more sleep
    // and wake-up per loop, which costs dearly on a busy machine).
    pool.install(|| run_command(cli))
}

/// `--threads t`, at least 1 and at most the machine's cores: more threads
/// than cores only take turns (and a huge number would exhaust the memory
/// for their stacks). Results do not depend on the number of threads.
fn capped_threads(t: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if t > cores {
        tracing::warn!("--threads {t}: this machine has {cores} cores; using {cores} threads");
    }
    t.clamp(1, cores)
}

/// Runs the command: one function per command, in `src/commands/`.
fn run_command(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => commands::train::train(args, cli.threads, cli.quiet),
        Command::Eval(args) => commands::eval::eval(args),
        Command::Configs(args) => commands::configs::configs(args),
        Command::SeedTable(args) => commands::pages::seed_table(args),
        Command::Results(args) => commands::pages::results(args),
        Command::Gradcheck(args) => commands::checks::gradcheck(args),
        Command::Predict(args) => commands::predict::predict(args),
        Command::Visualize(args) => commands::pictures::visualize(args),
        Command::Bench(args) => commands::checks::bench(args),
        Command::Plot(args) => commands::pictures::plot(args),
        Command::Export(args) => commands::export::export(args),
        Command::Import(args) => commands::export::import(args),
        Command::Report(args) => commands::pages::report(args),
        Command::Serve(args) => commands::predict::serve(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_turns_colours_off_when_set_to_anything() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("".as_ref())));
        assert!(!use_colour(true, Some("1".as_ref())));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn the_threads_flag_says_which_commands_use_it() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("--threads"), "{help}");
        assert!(help.contains("train, eval, bench"), "{help}");
    }
}
