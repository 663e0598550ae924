//! IDX files written by the tests themselves: valid ones parse, hostile ones give
//! the right error, naming the file.

mod common;

use std::path::{Path, PathBuf};

use common::{gzip, header, small_pair, write};
use mnist_io::{Dataset, IdxError, Split};

/// Writes `images`/`labels` to a fresh folder under the given names and loads them.
fn load_pair(images: &[u8], labels: &[u8]) -> (tempfile::TempDir, Result<Dataset, IdxError>) {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "imgs.idx", images);
    let l = write(dir.path(), "lbls.idx", labels);
    let r = Dataset::from_files(&i, &l);
    (dir, r)
}

/// Asserts the error's message names the file `name`.
fn names_file(e: &IdxError, name: &str) {
    let msg = e.to_string();
    assert!(msg.contains(name), "message {msg:?} does not name {name}");
    assert!(
        e.path().to_string_lossy().contains(name) || matches!(e, IdxError::CountMismatch { .. })
    );
}

#[test]
fn raw_and_gzipped_pairs_parse_alike() {
    let (img, lbl) = small_pair(13);
    let (_d1, raw) = load_pair(&img, &lbl);
    let (_d2, gz) = load_pair(&gzip(&img), &gzip(&lbl));
    let (_d3, mixed) = load_pair(&gzip(&img), &lbl);
    let raw = raw.unwrap();
    for d in [gz.unwrap(), mixed.unwrap()] {
        assert_eq!(d.len(), 13);
        assert_eq!(d.pixels(), raw.pixels());
        assert_eq!(d.labels(), raw.labels());
    }
    assert_eq!((raw.len(), raw.rows(), raw.cols()), (13, 3, 2));
    assert!(!raw.is_empty());
    assert_eq!(raw.image(1), &[222, 3, 40, 77, 114, 151]);
    assert_eq!(raw.label(12), 2);
    assert_eq!(raw.label_histogram(), [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(
        raw.class_names(),
        None,
        "synthetic data is no known data set"
    );
}

#[test]
fn empty_pair_is_valid() {
    let (img, lbl) = small_pair(0);
    let (_d, r) = load_pair(&img, &lbl);
    let d = r.unwrap();
    assert!(d.is_empty());
    assert_eq!(
        d.pixel_mean_std(),
        mnist_io::Normalize {
            mean: 0.0,
            std: 0.0
        }
    );
}

#[test]
fn load_finds_plain_or_gz_names_and_detects_gzip_by_magic() {
    let (img, lbl) = small_pair(4);
    let dir = tempfile::tempdir().unwrap();
    // Gzipped content under the plain name, plain content under the .gz name.
    write(dir.path(), "train-images-idx3-ubyte", &gzip(&img));
    write(dir.path(), "train-labels-idx1-ubyte.gz", &lbl);
    let d = Dataset::load(dir.path(), Split::Train).unwrap();
    assert_eq!(d.len(), 4);

    let e = Dataset::load(dir.path(), Split::Test).unwrap_err();
    assert!(matches!(e, IdxError::NotFound { .. }), "{e}");
    names_file(&e, "t10k-images-idx3-ubyte");
    assert!(e.to_string().contains(".gz"));
}

#[test]
fn missing_file_is_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = Dataset::from_files(
        dir.path().join("nope-images"),
        dir.path().join("nope-labels"),
    )
    .unwrap_err();
    assert!(matches!(e, IdxError::Io { .. }), "{e}");
    names_file(&e, "nope-images");
}

/// One hostile image file (with valid labels) and what it must give.
fn bad_images(images: Vec<u8>, check: impl Fn(&IdxError) -> bool) {
    let (_, lbl) = small_pair(2);
    for gzipped in [false, true] {
        let bytes = if gzipped {
            gzip(&images)
        } else {
            images.clone()
        };
        let (_d, r) = load_pair(&bytes, &lbl);
        let e = r.expect_err("hostile image file accepted");
        assert!(check(&e), "gzipped={gzipped}: unexpected error {e:?}");
        names_file(&e, "imgs.idx");
    }
}

fn bad_labels(labels: Vec<u8>, check: impl Fn(&IdxError) -> bool) {
    let (img, _) = small_pair(2);
    for gzipped in [false, true] {
        let bytes = if gzipped {
            gzip(&labels)
        } else {
            labels.clone()
        };
        let (_d, r) = load_pair(&img, &bytes);
        let e = r.expect_err("hostile label file accepted");
        assert!(check(&e), "gzipped={gzipped}: unexpected error {e:?}");
        names_file(&e, "lbls.idx");
    }
}

#[test]
fn wrong_magic() {
    let mut img = small_pair(2).0;
    img[0] = 0x12;
    bad_images(img, |e| {
        matches!(
            e,
            IdxError::BadMagic {
                found: [0x12, 0],
                ..
            }
        )
    });
    bad_images(b"P5 28 28 255\n....".to_vec(), |e| {
        matches!(e, IdxError::BadMagic { .. })
    });
}

#[test]
fn data_type_other_than_unsigned_byte() {
    let mut img = small_pair(2).0;
    img[2] = 0x0d; // float
    bad_images(img, |e| {
        matches!(e, IdxError::BadDataType { found: 0x0d, .. }) && e.to_string().contains("0x08")
    });
}

#[test]
fn wrong_number_of_dimensions() {
    // A label file given as images and vice versa.
    let (img, lbl) = small_pair(2);
    bad_images(lbl, |e| {
        matches!(
            e,
            IdxError::BadDimensions {
                expected: 3,
                found: 1,
                ..
            }
        )
    });
    bad_labels(img, |e| {
        matches!(
            e,
            IdxError::BadDimensions {
                expected: 1,
                found: 3,
                ..
            }
        )
    });
}

#[test]
fn header_too_short() {
    bad_images(vec![0, 0], |e| {
        matches!(e, IdxError::HeaderTooShort { found: 2, .. })
    });
    bad_images(vec![], |e| {
        matches!(e, IdxError::HeaderTooShort { found: 0, .. })
    });
    bad_images(vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0], |e| {
        matches!(
            e,
            IdxError::HeaderTooShort {
                expected: 16,
                found: 10,
                ..
            }
        )
    });
}

