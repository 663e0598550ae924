//! `cnn export --format onnx` against ONNX's own tools: for every built-in
//! config, the exported file passes `onnx.checker.check_model` and ONNX
//! Runtime's logits on 100 test images equal `cnn`'s within 1e-5.
//!
//! The networks are freshly initialised, with batch norm's parameters and
//! running statistics set to values far from their defaults, so that every
//! operator's arithmetic shows. Python is `$ONNX_PYTHON`, else `python3`;
//! without `onnx` and `onnxruntime` there the test prints why and passes.
//! CI installs both (`.ci/run`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use mnist_io::{Dataset, Split};
use trainer::config::{InputScaling, TrainConfig, BUILTIN};
use trainer::safetensors_io::fresh_checkpoint;

const TOLERANCE: f64 = 1e-5;
const IMAGES: usize = 100;

/// The Python that has `onnx` and `onnxruntime`, or `None` (after saying why).
fn python_with_onnx() -> Option<String> {
    let python = std::env::var("ONNX_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let ok = Command::new(&python)
        .args(["-c", "import numpy, onnx, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!(
            "skipping: `{python}` cannot import numpy, onnx and onnxruntime \
             (pip install onnx onnxruntime numpy, then set ONNX_PYTHON to that python)"
        );
        return None;
    }
    Some(python)
}

/// 100 test images: real MNIST when found, else made-up ones.
fn test_images(scratch: &Path) -> Dataset {
    let dir = common::mnist().unwrap_or_else(|| {
        println!("no MNIST found: made-up test images");
        let dir = scratch.join("made-up");
        common::made_up_mnist(&dir, 10, IMAGES);
        dir
    });
    let test = Dataset::load(&dir, Split::Test).unwrap();
    test.subset(&(0..IMAGES).collect::<Vec<_>>())
}

/// The config's network, freshly initialised; batch norm's weight, bias
/// and running statistics set away from 1, 0, 0, 1.
fn checkpoint(name: &str, dir: &Path) -> PathBuf {
    let mut config = TrainConfig::load(name).unwrap();
    if config.training.input_scaling == InputScaling::Standardized {
        config.training.input_mean_std = Some([0.1307, 0.3081]);
    }
    let mut net = config.build_network().unwrap();
    let mut state = net.state_dict();
    for (key, t) in state.iter_mut() {
        let stat = key.rsplit('.').next().unwrap();
        let is_bn = key.starts_with("bn");
        for (i, v) in t.iter_mut().enumerate() {
            let x = ((i * 37 % 11) as f32 - 5.0) / 10.0; // -0.5 ..= 0.5
            *v = match (is_bn, stat) {
                (true, "weight") => 1.0 + x,
                (true, "bias") | (true, "running_mean") => x,
                (true, "running_var") => 0.5 + x.abs() * 3.0,
                _ => *v,
            };
        }
    }
    net.load_state_dict(&state).unwrap();
    let path = dir.join(format!("{name}.ckpt"));
    fresh_checkpoint(&config, None, &net).save(&path).unwrap();
    path
}

fn write_f32(path: &Path, values: impl Iterator<Item = f32>) {
    let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Exports config `name`, runs it in ONNX Runtime; returns the largest
/// |ONNX Runtime − cnn| over the logits, and the largest |logit|.
fn agreement(python: &str, name: &str, images: &Dataset, dir: &Path) -> (f64, f64) {
    let ckpt_path = checkpoint(name, dir);
    let onnx = dir.join(format!("{name}.onnx"));
    let (ok, stdout, stderr) = common::cnn(&[
        "export",
        "--format",
        "onnx",
        "--model",
        ckpt_path.to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
    ]);
    assert!(ok, "cnn export failed: {stdout}{stderr}");

    let ckpt = trainer::checkpoint::Checkpoint::load(&ckpt_path).unwrap();
    let mut net = ckpt.network().unwrap();
    let norm = trainer::data::input_norm(&ckpt.config, None).unwrap();
    let all: Vec<usize> = (0..images.len()).collect();
    let (input, _) = images.tensors(&all, norm);
    let logits = net.forward(&input).unwrap().clone();
    let (pixels, _) = images.tensors(&all, None);
    write_f32(&dir.join("images.f32"), pixels.iter().copied());
    write_f32(&dir.join("expected.f32"), logits.iter().copied());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/run_model.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&onnx)
        .arg(dir.join("images.f32"))
        .arg(dir.join("expected.f32"))
        .arg(IMAGES.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}: the ONNX check failed:\n{text}{err}"
    );
    assert!(text.contains("checker ok"), "{name}: {text}");
    let figure = |key: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        line[key.len()..].trim().parse().unwrap()
    };
    (figure("max_abs_diff"), figure("max_abs_logit"))
}

#[test]
fn every_builtin_config_runs_in_onnx_runtime_as_in_cnn() {
    let Some(python) = python_with_onnx() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let images = test_images(dir.path());
    assert_eq!(images.len(), IMAGES);
    for (name, _) in BUILTIN {
        let (diff, largest) = agreement(&python, name, &images, dir.path());
        println!("{name}: max |ONNX Runtime - cnn| = {diff:.2e} over logits up to {largest:.2}");
        assert!(
            diff <= TOLERANCE,
            "{name}: ONNX Runtime's logits differ from cnn's by {diff:e} (> {TOLERANCE:e})"
        );
        // A check that cannot fail is none: the logits are not all zero.
        assert!(largest > 1e-3, "{name}: the logits are all zero");
    }
}

#[test]
fn onnx_export_refuses_other_names_and_spares_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint("seed", dir.path());
    let ckpt_s = ckpt.to_str().unwrap();
    let export = |out: &Path, force: bool| {
        let mut args = vec!["export", "--format", "onnx", "--model", ckpt_s];
        args.extend(["--out", out.to_str().unwrap()]);
        if force {
            args.push("--force");
        }
        common::cnn(&args)
    };
    let (ok, _, err) = export(&dir.path().join("seed.safetensors"), false);
    assert!(!ok && err.contains("ending in .onnx"), "{err}");
    // Not over its own input, even renamed to look like a model.
    let (ok, _, err) = export(&ckpt, false);
    assert!(!ok && err.contains("ending in .onnx"), "{err}");
    let out = dir.path().join("seed.onnx");
    std::fs::write(&out, b"made by hand").unwrap();
    let (ok, stdout, err) = export(&out, false);
    assert!(ok, "an ordinary file is replaced: {err}");
    assert!(stdout.contains("ONNX opset 13"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    assert_ne!(bytes, b"made by hand");
    // A file that looks like a checkpoint is not replaced without --force.
    std::fs::copy(&ckpt, &out).unwrap();
    let (ok, _, err) = export(&out, false);
    assert!(!ok && err.contains("checkpoint"), "{err}");
    assert!(export(&out, true).0);
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 2, "{left:?}");
}
