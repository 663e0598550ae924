//! `cnn`: train, evaluate and inspect the seed CNN. See `cnn --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use trainer::config::{TrainConfig, BUILTIN};
use trainer::data::{class_names, DataSets};
use trainer::train::{train, Progress, TrainOptions};

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
    Train {
        /// A TOML file or a built-in config name (see `cnn configs`) [default: seed; with --resume: the run's own].
        #[arg(long)]
        config: Option<String>,
        /// Folder with the four IDX files (e.g. data/mnist).
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
    },
    /// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a test set.
    Eval {
        #[command(flatten)]
        net: ModelArgs,
        /// Folder with the IDX files.
        #[arg(long)]
        data: PathBuf,
        /// Evaluate the training set instead of the test set.
        #[arg(long)]
        train_set: bool,
    },
    /// List the built-in configs, or print one.
    Configs {
        /// Print this config's TOML.
        name: Option<String>,
    },
    /// The seed experiment as a distribution: for each sweep folder (one run
    /// folder per seed, as `cargo xtask train --seeds` writes them), the mean,
    /// standard deviation, minimum and maximum test accuracy at epoch 1 and
    /// every tenth epoch beside the post's, and the fraction of seeds whose
    /// final model never predicts some class. Unfinished runs are left out.
    SeedTable {
        /// Sweep folders, each holding one run folder per seed.
        #[arg(long, required = true, num_args = 1..)]
        runs: Vec<PathBuf>,
        /// Folder with the IDX files the runs trained on (its test set finds dead units).
        #[arg(long)]
        data: PathBuf,
        /// Write the Markdown to this file instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a run's metrics as Markdown, the post's table beside ours (docs/results.md).
    Results {
        /// The run directory (its metrics.csv and config.toml).
        #[arg(long)]
        run: PathBuf,
        /// The Markdown file to write; from a `## Other data sets` heading on, an existing one is kept.
        #[arg(long)]
        out: PathBuf,
        /// The command that made the run, quoted in the page.
        #[arg(long)]
        command: Option<String>,
        /// A paragraph to add under the timings (e.g. that the machine was busy).
        #[arg(long)]
        note: Option<String>,
    },
    /// Check every layer's gradients against central differences.
    Gradcheck {
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
    },
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
    Predict {
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
    },
    /// Draw the first conv layer: an image and its feature maps, or the kernels.
    ///
    /// Feature maps: the test image --index (white on black) then each map of the
    /// first conv2d layer after its ReLU, each scaled to its own range (a constant map
    /// is black), as one grey PNG. --filters: the layer's kernels on one symmetric
    /// range shared by all (blue negative, white zero, red positive), RGB PNG, titled
    /// with the layer's name, each kernel numbered by its output channel, the colour
    /// scale and its end values below. Tiles are enlarged --scale times (nearest
    /// neighbour) with --gap pixels between.
    Visualize {
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
    },
    /// Time training steps layer by layer, and evaluation; print throughput, GFLOP/s and peak memory.
    ///
    /// Warm-up steps first (untimed), then --steps timed training steps, each what
    /// `cnn train` does to a batch; then the evaluation of --eval-images images.
    /// Random data unless --data is given (the timings do not depend on pixel values).
    Bench {
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
    },
    /// Plot a run's loss and accuracy curves, train and test, from its metrics.csv.
    Plot {
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
    },
    /// Write a checkpoint's weights as safetensors, named and shaped as PyTorch's state_dict.
    ///
    /// Tensors `conv1.weight` [out, in, kh, kw], `conv1.bias`, `fc1.weight` [out, in],
    /// `fc1.bias`, ... (the config's layer names), f32. In PyTorch,
    /// `model.load_state_dict(safetensors.torch.load_file(FILE))` loads them into a
    /// module whose submodules are attributes of the same names (conv1, conv2, fc1,
    /// fc2); an nn.Sequential names them 0, 3, 7, 9 instead and needs a renaming.
    Export {
        /// The checkpoint.
        #[arg(long)]
        model: PathBuf,
        /// The .safetensors file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a checkpoint (epoch 0, no optimizer state) from safetensors weights.
    Import {
        /// A TOML file or a built-in config name: the network the weights belong to.
        #[arg(long)]
        config: String,
        /// The .safetensors file (f32 tensors named as `cnn export` writes them).
        #[arg(long)]
        weights: PathBuf,
        /// The checkpoint to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// One self-contained HTML page about a run: curves, the post's table, confusion
    /// matrix, first-layer figures and the most confident mistakes.
    ///
    /// Parts that do not apply are left out, and the page says so: the post's table
    /// unless the test set is MNIST, the first-layer figures when the network has no
    /// conv2d layer.
    Report {
        /// The run directory (metrics.csv, best.ckpt or last.ckpt).
        #[arg(long)]
        run: PathBuf,
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
        /// Folder with the IDX files whose test set the best checkpoint is evaluated on.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Serve a page to draw a digit on and watch the network think: the
    /// prediction, every convolution's and pooling layer's feature maps, the
    /// first layer's kernels.
    ///
    /// The drawing is prepared as `cnn predict` prepares a PNG, and classified
    /// by the network as `cnn eval` runs it; the page only draws. With --data,
    /// the page can also show random test images beside their true label, and
    /// go through the test images the network gets wrong. Listens on this
    /// machine only unless --addr says otherwise; Ctrl-C stops it.
    Serve {
        #[command(flatten)]
        net: ModelArgs,
        /// Folder with the IDX files: test images to show (and the training set,
        /// for a checkpoint that standardises its inputs).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address and port to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
}

/// The trained network a command loads: `--model` and, for a .safetensors
/// file, `--config`.
#[derive(clap::Args)]
struct ModelArgs {
    /// A checkpoint (last.ckpt, best.ckpt), or a .safetensors file with --config.
    #[arg(long)]
    model: PathBuf,
    /// The config (TOML file or built-in name) of a .safetensors model's network
    /// [default: the one `cnn export` stored in the file].
    #[arg(long)]
    config: Option<String>,
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

/// The largest batch `cnn gradcheck --batch` takes.
const MAX_GRADCHECK_BATCH: usize = 64;

/// Colours on a terminal, unless NO_COLOR is set to anything but "" (no-color.org).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Set by the first Ctrl-C during `cnn train`; the training loop stops at the end of its batch.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `cnn train` stopped by Ctrl-C: where it stands and the command that continues it.
#[derive(Debug)]
struct Interrupted {
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
fn resume_command(
    threads: Option<usize>,
    data: &Path,
    out: &Path,
    eval_train: bool,
    checkpoint_every: Option<u64>,
    train_subset: Option<usize>,
) -> String {
    let program = std::env::args().next().unwrap_or_else(|| "cnn".into());
    let mut words = vec![shell_word(&program)];
    if let Some(t) = threads {
        words.push(format!("--threads {t}"));
    }
    words.push("train --resume".into());
    words.push(format!("--data {}", shell_word(&data.to_string_lossy())));
    words.push(format!("--out {}", shell_word(&out.to_string_lossy())));
    if eval_train {
        words.push("--eval-train".into());
    }
    if let Some(k) = checkpoint_every {
        words.push(format!("--checkpoint-every {k}"));
    }
    if let Some(n) = train_subset {
        words.push(format!("--train-subset {n}"));
    }
    words.join(" ")
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

fn run_command(cli: Cli) -> Result<()> {
    let threads = cli.threads;
    match cli.command {
        Command::Train {
            config,
            data,
            out,
            epochs,
            batch,
            seed,
            resume,
            force,
            max_params,
            eval_train,
            checkpoint_every,
            train_subset,
            conv,
        } => {
            let config = match config {
                None if resume => None,
                name => {
                    let name = name.as_deref().unwrap_or("seed");
                    let mut config = TrainConfig::read(name)?;
                    if let Some(n) = max_params {
                        config.training.max_params = n;
                    }
                    if let Some(b) = batch {
                        config.training.batch = b;
                    }
                    if let Some(s) = seed {
                        config.training.seed = s;
                    }
                    if let Some(e) = epochs {
                        config.training.epochs = e;
                    }
                    config.check().with_context(|| format!("config {name}"))?;
                    Some(config)
                }
            };
            if resume && (batch.is_some() || seed.is_some() || max_params.is_some()) {
                anyhow::bail!("--batch, --seed and --max-params cannot change a run being resumed: it would no longer be the same run");
            }
            // The first Ctrl-C asks the loop to stop after its batch; a second quits at once.
            ctrlc::set_handler(|| {
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nCtrl-C: stopping after this batch (press it again to quit at once)");
            })
            .context("installing the Ctrl-C handler")?;
            let resume_with = resume_command(
                threads,
                &data,
                &out,
                eval_train,
                checkpoint_every,
                train_subset,
            );
            let options = TrainOptions {
                config,
                epochs,
                data,
                out,
                resume,
                force,
                eval_train,
                conv,
                checkpoint_every,
                train_subset,
            };
            let mut progress = ProgressBar {
                bar: None,
                hidden: cli.quiet,
            };
            let summary = train(&options, &mut progress)?;
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
                    trainer_cli::post::plural(last.epoch as usize, "epoch"),
                    100.0 * last.test_acc,
                    100.0 * summary.history.iter().map(|r| r.test_acc).fold(0.0, f64::max),
                    summary.train_seconds,
                    summary.wall_seconds
                );
            }
        }
        Command::Eval {
            net: ModelArgs { model, config },
            data,
            train_set,
        } => {
            let ckpt = trainer::safetensors_io::load_checkpoint(&model, config.as_deref())?;
            let net = ckpt
                .network()
                .with_context(|| format!("{}", model.display()))?;
            let sets = DataSets::load(&data)?;
            let norm = ckpt.config.input_norm(&sets.train);
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
        }
        Command::Configs { name: None } => {
            for (name, _) in BUILTIN {
                let c = TrainConfig::load(name)?;
                println!("{name:<10} {}", c.description);
            }
        }
        Command::Configs { name: Some(name) } => {
            let (_, text) = BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .with_context(|| format!("no built-in config `{name}`"))?;
            print!("{text}");
        }
        Command::SeedTable { runs, data, out } => {
            let text = trainer_cli::seed_table::run(&runs, &data)?;
            match out {
                Some(path) => {
                    trainer::checkpoint::write_atomic(&path, text.as_bytes())?;
                    println!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Results {
            run,
            out,
            command,
            note,
        } => {
            trainer_cli::results_md::run(&run, &out, command.as_deref(), note.as_deref())?;
            println!("wrote {}", out.display());
        }
        Command::Gradcheck {
            config,
            batch,
            seed,
            conv,
        } => {
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
            let reports = trainer_cli::gradcheck_cmd::run(&config, batch, seed)?;
            let (table, ok) = trainer_cli::gradcheck_cmd::table(&reports, 1e-2);
            print!("{table}");
            if !ok {
                anyhow::bail!("some gradients disagree with central differences by more than 1e-2");
            }
            println!("all gradients agree with central differences to within 1e-2 (relative)");
        }
        Command::Predict {
            net: ModelArgs { model, config },
            data,
            json,
            no_preprocess,
            images,
        } => trainer_cli::predict::run_any_model(
            &model,
            config.as_deref(),
            data.as_deref(),
            &images,
            json,
            !no_preprocess,
        )?,
        Command::Visualize {
            model,
            data,
            index,
            train_set,
            filters,
            out,
            scale,
            gap,
            cols,
        } => {
            let f = trainer_cli::visualize::run(&trainer_cli::visualize::VisualizeOptions {
                model: &model,
                data: data.as_deref(),
                index,
                train_set,
                filters,
                out: &out,
                scale,
                gap,
                cols,
            })?;
            println!(
                "wrote {} ({}x{} pixels): {}",
                out.display(),
                f.width,
                f.height,
                f.description
            );
        }
        Command::Bench {
            config,
            batch,
            steps,
            warmup,
            data,
            eval_images,
            conv,
        } => {
            let report = trainer_cli::bench::run(&trainer_cli::bench::BenchOptions {
                config,
                batch,
                steps,
                warmup,
                data,
                eval_images,
                conv,
            })?;
            print!("{}", report.table());
        }
        Command::Plot {
            run,
            out,
            width,
            height,
        } => {
            let epochs = trainer_cli::plot::run(&run, &out, width, height)?;
            println!(
                "wrote {} ({width}x{height}): loss and accuracy over {epochs} epoch{}",
                out.display(),
                if epochs == 1 { "" } else { "s" }
            );
        }
        Command::Export { model, out } => {
            let n = trainer::safetensors_io::export(&model, &out)?;
            println!(
                "wrote {}: {n} f32 tensors named as PyTorch's state_dict",
                out.display()
            );
        }
        Command::Import {
            config,
            weights,
            out,
        } => {
            let n = trainer::safetensors_io::import(&config, &weights, &out)?;
            println!(
                "wrote {}: {n} tensors from {} into the network of config `{config}` (epoch 0, no optimizer state)",
                out.display(),
                weights.display()
            );
        }
        Command::Report { run, out, data } => {
            let summary = trainer_cli::report::run(&trainer_cli::report::ReportOptions {
                run,
                out: out.clone(),
                data,
            })?;
            println!("{}", trainer_cli::report::describe(&summary, &out));
        }
        Command::Serve {
            net: ModelArgs { model, config },
            data,
            addr,
        } => trainer_cli::serve::run(&trainer_cli::serve::ServeOptions {
            model,
            config,
            data,
            addr,
        })?,
    }
    Ok(())
}

/// `cnn train`'s progress bar, on stderr when it is a terminal (and not
/// `hidden`, by -q). It has no colours; the Ctrl-C flag is read through it.
struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
    hidden: bool,
}

impl ProgressBar {
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressBar {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: u64, done: u64) {
        use std::io::IsTerminal;
        if self.hidden || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = indicatif::ProgressBar::new(batches);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches, {msg} ({eta} left in this epoch)",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn batch_done(&mut self, done: u64, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(format!("loss {loss:.4}, acc {:.2}%", 100.0 * accuracy));
        }
    }

    fn epoch_trained(&mut self) {
        self.clear();
    }

    fn stop_requested(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
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
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("runs/seed-1"), "runs/seed-1");
        assert_eq!(shell_word("my runs/a"), "'my runs/a'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_threads_flag_says_which_commands_use_it() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("--threads"), "{help}");
        assert!(help.contains("train, eval, bench"), "{help}");
    }
}
