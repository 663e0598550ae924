//! `cnn predict`, `cnn visualize` and `cnn plot`, through the library and the binary.
//!
//! Tests that need real MNIST find it as every test does (`$MNIST_DIR`, else
//! `data/mnist`) and show as ignored without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use trainer::checkpoint::{Checkpoint, PartialEpoch};
use trainer::config::TrainConfig;
use trainer::train::{train, Quiet, TrainOptions};
use trainer_cli::image_io::{decode_png_grey, GreyImage, RgbImage};
use trainer_cli::predict::Predictor;

mod common;

/// A small CNN that reaches ~94% in two epochs on 3,000 images; unit input scaling (the default).
const FAST_CONFIG: &str = r#"
name = "viz-test"
description = "small fast CNN for the visualisation tests"

[training]
epochs = 2
batch = 50
seed = 1

[optimizer]
kind = "sgd"
lr = 0.02
momentum = 0.9
weight_decay = 0.0

[schedule]
kind = "constant"

[network]
input = [1, 28, 28]
loss = { kind = "softmax_cross_entropy" }

[[network.layers]]
kind = "conv2d"
in_channels = 1
out_channels = 8
kernel = 3
pad = 1

[[network.layers]]
kind = "relu"

[[network.layers]]
kind = "max_pool2d"
kernel = 2

[[network.layers]]
kind = "conv2d"
in_channels = 8
out_channels = 16
kernel = 3
pad = 1

[[network.layers]]
kind = "relu"

[[network.layers]]
kind = "max_pool2d"
kernel = 2

[[network.layers]]
kind = "flatten"

[[network.layers]]
kind = "linear"
in_features = 784
out_features = 256

[[network.layers]]
kind = "relu"

[[network.layers]]
kind = "linear"
in_features = 256
out_features = 10
"#;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cnn")
}

