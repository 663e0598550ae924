//! `cnn` against hostile input and careless use, on a tiny made-up data set:
//! nonsense is refused before training, naming the file or key; nothing a
//! user made is overwritten; device files and FIFOs are never read.

use std::path::{Path, PathBuf};

mod common;
use common::cnn;

/// A made-up data set and a run of one epoch of a small MLP on it, in a temporary folder.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    run: PathBuf,
    config: PathBuf,
}

/// The MLP with 16 hidden units, one epoch, as a TOML file; `edit` changes its text.
fn small_config(path: &Path, edit: impl Fn(String) -> String) {
    let (_, text) = trainer::config::BUILTIN
        .iter()
        .find(|(n, _)| *n == "mlp")
        .unwrap();
    let text = text
        .replace("out_features = 256", "out_features = 16")
        .replace("in_features = 256", "in_features = 16")
        .replace("epochs = 100", "epochs = 1");
    std::fs::write(path, edit(text)).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn setup(train_now: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let data = root.join("data");
    common::made_up_mnist(&data, 200, 50);
    let config = root.join("small.toml");
    small_config(&config, |t| t);
    let run = root.join("run");
    if train_now {
        let (ok, _, err) = cnn(&[
            "train",
            "--config",
            s(&config),
            "--data",
            s(&data),
            "--out",
            s(&run),
        ]);
        assert!(ok, "{err}");
    }
    Setup {
        _dir: dir,
        root,
        data,
        run,
        config,
    }
}

#[test]
fn a_new_run_never_writes_over_an_earlier_runs_files_unless_forced() {
    let t = setup(true);
    let best = std::fs::read(t.run.join("best.ckpt")).unwrap();
    let metrics = std::fs::read(t.run.join("metrics.csv")).unwrap();
    // Only best.ckpt and metrics.csv left (as after deleting last.ckpt by hand).
    std::fs::remove_file(t.run.join("last.ckpt")).unwrap();
    let args = [
        "train",
        "--config",
        s(&t.config),
        "--data",
        s(&t.data),
        "--out",
        s(&t.run),
    ];
    let (ok, _, err) = cnn(&args);
    assert!(!ok);
    assert!(
        err.contains("holds an earlier run's files (best.ckpt, metrics.csv")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(t.run.join("best.ckpt")).unwrap(), best);
    assert_eq!(std::fs::read(t.run.join("metrics.csv")).unwrap(), metrics);
    let (ok, _, err) = cnn(&[&args[..], &["--force"]].concat());
    assert!(ok, "{err}");
    assert!(t.run.join("last.ckpt").exists());
}

#[test]
fn output_commands_refuse_to_overwrite_a_runs_files() {
    let t = setup(true);
    let r = |name: &str| t.run.join(name).to_str().unwrap().to_string();
    let before: Vec<Vec<u8>> = ["last.ckpt", "metrics.csv", "config.toml"]
        .iter()
        .map(|f| std::fs::read(t.run.join(f)).unwrap())
        .collect();
    let ckpt = r("last.ckpt");
    let weights = t.root.join("w.safetensors");
    let (ok, _, err) = cnn(&["export", "--model", &ckpt, "--out", s(&weights)]);
    assert!(ok, "{err}");
    let weights = weights.to_str().unwrap().to_string();
    let data_files: Vec<PathBuf> = ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        .iter()
        .map(|f| t.data.join(f))
        .collect();
    let data_before: Vec<Vec<u8>> = data_files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let attempts: Vec<Vec<&str>> = vec![
        vec!["plot", "--run", s(&t.run), "--out", "PLACEHOLDER"],
        vec!["export", "--model", &ckpt, "--out", "PLACEHOLDER"],
        vec![
            "report",
            "--run",
            s(&t.run),
            "--data",
            s(&t.data),
            "--out",
            "PLACEHOLDER",
        ],
        vec!["results", "--run", s(&t.run), "--out", "PLACEHOLDER"],
        vec![
            "seed-table",
            "--runs",
            s(&t.root),
            "--data",
            s(&t.data),
            "--out",
            "PLACEHOLDER",
        ],
        vec![
            "import",
            "--config",
            s(&t.config),
            "--weights",
            &weights,
            "--out",
            "PLACEHOLDER",
        ],
        vec![
            "visualize",
            "--model",
            &ckpt,
            "--filters",
            "--out",
            "PLACEHOLDER",
        ],
    ];
    let mut targets: Vec<String> = ["last.ckpt", "metrics.csv", "config.toml"]
        .iter()
        .map(|f| r(f))
        .collect();
    targets.extend(data_files.iter().map(|f| f.to_str().unwrap().to_string()));
    targets.push(weights.clone());
    for out in &targets {
        // Every writing command, aimed at a run's file, a data file or an input.
        for attempt in &attempts {
            if out == &weights && attempt[0] != "import" {
                continue;
            }
            let args: Vec<&str> = attempt
                .iter()
                .map(|a| if *a == "PLACEHOLDER" { out.as_str() } else { a })
                .collect();
            let (ok, _, err) = cnn(&args);
            assert!(!ok, "{args:?} succeeded");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let copy = t.root.join("copy.png");
    std::fs::copy(t.run.join("last.ckpt"), &copy).unwrap();
    let (ok, _, err) = cnn(&["plot", "--run", s(&t.run), "--out", s(&copy)]);
    assert!(!ok && err.contains("holds a checkpoint"), "{err}");
    // Told to with --force, every writing command replaces such a file.
    for (i, attempt) in attempts.iter().enumerate() {
        let ext = match attempt[0] {
            "export" => "safetensors",
            "report" => "html",
            "results" | "seed-table" => "md",
            "import" => "ckpt",
            _ => "png",
        };
        let victim = t.root.join(format!("victim-{i}.{ext}"));
        std::fs::copy(t.run.join("last.ckpt"), &victim).unwrap();
        let was = std::fs::read(&victim).unwrap();
        let mut args: Vec<&str> = attempt
            .iter()
            .map(|a| if *a == "PLACEHOLDER" { s(&victim) } else { a })
            .collect();
        args.push("--force");
        let (ok, _, err) = cnn(&args);
        if attempt[0] == "visualize" {
            // This run's network has no convolution to draw: refused, but not for its output.
            assert!(!ok && err.contains("no conv2d layer"), "{err}");
            continue;
        }
        assert!(ok, "{args:?}: {err}");
        assert_ne!(std::fs::read(&victim).unwrap(), was, "{args:?} left it");
    }
    let after: Vec<Vec<u8>> = ["last.ckpt", "metrics.csv", "config.toml"]
        .iter()
        .map(|f| std::fs::read(t.run.join(f)).unwrap())
        .collect();
    assert!(before == after, "a run's file was overwritten");
    let data_after: Vec<Vec<u8>> = data_files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(data_before == data_after, "a data file was overwritten");
}

/// A change to a config's text.
type Edit = Box<dyn Fn(String) -> String>;

#[test]
fn force_deletes_an_earlier_run_only_once_the_new_run_passed_its_checks() {
    let t = setup(true);
    let names = [
        "last.ckpt",
        "best.ckpt",
        "metrics.csv",
        "config.toml",
        "dataset.toml",
    ];
    let before: Vec<Vec<u8>> = names
        .iter()
        .map(|f| std::fs::read(t.run.join(f)).unwrap())
        .collect();
    // Each new run fails a different check met before its first step.
    let broken = t.root.join("broken.toml");
    let bn = "[[network.layers]]\nkind = \"relu\"";
    let edits: Vec<(&str, Edit)> = vec![
        (
            "shape",
            Box::new(|t: String| t.replace("in_features = 784", "in_features = 785")),
        ),
        (
            "value",
            Box::new(|t: String| t.replace("lr = 0.01", "lr = -1.0")),
        ),
        (
            "input",
            Box::new(|t: String| {
                t.replace("input = [1, 28, 28]", "input = [1, 28, 27]")
                    .replace("784", "756")
            }),
        ),
        (
            "batch norm",
            Box::new(move |t: String| {
                t.replace("batch = 100", "batch = 199\nmicro_batch = 199")
                    .replace("micro_batch = 25", "")
                    .replacen(bn, &format!("[[network.layers]]\nkind = \"batch_norm1d\"\nnum_features = 16\n\n{bn}"), 1)
            }),
        ),
    ];
    for (what, edit) in edits {
        small_config(&broken, edit);
        let (ok, _, err) = cnn(&[
            "train",
            "--config",
            s(&broken),
            "--data",
            s(&t.data),
            "--out",
            s(&t.run),
            "--force",
        ]);
        assert!(!ok, "{what}: the broken run started");
        assert!(!err.contains("panicked"), "{err}");
        if what == "batch norm" {
            assert!(
                err.contains("micro-batches as small as 1") && err.contains("batch = "),
                "{err}"
            );
        }
        let after: Vec<Vec<u8>> = names
            .iter()
            .map(|f| std::fs::read(t.run.join(f)).unwrap())
            .collect();
        assert!(
            before == after,
            "{what}: --force deleted the earlier run before its checks: {err}"
        );
    }
}

#[test]
fn resuming_on_other_data_or_with_another_config_is_refused_naming_what_differs() {
    let t = setup(true);
    let other = t.root.join("other");
    common::made_up_mnist(&other, 150, 50);
    let (ok, _, err) = cnn(&[
        "train",
        "--resume",
        "--epochs",
        "2",
        "--data",
        s(&other),
        "--out",
        s(&t.run),
    ]);
    assert!(!ok);
    assert!(
        err.contains("dataset.toml") && err.contains("train_images: 200 then, 150 now"),
        "{err}"
    );
    let (ok, _, err) = cnn(&[
        "train",
        "--resume",
        "--epochs",
        "2",
        "--data",
        s(&t.data),
        "--out",
        s(&t.run),
        "--train-subset",
        "100",
    ]);
    assert!(
        !ok && err.contains("the data differs from the run's"),
        "{err}"
    );

    let changed = t.root.join("changed.toml");
    small_config(&changed, |t| t.replace("lr = 0.01", "lr = 0.02"));
    let (ok, _, err) = cnn(&[
        "train",
        "--resume",
        "--config",
        s(&changed),
        "--epochs",
        "2",
        "--data",
        s(&t.data),
        "--out",
        s(&t.run),
    ]);
    assert!(!ok);
    assert!(err.contains("optimizer.lr: 0.01 then, 0.02 now"), "{err}");
    // Only the number of epochs may change.
    let (ok, _, err) = cnn(&[
        "train",
        "--resume",
        "--config",
        s(&t.config),
        "--epochs",
        "2",
        "--data",
        s(&t.data),
        "--out",
        s(&t.run),
    ]);
    assert!(ok, "{err}");
}

#[test]
fn nonsense_configs_and_data_are_refused_before_training_naming_the_key() {
    let t = setup(false);
    /// A case's name, its edit of the config text, and what the error says.
    type Case = (&'static str, fn(String) -> String, &'static str);
    let cases: [Case; 6] = [
        (
            "outputs",
            |t| t.replace("out_features = 10", "out_features = 5"),
            "has 10 classes, but the network ends with 5 outputs",
        ),
        (
            "momentum",
            |t| t.replace("momentum = 0.9", "momentum = 1.0"),
            "momentum must be in [0, 1)",
        ),
        (
            "decay",
            |t| t.replace("weight_decay = 0.0001", "weight_decay = -0.1"),
            "weight_decay must be a number of at least 0",
        ),
        (
            "zero",
            |t| t.replace("out_features = 16", "out_features = 0"),
            "`out_features` is 0",
        ),
        (
            "rank",
            |t| t.replace("input = [1, 28, 28]", "input = [784]"),
            "is not an image",
        ),
        (
            "huge",
            |t| {
                t.replace("out_features = 16", "out_features = 100000")
                    .replace("in_features = 16", "in_features = 100000")
            },
            "training.max_params",
        ),
    ];
    for (name, edit, expected) in cases {
        let config = t.root.join(format!("{name}.toml"));
        small_config(&config, edit);
        let out = t.root.join(format!("run-{name}"));
        let (ok, _, err) = cnn(&[
            "train",
            "--config",
            s(&config),
            "--data",
            s(&t.data),
            "--out",
            s(&out),
        ]);
        assert!(!ok && err.contains(expected), "{name}: {err}");
        assert!(
            !out.join("config.toml").exists(),
            "{name}: nothing is written"
        );
    }
    // Images of another size than the network's input.
    let small = t.root.join("small-images");
    std::fs::create_dir_all(&small).unwrap();
    for split in ["train", "t10k"] {
        let pixels = vec![7u8; 20 * 14 * 14];
        let labels: Vec<u8> = (0..20).map(|i| i % 10).collect();
        let images = mnist_io::encode_images(&pixels, 14, 14).unwrap();
        std::fs::write(small.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
        let labels = mnist_io::encode_labels(&labels).unwrap();
        std::fs::write(small.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
    let out = t.root.join("run-small");
    let (ok, _, err) = cnn(&[
        "train",
        "--config",
        s(&t.config),
        "--data",
        s(&small),
        "--out",
        s(&out),
    ]);
    assert!(!ok && err.contains("holds 14x14 grey images"), "{err}");
    let (ok, _, err) = cnn(&[
        "train",
        "--config",
        s(&t.config),
        "--data",
        s(&t.data),
        "--out",
        s(&out),
        "--train-subset",
        "0",
    ]);
    assert!(!ok && err.contains("is empty"), "{err}");
}

#[test]
fn standardisation_constants_travel_with_the_model() {
    let t = setup(false);
    let config = t.root.join("std.toml");
    small_config(&config, |t| {
        t.replace(
            "input_scaling = \"unit\"",
            "input_scaling = \"standardized\"",
        )
    });
    let (ok, _, err) = cnn(&[
        "train",
        "--config",
        s(&config),
        "--data",
        s(&t.data),
        "--out",
        s(&t.run),
    ]);
    assert!(ok, "{err}");
    let recorded = std::fs::read_to_string(t.run.join("config.toml")).unwrap();
    assert!(recorded.contains("input_mean_std = ["), "{recorded}");
    let ckpt = trainer::checkpoint::Checkpoint::load(&t.run.join("last.ckpt")).unwrap();
    assert!(ckpt.config.training.input_mean_std.is_some());
    let export = t.root.join("m.safetensors");
    let (ok, _, err) = cnn(&[
        "export",
        "--model",
        s(&t.run.join("last.ckpt")),
        "--out",
        s(&export),
    ]);
    assert!(ok, "{err}");
    // A digit PNG, classified with no training set at hand.
    let png = t.root.join("digit.png");
    std::fs::write(&png, digit().to_png().unwrap()).unwrap();
    for model in [t.run.join("last.ckpt"), export] {
        let (ok, _, err) = cnn(&["predict", "--model", s(&model), s(&png)]);
        assert!(ok, "{err}");
    }
    // A training set of one grey level has no spread to divide by.
    let flat = t.root.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    for split in ["train", "t10k"] {
        let images = mnist_io::encode_images(&vec![9u8; 10 * 784], 28, 28).unwrap();
        std::fs::write(flat.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
        let labels = mnist_io::encode_labels(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        std::fs::write(flat.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
    let (ok, _, err) = cnn(&[
        "train",
        "--config",
        s(&config),
        "--data",
        s(&flat),
        "--out",
        s(&t.root.join("flat-run")),
    ]);
    assert!(!ok && err.contains("standard deviation of 0"), "{err}");
}

#[test]
fn devices_fifos_and_oversized_options_are_refused() {
    let t = setup(true);
    let fifo = t.root.join("model.ckpt");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let (ok, _, err) = cnn(&["eval", "--model", s(&fifo), "--data", s(&t.data)]);
        assert!(!ok && err.contains("not a regular file"), "{err}");
    }
    let (ok, _, err) = cnn(&[
        "train",
        "--config",
        "/dev/zero",
        "--data",
        s(&t.data),
        "--out",
        s(&t.root.join("z")),
    ]);
    assert!(
        !ok && err.contains("/dev/zero: not a regular file"),
        "{err}"
    );
    let (ok, _, err) = cnn(&[
        "gradcheck",
        "--config",
        s(&t.config),
        "--batch",
        "1000000000000",
    ]);
    assert!(!ok && err.contains("--batch"), "{err}");
    let ckpt = t.run.join("last.ckpt");
    let (ok, _, err) = cnn(&[
        "bench",
        "--config",
        s(&t.config),
        "--steps",
        "1000000000000000",
    ]);
    assert!(!ok && err.contains("--steps"), "{err}");
    let (ok, _, err) = cnn(&[
        "--threads",
        "100000000",
        "eval",
        "--model",
        s(&ckpt),
        "--data",
        s(&t.data),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("using"), "a capped --threads says so: {err}");
}

#[test]
fn non_utf8_paths_work_in_json_output() {
    use std::os::unix::ffi::OsStrExt;
    let t = setup(true);
    let name = std::ffi::OsStr::from_bytes(b"digit-\xff.png");
    let png = t.root.join(name);
    std::fs::write(&png, digit().to_png().unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnn"))
        .arg("predict")
        .arg("--json")
        .arg("--model")
        .arg(t.run.join("last.ckpt"))
        .arg(&png)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let file = doc["results"][0]["file"].as_str().unwrap();
    assert!(file.ends_with("digit-\u{fffd}.png"), "{file}");
}

#[test]
fn an_unknown_config_name_lists_the_built_in_ones() {
    let (ok, _, stderr) = cnn(&["configs", "nope"]);
    assert!(!ok);
    assert!(stderr.contains("`nope`"), "{stderr}");
    for (name, _) in trainer::config::BUILTIN {
        assert!(stderr.contains(name), "{name} missing: {stderr}");
    }
}

#[test]
fn results_and_plot_skip_non_finite_or_out_of_range_rows_with_a_warning() {
    let t = setup(true);
    let metrics = t.run.join("metrics.csv");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("2,NaN,90,0.4,91,1.0,0.5\n3,0.4,1e300,0.4,91,1.0,0.5\n4,0.4,90,0.4,91,-7,0.5\n");
    std::fs::write(&metrics, text).unwrap();
    let out = t.root.join("results.md");
    let (ok, _, err) = cnn(&["results", "--run", s(&t.run), "--out", s(&out)]);
    assert!(ok, "{err}");
    let page = std::fs::read_to_string(&out).unwrap();
    for bad in ["NaN", "1e300", "-7", "inf"] {
        assert!(!page.contains(bad), "`{bad}` in the results page:\n{page}");
    }
    assert_eq!(err.matches("row skipped").count(), 3, "{err}");
    assert!(
        err.contains("train_loss NaN") && err.contains("train_seconds -7"),
        "{err}"
    );
}

#[test]
fn serve_refuses_an_empty_test_set_at_start() {
    let t = setup(true);
    let empty = t.root.join("empty");
    common::made_up_mnist(&empty, 10, 0);
    let (ok, _, err) = cnn(&[
        "serve",
        "--model",
        s(&t.run.join("last.ckpt")),
        "--data",
        s(&empty),
        "--addr",
        "127.0.0.1:0",
    ]);
    assert!(!ok && err.contains("the test set holds no image"), "{err}");
}

/// A 28x28 picture with a short bright stroke on black: something to classify.
fn digit() -> trainer_cli::image_io::GreyImage {
    let mut image = trainer_cli::image_io::GreyImage::filled(28, 28, 9);
    for y in 8..20 {
        image.pixels[y * 28 + 14] = 255;
    }
    image
}
