//! `cnn results`: a run's `metrics.csv` as Markdown, the post's table beside
//! ours, with the time per epoch and the machine. `cargo xtask train` calls
//! it to write `docs/results.md`.

use std::path::Path;

use anyhow::Result;

use crate::post::{plural, train_figures, POST_TABLE};
use trainer::config::TrainConfig;
use trainer::files::write_atomic;
use trainer::metrics::{read_metrics, MetricsRow};

/// A heading after which an existing results file is kept as it is when the
/// table is rewritten (for figures of other runs, e.g. other data sets).
pub(crate) const KEEP_FROM: &str = "\n## Other data sets";

/// CPU model and core count of this machine, as /proc/cpuinfo says.
pub(crate) fn machine() -> String {
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

/// The Markdown page for a run of `config` (its name and whether it was
/// trained with `--eval-train`). `command` is what made the run, when known,
/// `note` an optional closing paragraph.
pub(crate) fn markdown(
    rows: &[MetricsRow],
    config: &TrainConfig,
    command: Option<&str>,
    machine: &str,
    note: Option<&str>,
) -> String {
    let name = &config.name;
    let mut s = if name == "seed" {
        String::from("# Results: the seed experiment\n\n")
    } else {
        format!("# Results: config `{name}`\n\n")
    };
    let epochs = plural(rows.len(), "epoch");
    // One run is one draw of the random seed: say which.
    let seed = config.training.seed;
    match command {
        Some(command) => s.push_str(&format!(
            "Made by `{command}` (config `{name}`, {epochs}, seed {seed}: one draw) on {machine}.\n\n"
        )),
        None => s.push_str(&format!(
            "Config `{name}`, {epochs}, seed {seed} (one draw), on {machine}.\n\n"
        )),
    }
    s.push_str(
        "The post numbers its epochs from 0 and lists 0, 10, ..., 100; its epoch 0 is the state \
         after the first pass (95% test accuracy), so it is set beside our epoch 1, and its epoch \
         e beside our epoch e for e >= 10. ",
    );
    s.push_str(train_figures(config.training.eval_train));
    s.push_str(" Accuracies in %.\n\n");
    s.push_str("| epoch | post train loss | ours | post test loss | ours | post train acc | ours | post test acc | ours |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for (e, tl, vl, ta, va) in POST_TABLE {
        let ours = rows.iter().find(|r| r.epoch == f64::from(e.max(1)));
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
    let mut train: Vec<f64> = rows.iter().filter_map(|r| r.train_seconds).collect();
    let eval: f64 = rows.iter().filter_map(|r| r.eval_seconds).sum();
    if !train.is_empty() {
        let total: f64 = train.iter().sum();
        train.sort_by(f64::total_cmp);
        s.push_str(&format!(
            "\nTime: {:.1} s per training epoch (median of {}), {:.1} s of training and {:.1} s of evaluation in all \
             ({:.1} min; the post: about 6 min per epoch, 10 hours for 100).\n",
            train[train.len() / 2],
            train.len(),
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

/// Writes the page for the run in `run` to `out`, keeping anything an existing
/// `out` holds from the `## Other data sets` heading on.
pub fn run(
    run: &Path,
    out: &Path,
    command: Option<&str>,
    note: Option<&str>,
    force: bool,
) -> Result<()> {
    let metrics = run.join("metrics.csv");
    let rows = read_metrics(&metrics)?;
    if rows.is_empty() {
        anyhow::bail!(
            "{}: no row holds figures a table can show",
            metrics.display()
        );
    }
    let config_path = run.join("config.toml");
    let config_text = trainer::files::read_text_limited(
        &config_path,
        trainer::files::MAX_CONFIG_BYTES,
        "a config",
    )?;
    let config = TrainConfig::from_toml(&config_text, &config_path.display().to_string())?;
    let mut page = markdown(&rows, &config, command, &machine(), note);
    trainer::files::check_output(out, &[&metrics, &config_path], force)?;
    if out.exists() {
        let old = trainer::files::read_text_limited(
            out,
            trainer::files::MAX_PAGE_BYTES,
            "a Markdown page",
        );
        match old {
            Ok(old) => {
                if let Some(i) = old.find(KEEP_FROM) {
                    page.push_str(&old[i..]);
                }
            }
            // Told to replace a file that is no page of ours: nothing to keep.
            Err(_) if force => {}
            Err(e) => return Err(e),
        }
    }
    write_atomic(out, page.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<MetricsRow> {
        (1..=n)
            .map(|e| MetricsRow {
                epoch: e as f64,
                train_loss: 0.1 / e as f64,
                train_acc: 90.0 + e as f64 / 2.0,
                test_loss: 0.2,
                test_acc: 95.0 + e as f64 / 10.0,
                train_seconds: Some(3.0),
                eval_seconds: Some(0.5),
            })
            .collect()
    }

    #[test]
    fn table_pairs_post_epoch_zero_with_our_first() {
        let mut config = TrainConfig::load("seed").unwrap();
        config.training.eval_train = true;
        let md = markdown(
            &rows(10),
            &config,
            Some("cargo xtask train --epochs 10"),
            "a CPU",
            Some("a note"),
        );
        assert!(md.starts_with("# Results: the seed experiment\n\nMade by `cargo xtask train --epochs 10` (config `seed`, 10 epochs, seed 5: one draw) on a CPU."), "{md}");
        assert!(
            md.contains("a full pass over the training set after each epoch (`--eval-train`)"),
            "{md}"
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
    fn rewriting_keeps_other_data_sets() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let mut csv = String::from(trainer::metrics::METRICS_HEADER);
        csv.push_str("\n1,0.1,96.0,0.2,95.5,9.0,1.0\n");
        std::fs::write(run.join("metrics.csv"), csv).unwrap();
        let config = TrainConfig::load("mlp").unwrap();
        std::fs::write(run.join("config.toml"), config.to_toml()).unwrap();
        let out = dir.path().join("results.md");
        std::fs::write(&out, "old table\n\n## Other data sets\n\nFashion: 79%\n").unwrap();
        super::run(&run, &out, None, None, false).unwrap();
        let page = std::fs::read_to_string(&out).unwrap();
        // A run trained without --eval-train is described as such.
        assert!(
            page.starts_with(
                "# Results: config `mlp`\n\nConfig `mlp`, 1 epoch, seed 1 (one draw), on "
            ),
            "{page}"
        );
        assert!(
            page.contains("running means over each epoch's batches")
                && !page.contains("a full pass"),
            "{page}"
        );
        assert!(
            page.contains("| 0 | 0.1224 | 0.1000 |") && !page.contains("old table"),
            "{page}"
        );
        assert!(
            page.ends_with("## Other data sets\n\nFashion: 79%\n"),
            "{page}"
        );
    }
}
