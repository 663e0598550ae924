//! The training loop: from IDX bytes to weight updates, epoch after epoch.
//!
//! One step, for the batch `idx` of this epoch's order
//! ([`DataParallel::step`], in `step.rs`):
//! 1. the batch is cut into micro-batches; each one, on its own copy of the
//!    network and in parallel: [`DatasetBatch`] turns its u8 pixels into an
//!    n x 1 x 28 x 28 tensor, [`Network::forward_train`] runs the layers in order
//!    and gives the logits, [`layers::Loss::forward_backward`] gives the mean
//!    loss and d(loss)/d(logits), [`Network::backward`] runs the layers in
//!    reverse and leaves each parameter's gradient;
//! 2. the micro-batches' gradients are summed, in order, into `net`'s;
//! 3. [`Optimizer::step`] updates every parameter: `d = μd + (g + λW); W -= ηd`.
//!
//! The order of epoch `e` is [`mnist_io::epoch_order`]`(n, seed, e)`, a pure
//! function, the step's random streams (dropout masks, augmentation) are
//! keyed by (seed, epoch, batch), and the initial weights come from the config's seed, so a run is
//! fully determined by its config and data; a checkpoint needs only the
//! weights, the optimizer state and the position to continue it exactly.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use optim::Optimizer;
use tensor::Rng;

use crate::batch::DatasetBatch;
use crate::checkpoint::{Checkpoint, EpochRecord, PartialEpoch};
use crate::config::{InputScaling, TrainConfig};
use crate::data::{check_fits, DataSets};
use crate::eval::evaluate;
use crate::files::{copy_atomic, write_atomic};
use crate::metrics::METRICS_HEADER;
use crate::parallel::DataParallel;
use crate::step::first_non_finite;

/// The stream keys of a step's dropout masks and of its augmentation.
const DROPOUT_STREAM: u64 = 0;
const AUGMENT_STREAM: u64 = 1;

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

/// Paths inside a run directory.
pub struct RunDir {
    /// The directory.
    pub dir: PathBuf,
}

impl RunDir {
    /// Latest checkpoint.
    pub fn last(&self) -> PathBuf {
        self.dir.join("last.ckpt")
    }
    /// Checkpoint with the best test accuracy so far.
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.ckpt")
    }
    /// Per-epoch figures.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
    /// Copy of the config.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    /// What the run trains on (see [`DataIdentity`]).
    pub fn dataset(&self) -> PathBuf {
        self.dir.join("dataset.toml")
    }
    /// The results of an earlier run in the directory, which a new run
    /// there would overwrite: its checkpoints, and its `metrics.csv` when it
    /// records a finished epoch (or cannot be read). A run stopped before
    /// its first checkpoint leaves only its config, data record and a
    /// metrics header, which a new run may replace.
    pub fn earlier_results(&self) -> Vec<PathBuf> {
        let exists = |f: &PathBuf| f.symlink_metadata().is_ok();
        let has_epochs = |f: &PathBuf| {
            crate::files::read_text_limited(f, crate::files::MAX_METRICS_BYTES, "a run's metrics")
                .map_or(true, |text| {
                    text.lines().skip(1).any(|l| !l.trim().is_empty())
                })
        };
        let mut found: Vec<PathBuf> = [self.last(), self.best()]
            .into_iter()
            .filter(exists)
            .collect();
        found.extend(Some(self.metrics()).filter(|m| exists(m) && has_epochs(m)));
        found
    }
}

/// What a run trains and tests on, recorded in its `dataset.toml` so that
/// `--resume` can refuse other data: the sets' sizes, the image size, the
/// training subset and the SHA-256 of each set's pixels and labels.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataIdentity {
    /// Images in the training set used (after `--train-subset`).
    pub train_images: usize,
    /// Images in the test set.
    pub test_images: usize,
    /// Rows of each image.
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
    /// `--train-subset`, when given.
    pub train_subset: Option<usize>,
    /// SHA-256 of the training set's pixels then labels.
    pub train_sha256: String,
    /// SHA-256 of the test set's pixels then labels.
    pub test_sha256: String,
}

