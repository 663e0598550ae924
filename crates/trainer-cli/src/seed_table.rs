//! `cnn seed-table`: one config trained from several seeds, as a distribution.
//!
//! A sweep folder holds one run folder per seed (`seed-1/`, `seed-2/`, ...,
//! as `cargo xtask train --seeds` writes them). For each sweep the table
//! gives, at epoch 1 and every tenth epoch, the mean, standard deviation
//! (n − 1), minimum and maximum test accuracy over the complete runs beside
//! the post's figure, and the fraction of seeds whose final model never
//! predicts some class on the test set (a dead output unit: with a ReLU
//! after the last layer, a unit whose input turned negative for every image
//! stops learning, and its class is lost). A run is complete when its
//! `metrics.csv` has as many epochs as its `config.toml` asks for;
//! unfinished runs are listed and left out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::post::{plural, POST_TABLE};
use trainer::checkpoint::Checkpoint;
use trainer::config::TrainConfig;
use trainer::data::DataSets;
use trainer::eval::evaluate;
use trainer::metrics::{read_metrics, MetricsRow};

/// One complete run of a sweep.
#[derive(Clone, Debug)]
pub(crate) struct SeedRun {
    /// The config's seed.
    pub(crate) seed: u64,
    /// Test accuracy (%) of every epoch, epoch 1 first.
    pub(crate) test_acc: Vec<f64>,
    /// Classes the final model never predicts on the test set.
    pub(crate) dead_classes: Vec<usize>,
}

/// The runs of one sweep folder.
#[derive(Clone, Debug)]
pub(crate) struct Sweep {
    /// The runs' config name (`seed`, `seed-centered`, ...).
    pub(crate) config: String,
    /// Epochs each run trains.
    pub(crate) epochs: usize,
    /// Complete runs, by seed.
    pub(crate) runs: Vec<SeedRun>,
    /// Run folders not (yet) complete, with what they hold.
    pub(crate) unfinished: Vec<String>,
}

/// mean, standard deviation (n − 1; 0 for one value), minimum, maximum.
pub(crate) fn stats(values: &[f64]) -> (f64, f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

/// Reads the run folders under `dir` (each a folder with `metrics.csv` and
/// `config.toml`), evaluating each complete run's `last.ckpt` on `data`'s
/// test set for its dead classes.
pub(crate) fn read_sweep(dir: &Path, data: &DataSets) -> Result<Sweep> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the sweep folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.toml").is_file())
        .collect();
    folders.sort();
    if folders.is_empty() {
        bail!(
            "{}: no run folders (folders holding a config.toml) inside",
            dir.display()
        );
    }
    let mut sweep = Sweep {
        config: String::new(),
        epochs: 0,
        runs: Vec::new(),
        unfinished: Vec::new(),
    };
    for folder in folders {
        let config = TrainConfig::load(&folder.join("config.toml").display().to_string())?;
        let t = &config.training;
        if sweep.config.is_empty() {
            (sweep.config, sweep.epochs) = (config.name.clone(), t.epochs);
        } else if (sweep.config.as_str(), sweep.epochs) != (config.name.as_str(), t.epochs) {
            bail!(
                "{}: config `{}` of {} epochs, but the other runs of {} are `{}` of {} epochs",
                folder.display(),
                config.name,
                t.epochs,
                dir.display(),
                sweep.config,
                sweep.epochs
            );
        }
        let metrics = folder.join("metrics.csv");
        let rows: Vec<MetricsRow> = if metrics.exists() {
            read_metrics(&metrics)?
        } else {
            Vec::new()
        };
        let name = folder
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if rows.len() < t.epochs {
            sweep
                .unfinished
                .push(format!("{name} ({} of {} epochs)", rows.len(), t.epochs));
            continue;
        }
        let ckpt = Checkpoint::load(&folder.join("last.ckpt"))?;
        let net = ckpt.network()?;
        let norm = ckpt.config.normalize(&data.train)?;
        let test = evaluate(&net, &data.test, 500, norm)?;
        let dead_classes = (0..test.confusion.len())
            .filter(|&c| test.confusion.iter().all(|row| row[c] == 0))
            .collect();
        sweep.runs.push(SeedRun {
            seed: t.seed,
            test_acc: rows[..t.epochs].iter().map(|r| r.test_acc).collect(),
            dead_classes,
        });
    }
    sweep.runs.sort_by_key(|r| r.seed);
    Ok(sweep)
}

/// Epoch 1, then every tenth epoch up to `epochs` (and `epochs` itself).
fn table_epochs(epochs: usize) -> Vec<usize> {
    let mut at: Vec<usize> = std::iter::once(1)
        .chain((10..=epochs).step_by(10))
        .collect();
    if at.last() != Some(&epochs) {
        at.push(epochs);
    }
    at
}

/// The post's test accuracy at `epoch` (its epoch 0 row is after one epoch).
fn post_accuracy(epoch: usize) -> Option<f64> {
    let key = if epoch == 1 { 0 } else { epoch as u32 };
    POST_TABLE.iter().find(|row| row.0 == key).map(|row| row.4)
}

