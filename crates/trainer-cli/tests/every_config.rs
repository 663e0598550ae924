//! Every command of `cnn` on every built-in config, as a user runs them: a
//! tiny run (one epoch on 500 real MNIST images), then eval, predict,
//! visualize, plot, report, export and import, results, gradcheck and bench.
//! MNIST is found as every test finds it (`$MNIST_DIR`, else `data/mnist`);
//! without it these tests show as ignored.

use std::path::Path;

use trainer::config::BUILTIN;
use trainer_cli::image_io::GreyImage;

mod common;
use common::cnn;

/// Runs `cnn ARGS` and fails the test, showing its output, unless it succeeds; returns stdout.
fn ok(args: &[&str]) -> String {
    let (success, stdout, stderr) = cnn(args);
    assert!(
        success,
        "cnn {} failed:\n{stdout}\n{stderr}",
        args.join(" ")
    );
    stdout
}

/// The line of `cnn eval` with the loss and accuracy.
fn accuracy(eval_output: &str) -> String {
    eval_output
        .lines()
        .find(|l| l.starts_with("examples"))
        .unwrap_or_else(|| panic!("no accuracy line in:\n{eval_output}"))
        .to_string()
}

fn every_command(name: &str) {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let run = p("run");
    let said = ok(&[
        "train",
        "--config",
        name,
        "--data",
        d,
        "--out",
        &run,
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--batch",
        "50",
    ]);
    assert!(said.contains("done: 1 epoch,"), "{said}");
    for f in ["metrics.csv", "config.toml", "last.ckpt", "best.ckpt"] {
        assert!(Path::new(&run).join(f).exists(), "{f} missing");
    }
    let model = format!("{run}/best.ckpt");

    let evaluated = ok(&["eval", "--model", &model, "--data", d]);
    let acc = accuracy(&evaluated);
    // The test files alone are enough: eval reads the training files only for
    // a checkpoint that standardises with them without recording how.
    let test_only = dir.path().join("test-only");
    std::fs::create_dir_all(&test_only).unwrap();
    for f in std::fs::read_dir(&data).unwrap().map(Result::unwrap) {
        if f.file_name().to_string_lossy().starts_with("t10k") {
            std::fs::copy(f.path(), test_only.join(f.file_name())).unwrap();
        }
    }
    let alone = ok(&[
        "eval",
        "--model",
        &model,
        "--data",
        test_only.to_str().unwrap(),
    ]);
    assert_eq!(accuracy(&alone), acc, "{alone}");

    // A test digit as a PNG; the improved config standardises inputs, so it needs --data.
    let test = mnist_io::Dataset::load(&data, mnist_io::Split::Test).unwrap();
    let digit = p("digit.png");
    let grey = GreyImage {
        width: 28,
        height: 28,
        pixels: test.image(0).to_vec(),
    };
    std::fs::write(&digit, grey.to_png().unwrap()).unwrap();
    let predicted = ok(&["predict", "--model", &model, "--data", d, &digit]);
    assert_eq!(predicted.matches('%').count(), 11, "{predicted}");

    // The first conv layer's pictures, or a clear refusal for a network without one.
    let maps = p("maps.png");
    let filters = p("filters.png");
    let has_conv = BUILTIN
        .iter()
        .any(|(n, text)| *n == name && text.contains("kind = \"conv2d\""));
    let (drew, _, why) = cnn(&["visualize", "--model", &model, "--data", d, "--out", &maps]);
    let (drew_filters, _, why_filters) = cnn(&[
        "visualize",
        "--model",
        &model,
        "--filters",
        "--out",
        &filters,
    ]);
    if has_conv {
        assert!(drew && drew_filters, "{why}\n{why_filters}");
        assert!(Path::new(&maps).exists() && Path::new(&filters).exists());
    } else {
        for why in [why, why_filters] {
            assert!(
                why.contains("has no conv2d layer") && why.contains(&model),
                "{why}"
            );
        }
        assert!(!Path::new(&maps).exists() && !Path::new(&filters).exists());
    }

    ok(&["plot", "--run", &run, "--out", &p("curves.png")]);
    assert!(Path::new(&p("curves.png")).exists());

    let report = p("report.html");
    ok(&["report", "--run", &run, "--data", d, "--out", &report]);
    let html = std::fs::read_to_string(&report).unwrap();
    // Real MNIST: the post's table applies.
    assert!(
        html.contains("<td>0.1224</td>"),
        "the post's table is missing"
    );
    assert_eq!(html.contains("first layer kernels"), has_conv);

    let weights = p("w.safetensors");
    ok(&["export", "--model", &model, "--out", &weights]);
    let imported = p("imported.ckpt");
    ok(&[
        "import",
        "--config",
        name,
        "--weights",
        &weights,
        "--out",
        &imported,
    ]);
    let again = ok(&["eval", "--model", &imported, "--data", d]);
    assert_eq!(
        accuracy(&again),
        acc,
        "the imported weights evaluate differently"
    );

    let results = p("results.md");
    ok(&["results", "--run", &run, "--out", &results]);
    let md = std::fs::read_to_string(&results).unwrap();
    assert!(md.contains(&format!("`{name}`, 1 epoch")), "{md}");
    assert!(md.contains("without `--eval-train`"), "{md}");

    let checked = ok(&["gradcheck", "--config", name]);
    assert!(checked.contains("all gradients agree"), "{checked}");

    let bench = ok(&[
        "bench",
        "--config",
        name,
        "--steps",
        "2",
        "--warmup",
        "1",
        "--eval-images",
        "200",
    ]);
    assert!(!bench.is_empty());
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn seed() {
    every_command("seed");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn mlp() {
    every_command("mlp");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn improved() {
    every_command("improved");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn modern() {
    every_command("modern");
}

/// `--eval-train` is recorded in the run, kept by a resume, never added by
/// one, and `cnn results` says which kind of train figures the run has.
#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn eval_train_is_recorded_and_described() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let (full, plain) = (p("full"), p("plain"));
    let base = [
        "train",
        "--config",
        "mlp",
        "--data",
        d,
        "--train-subset",
        "200",
    ];
    ok(&[
        &base[..],
        &["--out", &full, "--epochs", "1", "--eval-train"],
    ]
    .concat());
    ok(&[&base[..], &["--out", &plain, "--epochs", "1"]].concat());
    let config = |run: &str| std::fs::read_to_string(format!("{run}/config.toml")).unwrap();
    assert!(config(&full).contains("eval_train = true"));
    assert!(!config(&plain).contains("eval_train"));

    ok(&[&base[..], &["--out", &full, "--epochs", "2", "--resume"]].concat());
    assert!(config(&full).contains("eval_train = true"));
    let (resumed, _, why) = cnn(&[
        &base[..],
        &["--out", &plain, "--epochs", "2", "--resume", "--eval-train"],
    ]
    .concat());
    assert!(
        !resumed && why.contains("--eval-train cannot change a run being resumed"),
        "{why}"
    );

    for (run, says) in [
        (&full, "a full pass over the training set"),
        (&plain, "without `--eval-train`"),
    ] {
        let md = p("results.md");
        ok(&["results", "--run", run, "--out", &md]);
        let page = std::fs::read_to_string(&md).unwrap();
        assert!(page.contains(says), "{page}");
    }
}

#[test]
fn every_built_in_config_is_covered() {
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["seed", "mlp", "improved", "modern"],
        "add a test above for each new config"
    );
}