impl DataIdentity {
    /// As `dataset.toml` holds it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a data identity always serialises")
    }

    /// The identity of a run's training set (after the subset) and test set.
    pub fn of(train: &mnist_io::Dataset, test: &mnist_io::Dataset, subset: Option<usize>) -> Self {
        let sha = |ds: &mnist_io::Dataset| {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(ds.pixels());
            h.update(ds.labels());
            h.finalize().iter().map(|b| format!("{b:02x}")).collect()
        };
        DataIdentity {
            train_images: train.len(),
            test_images: test.len(),
            rows: train.rows(),
            cols: train.cols(),
            train_subset: subset,
            train_sha256: sha(train),
            test_sha256: sha(test),
        }
    }

    /// The first field in which `other` differs, with both values.
    pub fn difference(&self, other: &DataIdentity) -> Option<String> {
        let table = |d: &DataIdentity| toml::Value::try_from(d).ok();
        first_difference("", &table(self)?, &table(other)?)
    }
}

/// The first key under `path` whose value differs between `a` and `b`, as
/// `key: A then, B now` (arrays of another length by their lengths).
fn first_difference(path: &str, a: &toml::Value, b: &toml::Value) -> Option<String> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => first_difference(&join(k), u, v),
                (u, v) => Some(format!(
                    "{}: {} then, {} now",
                    join(k),
                    u.map_or("unset".into(), show),
                    v.map_or("unset".into(), show)
                )),
            })
        }
        (toml::Value::Array(x), toml::Value::Array(y)) if x.len() != y.len() => {
            Some(format!("{path}: {} entries then, {} now", x.len(), y.len()))
        }
        (toml::Value::Array(x), toml::Value::Array(y)) => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(&join(&i.to_string()), u, v)),
        _ => (a != b).then(|| format!("{path}: {} then, {} now", show(a), show(b))),
    }
}

/// A value in a difference. The config's numbers are f32: shown as such,
/// 0.01 rather than 0.009999999776482582.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::Float(f) => (*f as f32).to_string(),
        v => v.to_string(),
    }
}

/// The first key (`optimizer.lr`, `network.layers.2.out_channels`) whose
/// value differs between two configs, with both values; `None` when equal.
/// The name and description are not compared: they do not change a run.
pub fn config_difference(was: &TrainConfig, now: &TrainConfig) -> Option<String> {
    let now = TrainConfig {
        name: was.name.clone(),
        description: was.description.clone(),
        ..now.clone()
    };
    let table = |c: &TrainConfig| toml::Value::try_from(c).ok();
    first_difference("", &table(was)?, &table(&now)?)
}

/// Timings of finished epochs, kept beside the (timing-free) checkpoint history.
#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    train: f64,
    eval: f64,
}

fn metrics_csv(history: &[EpochRecord], timings: &[Option<Timing>]) -> String {
    let mut s = format!("{METRICS_HEADER}\n");
    for (i, r) in history.iter().enumerate() {
        let (t, e) = match timings.get(i).copied().flatten() {
            Some(t) => (format!("{:.3}", t.train), format!("{:.3}", t.eval)),
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            s,
            "{},{:.6},{:.4},{:.6},{:.4},{t},{e}",
            r.epoch,
            r.train_loss,
            100.0 * r.train_acc,
            r.test_loss,
            100.0 * r.test_acc
        );
    }
    s
}

/// Timings of earlier epochs from an existing metrics.csv (missing or unreadable: none).
fn read_timings(path: &Path, epochs: usize) -> Vec<Option<Timing>> {
    let rows =
        crate::files::read_text_limited(path, crate::files::MAX_METRICS_BYTES, "a run's metrics")
            .ok()
            .and_then(|text| crate::metrics::parse_metrics(&text, path).ok())
            .unwrap_or_default();
    let mut out = vec![None; epochs];
    for r in rows {
        let epoch = r.epoch as usize;
        if let (1.., Some(train), Some(eval)) = (epoch, r.train_seconds, r.eval_seconds) {
            if epoch <= epochs {
                out[epoch - 1] = Some(Timing { train, eval });
            }
        }
    }
    out
}

/// Takes the run directory's lock, or says who holds it.
fn lock_run_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}: cannot create the lock file", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("{}: another `cnn train` is using this run directory (its lock {} is held); wait for it or choose another --out", dir.display(), path.display())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow!("{}: cannot lock: {e}", path.display()))
        }
    }
}

