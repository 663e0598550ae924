//! `cnn export`, `cnn import`, and `--model x.safetensors` in `cnn eval` and
//! `cnn predict`, as a user runs them (no data set needed).

use std::collections::BTreeMap;
use std::path::Path;

use trainer::checkpoint::Checkpoint;
use trainer::config::TrainConfig;
use trainer::safetensors_io;
use trainer_cli::image_io::GreyImage;

mod common;
use common::cnn;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn export_import_and_safetensors_models() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig::load("seed").unwrap();
    let net = config.build_network().unwrap();
    let ckpt_path = dir.path().join("model.ckpt");
    safetensors_io::fresh_checkpoint(&config, Some("fashion-mnist".into()), &net)
        .save(&ckpt_path)
        .unwrap();

    // Export: PyTorch's names and shapes, f32, and the metadata.
    let st = dir.path().join("model.safetensors");
    let (ok, out, err) = cnn(&["export", "--model", s(&ckpt_path), "--out", s(&st)]);
    assert!(ok, "{err}");
    assert!(out.contains("8 f32 tensors"), "{out}");
    let file = safetensors_io::read(&st).unwrap();
    assert_eq!(file.tensors, net.state_dict());
    assert_eq!(file.tensors["conv2.weight"].shape(), &[16, 8, 3, 3]);
    assert_eq!(file.tensors["fc1.weight"].shape(), &[256, 784]);
    assert_eq!(file.metadata["format"], "pt");
    assert_eq!(file.metadata["cnn.dataset"], "fashion-mnist");
    let (ok, _, err) = cnn(&["export", "--model", s(&ckpt_path), "--out", "x.bin"]);
    assert!(
        !ok && err.contains("x.bin") && err.contains(".safetensors"),
        "{err}"
    );

    // Import: a fresh checkpoint with the same weights.
    let imported = dir.path().join("imported.ckpt");
    let (ok, _, err) = cnn(&[
        "import",
        "--config",
        "seed",
        "--weights",
        s(&st),
        "--out",
        s(&imported),
    ]);
    assert!(ok, "{err}");
    let back = Checkpoint::load(&imported).unwrap();
    assert_eq!(back.body.epochs_done, 0);
    assert!(back.body.optimizer.slots.is_empty() && back.body.history.is_empty());
    assert_eq!(back.network().unwrap().state_dict(), net.state_dict());
    assert_eq!(back.body.dataset.as_deref(), Some("fashion-mnist"));

    // The wrong network: the missing tensor and the file are named.
    let (ok, _, err) = cnn(&[
        "import",
        "--config",
        "mlp",
        "--weights",
        s(&st),
        "--out",
        s(&dir.path().join("no.ckpt")),
    ]);
    assert!(!ok && err.contains("model.safetensors"), "{err}");
    assert!(
        err.contains("unexpected tensor `conv1.bias`") && err.contains("config `mlp`"),
        "{err}"
    );

    // Predict straight from the safetensors file: with --config, or with the
    // config `cnn export` stored; class names from the stored data set.
    let png = dir.path().join("x.png");
    let mut img = GreyImage::filled(28, 28, 0);
    for y in 6..22 {
        for x in 12..16 {
            img.pixels[y * 28 + x] = 255;
        }
    }
    std::fs::write(&png, img.to_png().unwrap()).unwrap();
    let (ok, with_config, err) = cnn(&["predict", "--model", s(&st), "--config", "seed", s(&png)]);
    assert!(ok, "{err}");
    assert!(
        with_config.contains("T-shirt/top") && with_config.contains("Ankle boot"),
        "{with_config}"
    );
    let (ok, stored, err) = cnn(&["predict", "--model", s(&st), s(&png)]);
    assert!(ok, "{err}");
    assert_eq!(stored, with_config);
    let (ok, from_ckpt, err) = cnn(&["predict", "--model", s(&ckpt_path), s(&png)]);
    assert!(ok, "{err}");
    assert_eq!(from_ckpt, stored);

    // A foreign file (no stored config) needs --config.
    let bare = dir.path().join("bare.safetensors");
    safetensors_io::write(&bare, &net.state_dict(), &BTreeMap::new()).unwrap();
    let (ok, _, err) = cnn(&["predict", "--model", s(&bare), s(&png)]);
    assert!(
        !ok && err.contains("bare.safetensors") && err.contains("--config"),
        "{err}"
    );
    let (ok, _, err) = cnn(&["eval", "--model", s(&bare), "--data", "/nonexistent"]);
    assert!(!ok && err.contains("--config"), "{err}");

    // A checkpoint with a --config of another network is refused.
    let (ok, _, err) = cnn(&[
        "eval",
        "--model",
        s(&ckpt_path),
        "--config",
        "mlp",
        "--data",
        "/nonexistent",
    ]);
    assert!(
        !ok && err.contains("differs from the network of config `mlp`"),
        "{err}"
    );
}
