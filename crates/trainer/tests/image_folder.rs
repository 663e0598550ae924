//! Image folders (`DIR/train/<class>/*.png`, `DIR/test/<class>/*.png`):
//! what is read, and every hostile layout refused with the folder or file named.

use std::path::Path;

use trainer::config::{OtherSizes, TrainConfig};
use trainer::data::DataSets;
use trainer::image::{GreyImage, RgbImage};

/// A 28x28 grey PNG whose pixels are all `v`.
fn grey(v: u8) -> Vec<u8> {
    GreyImage::filled(28, 28, v).to_png().unwrap()
}

fn put(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Two classes, `cat` and `ant` (sorted: ant = 0, cat = 1), in both splits.
fn small_folder(dir: &Path) {
    for split in ["train", "test"] {
        put(dir, &format!("{split}/cat/a.png"), &grey(200));
        put(dir, &format!("{split}/cat/b.png"), &grey(210));
        put(dir, &format!("{split}/ant/only.png"), &grey(10));
    }
}

/// A config whose network takes 28x28 grey images into two classes.
fn two_class_config() -> TrainConfig {
    let mut config = TrainConfig::load("mlp").unwrap();
    let layers::LayerConfig::Linear(last) = config.network.layers.last_mut().unwrap() else {
        panic!("mlp ends with a linear layer");
    };
    last.out_features = 2;
    config
}

fn load_err(dir: &Path) -> String {
    match DataSets::load_for(dir, &two_class_config()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn classes_are_the_sorted_folder_names_and_one_image_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    // An RGB image is read as grey (luma), and names starting with '.' are skipped.
    put(
        dir.path(),
        "train/ant/rgb.png",
        &RgbImage::filled(28, 28, [255, 255, 255]).to_png().unwrap(),
    );
    put(dir.path(), "train/ant/.DS_Store", b"not an image");
    let sets = DataSets::load_for(dir.path(), &two_class_config()).unwrap();
    assert_eq!(sets.train.named_classes().unwrap(), ["ant", "cat"]);
    assert_eq!(sets.train.class_counts(), [2, 2]);
    assert_eq!(sets.test.class_counts(), [1, 2]);
    // ant/only.png, ant/rgb.png, cat/a.png, cat/b.png, in that order.
    assert_eq!(sets.train.labels(), [0, 0, 1, 1]);
    assert_eq!(sets.train.image(0)[0], 10);
    assert_eq!(sets.train.image(1)[0], 255);
    assert_eq!(sets.train.image(3)[0], 210);
    assert_eq!(trainer::data::class_names(&sets.test), ["ant", "cat"]);
    let [train_list, test_list] = sets.files_sha256.unwrap();
    assert_ne!(train_list, test_list);
}

#[test]
fn an_empty_folder_and_an_empty_class_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train")).unwrap();
    std::fs::create_dir_all(dir.path().join("test")).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("train: no class folders"), "{err}");

    small_folder(dir.path());
    std::fs::create_dir_all(dir.path().join("train/bee")).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("bee: no PNG images"), "{err}");
}

#[test]
fn too_many_classes_are_refused_before_any_image_is_read() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    for c in 0..300 {
        std::fs::create_dir_all(dir.path().join(format!("train/c{c:03}"))).unwrap();
    }
    let err = load_err(dir.path());
    assert!(err.contains("more than 256 class folders"), "{err}");
}

