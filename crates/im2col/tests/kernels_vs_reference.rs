//! The fast kernels against the nested-loop reference, over random shapes.

use im2col::{
    conv, pool, reference, Activation, ConvAlgorithm, ConvGeometry, ConvScratch, PoolGeometry,
};
use proptest::prelude::*;
use tensor::Rng;

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

/// Equal to 1e-4, relative to the magnitude of the expected value (absolute below 1).
fn assert_close(what: &str, got: &[f32], expected: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), expected.len(), "{}: length", what);
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        prop_assert!(
            (g - e).abs() <= 1e-4 * e.abs().max(1.0),
            "{}[{}]: got {}, expected {}",
            what,
            i,
            g,
            e
        );
    }
    Ok(())
}

fn conv_case() -> impl Strategy<Value = (usize, ConvGeometry, u64)> {
    (
        1usize..4,
        1usize..4,
        1usize..5,
        1usize..4,
        1usize..4,
        0usize..3,
        1usize..4,
        1usize..10,
        1usize..10,
        any::<u64>(),
    )
        .prop_filter_map(
            "kernel must fit the padded input",
            |(batch, c, o, kh, kw, pad, stride, h, w, seed)| {
                let g = ConvGeometry {
                    in_channels: c,
                    in_h: h,
                    in_w: w,
                    out_channels: o,
                    kernel_h: kh,
                    kernel_w: kw,
                    pad_h: pad,
                    pad_w: pad.min(kw - 1),
                    stride_h: stride,
                    stride_w: 1 + (stride + 1) % 3,
                };
                g.check().ok().map(|_| (batch, g, seed))
            },
        )
}

/// Stride-1 shapes, the direct algorithm's domain: wider planes (so that
/// rows span several registers and the 24-wide and 8-wide kernel blocks both
/// run), more channels than one 4-row block, kernels up to 5, padding below
/// the kernel size.
fn stride1_case() -> impl Strategy<Value = (usize, ConvGeometry, u64)> {
    (
        1usize..4,
        1usize..10,
        1usize..11,
        1usize..6,
        1usize..6,
        0usize..5,
        1usize..31,
        1usize..31,
        any::<u64>(),
    )
        .prop_filter_map(
            "kernel must fit the padded input",
            |(batch, c, o, kh, kw, pad, h, w, seed)| {
                let g = ConvGeometry {
                    in_channels: c,
                    in_h: h,
                    in_w: w,
                    out_channels: o,
                    kernel_h: kh,
                    kernel_w: kw,
                    pad_h: pad.min(kh - 1),
                    pad_w: (pad / 2).min(kw - 1),
                    stride_h: 1,
                    stride_w: 1,
                };
                g.check().ok().map(|_| (batch, g, seed))
            },
        )
}

