//! `cargo xtask train`: the seed experiment end to end. Fetches MNIST when it
//! is missing, builds `cnn` in release mode, trains (resuming an unfinished
//! run), and writes `docs/results.md`: the post's table beside ours.

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
    /// Run directory [default: runs/CONFIG-EPOCHS].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads for `cnn` [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to write the results table [default: docs/results.md].
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// A paragraph to add under the timings (e.g. that the machine was busy).
    #[arg(long)]
    pub note: Option<String>,
}

/// The post's table: epoch, train loss, test loss, train acc %, test acc %.
pub const POST: [(usize, f64, f64, f64, f64); 11] = [
    (0, 0.1224, 0.1495, 96.23, 95.14),
    (10, 0.0341, 0.0400, 98.89, 98.54),
    (20, 0.0149, 0.0355, 99.49, 98.92),
    (30, 0.0117, 0.0342, 99.69, 98.93),
    (40, 0.0075, 0.0351, 99.77, 98.85),
    (50, 0.0049, 0.0365, 99.89, 98.88),
    (60, 0.0037, 0.0343, 99.94, 98.99),
    (70, 0.0029, 0.0322, 99.97, 98.97),
    (80, 0.0024, 0.0322, 99.98, 99.03),
    (90, 0.0023, 0.0313, 99.98, 99.02),
    (100, 0.0022, 0.0307, 99.99, 99.10),
];

/// One row of metrics.csv.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based epoch.
    pub epoch: usize,
    /// Train loss.
    pub train_loss: f64,
    /// Train accuracy, %.
    pub train_acc: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy, %.
    pub test_acc: f64,
    /// Seconds of training.
    pub train_seconds: Option<f64>,
    /// Seconds of evaluation.
    pub eval_seconds: Option<f64>,
}

/// Parses a run's metrics.csv.
pub fn read_metrics(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |k: usize| -> Result<f64> {
            f.get(k).and_then(|v| v.parse().ok()).with_context(|| {
                format!(
                    "{} line {}: column {} is not a number",
                    path.display(),
                    i + 1,
                    k + 1
                )
            })
        };
        let opt = |k: usize| f.get(k).and_then(|v| v.parse().ok());
        rows.push(Row {
            epoch: num(0)? as usize,
            train_loss: num(1)?,
            train_acc: num(2)?,
            test_loss: num(3)?,
            test_acc: num(4)?,
            train_seconds: opt(5),
            eval_seconds: opt(6),
        });
    }
    Ok(rows)
}

/// CPU model and core count of this machine, as /proc/cpuinfo says.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{model}, {cores} cores")
}

/// `docs/results.md` from a run's metrics.
pub fn results_markdown(
    rows: &[Row],
    config: &str,
    threads: usize,
    command: &str,
    note: Option<&str>,
) -> String {
    let mut s = String::new();
    s.push_str("# Results: the seed experiment\n\n");
    s.push_str(&format!(
        "Made by `{command}` (config `{config}`, {} epochs, {threads} threads) on {}.\n\n",
        rows.len(),
        machine()
    ));
    s.push_str(
        "The post numbers its epochs from 0 and lists 0, 10, ..., 100; its epoch 0 is the state \
         after the first pass (95% test accuracy), so it is set beside our epoch 1, and its epoch \
         e beside our epoch e for e >= 10. Train figures are a full pass over the training set \
         after the epoch (`--eval-train`), as the post's are. Accuracies in %.\n\n",
    );
    s.push_str("| epoch | post train loss | ours | post test loss | ours | post train acc | ours | post test acc | ours |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for (e, tl, vl, ta, va) in POST {
        let ours = rows.iter().find(|r| r.epoch == e.max(1));
        let f =
            |v: Option<f64>, d: usize| v.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "| {e} | {tl:.4} | {} | {vl:.4} | {} | {ta:.2} | {} | {va:.2} | {} |\n",
            f(ours.map(|r| r.train_loss), 4),
            f(ours.map(|r| r.test_loss), 4),
            f(ours.map(|r| r.train_acc), 2),
            f(ours.map(|r| r.test_acc), 2),
        ));
    }
    if let Some(best) = rows.iter().max_by(|a, b| a.test_acc.total_cmp(&b.test_acc)) {
        s.push_str(&format!(
            "\nBest test accuracy: {:.2}% at epoch {}.",
            best.test_acc, best.epoch
        ));
        if let Some(last) = rows.last() {
            s.push_str(&format!(
                " Last epoch ({}): {:.2}%.\n",
                last.epoch, last.test_acc
            ));
        }
    }
    let train: Vec<f64> = rows.iter().filter_map(|r| r.train_seconds).collect();
    let eval: f64 = rows.iter().filter_map(|r| r.eval_seconds).sum();
    if !train.is_empty() {
        let mut sorted = train.clone();
        sorted.sort_by(f64::total_cmp);
        let total: f64 = train.iter().sum();
        s.push_str(&format!(
            "\nTime: {:.1} s per training epoch (median of {}), {:.1} s of training and {:.1} s of evaluation in all \
             ({:.1} min; the post: about 6 min per epoch, 10 hours for 100).\n",
            sorted[sorted.len() / 2],
            sorted.len(),
            total,
            eval,
            (total + eval) / 60.0
        ));
    }
    if let Some(note) = note {
        s.push_str(&format!("\n{note}\n"));
    }
    s
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn has_mnist(dir: &Path) -> bool {
    mnist_io::MNIST
        .files
        .iter()
        .all(|f| mnist_io::find_file(dir, f.name).is_ok())
}

