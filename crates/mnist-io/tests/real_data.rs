//! The real data sets, found as `common/find_data.rs` says: MNIST in
//! `$MNIST_DIR` or `data/mnist` (plain or gzipped), Fashion-MNIST in the Debian
//! package's folder. A test whose data is absent shows as ignored, with the reason.

mod common;

use mnist_io::{Dataset, Split, FASHION_MNIST, MNIST};

macro_rules! dir_or_skip {
    ($e:expr) => {
        match $e {
            Ok(d) => d,
            Err(reason) => {
                println!("skipping: {reason}");
                return;
            }
        }
    };
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn mnist_counts_labels_and_pixels() {
    let dir = dir_or_skip!(common::mnist_dir());
    let train = Dataset::load(&dir, Split::Train).unwrap();
    let test = Dataset::load(&dir, Split::Test).unwrap();
    assert_eq!((train.len(), train.rows(), train.cols()), (60_000, 28, 28));
    assert_eq!((test.len(), test.rows(), test.cols()), (10_000, 28, 28));
    assert_eq!(
        train.label_histogram(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(test.label_histogram().iter().sum::<usize>(), 10_000);

    // Looked up with a separate Python script (gzip + slicing past the 16-byte header):
    // training image 0 is a 5 whose first nonzero pixel is (row 5, col 12) = 3,
    // (5, 16) = 126, (14, 14) = 240, and whose pixels sum to 27525.
    assert_eq!(train.label(0), 5);
    assert_eq!(&train.labels()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    let img0 = train.image(0);
    assert_eq!(img0.iter().position(|&v| v != 0), Some(5 * 28 + 12));
    assert_eq!(img0[5 * 28 + 12], 3);
    assert_eq!(img0[5 * 28 + 16], 126);
    assert_eq!(img0[14 * 28 + 14], 240);
    assert_eq!(img0.iter().map(|&v| u32::from(v)).sum::<u32>(), 27525);
    assert_eq!(test.label(0), 7);
    assert_eq!(
        test.image(0).iter().map(|&v| u32::from(v)).sum::<u32>(),
        18454
    );

    // The well-known normalisation constants of MNIST.
    let mnist_io::Normalize { mean, std } = train.pixel_mean_std();
    assert!((mean - 0.130_660_48).abs() < 1e-6, "{mean}");
    assert!((std - 0.308_107_8).abs() < 1e-6, "{std}");

    // Recognised by checksum.
    assert_eq!(train.spec(), Some(&MNIST));
    assert_eq!(test.class_names().unwrap()[7], "7");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn mnist_checksums_match_the_published_ones() {
    let dir = dir_or_skip!(common::mnist_dir());
    // The SHA-256 of each decompressed file, as published with the data set
    // (the SHA256SUMS beside the build machines' copy); a folder made by
    // `cargo xtask fetch-data` holds only the four files.
    let published = [
        (
            "train-images-idx3-ubyte",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        (
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        (
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        (
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ];
    for (name, hash) in published {
        let spec = MNIST
            .file(name)
            .unwrap_or_else(|| panic!("unknown file {name}"));
        assert_eq!(spec.sha256, hash, "MNIST spec disagrees for {name}");
        let path = mnist_io::find_file(&dir, name).unwrap();
        mnist_io::verify_file(&path, spec).unwrap();
    }
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn mnist_validation_split_and_batches() {
    let dir = dir_or_skip!(common::mnist_dir());
    let train = Dataset::load(&dir, Split::Train).unwrap();
    let (fit, val) = train.split_validation(5000, 1);
    assert_eq!((fit.len(), val.len()), (55_000, 5000));
    assert_eq!(val.class_names(), Some(&MNIST.class_names));
    let mut h = fit.label_histogram();
    for (a, b) in h.iter_mut().zip(val.label_histogram()) {
        *a += b;
    }
    assert_eq!(h, train.label_histogram());
    // Same seed, same split.
    let (_, val2) = train.split_validation(5000, 1);
    assert_eq!(val.labels(), val2.labels());
    assert_eq!(val.pixels(), val2.pixels());

    let order = mnist_io::epoch_order(fit.len(), 7, 0);
    let mut x = vec![0f32; 128 * 784];
    let mut y = vec![0usize; 128];
    let norm = fit.pixel_mean_std();
    let mut seen = 0;
    for (_, idx) in mnist_io::batches(&order, 128) {
        let n = idx.len();
        fit.fill_batch(idx, Some(norm), &mut x[..n * 784], &mut y[..n]);
        seen += n;
    }
    assert_eq!(seen, 55_000);
}

#[test]
#[cfg_attr(
    not(has_fashion_mnist),
    ignore = "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"
)]
fn fashion_mnist_test_set() {
    let dir = dir_or_skip!(common::fashion_dir());
    let test = Dataset::load(&dir, Split::Test).unwrap();
    assert_eq!((test.len(), test.rows(), test.cols()), (10_000, 28, 28));
    assert_eq!(test.label_histogram(), [1000; 10]);
    assert_eq!(test.spec(), Some(&FASHION_MNIST));
    let names = test.class_names().unwrap();
    assert_eq!(names[0], "T-shirt/top");
    assert_eq!(names[9], "Ankle boot");
    // Test image 0 (looked up separately): an ankle boot, first nonzero pixel (7, 19) = 3.
    assert_eq!(names[usize::from(test.label(0))], "Ankle boot");
    assert_eq!(
        test.image(0).iter().position(|&v| v != 0),
        Some(7 * 28 + 19)
    );
    assert_eq!(
        test.image(0).iter().map(|&v| u32::from(v)).sum::<u32>(),
        33456
    );

    let train = Dataset::load(&dir, Split::Train).unwrap();
    assert_eq!(train.label_histogram(), [6000; 10]);
    assert_eq!(train.class_names(), Some(&FASHION_MNIST.class_names));
}

#[test]
#[cfg_attr(
    not(has_fashion_mnist),
    ignore = "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"
)]
fn fashion_mnist_checksums() {
    let dir = dir_or_skip!(common::fashion_dir());
    for spec in &FASHION_MNIST.files {
        let path = mnist_io::find_file(&dir, spec.name).unwrap();
        mnist_io::verify_file(&path, spec).unwrap();
        // And it is not mistaken for MNIST.
        let mnist_spec = MNIST.file(spec.name).unwrap();
        assert!(matches!(
            mnist_io::verify_file(&path, mnist_spec),
            Err(mnist_io::IdxError::Checksum { .. })
        ));
    }
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn altered_mnist_is_not_recognised() {
    let dir = dir_or_skip!(common::mnist_dir());
    // The test labels with one label changed: still valid IDX, but not MNIST any more.
    // The folder may hold the files plain or gzipped.
    let labels_file = mnist_io::find_file(&dir, "t10k-labels-idx1-ubyte").unwrap();
    let mut labels = mnist_io::read_maybe_gz(labels_file).unwrap();
    labels[8] = (labels[8] + 1) % 10;
    let tmp = tempfile::tempdir().unwrap();
    let images = mnist_io::find_file(&dir, "t10k-images-idx3-ubyte").unwrap();
    std::fs::copy(&images, tmp.path().join(images.file_name().unwrap())).unwrap();
    std::fs::write(tmp.path().join("t10k-labels-idx1-ubyte"), &labels).unwrap();
    let d = Dataset::load(tmp.path(), Split::Test).unwrap();
    assert_eq!(d.len(), 10_000);
    assert_eq!(d.class_names(), None);
}
