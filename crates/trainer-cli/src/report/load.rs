//! What the report is about, loaded and checked before any HTML is written:
//! the run's metrics, its best checkpoint, the data set, and the checkpoint's
//! evaluation on the test set.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use trainer::checkpoint::Checkpoint;
use trainer::data::{class_names, DataSets};
use trainer::eval::Evaluation;
use trainer::metrics::{read_metrics, MetricsRow};

use super::mistakes::{evaluate_with_mistakes, Mistake};
use crate::plot;

/// A run, its checkpoint and data, and the checkpoint's figures on the test set.
pub(crate) struct RunData {
    /// The run directory.
    pub(crate) run: PathBuf,
    /// Its metrics.csv.
    pub(crate) metrics_path: PathBuf,
    /// metrics.csv's rows.
    pub(crate) rows: Vec<MetricsRow>,
    /// best.ckpt, else last.ckpt.
    pub(crate) ckpt_path: PathBuf,
    /// The checkpoint.
    pub(crate) ckpt: Checkpoint,
    /// The folder of IDX files.
    pub(crate) data: PathBuf,
    /// The data sets in it.
    pub(crate) sets: DataSets,
    /// The checkpoint's network.
    pub(crate) net: Network,
    /// The checkpoint's input standardisation.
    pub(crate) norm: Option<mnist_io::Normalize>,
    /// A name for each output class.
    pub(crate) names: Vec<String>,
    /// The checkpoint's figures on the test set.
    pub(crate) evaluation: Evaluation,
    /// Its mistakes there, most confident first.
    pub(crate) mistakes: Vec<Mistake>,
    /// The data set's name, or `unknown data set`.
    pub(crate) dataset: String,
    /// The page's title: the run and the data set.
    pub(crate) title: String,
}

/// Loads everything the page shows; every error comes before the page is begun.
pub(crate) fn load(run: &Path, data: Option<&Path>) -> Result<RunData> {
    let metrics_path = run.join("metrics.csv");
    let rows = read_metrics(&metrics_path)?;
    let ckpt_path = checkpoint_path(run)?;
    let ckpt = Checkpoint::load(&ckpt_path)?;
    let data = data_dir(data, &ckpt)?;
    let sets = load_sets(&data, &ckpt, &ckpt_path)?;
    let mut net = ckpt
        .network()
        .with_context(|| format!("{}", ckpt_path.display()))?;
    trainer::data::check_fits(
        &net,
        &sets.test,
        &format!("the test set in {}", data.display()),
    )?;
    let norm = ckpt.config.normalize(&sets.train)?;
    let names = output_names(&sets, net.outputs());
    let (evaluation, mistakes) = evaluate_with_mistakes(&mut net, &sets.test, 100, norm)?;
    let dataset = sets.name().unwrap_or_else(|| "unknown data set".into());
    let title = format!("{} on {dataset}", run_title(run, &ckpt));
    Ok(RunData {
        run: run.to_path_buf(),
        metrics_path,
        rows,
        ckpt_path,
        ckpt,
        data,
        sets,
        net,
        norm,
        names,
        evaluation,
        mistakes,
        dataset,
        title,
    })
}

/// The run's best.ckpt, else its last.ckpt.
fn checkpoint_path(run: &Path) -> Result<PathBuf> {
    [run.join("best.ckpt"), run.join("last.ckpt")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow!(
                "{}: no best.ckpt or last.ckpt in the run directory",
                run.display()
            )
        })
}

/// `--data`, required: the error says what the checkpoint was trained on.
fn data_dir(data: Option<&Path>, ckpt: &Checkpoint) -> Result<PathBuf> {
    data.map(Path::to_path_buf).ok_or_else(|| {
        anyhow!(
            "the run does not record where its data is{}: pass --data <dir> with the IDX files",
            ckpt.body
                .dataset
                .as_deref()
                .map(|d| format!(" (it was trained on {d})"))
                .unwrap_or_default()
        )
    })
}

/// The data sets in `data`, refused when they are not the ones the checkpoint was trained on.
fn load_sets(data: &Path, ckpt: &Checkpoint, ckpt_path: &Path) -> Result<DataSets> {
    // An image folder at the network's input size (resized as its config
    // says); a network of colour images is refused by check_fits, as the
    // report draws grey images.
    let sets = match trainer::config::image_input(&ckpt.config.network) {
        Ok([1, _, _]) => DataSets::load_for(data, &ckpt.config)?,
        _ => DataSets::load(data)?,
    };
    if let (Some(want), Some(have)) = (ckpt.body.dataset.as_deref(), sets.name()) {
        if want != have {
            bail!(
                "{}: the checkpoint was trained on {want}, but {} holds {have}",
                ckpt_path.display(),
                data.display()
            );
        }
    }
    Ok(sets)
}

/// The test set's class names for each of `classes` outputs (the number where it has none).
fn output_names(sets: &DataSets, classes: usize) -> Vec<String> {
    let names = class_names(&sets.test);
    (0..classes)
        .map(|c| names.get(c).cloned().unwrap_or_else(|| c.to_string()))
        .collect()
}

/// The config's name and the run folder's, as `cnn plot` titles them.
fn run_title(run: &Path, ckpt: &Checkpoint) -> String {
    let dir_name = run
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run.display().to_string());
    plot::run_title(&ckpt.config.name, &dir_name)
}