#[test]
fn files_that_are_not_png_images_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    put(dir.path(), "train/cat/notes.txt", b"hello");
    let err = load_err(dir.path());
    assert!(err.contains("notes.txt: not a .png file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    put(dir.path(), "train/cat/fake.png", b"GIF89a....");
    let err = load_err(dir.path());
    assert!(err.contains("fake.png: not a PNG file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    let mut cut = grey(5);
    cut.truncate(cut.len() / 2);
    put(dir.path(), "test/ant/cut.png", &cut);
    let err = load_err(dir.path());
    assert!(err.contains("cut.png"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    put(dir.path(), "train/stray.png", &grey(1));
    let err = load_err(dir.path());
    assert!(err.contains("stray.png: not a folder"), "{err}");
}

#[cfg(unix)]
#[test]
fn links_to_folders_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    // A class folder that is a link to its own parent: a loop.
    std::os::unix::fs::symlink(dir.path().join("train"), dir.path().join("train/loop")).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("loop: a link"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    std::os::unix::fs::symlink(dir.path().join("train"), dir.path().join("train/cat/up")).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("up: a folder inside a class folder"), "{err}");

    // A link to a PNG file is read as the file.
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    std::os::unix::fs::symlink(
        dir.path().join("train/cat/a.png"),
        dir.path().join("train/cat/c.png"),
    )
    .unwrap();
    let sets = DataSets::load_for(dir.path(), &two_class_config()).unwrap();
    assert_eq!(sets.train.class_counts(), [1, 3]);
}

#[test]
fn other_sizes_are_refused_or_resized_as_the_config_says() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    put(
        dir.path(),
        "train/cat/big.png",
        &GreyImage::filled(56, 28, 100).to_png().unwrap(),
    );
    let err = load_err(dir.path());
    assert!(err.contains("big.png: 56x28 pixels"), "{err}");
    assert!(err.contains("other_sizes"), "{err}");

    let mut config = two_class_config();
    config.training.other_sizes = OtherSizes::Resize;
    let sets = DataSets::load_for(dir.path(), &config).unwrap();
    // Padded to 56x56 with black, halved: the top and bottom quarter black.
    let big = sets.train.image(3); // ant/only, cat/a, cat/b, cat/big
    assert_eq!(big.len(), 28 * 28);
    assert_eq!((big[0], big[14 * 28]), (0, 100));
}

#[test]
fn the_test_set_must_have_the_training_set_classes() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    put(dir.path(), "test/bee/1.png", &grey(1));
    let err = load_err(dir.path());
    assert!(err.contains("differ from the training set's"), "{err}");
}

#[test]
fn a_network_of_three_input_channels_reads_red_green_and_blue_planes() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    let mut img = RgbImage::filled(28, 28, [10, 20, 30]);
    img.set(27, 27, [250, 0, 5]);
    put(dir.path(), "train/ant/rgb.png", &img.to_png().unwrap());
    let mut config = two_class_config();
    config.network.input = vec![3, 28, 28];
    if let layers::LayerConfig::Linear(first) = &mut config.network.layers[1] {
        first.in_features = Some(3 * 784);
    }
    let sets = DataSets::load_for(dir.path(), &config).unwrap();
    assert_eq!(sets.train.channels(), 3);
    let rgb = sets.train.image(1); // ant/only.png, then ant/rgb.png
    assert_eq!(rgb.len(), 3 * 784);
    assert_eq!((rgb[0], rgb[784], rgb[2 * 784]), (10, 20, 30));
    assert_eq!((rgb[783], rgb[784 + 783], rgb[3 * 784 - 1]), (250, 0, 5));
    // A grey image gives three equal planes.
    let grey = sets.train.image(0);
    assert_eq!((grey[0], grey[784], grey[2 * 784]), (10, 10, 10));
    let net = config.build_network().unwrap();
    trainer::data::check_fits(&net, &sets.train, "the training set").unwrap();
    let (batch, _) = sets.train.tensors(&[1], None);
    assert_eq!(batch.shape(), &[1, 3, 28, 28]);
    // A grey network refuses the RGB set, saying what each holds.
    let grey_net = two_class_config().build_network().unwrap();
    let err = trainer::data::check_fits(&grey_net, &sets.train, "the training set").unwrap_err();
    assert!(
        err.to_string().contains("RGB images (input [3, 28, 28])"),
        "{err}"
    );
}

#[test]
fn the_network_must_take_grey_or_rgb_images_with_one_output_per_class() {
    let dir = tempfile::tempdir().unwrap();
    small_folder(dir.path());
    let mut config = two_class_config();
    config.network.input = vec![2, 28, 28];
    let err = DataSets::load_for(dir.path(), &config).err().unwrap();
    assert!(
        format!("{err:#}").contains("grey (input [1, 28, 28]) or RGB"),
        "{err:#}"
    );

    let sets = DataSets::load_for(dir.path(), &two_class_config()).unwrap();
    let ten = TrainConfig::load("mlp").unwrap().build_network().unwrap();
    let err = trainer::data::check_fits(&ten, &sets.train, "the training set").unwrap_err();
    assert!(err.to_string().contains("has 2 classes"), "{err}");
}