#[test]
fn truncated_data() {
    let img = small_pair(2).0;
    bad_images(img[..img.len() - 1].to_vec(), |e| {
        matches!(
            e,
            IdxError::Truncated {
                items: 2,
                expected: 12,
                found: 11,
                ..
            }
        )
    });
    let lbl = small_pair(2).1;
    bad_labels(lbl[..lbl.len() - 1].to_vec(), |e| {
        matches!(
            e,
            IdxError::Truncated {
                items: 2,
                expected: 2,
                found: 1,
                ..
            }
        )
    });
}

#[test]
fn header_declaring_billions_of_items_is_refused_without_allocating() {
    // 4 billion images of 65535 x 256: ~10^18 bytes, if anything trusted the header.
    let mut img = header(8, &[4_000_000_000, 65535, 256]);
    img.extend_from_slice(&[0; 100]);
    bad_images(img, |e| {
        matches!(
            e,
            IdxError::Truncated {
                items: 4_000_000_000,
                found: 100,
                ..
            }
        ) && e.to_string().contains("4000000000 items")
    });
    let mut lbl = header(8, &[u32::MAX]);
    lbl.push(1);
    bad_labels(lbl, |e| {
        matches!(
            e,
            IdxError::Truncated {
                items: 4_294_967_295,
                ..
            }
        )
    });
}

#[test]
fn absurd_image_shape() {
    let img = header(8, &[0, u32::MAX, u32::MAX]);
    bad_images(img, |e| matches!(e, IdxError::BadShape { .. }));
    let img = header(8, &[0, 0, 28]);
    bad_images(img, |e| {
        matches!(
            e,
            IdxError::BadShape {
                rows: 0,
                cols: 28,
                ..
            }
        )
    });
}

#[test]
fn trailing_bytes() {
    let mut img = small_pair(2).0;
    img.push(7);
    bad_images(img, |e| {
        matches!(
            e,
            IdxError::TrailingBytes {
                expected: 12,
                found: 13,
                ..
            }
        )
    });
    let mut lbl = small_pair(2).1;
    lbl.extend_from_slice(&[1, 2, 3]);
    bad_labels(lbl, |e| matches!(e, IdxError::TrailingBytes { .. }));
}

#[test]
fn image_and_label_counts_differ() {
    let (img, _) = small_pair(3);
    let (_, lbl) = small_pair(4);
    let (_d, r) = load_pair(&img, &lbl);
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            IdxError::CountMismatch {
                images: 3,
                labels: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("imgs.idx") && msg.contains("lbls.idx"),
        "{msg}"
    );
}

