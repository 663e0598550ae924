//! The training loop: epoch after epoch, with checkpoints, metrics and resuming.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`train`]: checks the run, then trains its epochs |
//! | `resume.rs` | where a run starts: a fresh network, or the checkpoint of the run being resumed |
//! | `epoch.rs` | one epoch: a step per batch ([`crate::parallel::DataParallel`]), then evaluation, checkpoint, metrics |
//! | `run_dir.rs` | the run folder: its files, its lock, the record of its data, `metrics.csv` |
//!
//! The order of epoch `e` is [`mnist_io::epoch_order`]`(n, seed, e)`, a pure
//! function, the step's random streams (dropout masks, augmentation) are
//! keyed by (seed, epoch, batch), and the initial weights come from the
//! config's seed, so a run is fully determined by its config and data; a
//! checkpoint needs only the weights, the optimizer state and the position
//! to continue it exactly.

mod epoch;
mod resume;
mod run_dir;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mnist_io::{Dataset, Normalize};

use crate::checkpoint::EpochRecord;
use crate::config::{InputScaling, TrainConfig};
use crate::data::{check_fits, DataSets};
use crate::files::write_atomic;
use crate::parallel::DataParallel;
use epoch::Run;
use resume::Start;
use run_dir::{check_same_data, lock_run_dir, metrics_csv, read_timings, DataIdentity, RunDir};

/// What `cnn train` was asked to do.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The run's config. When resuming, `None` means the checkpoint's own,
    /// and a given config must describe the checkpoint's network.
    pub config: Option<TrainConfig>,
    /// Train until this many epochs are done (default: the config's).
    pub epochs: Option<usize>,
    /// Folder of IDX files.
    pub data: PathBuf,
    /// The run directory.
    pub out: PathBuf,
    /// Continue from `<out>/last.ckpt`.
    pub resume: bool,
    /// Start a new run in a folder that holds an earlier run's files,
    /// deleting them (without it, such a folder is refused).
    pub force: bool,
    /// After each epoch, evaluate the whole training set (the post's train
    /// figures). Recorded in the run's config; a resumed run keeps its own,
    /// and refuses to add it.
    pub eval_train: bool,
    /// The algorithm of every conv layer of a new run. A resumed run keeps
    /// its own, and refuses another: the algorithms round differently.
    pub conv: Option<layers::ConvAlgorithm>,
    /// Also checkpoint every this many batches.
    pub checkpoint_every: Option<u64>,
    /// Train on the first this many training images only (quick runs, tests).
    pub train_subset: Option<usize>,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Every finished epoch's figures.
    pub history: Vec<EpochRecord>,
    /// Seconds spent training (not evaluating) in this process.
    pub train_seconds: f64,
    /// Wall-clock seconds of this process's run.
    pub wall_seconds: f64,
    /// Where the run stopped when [`Progress::stop_requested`] asked it to
    /// (`last.ckpt` holds that point); `None` when every epoch was trained.
    pub stopped_at: Option<Position>,
}

/// A point in a run: what a checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Epochs finished.
    pub epochs_done: u64,
    /// Batches finished in the next epoch.
    pub batches: u64,
    /// Batches in an epoch.
    pub batches_per_epoch: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {}, {} of {} batches done",
            self.epochs_done + 1,
            self.batches,
            self.batches_per_epoch
        )
    }
}

/// What a run reports while an epoch trains (a progress bar, say). Every
/// method does nothing by default; [`Quiet`] is a reporter of nothing.
pub trait Progress {
    /// Epoch `epoch` (1-based) of `epochs` starts, with `batches` batches,
    /// `done` of them already trained (a resumed epoch).
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: u64, _done: u64) {}
    /// `done` batches of the epoch are trained; `loss` and `accuracy` are
    /// the running means over them.
    fn batch_done(&mut self, _done: u64, _loss: f64, _accuracy: f64) {}
    /// The epoch's training is over; evaluation comes next.
    fn epoch_trained(&mut self) {}
    /// Whether the run should stop (the user pressed Ctrl-C, say). Asked
    /// before each batch; on `true`, [`train`] saves `last.ckpt` where the
    /// run stands, mid-epoch, and returns with [`RunSummary::stopped_at`] set.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// Trains a network as `opts` says, writing checkpoints and metrics to the
