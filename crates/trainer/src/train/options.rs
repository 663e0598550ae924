//! What a run is asked to do, where it stands, and how it ended.

use std::path::PathBuf;

use crate::checkpoint::EpochRecord;
use crate::config::TrainConfig;

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
    /// Where the run stopped when [`super::Progress::stop_requested`] asked it to
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