/// Forward, then both backward passes (after the forward and from scratch),
/// with `algorithm`, checked against the reference.
fn check_conv(
    algorithm: ConvAlgorithm,
    batch: usize,
    g: &ConvGeometry,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::seed_from_u64(seed);
    let x = random(&mut rng, batch * g.in_size());
    let w = random(&mut rng, g.weight_len());
    let b = random(&mut rng, g.out_channels);
    let dy = random(&mut rng, batch * g.out_size());
    let mut scratch = ConvScratch::with_algorithm(algorithm);

    let mut y = vec![f32::NAN; batch * g.out_size()];
    conv::conv2d_forward(g, batch, &x, &w, &b, &mut y, &mut scratch);
    assert_close("y", &y, &reference::conv2d_forward(g, batch, &x, &w, &b))?;

    let (rdx, rdw, rdb) = reference::conv2d_backward(g, batch, &x, &w, &dy);
    let (mut dx, mut dw, mut db) = (
        vec![f32::NAN; x.len()],
        vec![f32::NAN; w.len()],
        vec![f32::NAN; b.len()],
    );
    conv::conv2d_backward_after_forward(
        g,
        batch,
        &w,
        &dy,
        Some(&mut dx),
        &mut dw,
        &mut db,
        &mut scratch,
    );
    assert_close("dx after forward", &dx, &rdx)?;
    assert_close("dw after forward", &dw, &rdw)?;
    assert_close("db after forward", &db, &rdb)?;

    let (mut dx, mut dw, mut db) = (
        vec![f32::NAN; x.len()],
        vec![f32::NAN; w.len()],
        vec![f32::NAN; b.len()],
    );
    conv::conv2d_backward(
        g,
        batch,
        &x,
        &w,
        &dy,
        Some(&mut dx),
        &mut dw,
        &mut db,
        &mut scratch,
    );
    assert_close("dx", &dx, &rdx)?;
    assert_close("dw", &dw, &rdw)?;
    assert_close("db", &db, &rdb)?;

    // Without the input gradient (a first layer): the same dW and db.
    let (mut dw2, mut db2) = (vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
    conv::conv2d_backward(
        g,
        batch,
        &x,
        &w,
        &dy,
        None,
        &mut dw2,
        &mut db2,
        &mut scratch,
    );
    prop_assert_eq!(&dw2, &dw);
    prop_assert_eq!(&db2, &db);
    Ok(())
}

/// A fused ReLU gives the bits of the plain convolution followed by
/// `max(y, 0)`, and its backward pass the bits of the plain backward pass
/// given the masked gradient.
fn check_fused_relu(
    algorithm: ConvAlgorithm,
    batch: usize,
    g: &ConvGeometry,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::seed_from_u64(seed);
    let x = random(&mut rng, batch * g.in_size());
    let w = random(&mut rng, g.weight_len());
    let b = random(&mut rng, g.out_channels);
    let dy = random(&mut rng, batch * g.out_size());
    let grads = |relu_output: Option<&[f32]>, dy: &[f32], s: &mut ConvScratch| {
        let (mut dx, mut dw, mut db) = (
            vec![f32::NAN; x.len()],
            vec![f32::NAN; w.len()],
            vec![f32::NAN; b.len()],
        );
        conv::conv2d_backward_after_forward_with(
            g,
            batch,
            &w,
            relu_output,
            dy,
            Some(&mut dx),
            &mut dw,
            &mut db,
            s,
        );
        [dx, dw, db].map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>())
    };

    let mut plain = ConvScratch::with_algorithm(algorithm);
    let mut y = vec![f32::NAN; dy.len()];
    conv::conv2d_forward(g, batch, &x, &w, &b, &mut y, &mut plain);
    let relu: Vec<f32> = y.iter().map(|v| v.max(0.0)).collect();
    let masked: Vec<f32> = dy
        .iter()
        .zip(&y)
        .map(|(&d, &y)| if y > 0.0 { d } else { 0.0 })
        .collect();
    let expected = grads(None, &masked, &mut plain);

    let mut fused = ConvScratch::with_algorithm(algorithm);
    let mut yf = vec![f32::NAN; dy.len()];
    conv::conv2d_forward_with(g, batch, &x, &w, &b, Activation::Relu, &mut yf, &mut fused);
    prop_assert!(
        yf.iter()
            .zip(&relu)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "fused forward differs"
    );
    prop_assert!(
        grads(Some(&yf), &dy, &mut fused) == expected,
        "fused backward differs"
    );
    Ok(())
}

