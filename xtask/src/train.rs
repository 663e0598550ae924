//! `cargo xtask train`: the seed experiment end to end. Fetches MNIST when it
//! is missing, builds `cnn` in release mode, trains (resuming an unfinished
//! run), and writes into the run folder `results.md` (the post's table beside
//! ours) and the figures; `--update-docs` writes them into `docs/` as well.
//!
//! With `--seeds 1-5` it trains the config once per seed instead, each run in
//! its own folder `OUT/seed-N/` (skipping complete runs, resuming unfinished
//! ones), and writes `OUT/seeds.md`, the results as a distribution over the
//! seeds (`cnn seed-table`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Arguments of `cargo xtask train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Epochs to train.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Folder of MNIST IDX files [default: data/mnist, fetched when missing].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Config: a built-in name or a TOML file.
    #[arg(long, default_value = "seed")]
    pub config: String,
    /// Run directory [default: runs/CONFIG-EPOCHS; with --seeds: runs/CONFIG-EPOCHS-seeds,
    /// one run folder per seed inside].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train once per seed, e.g. `1-5` or `1,3,8`, and write the table of the
    /// distribution over them (OUT/seeds.md).
    #[arg(long, value_name = "SEEDS", value_parser = parse_seeds)]
    pub seeds: Option<Seeds>,
    /// Worker threads for `cnn` [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write results.md and the figures into docs/ (files tracked in git),
    /// not only into the run folder.
    #[arg(long)]
    pub update_docs: bool,
    /// A paragraph to add under the timings (e.g. that the machine was busy).
    #[arg(long)]
    pub note: Option<String>,
}

/// The seeds of `--seeds`, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Seeds(pub Vec<u64>);

/// Parses `1-5` (inclusive) or `1,3,8` (or a mix, `1-3,7`) into seeds, in order.
fn parse_seeds(text: &str) -> std::result::Result<Seeds, String> {
    let bad = || format!("`{text}`: expected seeds like 1-5 or 1,3,8");
    let mut seeds = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b || b - a >= 1000 {
                    return Err(format!(
                        "`{part}`: a range from low to high, at most 1000 seeds"
                    ));
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(part.parse().map_err(|_| bad())?),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = seeds.iter().find(|s| !seen.insert(**s)) {
        return Err(format!("`{text}`: seed {twice} is given twice"));
    }
    Ok(Seeds(seeds))
}

/// Epochs recorded in a run's metrics.csv (0 when there is none).
fn epochs_done(metrics: &Path) -> usize {
    std::fs::read_to_string(metrics)
        .map(|t| t.lines().skip(1).filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

/// Runs the experiment.
pub fn run(args: TrainArgs) -> Result<()> {
    let root = crate::workspace_root();
    let data = match args.data.clone() {
        Some(d) => {
            if !crate::has_mnist(&d) {
                bail!("{}: the four MNIST files are not there (fetch them with `cargo xtask fetch-data --out {}`)", d.display(), d.display());
            }
            d
        }
        None => {
            let d = root.join("data/mnist");
            if !crate::has_mnist(&d) {
                eprintln!("MNIST is not in {}: fetching it", d.display());
                crate::fetch::run(crate::fetch::FetchArgs {
                    dataset: "mnist".into(),
                    from: None,
                    out: Some(d.clone()),
                    mirrors: Vec::new(),
                    connect_timeout: 5,
                    attempts: 2,
                })
                .context("fetching MNIST (or pass --data DIR with a local copy)")?;
            }
            d
        }
    };

    let cnn = crate::build_cnn(&root)?;
    if let Some(seeds) = &args.seeds {
        if args.update_docs || args.note.is_some() {
            bail!("--update-docs and --note are for a single run; with --seeds the table goes to OUT/seeds.md");
        }
        return run_seeds(&cnn, &root, &data, &args, &seeds.0);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join(format!("runs/{}-{}", run_name(&args.config), args.epochs)));
    train_run(&cnn, &args, &data, &out, &["--eval-train"]).context("training failed")?;

    for dir in destinations(&out, args.update_docs.then(|| root.join("docs"))) {
        write_results(&cnn, &out, &data, &dir, args.epochs, args.note.as_deref())?;
    }
    if !args.update_docs {
        eprintln!(
            "docs/ is unchanged; `cargo xtask train --update-docs` writes these files there too"
        );
    }
    Ok(())
}

/// `--seeds`: one run per seed in `OUT/seed-N/`, then `OUT/seeds.md`.
fn run_seeds(cnn: &Path, root: &Path, data: &Path, args: &TrainArgs, seeds: &[u64]) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        root.join(format!(
            "runs/{}-{}-seeds",
            run_name(&args.config),
            args.epochs
        ))
    });
    for (i, seed) in seeds.iter().enumerate() {
        let run = out.join(format!("seed-{seed}"));
        eprintln!(
            "seed {seed} ({} of {}): {}",
            i + 1,
            seeds.len(),
            run.display()
        );
        train_run(cnn, args, data, &run, &["--seed", &seed.to_string()])
            .with_context(|| format!("training seed {seed} failed"))?;
    }
    let table = out.join("seeds.md");
    let status = Command::new(cnn)
        .args(["seed-table", "--runs"])
        .arg(&out)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(&table)
        .status()?;
    if !status.success() {
        bail!("writing {} failed", table.display());
    }
    print!("{}", std::fs::read_to_string(&table)?);
    Ok(())
}

