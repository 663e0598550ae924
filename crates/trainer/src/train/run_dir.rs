//! A run's folder: its files, its lock, the record of its data, and the
//! `metrics.csv` written beside its checkpoints.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::checkpoint::EpochRecord;
use crate::files::{read_text_limited, MAX_CONFIG_BYTES, MAX_METRICS_BYTES};
use crate::metrics::{parse_metrics, METRICS_HEADER};

/// Paths inside a run directory.
pub(crate) struct RunDir {
    /// The directory.
    pub(crate) dir: PathBuf,
}

impl RunDir {
    /// Latest checkpoint.
    pub(crate) fn last(&self) -> PathBuf {
        self.dir.join("last.ckpt")
    }
    /// Checkpoint with the best test accuracy so far.
    pub(crate) fn best(&self) -> PathBuf {
        self.dir.join("best.ckpt")
    }
    /// Per-epoch figures.
    pub(crate) fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
    /// Copy of the config.
    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    /// What the run trains on (see [`DataIdentity`]).
    pub(crate) fn dataset(&self) -> PathBuf {
        self.dir.join("dataset.toml")
    }
    /// The results of an earlier run in the directory, which a new run
    /// there would overwrite: its checkpoints, and its `metrics.csv` when it
    /// records a finished epoch (or cannot be read). A run stopped before
    /// its first checkpoint leaves only its config, data record and a
    /// metrics header, which a new run may replace.
    pub(crate) fn earlier_results(&self) -> Vec<PathBuf> {
        let exists = |f: &PathBuf| f.symlink_metadata().is_ok();
        let has_epochs = |f: &PathBuf| {
            read_text_limited(f, MAX_METRICS_BYTES, "a run's metrics").map_or(true, |text| {
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

    /// Refuses to start a new run over an earlier run's results, unless
    /// `force`, in which case it returns them, for [`delete_earlier`] to
    /// delete once the new run has passed its checks.
    pub(crate) fn earlier_results_to_replace(&self, force: bool) -> Result<Vec<PathBuf>> {
        let earlier = self.earlier_results();
        if !earlier.is_empty() && !force {
            let names: Vec<String> = earlier
                .iter()
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            bail!(
                "{} holds an earlier run's files ({}); continue it with --resume, start over with --force (which deletes them), or choose another --out",
                self.dir.display(),
                names.join(", ")
            );
        }
        Ok(earlier)
    }
}

/// Deletes an earlier run's files (`--force`), once the new run is known to start.
pub(crate) fn delete_earlier(files: &[PathBuf]) -> Result<()> {
    for file in files {
        std::fs::remove_file(file)
            .with_context(|| format!("{}: cannot delete (--force)", file.display()))?;
    }
    Ok(())
}

/// What a run trains and tests on, recorded in its `dataset.toml` so that
/// `--resume` can refuse other data: the sets' sizes, the image size, the
/// training subset and the SHA-256 of each set's pixels and labels; for an
/// image folder also the training images per class and the SHA-256 of
/// the file lists.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataIdentity {
    /// Images in the training set used (after `--train-subset`).
    pub(crate) train_images: usize,
    /// Images in the test set.
    pub(crate) test_images: usize,
    /// Rows of each image.
    pub(crate) rows: usize,
    /// Columns of each image.
    pub(crate) cols: usize,
    /// `--train-subset`, when given.
    pub(crate) train_subset: Option<usize>,
    /// SHA-256 of the training set's pixels then labels.
    pub(crate) train_sha256: String,
    /// SHA-256 of the test set's pixels then labels.
    pub(crate) test_sha256: String,
    /// An image folder's: images per class in the training set used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) train_class_counts: Option<Vec<usize>>,
    /// An image folder's: SHA-256 of the training and the test file lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) files_sha256: Option<[String; 2]>,
}

impl DataIdentity {
    /// As `dataset.toml` holds it.
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string(self).expect("a data identity always serialises")
    }

    /// The identity of a run's training set (after the subset) and test set.
    pub(crate) fn of(
        train: &mnist_io::Dataset,
        test: &mnist_io::Dataset,
        subset: Option<usize>,
        files_sha256: Option<&[String; 2]>,
    ) -> Self {
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
            train_class_counts: train.named_classes().map(|_| train.class_counts()),
            files_sha256: files_sha256.cloned(),
        }
    }

    /// The first field in which `other` differs, with both values.
    pub(crate) fn difference(&self, other: &DataIdentity) -> Option<String> {
        let table = |d: &DataIdentity| toml::Value::try_from(d).ok();
        first_difference("", &table(self)?, &table(other)?)
    }
}

/// Timings of finished epochs, kept beside the (timing-free) checkpoint history.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timing {
    pub(crate) train: f64,
    pub(crate) eval: f64,
}

/// `metrics.csv` for these epochs: the header, then one row per epoch.
pub(crate) fn metrics_csv(history: &[EpochRecord], timings: &[Option<Timing>]) -> String {
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
pub(crate) fn read_timings(path: &Path, epochs: usize) -> Vec<Option<Timing>> {
    let rows = read_text_limited(path, MAX_METRICS_BYTES, "a run's metrics")
        .ok()
        .and_then(|text| parse_metrics(&text, path).ok())
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
pub(crate) fn lock_run_dir(dir: &Path) -> Result<std::fs::File> {
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
pub(crate) fn check_same_data(run: &RunDir, now: &DataIdentity) -> Result<()> {
    let path = run.dataset();
    if !path.exists() {
        tracing::warn!(
            "{}: missing; the data cannot be checked against the run's, and is recorded from now on",
            path.display()
        );
        return Ok(());
    }
    let text = read_text_limited(&path, MAX_CONFIG_BYTES, "a run's data record")?;
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

/// The first key under `path` whose value differs between `a` and `b`, as
/// `key: A then, B now` (arrays of another length by their lengths).
pub(crate) fn first_difference(path: &str, a: &toml::Value, b: &toml::Value) -> Option<String> {
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