/// One sweep as Markdown: the distribution table, then each seed's run.
pub(crate) fn markdown(sweep: &Sweep) -> String {
    let mut s = String::new();
    let n = sweep.runs.len();
    let _ = writeln!(
        s,
        "Config `{}`, {}, {} ({}); test accuracy, %:\n",
        sweep.config,
        plural(sweep.epochs, "epoch"),
        plural(n, "seed"),
        sweep
            .runs
            .iter()
            .map(|r| r.seed.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    s.push_str("| epoch | the post | mean | std | min | max |\n|---|---|---|---|---|---|\n");
    for epoch in table_epochs(sweep.epochs) {
        let values: Vec<f64> = sweep.runs.iter().map(|r| r.test_acc[epoch - 1]).collect();
        let (mean, std, min, max) = stats(&values);
        let post = post_accuracy(epoch).map_or(String::new(), |p| format!("{p:.2}"));
        let _ = writeln!(
            s,
            "| {epoch} | {post} | {mean:.2} | {std:.2} | {min:.2} | {max:.2} |"
        );
    }
    let dead = sweep
        .runs
        .iter()
        .filter(|r| !r.dead_classes.is_empty())
        .count();
    let _ = writeln!(
        s,
        "\nSeeds whose final model never predicts some class on the test set (a dead output unit): {dead} of {n} ({:.0}%).\n",
        100.0 * dead as f64 / n as f64
    );
    s.push_str("| seed | epoch 1 | final | best (epoch) | classes never predicted |\n|---|---|---|---|---|\n");
    for r in &sweep.runs {
        let (best_epoch, best) =
            r.test_acc
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, &a)| if a > b.1 { (i + 1, a) } else { b },
                );
        let dead = if r.dead_classes.is_empty() {
            "none".to_string()
        } else {
            format!("{:?}", r.dead_classes)
        };
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.2} | {best:.2} ({best_epoch}) | {dead} |",
            r.seed,
            r.test_acc[0],
            r.test_acc[r.test_acc.len() - 1]
        );
    }
    if !sweep.unfinished.is_empty() {
        let _ = writeln!(
            s,
            "\nNot complete, left out: {}.",
            sweep.unfinished.join(", ")
        );
    }
    s
}

/// `cnn seed-table`: reads each sweep folder of `runs`, evaluating with the
/// test set of `data`, and returns the Markdown of all of them, a section each.
pub fn run(runs: &[PathBuf], data: &Path) -> Result<String> {
    let sets = DataSets::load(data)?;
    let mut out = String::new();
    for dir in runs {
        let sweep = read_sweep(dir, &sets)?;
        if sweep.runs.is_empty() {
            return Err(anyhow!(
                "{}: no complete run yet ({})",
                dir.display(),
                sweep.unfinished.join(", ")
            ));
        }
        let _ = writeln!(out, "### `{}`\n\n{}", sweep.config, markdown(&sweep));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_mean_sample_std_min_max() {
        let (mean, std, min, max) = stats(&[98.0, 99.0, 97.0]);
        assert_eq!((mean, min, max), (98.0, 97.0, 99.0));
        assert!((std - 1.0).abs() < 1e-12);
        assert_eq!(stats(&[95.5]), (95.5, 0.0, 95.5, 95.5));
    }

    #[test]
    fn the_table_has_epoch_1_every_tenth_and_the_last() {
        assert_eq!(
            table_epochs(100),
            [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
        );
        assert_eq!(table_epochs(25), [1, 10, 20, 25]);
        assert_eq!(post_accuracy(1), Some(95.14));
        assert_eq!(post_accuracy(100), Some(99.10));
        assert_eq!(post_accuracy(25), None);
    }

    #[test]
    fn the_markdown_counts_dead_units_and_gives_each_seed() {
        let run = |seed, last: f64, dead: Vec<usize>| SeedRun {
            seed,
            test_acc: (1..=20)
                .map(|e| if e == 20 { last } else { 90.0 + e as f64 * 0.1 })
                .collect(),
            dead_classes: dead,
        };
        let sweep = Sweep {
            config: "seed".into(),
            epochs: 20,
            runs: vec![
                run(1, 98.0, vec![]),
                run(2, 89.0, vec![3]),
                run(3, 97.0, vec![]),
            ],
            unfinished: vec!["seed-4 (7 of 20 epochs)".into()],
        };
        let md = markdown(&sweep);
        assert!(
            md.contains("| 20 | 98.92 | 94.67 | 4.93 | 89.00 | 98.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| 1 | 95.14 | 90.10 | 0.00 | 90.10 | 90.10 |"),
            "{md}"
        );
        assert!(md.contains("1 of 3 (33%)"), "{md}");
        assert!(
            md.contains("| 2 | 90.10 | 89.00 | 91.90 (19) | [3] |"),
            "{md}"
        );
        assert!(
            md.contains("Not complete, left out: seed-4 (7 of 20 epochs)."),
            "{md}"
        );
    }
}
