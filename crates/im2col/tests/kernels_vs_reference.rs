//! The fast kernels against the nested-loop reference, over random shapes.

use im2col::{
    pool, reference, Activation, ConvAlgorithm, ConvGeometry, ConvGrads, Convolution, PoolGeometry,
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

/// One forward and one backward pass: `[y, dx, dw, db]` (`dx` NaN when not asked for).
struct Passes {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

impl Passes {
    fn bits(&self) -> [Vec<u32>; 4] {
        [&self.y, &self.dx, &self.dw, &self.db].map(|v| v.iter().map(|f| f.to_bits()).collect())
    }
}

/// Runs `conv` forward with `activation` and backward with `dy`; with a
/// ReLU, the forward output is the backward pass's mask.
#[allow(clippy::too_many_arguments)]
fn passes(
    conv: &mut Convolution,
    g: &ConvGeometry,
    batch: usize,
    [x, w, b]: [&[f32]; 3],
    activation: Activation,
    dy: &[f32],
    with_dx: bool,
) -> Passes {
    let mut y = vec![f32::NAN; batch * g.out_size()];
    let cache = conv.forward(g, batch, x, w, b, activation, &mut y);
    let (mut dx, mut dw, mut db) = (
        vec![f32::NAN; x.len()],
        vec![f32::NAN; w.len()],
        vec![f32::NAN; b.len()],
    );
    let mask = (activation == Activation::Relu).then_some(&y[..]);
    let grads = ConvGrads {
        input: with_dx.then_some(&mut dx[..]),
        weight: &mut dw,
        bias: &mut db,
    };
    conv.backward(cache, w, mask, dy, grads);
    Passes { y, dx, dw, db }
}

/// Random inputs of one case: x, w, b and dy.
fn case_data(g: &ConvGeometry, batch: usize, seed: u64) -> [Vec<f32>; 4] {
    let mut rng = Rng::seed_from_u64(seed);
    let x = random(&mut rng, batch * g.in_size());
    let w = random(&mut rng, g.weight_len());
    let b = random(&mut rng, g.out_channels);
    let dy = random(&mut rng, batch * g.out_size());
    [x, w, b, dy]
}

/// Forward and backward with `algorithm`, checked against the reference;
/// without the input gradient (a first layer) the same dW and db.
fn check_conv(
    algorithm: ConvAlgorithm,
    batch: usize,
    g: &ConvGeometry,
    seed: u64,
) -> Result<(), TestCaseError> {
    let [x, w, b, dy] = case_data(g, batch, seed);
    let mut conv = Convolution::new(algorithm);
    let p = passes(
        &mut conv,
        g,
        batch,
        [&x, &w, &b],
        Activation::Identity,
        &dy,
        true,
    );
    assert_close("y", &p.y, &reference::conv2d_forward(g, batch, &x, &w, &b))?;
    let (rdx, rdw, rdb) = reference::conv2d_backward(g, batch, &x, &w, &dy);
    assert_close("dx", &p.dx, &rdx)?;
    assert_close("dw", &p.dw, &rdw)?;
    assert_close("db", &p.db, &rdb)?;

    let first = passes(
        &mut conv,
        g,
        batch,
        [&x, &w, &b],
        Activation::Identity,
        &dy,
        false,
    );
    prop_assert_eq!(&first.dw, &p.dw);
    prop_assert_eq!(&first.db, &p.db);
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
    let [x, w, b, dy] = case_data(g, batch, seed);
    let mut conv = Convolution::new(algorithm);
    let plain = passes(
        &mut conv,
        g,
        batch,
        [&x, &w, &b],
        Activation::Identity,
        &dy,
        true,
    );
    let masked: Vec<f32> = dy
        .iter()
        .zip(&plain.y)
        .map(|(&d, &y)| if y > 0.0 { d } else { 0.0 })
        .collect();
    let mut expected = passes(
        &mut conv,
        g,
        batch,
        [&x, &w, &b],
        Activation::Identity,
        &masked,
        true,
    );
    expected.y = plain.y.iter().map(|v| v.max(0.0)).collect();
    let fused = passes(
        &mut conv,
        g,
        batch,
        [&x, &w, &b],
        Activation::Relu,
        &dy,
        true,
    );
    prop_assert!(
        fused.bits() == expected.bits(),
        "fused ReLU differs from conv then ReLU"
    );
    Ok(())
}

/// Within `tol` relative to the larger magnitude (absolute below 1).
fn assert_agree(what: &str, a: &[f32], b: &[f32], tol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len(), "{}: length", what);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        prop_assert!(
            (x - y).abs() <= tol * x.abs().max(y.abs()).max(1.0),
            "{}[{}]: im2col {}, direct {}",
            what,
            i,
            x,
            y
        );
    }
    Ok(())
}