#[test]
fn label_outside_0_to_9() {
    let lbl = mnist_io::encode_labels(&[0, 9, 10]).unwrap();
    bad_labels(lbl, |e| {
        matches!(
            e,
            IdxError::BadLabel {
                index: 2,
                label: 10,
                ..
            }
        )
    });
    let e = Dataset::from_parts(vec![0; 2], vec![1, 255], 1, 1).unwrap_err();
    assert!(
        matches!(
            e,
            IdxError::BadLabel {
                index: 1,
                label: 255,
                ..
            }
        ),
        "{e:?}"
    );
    // Named classes bound the labels by their number, and the message says so.
    let names = vec!["ant".to_string(), "cat".to_string()];
    let e = Dataset::from_named_parts(vec![0; 2], vec![1, 2], [1, 1, 1], names).unwrap_err();
    assert!(
        matches!(
            e,
            IdxError::BadLabel {
                index: 1,
                label: 2,
                classes: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("below 2"), "{e}");
}

#[test]
fn corrupt_gzip_stream() {
    let (img, _) = small_pair(50);
    let gz = gzip(&img);
    let (_, lbl) = small_pair(50);

    // Cut short: missing part of the deflate stream and the trailer.
    for cut in [3, 10, gz.len() / 2, gz.len() - 4, gz.len() - 1] {
        let (_d, r) = load_pair(&gz[..cut], &lbl);
        let e = r.unwrap_err();
        assert!(matches!(e, IdxError::Gzip { .. }), "cut at {cut}: {e:?}");
        names_file(&e, "imgs.idx");
    }
    // A flipped byte in the CRC-32 of the trailer.
    let mut bad = gz.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xff;
    let (_d, r) = load_pair(&bad, &lbl);
    let e = r.unwrap_err();
    assert!(matches!(e, IdxError::Gzip { .. }), "bad crc: {e:?}");
    // Garbage after the gzip member.
    let mut bad = gz.clone();
    bad.extend_from_slice(b"garbage");
    let (_d, r) = load_pair(&bad, &lbl);
    assert!(matches!(r.unwrap_err(), IdxError::Gzip { .. }));
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let (img, lbl) = small_pair(5);
    let (a, b) = img.split_at(7);
    let mut gz = gzip(a);
    gz.extend_from_slice(&gzip(b));
    let (_d, r) = load_pair(&gz, &lbl);
    assert_eq!(r.unwrap().len(), 5);
}

#[test]
fn decompression_bomb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 10 MB of zeros compress to ~10 KB; with a 1 MB limit it must be refused.
    let p = write(dir.path(), "bomb.gz", &gzip(&vec![0u8; 10 << 20]));
    let e = mnist_io::read_maybe_gz_limited(&p, 1 << 20).unwrap_err();
    assert!(
        matches!(
            e,
            IdxError::TooLarge {
                limit: 1048576,
                gzipped: true,
                ..
            }
        ),
        "{e:?}"
    );
    names_file(&e, "bomb.gz");
    // A plain file over the limit too.
    let p = write(dir.path(), "big.idx", &vec![0u8; 2 << 20]);
    let e = mnist_io::read_maybe_gz_limited(&p, 1 << 20).unwrap_err();
    assert!(
        matches!(e, IdxError::TooLarge { gzipped: false, .. }),
        "{e:?}"
    );
    // Within the default limit all is fine.
    assert_eq!(
        mnist_io::read_maybe_gz(dir.path().join("bomb.gz"))
            .unwrap()
            .len(),
        10 << 20
    );
}

#[test]
fn checksum_mismatch_names_file_and_both_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "train-labels-idx1-ubyte.gz",
        &gzip(b"not mnist"),
    );
    let spec = &mnist_io::MNIST.files[1];
    let e = mnist_io::verify_file(&p, spec).unwrap_err();
    let actual = mnist_io::sha256_hex(b"not mnist");
    match &e {
        IdxError::Checksum {
            expected,
            actual: a,
            ..
        } => {
            assert_eq!(expected, spec.sha256);
            assert_eq!(a, &actual);
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("train-labels-idx1-ubyte.gz")
            && msg.contains(spec.sha256)
            && msg.contains(&actual),
        "{msg}"
    );
    mnist_io::verify_bytes(
        Path::new("x"),
        b"not mnist",
        &mnist_io::FileSpec {
            name: "x",
            sha256: Box::leak(actual.into_boxed_str()),
        },
    )
    .unwrap();
}

#[test]
fn sha256_known_answer() {
    assert_eq!(
        mnist_io::sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn from_parts_checks_sizes() {
    assert!(Dataset::from_parts(vec![0; 12], vec![0, 1], 3, 2).is_ok());
    let e = Dataset::from_parts(vec![0; 11], vec![0, 1], 3, 2).unwrap_err();
    assert!(matches!(e, IdxError::CountMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("<in-memory images>"));
    let e = Dataset::from_parts(vec![], vec![], 0, 2).unwrap_err();
    assert!(matches!(e, IdxError::BadShape { .. }), "{e:?}");
    let e = Dataset::from_parts(vec![], vec![], usize::MAX, usize::MAX).unwrap_err();
    assert!(matches!(e, IdxError::BadShape { .. }), "{e:?}");
}

#[test]
fn errors_are_std_errors_with_paths() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let e = IdxError::NotFound {
        path: PathBuf::from("a/b"),
    };
    is_error(&e);
    assert_eq!(e.path(), Path::new("a/b"));
}
