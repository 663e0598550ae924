//! `fill_batch`, `pixel_mean_std`, `split_validation` on synthetic data.

use mnist_io::Dataset;

/// 4 images of 2 x 3; image i's pixels are 10*i + (0..6), label 9 - i.
fn tiny() -> Dataset {
    let pixels: Vec<u8> = (0..4u8)
        .flat_map(|i| (0..6u8).map(move |p| 10 * i + p))
        .collect();
    Dataset::from_parts(pixels, vec![9, 8, 7, 6], 2, 3).unwrap()
}

#[test]
fn fill_batch_scales_to_unit_interval() {
    let d = Dataset::from_parts(vec![0, 51, 255, 128], vec![3], 2, 2).unwrap();
    let mut out = [f32::NAN; 4];
    let mut labels = [99usize; 1];
    d.fill_batch(&[0], None, &mut out, &mut labels);
    assert_eq!(out, [0.0, 0.2, 1.0, 128.0 / 255.0]);
    assert_eq!(labels, [3]);
}

#[test]
fn fill_batch_standardises() {
    let d = Dataset::from_parts(vec![0, 51, 255, 128], vec![3], 2, 2).unwrap();
    let (mean, std) = (0.5f32, 0.25f32);
    let mut out = [0f32; 4];
    let mut labels = [0usize; 1];
    d.fill_batch(
        &[0],
        Some(mnist_io::Normalize { mean, std }),
        &mut out,
        &mut labels,
    );
    for (o, v) in out.iter().zip([0u8, 51, 255, 128]) {
        let want = (f32::from(v) / 255.0 - mean) / std;
        assert!((o - want).abs() < 1e-6, "{o} vs {want}");
    }
    assert_eq!(out[0], -2.0);
    assert_eq!(out[2], 2.0);
}

#[test]
fn fill_batch_follows_indices_in_order() {
    let d = tiny();
    let mut out = vec![0f32; 3 * 6];
    let mut labels = vec![0usize; 3];
    d.fill_batch(&[2, 0, 2], None, &mut out, &mut labels);
    assert_eq!(labels, [7, 9, 7]);
    let back: Vec<u8> = out.iter().map(|x| (x * 255.0).round() as u8).collect();
    assert_eq!(&back[..6], d.image(2));
    assert_eq!(&back[6..12], d.image(0));
    assert_eq!(&back[12..], d.image(2));
}

#[test]
#[should_panic(expected = "fill_batch")]
fn fill_batch_rejects_wrong_output_size() {
    let d = tiny();
    d.fill_batch(&[0, 1], None, &mut [0.0; 6], &mut [0; 2]);
}

#[test]
fn standardised_batch_has_zero_mean_unit_std() {
    let pixels: Vec<u8> = (0..=255u8).cycle().take(256 * 10).collect();
    let d = Dataset::from_parts(pixels, vec![0; 10], 16, 16).unwrap();
    let norm = d.pixel_mean_std();
    let (mean, std) = (norm.mean, norm.std);
    assert!((mean - 0.5).abs() < 1e-6);
    // Uniform over {0, 1/255, ..., 1}: variance = (256^2 - 1) / (12 * 255^2).
    let want = ((256.0f64 * 256.0 - 1.0) / (12.0 * 255.0 * 255.0)).sqrt() as f32;
    assert!((std - want).abs() < 1e-6, "{std} vs {want}");
    let idx: Vec<usize> = (0..10).collect();
    let mut out = vec![0f32; 2560];
    let mut labels = vec![0; 10];
    d.fill_batch(
        &idx,
        Some(mnist_io::Normalize { mean, std }),
        &mut out,
        &mut labels,
    );
    let m = out.iter().map(|&x| f64::from(x)).sum::<f64>() / 2560.0;
    let s = (out.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / 2560.0).sqrt();
    assert!(m.abs() < 1e-5 && (s - 1.0).abs() < 1e-5, "{m} {s}");
}

#[test]
fn split_validation_is_a_deterministic_partition() {
    let n = 100;
    let pixels: Vec<u8> = (0..n as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let d = Dataset::from_parts(pixels, labels, 1, 1).unwrap();
    let (a, b) = d.split_validation(30, 5);
    assert_eq!((a.len(), b.len()), (70, 30));
    let mut all: Vec<u8> = a.pixels().iter().chain(b.pixels()).copied().collect();
    // Labels travel with their images.
    for ds in [&a, &b] {
        for i in 0..ds.len() {
            assert_eq!(ds.label(i), ds.image(i)[0] % 10);
        }
    }
    all.sort_unstable();
    assert_eq!(all, (0..n as u8).collect::<Vec<_>>());
    let (_, b2) = d.split_validation(30, 5);
    assert_eq!(b.pixels(), b2.pixels());
    let (_, b3) = d.split_validation(30, 6);
    assert_ne!(b.pixels(), b3.pixels());
    let (all_train, none) = d.split_validation(0, 5);
    assert_eq!((all_train.len(), none.len()), (100, 0));
}

#[test]
fn spec_lookup() {
    assert_eq!(mnist_io::spec_by_name("mnist"), Some(&mnist_io::MNIST));
    assert_eq!(
        mnist_io::spec_by_name("Fashion-MNIST"),
        Some(&mnist_io::FASHION_MNIST)
    );
    assert_eq!(mnist_io::spec_by_name("cifar10"), None);
    for spec in mnist_io::KNOWN_DATASETS {
        assert!(spec.mirrors.iter().all(|m| m.ends_with('/')));
        let names: Vec<&str> = spec.files.iter().map(|f| f.name).collect();
        let [ti, tl] = mnist_io::Split::Train.file_names();
        let [ei, el] = mnist_io::Split::Test.file_names();
        assert_eq!(names, [ti, tl, ei, el]);
        assert!(spec.files.iter().all(|f| f.sha256.len() == 64));
    }
}