/// The two algorithms agree with each other, forward and all three
/// gradients, with and without a fused ReLU. Where the direct algorithm does
/// not run (strides above 1, or a CPU without AVX2) both take the im2col path
/// and must give the same bits.
fn check_algorithms_agree(batch: usize, g: &ConvGeometry, seed: u64) -> Result<(), TestCaseError> {
    let [x, w, b, dy] = case_data(g, batch, seed);
    for activation in [Activation::Identity, Activation::Relu] {
        let [im2col, direct] = [ConvAlgorithm::Im2col, ConvAlgorithm::Direct].map(|a| {
            let mut conv = Convolution::new(a);
            passes(&mut conv, g, batch, [&x, &w, &b], activation, &dy, true)
        });
        if ConvAlgorithm::Direct.resolve(g) == ConvAlgorithm::Im2col {
            prop_assert!(
                im2col.bits() == direct.bits(),
                "both ran im2col, yet differ"
            );
            continue;
        }
        // Where a fused ReLU's output is near zero, the two may round it to
        // opposite sides; compare the gradients only where the masks agree.
        let tol = 1e-4;
        assert_agree("y", &im2col.y, &direct.y, tol)?;
        if activation == Activation::Relu
            && im2col
                .y
                .iter()
                .zip(&direct.y)
                .any(|(a, b)| (*a > 0.0) != (*b > 0.0))
        {
            continue;
        }
        assert_agree("dx", &im2col.dx, &direct.dx, tol)?;
        assert_agree("dw", &im2col.dw, &direct.dw, tol)?;
        assert_agree("db", &im2col.db, &direct.db, tol)?;
    }
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
    fn im2col_and_direct_agree((batch, g, seed) in stride1_case()) {
        check_algorithms_agree(batch, &g, seed)?;
    }

    #[test]
    fn im2col_and_direct_agree_at_any_stride((batch, g, seed) in conv_case()) {
        check_algorithms_agree(batch, &g, seed)?;
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
        im2col::im2col(&g, &x, &mut cols);
        let mut back = vec![0.0; x.len()];
        im2col::col2im(&g, &c, &mut back);
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
        let mut conv = Convolution::new(algorithm);
        let p1 = passes(
            &mut conv,
            &g,
            batch,
            [&x, &w, &b],
            Activation::Identity,
            &dy,
            true,
        );
        let mut pooled = vec![0.0; batch * p.out_size()];
        pool::avg_pool_forward(&p, batch, &p1.y, &mut pooled);
        let pooled: Vec<u32> = pooled.iter().map(|f| f.to_bits()).collect();
        (p1.bits(), pooled)
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
        let direct = ConvAlgorithm::Direct;
        assert_eq!(direct.resolve(&g) == direct, cpu, "{g:?}");
        assert_eq!(ConvAlgorithm::Auto.resolve(&g) == direct, cpu, "{g:?}");
    }
    let strided = ConvGeometry::builder(8, 16, 3)
        .input(14, 14)
        .pad(1)
        .stride(2)
        .build()
        .unwrap();
    assert_eq!(
        ConvAlgorithm::Direct.resolve(&strided),
        ConvAlgorithm::Im2col
    );
}

/// One `Convolution` reused across geometries and batch sizes (as a layer's is when
/// its input size changes) gives what a fresh one gives: the zero padding the
/// direct path writes once is rebuilt whenever the layout changes.
#[test]
fn a_convolution_reused_across_shapes_gives_fresh_results() {
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
        let mut reused = Convolution::new(algorithm);
        for (i, (g, batch)) in shapes.iter().enumerate() {
            let [x, w, b, dy] = case_data(g, *batch, i as u64);
            let run = |conv: &mut Convolution| {
                passes(conv, g, *batch, [&x, &w, &b], Activation::Relu, &dy, true).bits()
            };
            let fresh = run(&mut Convolution::new(algorithm));
            assert_eq!(run(&mut reused), fresh, "{algorithm:?}, shape {i}");
        }
    }
}
