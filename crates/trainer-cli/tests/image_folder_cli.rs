//! `cnn train` on an image folder: the class names travel with the run into
//! `predict`'s output, and `--resume` refuses another folder.

mod common;

use std::path::Path;

use trainer::config::TrainConfig;
use trainer::image::GreyImage;

/// `ring` and `dot` classes, 8 training and 4 test images each: a bright
/// ring, or a bright dot in the centre, on black.
fn folder(dir: &Path) {
    for (split, n) in [("train", 8), ("test", 4)] {
        for i in 0..n {
            for class in ["ring", "dot"] {
                let mut img = GreyImage::filled(28, 28, 0);
                for y in 0..28 {
                    for x in 0..28 {
                        let r = ((x as f64 - 13.5).powi(2) + (y as f64 - 13.5).powi(2)).sqrt();
                        let on = if class == "ring" {
                            (9.0..12.0).contains(&r)
                        } else {
                            r < 4.0
                        };
                        if on {
                            img.pixels[y * 28 + x] = 200 + i as u8;
                        }
                    }
                }
                let path = dir.join(format!("{split}/{class}/{i}.png"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, img.to_png().unwrap()).unwrap();
            }
        }
    }
}

/// The mlp network with two outputs, batches of 4.
fn config(dir: &Path) -> String {
    let mut config = TrainConfig::load("mlp").unwrap();
    if let layers::LayerConfig::Linear(last) = config.network.layers.last_mut().unwrap() {
        last.out_features = 2;
    }
    config.training.batch = 4;
    config.training.micro_batch = 2;
    let path = dir.join("two.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn class_names_travel_with_the_run_and_resume_refuses_other_folders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    folder(&data);
    let run = dir.path().join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    let cfg = config(dir.path());
    let (ok, out, err) = common::cnn(&[
        "train", "-q", "--config", &cfg, "--data", d, "--out", r, "--epochs", "1",
    ]);
    assert!(ok, "{out}{err}");
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        saved.contains(r#"class_names = ["dot", "ring"]"#),
        "{saved}"
    );

    // predict names the classes by their folders.
    let ckpt = run.join("last.ckpt");
    let image = data.join("test/ring/0.png");
    let (ok, out, err) = common::cnn(&[
        "predict",
        "--model",
        ckpt.to_str().unwrap(),
        image.to_str().unwrap(),
        "--no-preprocess",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ring") && out.contains("dot"), "{out}");

    // eval reads the folder too, and its table names the classes.
    let (ok, out, err) = common::cnn(&["eval", "--model", ckpt.to_str().unwrap(), "--data", d]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ring"), "{out}");

    // One more image: the same classes, but other data; --resume refuses it.
    std::fs::copy(
        data.join("train/dot/0.png"),
        data.join("train/dot/extra.png"),
    )
    .unwrap();
    let (ok, out, err) = common::cnn(&[
        "train", "-q", "--resume", "--data", d, "--out", r, "--epochs", "2",
    ]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("train_images") || err.contains("class_counts") || err.contains("sha256"),
        "{err}"
    );
    std::fs::remove_file(data.join("train/dot/extra.png")).unwrap();
    // A renamed file: same pixels, same counts, another file list.
    std::fs::rename(data.join("test/dot/3.png"), data.join("test/dot/9.png")).unwrap();
    let (ok, _, err) = common::cnn(&[
        "train", "-q", "--resume", "--data", d, "--out", r, "--epochs", "2",
    ]);
    assert!(!ok && err.contains("files_sha256"), "{err}");
    std::fs::rename(data.join("test/dot/9.png"), data.join("test/dot/3.png")).unwrap();
    let (ok, out, err) = common::cnn(&[
        "train", "-q", "--resume", "--data", d, "--out", r, "--epochs", "2",
    ]);
    assert!(ok, "{out}{err}");
}

#[test]
fn a_network_of_three_input_channels_trains_on_colour_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("colours");
    // Classes `blue` and `red`: the same shape, told apart by colour alone.
    for (split, n) in [("train", 8), ("test", 4)] {
        for i in 0..n {
            for (class, rgb) in [("red", [200, 20, 20]), ("blue", [20, 20, 200])] {
                let mut img = trainer::image::RgbImage::filled(28, 28, [0, 0, 0]);
                for y in 8..20 {
                    for x in 8..20 {
                        img.set(x, y, rgb);
                    }
                }
                let path = data.join(format!("{split}/{class}/{i}.png"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, img.to_png().unwrap()).unwrap();
            }
        }
    }
    let mut config = TrainConfig::load("mlp").unwrap();
    config.network.input = vec![3, 28, 28];
    if let layers::LayerConfig::Linear(first) = &mut config.network.layers[1] {
        first.in_features = Some(3 * 784);
    }
    if let layers::LayerConfig::Linear(last) = config.network.layers.last_mut().unwrap() {
        last.out_features = 2;
    }
    config.training.batch = 4;
    config.training.micro_batch = 2;
    let cfg = dir.path().join("rgb.toml");
    std::fs::write(&cfg, config.to_toml()).unwrap();
    let run = dir.path().join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    let (ok, out, err) = common::cnn(&[
        "train",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        d,
        "--out",
        r,
        "--epochs",
        "3",
    ]);
    assert!(ok, "{out}{err}");
    let ckpt = run.join("last.ckpt");
    let (ok, out, err) = common::cnn(&["eval", "--model", ckpt.to_str().unwrap(), "--data", d]);
    assert!(ok, "{out}{err}");
    // Grey, the two colours differ little (luma 77 and 38); in colour the network tells them apart.
    assert!(out.contains("accuracy 100.00%"), "{out}");
}