/// On `--resume`: checks that the data is what the run was trained on, as
/// its `dataset.toml` records (a run from before it was recorded gets one).
fn check_same_data(run: &RunDir, now: &DataIdentity) -> Result<()> {
    let path = run.dataset();
    if !path.exists() {
        tracing::warn!(
            "{}: missing; the data cannot be checked against the run's, and is recorded from now on",
            path.display()
        );
        return Ok(());
    }
    let text = crate::files::read_text_limited(
        &path,
        crate::files::MAX_CONFIG_BYTES,
        "a run's data record",
    )?;
    let was: DataIdentity =
        toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if let Some(diff) = was.difference(now) {
        bail!(
            "{}: the data differs from the run's ({diff}); a resumed run must train on the same data, with the same --train-subset",
            path.display()
        );
    }
    Ok(())
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
    let run = RunDir {
        dir: opts.out.clone(),
    };
    // The data first: a wrong --data must not leave an empty run directory behind.
    let data = DataSets::load(&opts.data)?;
    std::fs::create_dir_all(&run.dir)
        .with_context(|| format!("{}: cannot create the run directory", run.dir.display()))?;
    let _lock = lock_run_dir(&run.dir)?;
    if !opts.resume {
        // Never overwrite an earlier run's results unless told to.
        let earlier = run.earlier_results();
        if !earlier.is_empty() && !opts.force {
            let names: Vec<String> = earlier
                .iter()
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            bail!(
                "{} holds an earlier run's files ({}); continue it with --resume, start over with --force (which deletes them), or choose another --out",
                run.dir.display(),
                names.join(", ")
            );
        }
        for file in earlier {
            std::fs::remove_file(&file)
                .with_context(|| format!("{}: cannot delete (--force)", file.display()))?;
        }
    }

    // Where to start: a fresh network, or the last checkpoint.
    let (mut config, mut net, mut optimizer, mut epochs_done, mut partial, mut history) = if opts
        .resume
    {
        let ckpt = Checkpoint::load(&run.last()).context("--resume needs the run's last.ckpt")?;
        if let Some(conv) = opts.conv {
            crate::config::check_resumed_conv(&ckpt.config.network, conv, &run.last())?;
        }
        if opts.eval_train && !ckpt.config.training.eval_train {
            bail!(
                "--eval-train cannot change a run being resumed: {} was trained without it",
                run.last().display()
            );
        }
        if let Some(given) = &opts.config {
            // Only the epoch count may change; the rest is what makes the run.
            let mut given = given.clone();
            if let Some(conv) = opts.conv {
                given.network.set_conv_algorithm(conv);
            }
            given.training.epochs = ckpt.config.training.epochs;
            given.training.eval_train = ckpt.config.training.eval_train;
            given.training.input_mean_std = ckpt.config.training.input_mean_std;
            if let Some(key) = config_difference(&ckpt.config, &given) {
                bail!(
                    "{}: the config given with --config differs from the run's in {key}; a resumed run may change only its number of epochs",
                    run.last().display(),
                );
            }
        }
        let net = ckpt
            .network()
            .with_context(|| format!("{}", run.last().display()))?;
        let mut optimizer = Optimizer::new(ckpt.config.optimizer.clone());
        optimizer
            .load_state(ckpt.body.optimizer.clone(), net.params())
            .map_err(|e| anyhow!("{}: {e}", run.last().display()))?;
        (
            ckpt.config.clone(),
            net,
            optimizer,
            ckpt.body.epochs_done,
            ckpt.body.partial.clone(),
            ckpt.body.history.clone(),
        )
    } else {
        let mut config = opts
            .config
            .clone()
            .ok_or_else(|| anyhow!("a new run needs a config"))?;
        if let Some(conv) = opts.conv {
            config.network.set_conv_algorithm(conv);
        }
        // How the train figures are made is part of the run, recorded in its config.
        config.training.eval_train |= opts.eval_train;
        let net = config.build_network()?;
        let optimizer = Optimizer::new(config.optimizer.clone());
        (
            config,
            net,
            optimizer,
            0,
            PartialEpoch::default(),
            Vec::new(),
        )
    };
    if let Some(e) = opts.epochs {
        config.training.epochs = e;
    }
    if opts.resume && epochs_done as usize >= config.training.epochs {
        bail!(
            "{}: nothing to do: the run has finished {epochs_done} epochs{}; to train further, pass --epochs with more than {epochs_done}",
            run.dir.display(),
            match opts.epochs {
                Some(e) => format!(" and --epochs {e} asks for no more"),
                None => format!(" of {}", config.training.epochs),
            }
        );
    }
    // Borrow the training set: a clone would hold a second copy of its 47 MB of pixels.
    let subset;
    let train_set = match opts.train_subset {
        Some(n) if n < data.train.len() => {
            subset = data.train.subset(&(0..n).collect::<Vec<_>>());
            &subset
        }
        _ => &data.train,
    };
    // Everything that would make the run meaningless is refused before it starts.
    let dir = opts.data.display();
    check_fits(&net, train_set, &format!("the training set in {dir}"))?;
    check_fits(&net, &data.test, &format!("the test set in {dir}"))?;
    let identity = DataIdentity::of(train_set, &data.test, opts.train_subset);
    if opts.resume {
        check_same_data(&run, &identity)?;
    }
    if config.training.input_scaling == InputScaling::Standardized
        && config.training.input_mean_std.is_none()
    {
        // The constants travel with the model: predict, eval and visualize need no training set.
        let mnist_io::Normalize { mean, std } = train_set.pixel_mean_std();
        if std.is_nan() || std <= 0.0 {
            bail!("the training set in {dir} has the same value in every pixel: input_scaling = \"standardized\" would divide by a standard deviation of 0");
        }
        config.training.input_mean_std = Some([mean, std]);
    }

    let t = config.training.clone();
    write_atomic(&run.config(), config.to_toml().as_bytes())?;
    write_atomic(&run.dataset(), identity.to_toml().as_bytes())?;
    let mut timings = read_timings(&run.metrics(), history.len());
    // The metrics file must match the checkpoint: drop rows of epochs it does not hold.
    write_atomic(&run.metrics(), metrics_csv(&history, &timings).as_bytes())?;

    let dataset_name = data.name();
    let normalize = config.normalize(train_set);
    let classes = net.outputs();
    let loss_fn = config.loss_fn();
    tracing::info!(
        "training `{}` on {} ({} train / {} test images), {} epoch{} of batch {}, {} threads",
        config.name,
        opts.data.display(),
        train_set.len(),
        data.test.len(),
        t.epochs,
        if t.epochs == 1 { "" } else { "s" },
        t.batch,
        rayon::current_num_threads()
    );
    tracing::info!("network:\n{}", net.summary().trim_end());

    let mut parallel = DataParallel::new(t.micro_batch);
    let mut train_seconds_total = 0.0;
    let batches_per_epoch = train_set.len().div_ceil(t.batch) as u64;
    if opts.resume {
        tracing::info!(
            "resuming {} at {}",
            run.dir.display(),
            Position {
                epochs_done,
                batches: partial.batches,
                batches_per_epoch
            }
        );
    }
    let mut epoch_seconds = Vec::new();
    // Writes last.ckpt: the weights, the optimizer, and where the run stands
    // (`done` epochs and `partial`'s batches of the next).
    let last = run.last();
    let save = |net: &Network,
                opt: &Optimizer,
                done: u64,
                partial: &PartialEpoch,
                history: &[EpochRecord]| {
        Checkpoint::capture(
            &config,
            dataset_name.clone(),
            net,
            opt.state(),
            done,
            partial.clone(),
            history.to_vec(),
        )
        .save(&last)?;
        if partial.batches > 0 {
            // Mid-epoch (an end of epoch is logged with its metrics).
            let epoch = done + 1;
            tracing::debug!(
                "wrote {} at batch {} of epoch {epoch}",
                last.display(),
                partial.batches
            );
        }
        anyhow::Ok(())
    };

    while (epochs_done as usize) < t.epochs {
        let epoch = epochs_done;
        let lr = config
            .schedule
            .lr(config.optimizer.lr(), epoch as usize, t.epochs);
        optimizer.set_lr(lr);
        let order = mnist_io::epoch_order(train_set.len(), t.seed, epoch);
        progress.epoch_started(
            epoch as usize + 1,
            t.epochs,
            batches_per_epoch,
            partial.batches,
        );
        let started = Instant::now();
        for (_, indices) in mnist_io::batches(&order, t.batch).skip(partial.batches as usize) {
            if progress.stop_requested() {
                save(&net, &optimizer, epochs_done, &partial, &history)?;
                return Ok(RunSummary {
                    history,
                    train_seconds: train_seconds_total + started.elapsed().as_secs_f64(),
                    wall_seconds: wall.elapsed().as_secs_f64(),
                    stopped_at: Some(Position {
                        epochs_done,
                        batches: partial.batches,
                        batches_per_epoch,
                    }),
                });
            }
            // The step's random streams (dropout masks, augmentation), keyed by
            // the run's seed and the step's place: a resumed run draws the same.
            let key =
                |stream: u64| Rng::from_keys(&[t.seed, epoch, partial.batches, stream]).next_u64();
            let batch = DatasetBatch {
                data: train_set,
                indices,
                normalize,
                augment: t.augment.as_ref().map(|a| (a, key(AUGMENT_STREAM))),
            };
            let r = parallel
                .step(
                    &mut net,
                    &loss_fn,
                    &batch,
                    key(DROPOUT_STREAM),
                    &mut optimizer,
                )
                .map_err(|e| anyhow!("{e}"))?;
            let b = partial.batches + 1;
            let why = if !r.loss.is_finite() {
                Some(format!("the loss became {}", r.loss))
            } else {
                first_non_finite(&net)
                    .map(|name| format!("parameter `{name}` became NaN or infinite"))
            };
            if let Some(why) = why {
                let kept = if run.last().exists() {
                    format!(
                        "The last good checkpoint, {}, is intact",
                        run.last().display()
                    )
                } else {
                    "No checkpoint was written yet (a lower lr may help)".to_string()
                };
                bail!("epoch {} batch {b}: {why}; stopping. {kept}", epoch + 1);
            }
            partial.batches = b;
            partial.loss_sum += r.loss * indices.len() as f64;
            partial.correct += r.correct as u64;
            partial.seen += indices.len() as u64;
            progress.batch_done(
                partial.batches,
                partial.loss_sum / partial.seen as f64,
                partial.correct as f64 / partial.seen as f64,
            );
            let checkpoint_due = opts
                .checkpoint_every
                .is_some_and(|k| k > 0 && partial.batches % k == 0);
            if checkpoint_due && partial.batches < batches_per_epoch {
                save(&net, &optimizer, epochs_done, &partial, &history)?;
            }
        }
        let train_seconds = started.elapsed().as_secs_f64();
        train_seconds_total += train_seconds;
        progress.epoch_trained();

        let eval_started = Instant::now();
        let test = evaluate(&net, &data.test, t.batch, normalize)?;
        let (train_loss, train_acc) = if t.eval_train {
            let e = evaluate(&net, train_set, t.batch, normalize)?;
            (e.loss, e.accuracy)
        } else {
            (
                partial.loss_sum / partial.seen.max(1) as f64,
                partial.correct as f64 / partial.seen.max(1) as f64,
            )
        };
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        let never: Vec<usize> = (0..classes)
            .filter(|&c| test.confusion.iter().all(|row| row[c] == 0))
            .collect();
        if !never.is_empty() {
            tracing::warn!(
                "classes {never:?} were never predicted on the test set: their output units are probably dead \
                 (a ReLU after the last layer can kill them; see the notes in configs/seed.toml)"
            );
        }
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            train_acc,
            test_loss: test.loss,
            test_acc: test.accuracy,
        };
        let best = history.iter().all(|r| record.test_acc > r.test_acc);
        history.push(record.clone());
        timings.resize(history.len() - 1, None);
        timings.push(Some(Timing {
            train: train_seconds,
            eval: eval_seconds,
        }));
        epochs_done += 1;
        partial = PartialEpoch::default();

        // Checkpoint first, then the metrics that describe it: after a crash
        // between the two, resuming rewrites the metrics from the checkpoint.
        save(&net, &optimizer, epochs_done, &partial, &history)?;
        if best {
            copy_atomic(&run.last(), &run.best())?;
        }
        write_atomic(&run.metrics(), metrics_csv(&history, &timings).as_bytes())?;
        tracing::debug!(
            "wrote {} and {}",
            run.last().display(),
            run.metrics().display()
        );
        epoch_seconds.push(started.elapsed().as_secs_f64());
        tracing::info!(
            "epoch {}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | lr {lr:.4} | {:.1} s, {:.0} img/s{}{}",
            record.epoch,
            t.epochs,
            record.train_loss,
            100.0 * record.train_acc,
            record.test_loss,
            100.0 * record.test_acc,
            train_seconds,
            train_set.len() as f64 / train_seconds,
            if best { " (best)" } else { "" },
            time_left(&epoch_seconds, t.epochs - epochs_done as usize)
                .map(|s| format!(" | {s}"))
                .unwrap_or_default()
        );
    }
    Ok(RunSummary {
        history,
        train_seconds: train_seconds_total,
        wall_seconds: wall.elapsed().as_secs_f64(),
        stopped_at: None,
    })
}

/// The time the remaining `epochs_left` epochs will take, from the mean of
/// the epochs timed so far (training, evaluation and checkpoints), in words:
/// `about 6 min left`. `None` when nothing is left or nothing was timed.
fn time_left(epoch_seconds: &[f64], epochs_left: usize) -> Option<String> {
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