/// run directory, and telling `progress` how each epoch goes.
pub fn train(opts: &TrainOptions, progress: &mut dyn Progress) -> Result<RunSummary> {
    let wall = Instant::now();
    let dir = RunDir {
        dir: opts.out.clone(),
    };
    // The data first: a wrong --data must not leave an empty run directory behind.
    let data = DataSets::load(&opts.data)?;
    std::fs::create_dir_all(&dir.dir)
        .with_context(|| format!("{}: cannot create the run directory", dir.dir.display()))?;
    let _lock = lock_run_dir(&dir.dir)?;
    let mut start = if opts.resume {
        Start::resume(opts, &dir)?
    } else {
        // Never overwrite an earlier run's results unless told to.
        dir.clear_earlier_results(opts.force)?;
        Start::fresh(opts)?
    };
    if let Some(e) = opts.epochs {
        start.config.training.epochs = e;
    }
    check_epochs_left(opts, &dir, &start)?;
    // Borrow the training set: a clone would hold a second copy of its 47 MB of pixels.
    let subset;
    let train_set = match opts.train_subset {
        Some(n) if n < data.train.len() => {
            subset = data.train.subset(&(0..n).collect::<Vec<_>>());
            &subset
        }
        _ => &data.train,
    };
    check_data(opts, &dir, &mut start, train_set, &data.test)?;

    let mut run = Run {
        opts,
        timings: read_timings(&dir.metrics(), start.history.len()),
        dir,
        normalize: start.config.normalize(train_set),
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
        run.finish_epoch(started, train_seconds)?;
    }
    Ok(RunSummary {
        history: run.history,
        train_seconds: run.train_seconds,
        wall_seconds: wall.elapsed().as_secs_f64(),
        stopped_at: None,
    })
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
/// run's, standardising by a zero deviation. Records the data's identity,
/// the config (with the standardisation constants measured on `train_set`)
/// in the run folder.
fn check_data(
    opts: &TrainOptions,
    dir: &RunDir,
    start: &mut Start,
    train_set: &Dataset,
    test_set: &Dataset,
) -> Result<()> {
    let shown = opts.data.display();
    check_fits(
        &start.net,
        train_set,
        &format!("the training set in {shown}"),
    )?;
    check_fits(&start.net, test_set, &format!("the test set in {shown}"))?;
    let identity = DataIdentity::of(train_set, test_set, opts.train_subset);
    if opts.resume {
        check_same_data(dir, &identity)?;
    }
    let training = &mut start.config.training;
    if training.input_scaling == InputScaling::Standardized && training.input_mean_std.is_none() {
        // The constants travel with the model: predict, eval and visualize need no training set.
        let Normalize { mean, std } = train_set.pixel_mean_std();
        if std.is_nan() || std <= 0.0 {
            bail!("the training set in {shown} has the same value in every pixel: input_scaling = \"standardized\" would divide by a standard deviation of 0");
        }
        training.input_mean_std = Some([mean, std]);
    }
    write_atomic(&dir.config(), start.config.to_toml().as_bytes())?;
    write_atomic(&dir.dataset(), identity.to_toml().as_bytes())?;
    Ok(())
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

/// The time the remaining `epochs_left` epochs will take, from the mean of
/// the epochs timed so far (training, evaluation and checkpoints), in words:
/// `about 6 min left`. `None` when nothing is left or nothing was timed.
pub(crate) fn time_left(epoch_seconds: &[f64], epochs_left: usize) -> Option<String> {
    if epochs_left == 0 || epoch_seconds.is_empty() {
        return None;
    }
    let mean = epoch_seconds.iter().sum::<f64>() / epoch_seconds.len() as f64;
    let left = (mean * epochs_left as f64).round() as u64;
    Some(match left {
        0..90 => format!("about {left} s left"),
        90..5400 => format!("about {} min left", (left + 30) / 60),
        _ => format!("about {:.1} h left", left as f64 / 3600.0),
    })
}

#[cfg(test)]
mod tests {
    use super::time_left;

    #[test]
    fn time_left_is_the_mean_epoch_times_the_epochs_left() {
        assert_eq!(time_left(&[], 10), None);
        assert_eq!(time_left(&[4.0], 0), None);
        assert_eq!(time_left(&[3.0, 5.0], 10).unwrap(), "about 40 s left");
        assert_eq!(time_left(&[4.2], 99).unwrap(), "about 7 min left");
        assert_eq!(time_left(&[60.0], 120).unwrap(), "about 2.0 h left");
    }
}
