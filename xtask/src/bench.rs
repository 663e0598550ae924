//! `cargo xtask bench [--vs-pytorch]`: `cnn bench` on the seed network and,
//! with `--vs-pytorch`, the same network's training epoch in PyTorch
//! (`xtask/pytorch/seed_net.py --train-only`) on the same number of threads.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Worker threads, for both programs.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed training steps of `cnn bench`.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Config of `cnn bench` (PyTorch's script is the seed network only).
    #[arg(long, default_value = "seed")]
    config: String,
    /// MNIST folder [default: data/mnist; `cnn bench` uses random images when it is missing].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Also time one training epoch of the same network in PyTorch, if `import torch` works.
    #[arg(long)]
    vs_pytorch: bool,
}

/// The `s per 60,000-image epoch` figure of `cnn bench`'s output.
fn epoch_seconds(report: &str) -> Option<f64> {
    let line = report.lines().find(|l| l.starts_with("training:"))?;
    let before = line.split(" s per 60,000-image epoch").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

/// Runs the task.
pub fn run(args: BenchArgs) -> Result<()> {
    let root = crate::workspace_root();
    let cnn = crate::build_cnn(&root)?;
    let data = args.data.unwrap_or_else(|| root.join("data/mnist"));
    let have_data = crate::has_mnist(&data);

    let mut cmd = Command::new(cnn);
    cmd.args(["--threads", &args.threads.to_string(), "bench"])
        .args(["--config", &args.config, "--steps", &args.steps.to_string()]);
    if have_data {
        cmd.arg("--data").arg(&data);
    }
    println!("== cnn bench ({} threads) ==", args.threads);
    let out = cmd
        .current_dir(&root)
        .output()
        .context("running cnn bench")?;
    let report = String::from_utf8_lossy(&out.stdout);
    print!("{report}");
    if !out.status.success() {
        bail!("cnn bench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ours = epoch_seconds(&report);

    if !args.vs_pytorch {
        return Ok(());
    }
    let Some(theirs) = pytorch_epoch(&root, &data, have_data, args.threads)? else {
        return Ok(());
    };
    println!(
        "\n== one 60,000-image training epoch, {} threads ==",
        args.threads
    );
    match ours {
        Some(s) => println!("cnn (projected from the median step): {s:.2} s"),
        None => println!("cnn: no epoch figure in its output"),
    }
    match theirs {
        Some(s) => println!("PyTorch (measured):                   {s:.2} s"),
        None => println!("PyTorch: no train_seconds in its output"),
    }
    if let (Some(a), Some(b)) = (ours, theirs) {
        println!("ratio cnn / PyTorch: {:.2}", a / b);
    }
    Ok(())
}

/// One training epoch of the same network in PyTorch (`seed_net.py`), on
/// `threads` threads: its `train_seconds` if the script gave one, `None`
/// (said on the output) when PyTorch is not installed.
fn pytorch_epoch(
    root: &Path,
    data: &Path,
    have_data: bool,
    threads: usize,
) -> Result<Option<Option<f64>>> {
    let torch = Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !torch {
        println!("\nPyTorch: `python3 -c 'import torch'` fails here; skipped.");
        return Ok(None);
    }
    if !have_data {
        bail!(
            "the PyTorch script needs MNIST in {} (cargo xtask fetch-data, or --data DIR)",
            data.display()
        );
    }
    println!(
        "\n== PyTorch: xtask/pytorch/seed_net.py --train-only --epochs 1 --threads {} ==",
        threads
    );
    let out = Command::new("python3")
        .arg(root.join("xtask/pytorch/seed_net.py"))
        .args(["--train-only", "--epochs", "1"])
        .args(["--threads", &threads.to_string()])
        .arg("--data")
        .arg(data)
        .current_dir(root)
        .output()
        .context("running python3")?;
    let csv = String::from_utf8_lossy(&out.stdout);
    print!("{csv}");
    if !out.status.success() {
        bail!(
            "seed_net.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds
    Ok(Some(
        csv.lines()
            .nth(1)
            .and_then(|l| l.split(',').nth(5))
            .and_then(|v| v.parse().ok()),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_epoch_figure() {
        let report = "step: median 9.0 ms\ntraining: 11111 images/s, 5.40 s per 60,000-image epoch, 31.1 GFLOP/s\n";
        assert_eq!(super::epoch_seconds(report), Some(5.4));
    }
}
