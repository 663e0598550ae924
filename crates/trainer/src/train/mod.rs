//! The training loop: epoch after epoch, with checkpoints, metrics and resuming.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`train`]: checks the run, then trains its epochs |
//! | `resume.rs` | where a run starts: a fresh network, or the checkpoint of the run being resumed |
//! | `epoch.rs` | one epoch: a step per batch ([`crate::parallel::DataParallel`]), then evaluation, checkpoint, metrics |
//! | `micro_batches.rs` | refuses, before the first step, micro-batches too small for batch norm |
//! | `run_dir.rs` | the run folder: its files, its lock, the record of its data, `metrics.csv` |
//!
//! The order of epoch `e` is [`mnist_io::epoch_order`]`(n, seed, e)`, a pure
//! function, the step's random streams (dropout masks, augmentation) are
//! keyed by (seed, epoch, batch), and the initial weights come from the
//! config's seed, so a run is fully determined by its config and data; a
//! checkpoint needs only the weights, the optimizer state and the position
//! to continue it exactly.

mod epoch;
mod micro_batches;
mod options;
mod progress;
mod resume;
mod run_dir;

pub use options::{Position, RunSummary, TrainOptions};
pub use progress::{Progress, Quiet};

use std::time::Instant;

use anyhow::{bail, Context, Result};
use mnist_io::{Dataset, Normalize};

use crate::config::{InputScaling, TrainConfig};
use crate::data::{check_fits, DataSets};
use crate::files::write_atomic;
use crate::image_folder::is_image_folder;
use crate::parallel::DataParallel;
use epoch::Run;
use micro_batches::check_micro_batches;
use resume::Start;
use run_dir::{check_same_data, lock_run_dir, metrics_csv, read_timings, DataIdentity, RunDir};

/// Trains a network as `opts` says, writing checkpoints and metrics to the
/// run directory, and telling `progress` how each epoch goes.
pub fn train(opts: &TrainOptions, progress: &mut dyn Progress) -> Result<RunSummary> {
    let wall = Instant::now();
    let dir = RunDir {
        dir: opts.out.clone(),
    };
    // The data first: a wrong --data must not leave an empty run directory behind.
    let data = load_data(opts, &dir)?;
    std::fs::create_dir_all(&dir.dir)
        .with_context(|| format!("{}: cannot create the run directory", dir.dir.display()))?;
    let _lock = lock_run_dir(&dir.dir)?;
    let (earlier, mut start) = begin(opts, &dir)?;
    // Borrow the training set: a clone would hold a second copy of its 47 MB of pixels.
    let subset;
    let train_set = match opts.train_subset {
        Some(n) if n < data.train.len() => {
            subset = data.train.subset(&(0..n).collect::<Vec<_>>());
            &subset
        }
        _ => &data.train,
    };
    let sets = [train_set, &data.test];
    let identity = check_data(opts, &dir, &mut start, sets, data.files_sha256.as_ref())?;
    check_micro_batches(&start.config, &start.net, train_set.len())?;
    // Every check has passed: only now may an earlier run's files go.
    run_dir::delete_earlier(&earlier)?;
    write_atomic(&dir.config(), start.config.to_toml().as_bytes())?;
    write_atomic(&dir.dataset(), identity.to_toml().as_bytes())?;

    let mut run = Run {
        opts,
        timings: read_timings(&dir.metrics(), start.history.len()),
        dir,
        normalize: start.config.normalize(train_set)?,
        config: start.config,
        net: start.net,
        optimizer: start.optimizer,
        epochs_done: start.epochs_done,
        partial: start.partial,
        history: start.history,
        dataset_name: data.name(),
        train_set,
        test_set: &data.test,
        train_seconds: 0.0,
        epoch_seconds: Vec::new(),
    };
    // The metrics file must match the checkpoint: drop rows of epochs it does not hold.
    let metrics = metrics_csv(&run.history, &run.timings);
    write_atomic(&run.dir.metrics(), metrics.as_bytes())?;
    log_start(&run);

    let mut parallel = DataParallel::new(run.config.training.micro_batch);
    while (run.epochs_done as usize) < run.config.training.epochs {
        let started = Instant::now();
        let seen_before = run.partial.seen; // a resumed epoch trains only the rest
        let finished = run.train_batches(&mut parallel, progress)?;
        let train_seconds = started.elapsed().as_secs_f64();
        run.train_seconds += train_seconds;
        if !finished {
            return Ok(RunSummary {
                stopped_at: Some(run.position()),
                history: run.history,
                train_seconds: run.train_seconds,
                wall_seconds: wall.elapsed().as_secs_f64(),
            });
        }
        progress.epoch_trained();
        let trained = run.partial.seen - seen_before;
        run.finish_epoch(started, train_seconds, trained)?;
    }
    Ok(RunSummary {
        history: run.history,
        train_seconds: run.train_seconds,
        wall_seconds: wall.elapsed().as_secs_f64(),
        stopped_at: None,
    })
}

