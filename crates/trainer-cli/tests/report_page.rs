//! `cnn report`'s page without a browser, on a tiny made-up data set (fast,
//! runs in `cargo test`): what it holds, that it is self-contained, that the
//! mistakes are the most confident ones, and its errors.
//! `tests/report_browser.rs` loads a real one in Chromium.

use std::path::{Path, PathBuf};

use trainer::config::TrainConfig;
use trainer::train::{train, Quiet, TrainOptions};
use trainer_cli::report::{self, ReportOptions};

mod common;

/// The made-up data set in `dir/data` and a 2-epoch run of the built-in
/// config `name` on it in `dir/run`; returns (data, run).
fn tiny_run(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    if !data.exists() {
        common::made_up_mnist(&data, 300, 200);
    }
    let run = dir.join("run");
    let mut config = TrainConfig::load(name).unwrap();
    config.training.epochs = 2;
    config.training.batch = 20;
    train(
        &TrainOptions {
            config: Some(config),
            epochs: None,
            data: data.clone(),
            out: run.clone(),
            resume: false,
            force: false,
            eval_train: false,
            conv: None,
            checkpoint_every: None,
            train_subset: None,
        },
        &mut Quiet,
    )
    .unwrap();
    (data, run)
}

#[test]
fn the_page_holds_every_part_and_nothing_external() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(dir.path(), "seed");

    // The data set is not recorded: --data is required, and said so.
    let out = dir.path().join("report.html");
    let mut opts = ReportOptions {
        run: run.clone(),
        out: out.clone(),
        data: None,
        force: false,
    };
    let err = format!("{:#}", report::run(&opts).unwrap_err());
    assert!(err.contains("--data"), "{err}");

    opts.data = Some(data.clone());
    let summary = report::run(&opts).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(summary.epochs, 2);
    assert_eq!(summary.evaluation.count, 200);
    let mistakes = summary.evaluation.count
        - (0..10)
            .map(|c| summary.evaluation.confusion[c][c] as usize)
            .sum::<usize>();
    assert_eq!(summary.images, 3 + mistakes.min(report::MISTAKES));
    assert_eq!(html.matches("<img ").count(), summary.images);
    assert_eq!(
        html.matches(" src=\"data:image/png;base64,").count(),
        summary.images
    );
    assert_eq!(html.matches(" src=").count(), summary.images);
    for external in ["http://", "https://", "<link", "url(", "<iframe"] {
        assert!(!html.contains(external), "{external}");
    }
    for part in [
        "Loss and accuracy",
        // Not MNIST: the post's table does not apply, and the page says so.
        "The post&#39;s table is left out: its figures are for MNIST, and this run&#39;s test set is not one recognised as MNIST.",
        "Confusion matrix",
        "First convolution layer",
        "most confident mistakes",
        "data-images-ok=\"pending\"",
    ] {
        assert!(html.contains(part), "{part} missing");
    }

    assert!(!html.contains("<td>0.1224</td>") && !html.contains("Figures beside the post"));

    // The mistakes shown are in decreasing confidence.
    let confidences: Vec<f64> = html
        .split("<div class=\"mistake\">")
        .skip(1)
        .map(|m| {
            let end = m.find("%</div>").unwrap();
            let start = m[..end].rfind("<div>").unwrap() + 5;
            m[start..end].parse().unwrap()
        })
        .collect();
    assert_eq!(confidences.len(), mistakes.min(report::MISTAKES));
    assert!(
        confidences.windows(2).all(|w| w[0] >= w[1]),
        "{confidences:?}"
    );

    // A missing run directory names the file.
    opts.run = dir.path().join("nope");
    let err = format!("{:#}", report::run(&opts).unwrap_err());
    assert!(err.contains("nope/metrics.csv"), "{err}");
}

/// A network without a convolution (the built-in `mlp`): the page is written,
/// without the first-layer figures, and says why.
#[test]
fn a_network_without_convolution_gets_a_page_without_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(dir.path(), "mlp");
    let out = dir.path().join("report.html");
    let summary = report::run(&ReportOptions {
        run,
        out: out.clone(),
        data: Some(data),
        force: false,
    })
    .unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    let mistakes = summary.evaluation.count
        - (0..10)
            .map(|c| summary.evaluation.confusion[c][c] as usize)
            .sum::<usize>();
    // The curves and the mistakes; no kernels, no feature maps.
    assert_eq!(summary.images, 1 + mistakes.min(report::MISTAKES));
    assert_eq!(html.matches("<img ").count(), summary.images);
    assert!(
        html.contains("Left out: the mlp network has no conv2d layer, so there are no kernels or feature maps to show."),
        "{html}"
    );
    assert!(!html.contains("first layer kernels") && html.contains("Confusion matrix"));
}