/// A run folder's name for a config: a config file by its stem
/// (`docs/configs/seed-he.toml`: `seed-he`), a built-in by its name.
fn run_name(config: &str) -> String {
    match Path::new(config).file_stem() {
        Some(stem) if config.ends_with(".toml") => stem.to_string_lossy().into_owned(),
        _ => config.replace(['/', '.'], "_"),
    }
}

/// Trains the run in `out` up to `args.epochs` epochs with `cnn train
/// --config CONFIG EXTRA...`, continuing it (`--resume`) where it has a
/// checkpoint; a complete run is left as it is.
fn train_run(cnn: &Path, args: &TrainArgs, data: &Path, out: &Path, extra: &[&str]) -> Result<()> {
    let done = epochs_done(&out.join("metrics.csv"));
    if done >= args.epochs {
        eprintln!("{} is complete", out.display());
        return Ok(());
    }
    let mut cmd = Command::new(cnn);
    if let Some(t) = args.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    cmd.args(["train", "--config", &args.config]).args(extra);
    cmd.args(["--epochs", &args.epochs.to_string()]);
    cmd.arg("--data").arg(data).arg("--out").arg(out);
    if out.join("last.ckpt").exists() {
        eprintln!("continuing the run in {} from epoch {done}", out.display());
        cmd.arg("--resume");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {}", cnn.display()))?;
    if !status.success() {
        bail!("cnn train exited with {status}");
    }
    Ok(())
}

/// The folders the results and figures go to: the run's own, and `docs`
/// when given (--update-docs), so that a plain run leaves the checkout as it was.
fn destinations(run: &Path, docs: Option<PathBuf>) -> Vec<PathBuf> {
    std::iter::once(run.to_path_buf()).chain(docs).collect()
}

/// Writes `results.md`, `feature_maps.png`, `filters.png` and `curves.png` of
/// the run `out` into `dir`.
fn write_results(
    cnn: &Path,
    out: &Path,
    data: &Path,
    dir: &Path,
    epochs: usize,
    note: Option<&str>,
) -> Result<()> {
    let results = dir.join("results.md");
    let mut cmd = Command::new(cnn);
    cmd.args(["results", "--run"])
        .arg(out)
        .arg("--out")
        .arg(&results);
    cmd.args(["--command", &format!("cargo xtask train --epochs {epochs}")]);
    if let Some(note) = note {
        cmd.args(["--note", note]);
    }
    if !cmd.status()?.success() {
        bail!("writing {} failed", results.display());
    }

    // The pictures the README shows, from the same run.
    let model = out.join("best.ckpt");
    let figures: [(&str, Vec<std::ffi::OsString>); 3] = [
        (
            "feature_maps.png",
            vec![
                "visualize".into(),
                "--model".into(),
                model.clone().into(),
                "--data".into(),
                data.into(),
                "--index".into(),
                "0".into(),
            ],
        ),
        (
            "filters.png",
            vec![
                "visualize".into(),
                "--model".into(),
                model.clone().into(),
                "--filters".into(),
            ],
        ),
        (
            "curves.png",
            vec!["plot".into(), "--run".into(), out.into()],
        ),
    ];
    for (file, args) in figures {
        let path = dir.join(file);
        let status = Command::new(cnn)
            .args(&args)
            .arg("--out")
            .arg(&path)
            .status()?;
        if !status.success() {
            bail!("making {} failed", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_go_to_the_run_folder_and_to_docs_only_when_asked() {
        let run = Path::new("runs/seed-100");
        assert_eq!(destinations(run, None), [run]);
        assert_eq!(
            destinations(run, Some("docs".into())),
            [run, Path::new("docs")]
        );
    }

    #[test]
    fn seeds_are_ranges_and_lists() {
        assert_eq!(parse_seeds("1-5").unwrap().0, [1, 2, 3, 4, 5]);
        assert_eq!(parse_seeds("1,3,8").unwrap().0, [1, 3, 8]);
        assert_eq!(parse_seeds("1-3, 7").unwrap().0, [1, 2, 3, 7]);
        assert!(parse_seeds("5-1").is_err());
        assert!(parse_seeds("1-3,2").unwrap_err().contains("twice"));
        assert!(parse_seeds("one").is_err());
        assert!(parse_seeds("0-100000").is_err());
    }

    #[test]
    fn docs_are_updated_only_with_the_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            train: TrainArgs,
        }
        assert!(!Cli::parse_from(["train"]).train.update_docs);
        let seeds = Cli::parse_from(["train", "--seeds", "2-4"]).train.seeds;
        assert_eq!(seeds, Some(Seeds(vec![2, 3, 4])));
        assert!(
            Cli::parse_from(["train", "--update-docs"])
                .train
                .update_docs
        );
    }
}
