//! `cnn seed-table` on a sweep folder made by `cnn train --seed N`: the
//! statistics are those of the runs' metrics, an unfinished run is named and
//! left out, and a folder without runs is an error naming it. On a made-up
//! data set, so it always runs.

use trainer::metrics::parse_metrics;

mod common;
use common::cnn;

/// Test accuracy (%) of each epoch of a run folder.
fn test_acc(run: &std::path::Path) -> Vec<f64> {
    let path = run.join("metrics.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    parse_metrics(&text, &path)
        .unwrap()
        .iter()
        .map(|r| r.test_acc)
        .collect()
}

#[test]
fn the_table_is_the_distribution_of_the_complete_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::made_up_mnist(&data, 200, 50);
    let sweep = dir.path().join("sweep");
    let train = |seed: &str, epochs: &str| {
        let out = sweep.join(format!("seed-{seed}"));
        let (ok, _, err) = cnn(&[
            "-q",
            "train",
            "--config",
            "mlp",
            "--seed",
            seed,
            "--epochs",
            epochs,
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        out
    };
    let runs = [train("1", "2"), train("2", "2")];
    // A run stopped early: its config asks for 2 epochs, its metrics hold 1.
    let short = train("3", "1");
    let config = short.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("epochs = 1", "epochs = 2")).unwrap();

    let (ok, table, err) = cnn(&[
        "seed-table",
        "--runs",
        sweep.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(table.contains("### `mlp`"), "{table}");
    assert!(table.contains("2 epochs, 2 seeds (1, 2)"), "{table}");
    assert!(
        table.contains("left out: seed-3 (1 of 2 epochs)"),
        "{table}"
    );
    for epoch in [1, 2] {
        let values: Vec<f64> = runs.iter().map(|r| test_acc(r)[epoch - 1]).collect();
        let mean = (values[0] + values[1]) / 2.0;
        let (min, max) = (values[0].min(values[1]), values[0].max(values[1]));
        let row = format!("| {epoch} | ");
        let line = table.lines().find(|l| l.starts_with(&row)).unwrap();
        assert!(line.contains(&format!("| {mean:.2} | ")), "{line}");
        assert!(
            line.ends_with(&format!("| {min:.2} | {max:.2} |")),
            "{line}"
        );
    }

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, err) = cnn(&[
        "seed-table",
        "--runs",
        empty.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("no run folders") && err.contains("empty"),
        "{err}"
    );
}