/// Runs the experiment.
pub fn run(args: TrainArgs) -> Result<()> {
    let root = crate::workspace_root();
    let data = match args.data {
        Some(d) => {
            if !has_mnist(&d) {
                bail!("{}: the four MNIST files are not there (fetch them with `cargo xtask fetch-data --out {}`)", d.display(), d.display());
            }
            d
        }
        None => {
            let d = root.join("data/mnist");
            if !has_mnist(&d) {
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

    let status = cargo()
        .args(["build", "--release", "--quiet", "-p", "trainer-cli"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("building cnn failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cnn = target.join("release/cnn");
    let out = args.out.unwrap_or_else(|| {
        root.join(format!(
            "runs/{}-{}",
            args.config.replace(['/', '.'], "_"),
            args.epochs
        ))
    });
    let metrics = out.join("metrics.csv");
    let done = read_metrics(&metrics).map(|r| r.len()).unwrap_or(0);

    if done < args.epochs {
        let mut cmd = Command::new(&cnn);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        cmd.args([
            "train",
            "--config",
            &args.config,
            "--eval-train",
            "--epochs",
            &args.epochs.to_string(),
        ]);
        cmd.arg("--data").arg(&data).arg("--out").arg(&out);
        if out.join("last.ckpt").exists() {
            eprintln!("continuing the run in {} from epoch {done}", out.display());
            cmd.arg("--resume");
        }
        let status = cmd
            .status()
            .with_context(|| format!("running {}", cnn.display()))?;
        if !status.success() {
            bail!("training failed");
        }
    }

    let rows = read_metrics(&metrics)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let command = format!("cargo xtask train --epochs {}", args.epochs);
    let md = results_markdown(&rows, &args.config, threads, &command, args.note.as_deref());
    let results = args.results.unwrap_or_else(|| root.join("docs/results.md"));
    if let Some(dir) = results.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = results.with_extension("md.tmp");
    std::fs::write(&tmp, md)
        .and_then(|_| std::fs::rename(&tmp, &results))
        .with_context(|| format!("{}: cannot write", results.display()))?;
    println!(
        "wrote {} ({} epochs; run in {})",
        results.display(),
        rows.len(),
        out.display()
    );

    // The pictures the README shows, from the same run.
    let docs = results
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("docs"));
    let model = out.join("best.ckpt");
    let figures: [(&str, Vec<std::ffi::OsString>); 3] = [
        (
            "feature_maps.png",
            vec![
                "visualize".into(),
                "--model".into(),
                model.clone().into(),
                "--data".into(),
                data.clone().into(),
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
            vec!["plot".into(), "--run".into(), out.clone().into()],
        ),
    ];
    for (file, args) in figures {
        let status = Command::new(&cnn)
            .args(&args)
            .arg("--out")
            .arg(docs.join(file))
            .status()?;
        if !status.success() {
            bail!("making docs/{file} failed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pairs_post_epoch_zero_with_our_first() {
        let rows: Vec<Row> = (1..=10)
            .map(|e| Row {
                epoch: e,
                train_loss: 0.1 / e as f64,
                train_acc: 90.0 + e as f64 / 2.0,
                test_loss: 0.2,
                test_acc: 95.0 + e as f64 / 10.0,
                train_seconds: Some(3.0),
                eval_seconds: Some(0.5),
            })
            .collect();
        let md = results_markdown(
            &rows,
            "seed",
            2,
            "cargo xtask train --epochs 10",
            Some("a note"),
        );
        assert!(
            md.contains(
                "| 0 | 0.1224 | 0.1000 | 0.1495 | 0.2000 | 96.23 | 90.50 | 95.14 | 95.10 |"
            ),
            "{md}"
        );
        assert!(md.contains("| 10 | 0.0341 | 0.0100 |"), "{md}");
        assert!(md.contains("| 20 | 0.0149 | - |"), "{md}");
        assert!(
            md.contains("Best test accuracy: 96.00% at epoch 10"),
            "{md}"
        );
        assert!(md.contains("3.0 s per training epoch"), "{md}");
        assert!(md.ends_with("\na note\n"), "{md}");
    }

    #[test]
    fn metrics_errors_name_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        std::fs::write(&p, "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds\n1,0.1,90,0.2,x,,\n").unwrap();
        let err = format!("{:#}", read_metrics(&p).unwrap_err());
        assert!(err.contains("line 2") && err.contains("column 5"), "{err}");
    }
}