fn scratch(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("viz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A checkpoint of the fast config with its initial (untrained) weights: no data needed.
fn untrained_checkpoint() -> PathBuf {
    static CKPT: OnceLock<PathBuf> = OnceLock::new();
    CKPT.get_or_init(|| {
        let config = TrainConfig::from_toml(FAST_CONFIG, "FAST_CONFIG").unwrap();
        let net = config.build_network().unwrap();
        let path = scratch("untrained").join("init.ckpt");
        Checkpoint::capture(
            &config,
            Some("mnist".into()),
            &net,
            &Default::default(),
            0,
            PartialEpoch::default(),
            Vec::new(),
        )
        .save(&path)
        .unwrap();
        path
    })
    .clone()
}

/// A run directory trained for two epochs on 3,000 real images (once per test binary).
fn trained_run() -> Option<PathBuf> {
    static RUN: OnceLock<Option<PathBuf>> = OnceLock::new();
    RUN.get_or_init(|| {
        let data = common::mnist_or_skip()?;
        let out = scratch("trained");
        train(
            &TrainOptions {
                config: Some(TrainConfig::from_toml(FAST_CONFIG, "FAST_CONFIG").unwrap()),
                epochs: None,
                data,
                out: out.clone(),
                resume: false,
                force: false,
                eval_train: false,
                conv: None,
                checkpoint_every: None,
                train_subset: Some(3000),
            },
            &mut Quiet,
        )
        .unwrap();
        Some(out)
    })
    .clone()
}

fn test_images() -> Option<mnist_io::Dataset> {
    let dir = common::mnist()?;
    Some(mnist_io::Dataset::load(&dir, mnist_io::Split::Test).unwrap())
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

fn decode(path: &Path) -> GreyImage {
    decode_png_grey(&std::fs::read(path).unwrap(), path)
        .unwrap()
        .image
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn predict_gives_a_distribution_for_real_test_images_and_the_right_class_when_trained() {
    let Some(run) = trained_run() else { return };
    let ds = test_images().unwrap();
    let dir = scratch("predict-real");
    let mut p = Predictor::load(&run.join("last.ckpt"), None).unwrap();
    assert_eq!(p.class_names()[3], "3");
    let mut right = 0;
    for i in 0..10 {
        let img = GreyImage {
            width: 28,
            height: 28,
            pixels: ds.image(i).to_vec(),
        };
        let file = write(&dir.join(format!("{i}.png")), &img.to_png().unwrap());
        let pred = p.predict_file(&file).unwrap();
        let sum: f32 = pred.probabilities.iter().sum();
        assert_eq!(pred.probabilities.len(), 10);
        assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
        assert!(pred.class < 10);
        // Only the MNIST-style centring, which leaves an MNIST digit much as it is.
        assert_eq!(pred.notes.len(), 1, "{:?}", pred.notes);
        assert!(
            pred.notes[0].starts_with("centred as MNIST"),
            "{:?}",
            pred.notes
        );
        right += usize::from(pred.class == usize::from(ds.label(i)));
    }
    assert!(right >= 8, "only {right} of the first 10 test images right");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn predict_inverts_dark_on_light_and_resizes_large_images() {
    let Some(run) = trained_run() else { return };
    let ds = test_images().unwrap();
    let dir = scratch("predict-resize");
    let p = Predictor::load(&run.join("last.ckpt"), None).unwrap();
    // Test image 0 (a 7) at 56x56, nearest-neighbour doubled, dark on white.
    let mut big = GreyImage::filled(56, 56, 0);
    for y in 0..56 {
        for x in 0..56 {
            big.pixels[y * 56 + x] = 255 - ds.image(0)[(y / 2) * 28 + x / 2];
        }
    }
    let file = write(&dir.join("big.png"), &big.to_png().unwrap());
    let mut p = p.mnist_style(false);
    let pred = p.predict_file(&file).unwrap();
    assert!(
        pred.notes
            .iter()
            .any(|n| n.contains("resized from 56x56 to 28x28")),
        "{:?}",
        pred.notes
    );
    assert!(
        pred.notes.iter().any(|n| n.starts_with("inverted")),
        "{:?}",
        pred.notes
    );
    assert_eq!(pred.class, usize::from(ds.label(0)));
}

#[test]
fn predict_binary_takes_rgb_png_and_reports_bad_files_by_name() {
    let model = untrained_checkpoint();
    let dir = scratch("predict-bin");
    let mut rgb = RgbImage::filled(28, 28, [0, 0, 0]);
    for y in 8..20 {
        rgb.set(14, y, [255, 255, 255]);
    }
    let good = write(&dir.join("rgb.png"), &rgb.to_png().unwrap());
    let out = Command::new(bin())
        .args(["predict", "--model"])
        .arg(&model)
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("rgb.png: "), "{stdout}");
    assert_eq!(stdout.matches('%').count(), 11, "{stdout}");

    let bad = write(&dir.join("not-a.png"), b"GIF89a, not a PNG at all");
    let out = Command::new(bin())
        .args(["predict", "--json", "--model"])
        .arg(&model)
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of 2 images could not be classified"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let probs = results[0]["probabilities"].as_array().unwrap();
    let sum: f64 = probs.iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4);
    assert!(results[0]["class"].as_u64().unwrap() < 10);
    let err = results[1]["error"].as_str().unwrap();
    assert!(
        err.contains("not-a.png") && err.contains("not a PNG"),
        "{err}"
    );
    assert_eq!(doc["classes"][0], "0");
}

/// A picture of one grey level (a blank page, black or white) holds no digit:
/// it is refused by name, and the other files are still classified.
#[test]
fn predict_refuses_a_blank_image_by_name() {
    let model = untrained_checkpoint();
    let dir = scratch("predict-blank");
    let white = write(
        &dir.join("white.png"),
        &RgbImage::filled(40, 30, [255, 255, 255]).to_png().unwrap(),
    );
    let black = write(
        &dir.join("black.png"),
        &RgbImage::filled(28, 28, [0, 0, 0]).to_png().unwrap(),
    );
    let mut stroke = RgbImage::filled(28, 28, [0, 0, 0]);
    for y in 8..20 {
        stroke.set(14, y, [255, 255, 255]);
    }
    let good = write(&dir.join("stroke.png"), &stroke.to_png().unwrap());
    let out = Command::new(bin())
        .args(["predict", "--model"])
        .arg(&model)
        .args([&white, &black, &good])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (file, level) in [("white.png", 255), ("black.png", 0)] {
        let said = format!("{file}: every pixel has the grey level {level}: there is no digit");
        assert!(stderr.contains(&said), "{stderr}");
    }
    assert!(
        stderr.contains("2 of 3 images could not be classified"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stroke.png: "), "{stdout}");
}

#[test]
fn predict_library_handles_grey_alpha_16_bit_and_palette_pngs() {
    let model = untrained_checkpoint();
    let dir = scratch("predict-kinds");
    // Padded and resized as they are, not centred: the notes say each step.
    let mut p = Predictor::load(&model, None).unwrap().mnist_style(false);
    let encode =
        |color: png::ColorType, depth: png::BitDepth, data: &[u8], palette: Option<Vec<u8>>| {
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, 20, 30);
            enc.set_color(color);
            enc.set_depth(depth);
            if let Some(p) = palette {
                enc.set_palette(p);
            }
            let mut w = enc.write_header().unwrap();
            w.write_image_data(data).unwrap();
            w.finish().unwrap();
            out
        };
    let n = 20 * 30;
    // A black picture with one bright pixel: a blank one holds no digit.
    let bright_first = |data: &[u8], pixel: &[u8]| {
        let mut data = data.to_vec();
        data[..pixel.len()].copy_from_slice(pixel);
        data
    };
    let cases = [
        (
            "ga.png",
            encode(
                png::ColorType::GrayscaleAlpha,
                png::BitDepth::Eight,
                &bright_first(&[0u8, 255].repeat(n), &[255, 255]),
                None,
            ),
        ),
        (
            "g16.png",
            encode(
                png::ColorType::Grayscale,
                png::BitDepth::Sixteen,
                &bright_first(&[0u8, 0].repeat(n), &[255, 255]),
                None,
            ),
        ),
        (
            "pal.png",
            encode(
                png::ColorType::Indexed,
                png::BitDepth::Eight,
                &bright_first(&vec![0u8; n], &[1]),
                Some(vec![0, 0, 0, 255, 255, 255]),
            ),
        ),
        (
            "rgba.png",
            encode(
                png::ColorType::Rgba,
                png::BitDepth::Eight,
                &bright_first(&[0u8, 0, 0, 255].repeat(n), &[255, 255, 255, 255]),
                None,
            ),
        ),
    ];
    for (name, bytes) in cases {
        let file = write(&dir.join(name), &bytes);
        let pred = p.predict_file(&file).unwrap();
        let sum: f32 = pred.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{name}");
        assert!(
            pred.notes
                .iter()
                .any(|n| n.contains("padded from 20x30 to 30x30")),
            "{name}: {:?}",
            pred.notes
        );
        assert!(pred
            .notes
            .iter()
            .any(|n| n.contains("resized from 30x30 to 28x28")));
        assert!(
            !pred.notes.iter().any(|n| n.starts_with("inverted")),
            "{name}: black image inverted"
        );
    }
    let err = p.predict_file(&dir.join("missing.png")).unwrap_err();
    assert!(format!("{err:#}").contains("missing.png"));
}

#[test]
fn visualize_feature_maps_and_filters_have_the_computed_size() {
    let model = untrained_checkpoint();
    let dir = scratch("visualize");
    // Filters need no data: 8 kernels of 3x3 in one row, x16, 2-pixel gaps,
    // labelled, on white, with the colour scale below.
    let out = dir.join("filters.png");
    let o = Command::new(bin())
        .args(["visualize", "--filters", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rgb = decode_png_rgb(&std::fs::read(&out).unwrap());
    let (w, h) = (rgb.width, rgb.height);
    let at = |x: usize, y: usize| -> [u8; 3] {
        let i = 3 * (y * w + x);
        [rgb.pixels[i], rgb.pixels[i + 1], rgb.pixels[i + 2]]
    };
    // Each kernel's 3x3 cells are each one colour (nearest neighbour, x16).
    let (x0, y0) = trainer_cli::visualize::tile_origin(7, 8, (3, 3), 16, 2);
    assert!(x0 + 48 <= w && y0 + 48 < h, "{w}x{h}");
    for (cx, cy) in [(0, 0), (2, 1), (1, 2)] {
        let cell = at(x0 + 16 * cx, y0 + 16 * cy);
        assert_eq!(cell, at(x0 + 16 * cx + 15, y0 + 16 * cy + 15));
    }
    // A title (dark text on white) above the kernels; below them the colour
    // scale, blue at its left end, white in the middle, red at its right end.
    assert_eq!(at(0, 0), [255, 255, 255]);
    assert!(
        (0..w).any(|x| (0..y0 - 2).any(|y| at(x, y)[0] < 100)),
        "no title"
    );
    let bar_y = (y0 + 48..h)
        .find(|&y| {
            at(w / 2, y) != [255, 255, 255]
                && at(12, y) != [255, 255, 255]
                && at(12, y)[2] > at(12, y)[0]
        })
        .expect("no colour bar");
    let (left, right) = (at(11, bar_y + 2), at(w - 12, bar_y + 2));
    assert!(left[2] > 150 && left[0] < 60, "{left:?}");
    assert!(right[0] > 150 && right[2] < 60, "{right:?}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&format!("{}x{} pixels", w, h)), "{stdout}");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn visualize_a_test_digit_in_a_grid_and_refuse_an_index_past_the_end() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let model = untrained_checkpoint();
    let dir = scratch("visualize-grid");
    let out = dir.join("maps.png");
    let o = Command::new(bin())
        .args([
            "visualize",
            "--index",
            "3",
            "--scale",
            "3",
            "--gap",
            "1",
            "--cols",
            "3",
            "--model",
        ])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = decode(&out);
    // Input + 8 maps of 28x28 in a 3x3 grid, each labelled under a title.
    use trainer_cli::visualize::{maps_figure_size, tile_origin};
    let size = maps_figure_size(9, 3, (28, 28), 3, 1);
    assert_eq!((img.width, img.height), size);
    assert!(size.0 > 3 * 84 + 2 && size.1 > 3 * 84 + 2);
    // The first tile is the input digit itself, enlarged.
    let ds = test_images().unwrap();
    let (x0, y0) = tile_origin(0, 3, (28, 28), 3, 1);
    assert_eq!(img.get(x0 + 14 * 3, y0 + 14 * 3), ds.image(3)[14 * 28 + 14]);
    // White around the tiles; dark text in the title band and under each tile.
    assert_eq!(img.get(0, 0), 255);
    let dark_in = |x: std::ops::Range<usize>, y: std::ops::Range<usize>| {
        y.clone().any(|y| x.clone().any(|x| img.get(x, y) < 100))
    };
    assert!(dark_in(0..img.width, 0..y0), "no title");
    for i in 0..9 {
        let (x, y) = tile_origin(i, 3, (28, 28), 3, 1);
        assert!(
            dark_in(x..x + 84, y + 84..y + 84 + 16),
            "no label under tile {i}"
        );
    }

    let o = Command::new(bin())
        .args(["visualize", "--index", "10000", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.join("never.png"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--index 10000") && stderr.contains("10000 images"),
        "{stderr}"
    );
    assert!(!dir.join("never.png").exists());
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn visualize_default_layout_is_one_row() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = scratch("visualize-row");
    let out = dir.join("maps.png");
    let f = trainer_cli::visualize::run(&trainer_cli::visualize::VisualizeOptions {
        model: &untrained_checkpoint(),
        data: Some(&data),
        index: 0,
        train_set: true,
        filters: false,
        out: &out,
        scale: None,
        gap: 2,
        cols: None,
        force: false,
    })
    .unwrap();
    let size = trainer_cli::visualize::maps_figure_size(9, 9, (28, 28), 4, 2);
    assert_eq!((f.width, f.height), size);
    assert_eq!(size.0, 9 * 112 + 8 * 2 + 20, "one row, between margins");
    assert!(
        f.description.starts_with("training image 0 (label 5)"),
        "{}",
        f.description
    );
    let img = decode(&out);
    assert_eq!((img.width, img.height), (f.width, f.height));
}

fn write_run(dir: &Path, metrics: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("metrics.csv"), metrics).unwrap();
    std::fs::write(dir.join("config.toml"), "name = \"my-run\"\n").unwrap();
}

#[test]
fn the_train_curve_says_when_it_is_a_running_mean() {
    let dir = scratch("plot-train-kind");
    let metrics = "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds\n\
                   1,0.9,70.0,0.5,85.0,10.0,1.0\n2,0.4,88.0,0.3,91.0,10.0,1.0\n";
    let run = dir.join("run");
    write_run(&run, metrics);
    trainer_cli::plot::run(&run, &dir.join("a.svg"), 800, 300, false).unwrap();
    let svg = std::fs::read_to_string(dir.join("a.svg")).unwrap();
    assert!(svg.contains("train (running mean over the epoch)"), "{svg}");

    let evaluated = dir.join("evaluated");
    write_run(&evaluated, metrics);
    std::fs::write(
        evaluated.join("config.toml"),
        "name = \"my-run\"\n[training]\neval_train = true\n",
    )
    .unwrap();
    trainer_cli::plot::run(&evaluated, &dir.join("b.svg"), 800, 300, false).unwrap();
    let svg = std::fs::read_to_string(dir.join("b.svg")).unwrap();
    assert!(
        svg.contains("train") && !svg.contains("running mean"),
        "{svg}"
    );
}

#[test]
fn plot_writes_png_and_svg_and_rejects_bad_rows() {
    let dir = scratch("plot");
    let run = dir.join("run");
    write_run(
        &run,
        "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds\n\
         1,0.9,70.0,0.5,85.0,10.0,1.0\n2,0.4,88.0,0.3,91.0,,\n3,0.3,92.5,0.28,92.0,10.1,1.0\n",
    );
    let png_out = dir.join("curves.png");
    let o = Command::new(bin())
        .args(["plot", "--width", "900", "--height", "400", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&png_out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&png_out).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    assert_eq!((reader.info().width, reader.info().height), (900, 400));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    assert!(buf.iter().any(|&b| b < 100), "the plot is blank");

    let svg_out = dir.join("curves.svg");
    trainer_cli::plot::run(&run, &svg_out, 800, 300, false).unwrap();
    let svg = std::fs::read_to_string(&svg_out).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("my-run"),
        "{}",
        &svg[..200.min(svg.len())]
    );

    let err = trainer_cli::plot::run(&run, &dir.join("curves.jpg"), 800, 300, false).unwrap_err();
    assert!(format!("{err:#}").contains(".png or .svg"));

    let bad = dir.join("bad");
    write_run(
        &bad,
        "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds\n1,0.9,70,0.5,85,,\n2,oops,88,0.3,91,,\n",
    );
    let o = Command::new(bin())
        .args(["plot", "--run"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.join("bad.png"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("metrics.csv: line 3") && stderr.contains("train_loss"),
        "{stderr}"
    );
    assert!(!dir.join("bad.png").exists());
}

#[test]
fn plot_of_one_epoch_is_not_empty() {
    let dir = scratch("plot-one");
    let run = dir.join("run");
    write_run(
        &run,
        "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds\n1,0.9,70.0,0.5,85.0,,\n",
    );
    let png_out = dir.join("one.png");
    trainer_cli::plot::run(&run, &png_out, 600, 300, false).unwrap();
    let img = decode(&png_out);
    assert_eq!((img.width, img.height), (600, 300));
    // The markers of the test series are red: some pixels are far from grey.
    let bytes = std::fs::read(&png_out).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    let reddish = buf
        .chunks_exact(3)
        .filter(|p| p[0] > 150 && p[1] < 80 && p[2] < 80)
        .count();
    assert!(reddish > 20, "only {reddish} red pixels");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn plot_of_a_real_run() {
    let Some(run) = trained_run() else { return };
    let out = run.join("curves.svg");
    let o = Command::new(bin())
        .args(["plot", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("over 2 epochs"));
    assert!(std::fs::read_to_string(&out).unwrap().contains("viz-test"));
}

/// A test digit drawn small (20x20) in the top-left corner of a 200x200 white
/// canvas, dark on white, as a user's drawing might be: centred as MNIST's
/// digits were, it is classified as well as the originals; used as it is
/// (only shrunk to 28x28), it is not.
#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn predict_centres_a_small_digit_in_a_corner_of_a_large_canvas() {
    let Some(run) = trained_run() else { return };
    let ds = test_images().unwrap();
    let dir = scratch("predict-corner");
    let mut centred = Predictor::load(&run.join("last.ckpt"), None).unwrap();
    let mut as_is = Predictor::load(&run.join("last.ckpt"), None)
        .unwrap()
        .mnist_style(false);
    let n = 50;
    let (mut right_centred, mut right_as_is, mut right_original) = (0, 0, 0);
    for i in 0..n {
        let label = usize::from(ds.label(i));
        let original = GreyImage {
            width: 28,
            height: 28,
            pixels: ds.image(i).to_vec(),
        };
        let small = original.resize_area(20, 20);
        let mut canvas = GreyImage::filled(200, 200, 255);
        for y in 0..20 {
            for x in 0..20 {
                canvas.pixels[(6 + y) * 200 + 6 + x] = 255 - small.get(x, y);
            }
        }
        let file = write(&dir.join(format!("{i}.png")), &canvas.to_png().unwrap());
        let pred = centred.predict_file(&file).unwrap();
        assert!(
            pred.notes
                .iter()
                .any(|n| n.contains("cropped to the digit")),
            "{:?}",
            pred.notes
        );
        right_centred += usize::from(pred.class == label);
        right_as_is += usize::from(as_is.predict_file(&file).unwrap().class == label);
        right_original += usize::from(argmax(&centred.probabilities(&original).unwrap()) == label);
    }
    assert!(
        right_centred + 3 >= right_original && right_centred >= 40,
        "centred: {right_centred} of {n} right, the original 28x28 digits: {right_original}"
    );
    assert!(
        right_as_is <= 20,
        "as is: {right_as_is} of {n} right; the test no longer shows what centring does"
    );
}

fn argmax(p: &[f32]) -> usize {
    (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
}

/// The RGB pixels of an 8-bit RGB PNG.
fn decode_png_rgb(bytes: &[u8]) -> RgbImage {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    RgbImage {
        width: info.width as usize,
        height: info.height as usize,
        pixels: buf,
    }
}