fn pool_case() -> impl Strategy<Value = (usize, PoolGeometry, u64)> {
    (
        1usize..4,
        1usize..4,
        1usize..4,
        1usize..4,
        0usize..2,
        1usize..10,
        1usize..10,
        any::<u64>(),
    )
        .prop_filter_map(
            "window must fit",
            |(batch, c, k, stride, pad, h, w, seed)| {
                PoolGeometry::new(c, h, w, k, stride, pad.min(k - 1))
                    .ok()
                    .map(|g| (batch, g, seed))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn conv_forward_and_backward_match_reference((batch, g, seed) in conv_case()) {
        check_conv(ConvAlgorithm::Im2col, batch, &g, seed)?;
        // Strides above 1: Auto must take the im2col path and agree too.
        check_conv(ConvAlgorithm::Auto, batch, &g, seed)?;
    }

    #[test]
    fn stride_one_conv_matches_reference_with_both_algorithms((batch, g, seed) in stride1_case()) {
        check_conv(ConvAlgorithm::Im2col, batch, &g, seed)?;
        check_conv(ConvAlgorithm::Direct, batch, &g, seed)?;
    }

    #[test]
    fn fused_relu_is_conv_then_relu((batch, g, seed) in stride1_case()) {
        check_fused_relu(ConvAlgorithm::Im2col, batch, &g, seed)?;
        check_fused_relu(ConvAlgorithm::Direct, batch, &g, seed)?;
    }

    #[test]
    fn fused_relu_is_conv_then_relu_at_any_stride((batch, g, seed) in conv_case()) {
        check_fused_relu(ConvAlgorithm::Auto, batch, &g, seed)?;
    }

    #[test]
    fn dense_kernels_match_reference(
        n in 1usize..13,
        i8 in 1usize..40,
        o4 in 1usize..20,
        with_dx in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (i, o) = (8 * i8, 4 * o4);
        prop_assume!(im2col::dense_available(i, o));
        let mut rng = Rng::seed_from_u64(seed);
        let x = random(&mut rng, n * i);
        let w = random(&mut rng, o * i);
        let b = random(&mut rng, o);
        let dy = random(&mut rng, n * o);
        let mut s = im2col::DenseScratch::default();
        let mut y = vec![f32::NAN; n * o];
        im2col::dense_forward(n, i, o, &x, &w, &b, &mut y, &mut s);
        assert_close("y", &y, &reference::dense_forward(n, i, o, &x, &w, &b))?;
        let (rdx, rdw) = reference::dense_backward(n, i, o, &x, &w, &dy);
        let mut dw = vec![f32::NAN; o * i];
        let mut dx = vec![f32::NAN; n * i];
        im2col::dense_backward(n, i, o, &x, &w, &dy, with_dx.then_some(&mut dx[..]), &mut dw, &mut s);
        assert_close("dw", &dw, &rdw)?;
        if with_dx {
            assert_close("dx", &dx, &rdx)?;
        }
    }

    #[test]
    fn input_gradient_is_full_correlation_with_rotated_kernel((batch, mut g, seed) in conv_case()) {
        g.stride_h = 1;
        g.stride_w = 1;
        let mut rng = Rng::seed_from_u64(seed);
        let w = random(&mut rng, g.weight_len());
        let x = random(&mut rng, batch * g.in_size());
        let dy = random(&mut rng, batch * g.out_size());
        let (rdx, _, _) = reference::conv2d_backward(&g, batch, &x, &w, &dy);
        assert_close("dx", &reference::conv2d_input_grad_rotated(&g, batch, &w, &dy), &rdx)?;
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col((_, g, seed) in conv_case()) {
        // <im2col(x), c> = <x, col2im(c)> for all x, c: the defining property of the backward pass.
        let mut rng = Rng::seed_from_u64(seed);
        let x = random(&mut rng, g.in_size());
        let c = random(&mut rng, g.patch_len() * g.out_plane());
        let mut cols = vec![0.0; c.len()];
        conv::im2col(&g, &x, &mut cols);
        let mut back = vec![0.0; x.len()];
        conv::col2im(&g, &c, &mut back);
        let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| *a as f64 * *b as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| *a as f64 * *b as f64).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0), "{} vs {}", lhs, rhs);
    }

    #[test]
    fn pooling_matches_reference((batch, g, seed) in pool_case()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = random(&mut rng, batch * g.in_size());
        let dy = random(&mut rng, batch * g.out_size());

        let mut y = vec![f32::NAN; dy.len()];
        pool::avg_pool_forward(&g, batch, &x, &mut y);
        assert_close("avg y", &y, &reference::avg_pool_forward(&g, batch, &x))?;
        let mut dx = vec![f32::NAN; x.len()];
        pool::avg_pool_backward(&g, batch, &dy, &mut dx);
        assert_close("avg dx", &dx, &reference::avg_pool_backward(&g, batch, &dy))?;

        let mut arg = vec![u32::MAX; dy.len()];
        pool::max_pool_forward(&g, batch, &x, &mut y, &mut arg);
        let (ry, rarg) = reference::max_pool_forward(&g, batch, &x);
        assert_close("max y", &y, &ry)?;
        prop_assert_eq!(&arg, &rarg);
        pool::max_pool_backward(&g, batch, &dy, &arg, &mut dx);
        assert_close("max dx", &dx, &reference::max_pool_backward(&g, batch, &dy, &rarg))?;
    }
}