/// The run's data. An image folder is read at the network's input size,
/// which a resumed run given no config finds in its `config.toml`.
fn load_data(opts: &TrainOptions, dir: &RunDir) -> Result<DataSets> {
    let config = match &opts.config {
        Some(c) => c.clone(),
        None if is_image_folder(&opts.data) => TrainConfig::read(&dir.config().to_string_lossy())?,
        None => return DataSets::load(&opts.data),
    };
    DataSets::load_for(&opts.data, &config)
}

/// Where the run starts, and the earlier run's files it replaces (`--force`),
/// which stay until the new run has passed its checks.
fn begin(opts: &TrainOptions, dir: &RunDir) -> Result<(Vec<std::path::PathBuf>, Start)> {
    // Never overwrite an earlier run's results unless told to; with --force
    // they are deleted only once the new run has passed every check `train` makes after this.
    let earlier = if opts.resume {
        Vec::new()
    } else {
        dir.earlier_results_to_replace(opts.force)?
    };
    let mut start = if opts.resume {
        Start::resume(opts, dir)?
    } else {
        Start::fresh(opts)?
    };
    if let Some(e) = opts.epochs {
        start.config.training.epochs = e;
    }
    check_epochs_left(opts, dir, &start)?;
    Ok((earlier, start))
}

/// A resumed run must have epochs left to train.
fn check_epochs_left(opts: &TrainOptions, dir: &RunDir, start: &Start) -> Result<()> {
    let (done, epochs) = (start.epochs_done, start.config.training.epochs);
    if opts.resume && done as usize >= epochs {
        bail!(
            "{}: nothing to do: the run has finished {done} epochs{}; to train further, pass --epochs with more than {done}",
            dir.dir.display(),
            match opts.epochs {
                Some(e) => format!(" and --epochs {e} asks for no more"),
                None => format!(" of {epochs}"),
            }
        );
    }
    Ok(())
}

/// Refuses, before the run starts, everything that would make it
/// meaningless: data the network cannot take, other data than a resumed
/// run's, standardising by a zero deviation. Sets the config's
/// standardisation constants (measured on `train_set`) and returns the
/// data's identity, both for the caller to record once every check passed.
fn check_data(
    opts: &TrainOptions,
    dir: &RunDir,
    start: &mut Start,
    [train_set, test_set]: [&Dataset; 2],
    files_sha256: Option<&[String; 2]>,
) -> Result<DataIdentity> {
    let shown = opts.data.display();
    check_fits(
        &start.net,
        train_set,
        &format!("the training set in {shown}"),
    )?;
    check_fits(&start.net, test_set, &format!("the test set in {shown}"))?;
    let identity = DataIdentity::of(train_set, test_set, opts.train_subset, files_sha256);
    if opts.resume {
        check_same_data(dir, &identity)?;
    }
    let training = &mut start.config.training;
    // An image folder's class names travel with the model, as the constants below do.
    training.class_names = train_set.named_classes().map(<[String]>::to_vec);
    if training.input_scaling == InputScaling::Standardized && training.input_mean_std.is_none() {
        // The constants travel with the model: predict, eval and visualize need no training set.
        let Normalize { mean, std } = train_set.pixel_mean_std();
        if std.is_nan() || std <= 0.0 {
            bail!("the training set in {shown} has the same value in every pixel: input_scaling = \"standardized\" would divide by a standard deviation of 0");
        }
        training.input_mean_std = Some([mean, std]);
    }
    Ok(identity)
}

/// The run's first lines in the log: what trains on what, the network, and
/// where a resumed run continues.
fn log_start(run: &Run) {
    let t = &run.config.training;
    tracing::info!(
        "training `{}` on {} ({} train / {} test images), {} epoch{} of batch {}, {} threads",
        run.config.name,
        run.opts.data.display(),
        run.train_set.len(),
        run.test_set.len(),
        t.epochs,
        if t.epochs == 1 { "" } else { "s" },
        t.batch,
        rayon::current_num_threads()
    );
    tracing::info!("network:\n{}", run.net.summary().trim_end());
    if run.opts.resume {
        tracing::info!("resuming {} at {}", run.dir.dir.display(), run.position());
    }
}