/// The results are bit-identical on 1, 2, 3 and 4 threads.
#[test]
fn kernels_do_not_depend_on_thread_count() {
    let g = ConvGeometry::builder(8, 16, 3)
        .input(14, 14)
        .pad(1)
        .build()
        .unwrap();
    let p = PoolGeometry::new(16, 14, 14, 2, 2, 0).unwrap();
    let batch = 37;
    let mut rng = Rng::seed_from_u64(9);
    let x = random(&mut rng, batch * g.in_size());
    let w = random(&mut rng, g.weight_len());
    let b = random(&mut rng, g.out_channels);
    let dy = random(&mut rng, batch * g.out_size());
    let run = |algorithm| {
        let mut s = ConvScratch::with_algorithm(algorithm);
        let mut y = vec![0.0; dy.len()];
        conv::conv2d_forward(&g, batch, &x, &w, &b, &mut y, &mut s);
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
        conv::conv2d_backward(
            &g,
            batch,
            &x,
            &w,
            &dy,
            Some(&mut dx),
            &mut dw,
            &mut db,
            &mut s,
        );
        let mut pooled = vec![0.0; batch * p.out_size()];
        pool::avg_pool_forward(&p, batch, &y, &mut pooled);
        [y, dx, dw, db, pooled].map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>())
    };
    for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Direct] {
        let results: Vec<_> = (1..=4)
            .map(|t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
                    .install(|| run(algorithm))
            })
            .collect();
        for (t, r) in results.iter().enumerate().skip(1) {
            assert!(
                r == &results[0],
                "{algorithm:?}: {} threads differ from 1",
                t + 1
            );
        }
    }
}

/// On an x86-64 CPU with AVX2 and FMA (the build machines), the networks'
/// convolutions take the direct path, so the tests above exercise it.
#[test]
#[cfg(target_arch = "x86_64")]
fn direct_path_runs_the_seed_networks_convolutions_on_avx2_machines() {
    let cpu =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    for g in [
        ConvGeometry::builder(1, 8, 3)
            .input(28, 28)
            .pad(1)
            .build()
            .unwrap(),
        ConvGeometry::builder(8, 16, 3)
            .input(14, 14)
            .pad(1)
            .build()
            .unwrap(),
    ] {
        assert_eq!(im2col::direct_available(&g), cpu, "{g:?}");
        assert_eq!(
            ConvAlgorithm::Auto.resolve(&g) == ConvAlgorithm::Direct,
            cpu
        );
    }
    let strided = ConvGeometry::builder(8, 16, 3)
        .input(14, 14)
        .pad(1)
        .stride(2)
        .build()
        .unwrap();
    assert!(!im2col::direct_available(&strided));
    assert_eq!(
        ConvAlgorithm::Direct.resolve(&strided),
        ConvAlgorithm::Im2col
    );
}

/// One scratch reused across geometries and batch sizes (as a layer's is when
/// its input size changes) gives what a fresh one gives: the zero padding the
/// direct path writes once is rebuilt whenever the layout changes.
#[test]
fn a_scratch_reused_across_shapes_gives_fresh_results() {
    let shapes = [
        (
            ConvGeometry::builder(2, 5, 3)
                .input(9, 9)
                .pad(1)
                .build()
                .unwrap(),
            3,
        ),
        (
            ConvGeometry::builder(2, 5, 3)
                .input(9, 9)
                .pad(1)
                .build()
                .unwrap(),
            1,
        ),
        (
            ConvGeometry::builder(2, 5, 3)
                .input(9, 9)
                .pad(1)
                .build()
                .unwrap(),
            4,
        ),
        (
            ConvGeometry::builder(2, 5, 3)
                .input(11, 7)
                .pad(2)
                .build()
                .unwrap(),
            2,
        ),
        (
            ConvGeometry::builder(3, 4, 5)
                .input(6, 6)
                .pad(2)
                .build()
                .unwrap(),
            2,
        ),
        (
            ConvGeometry::builder(2, 5, 3)
                .input(9, 9)
                .pad(1)
                .build()
                .unwrap(),
            3,
        ),
    ];
    for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Direct] {
        let mut reused = ConvScratch::with_algorithm(algorithm);
        for (i, (g, batch)) in shapes.iter().enumerate() {
            let mut rng = Rng::seed_from_u64(i as u64);
            let x = random(&mut rng, batch * g.in_size());
            let w = random(&mut rng, g.weight_len());
            let b = random(&mut rng, g.out_channels);
            let dy = random(&mut rng, batch * g.out_size());
            let run = |s: &mut ConvScratch| {
                let mut y = vec![0.0; dy.len()];
                conv::conv2d_forward_with(g, *batch, &x, &w, &b, Activation::Relu, &mut y, s);
                let (mut dx, mut dw, mut db) =
                    (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
                conv::conv2d_backward_after_forward_with(
                    g,
                    *batch,
                    &w,
                    Some(&y.clone()),
                    &dy,
                    Some(&mut dx),
                    &mut dw,
                    &mut db,
                    s,
                );
                [y, dx, dw, db]
            };
            let fresh = run(&mut ConvScratch::with_algorithm(algorithm));
            assert_eq!(run(&mut reused), fresh, "{algorithm:?}, shape {i}");
        }
    }
}
