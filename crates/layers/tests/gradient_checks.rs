//! Every layer and loss against central finite differences, over random
//! shapes that include padding, stride 2, odd sizes and batch 1.
//! The tolerance (1e-2 relative, f32 layers, ε = 1e-3) is justified in `layers::gradcheck`.

use layers::gradcheck::{check_layer, check_loss, well_spaced, GradCheckOptions};
use layers::{
    BatchNorm, BatchNormConfig, Conv2dConfig, Dropout, Flatten, Layer, LinearConfig, Loss, Pool2d,
    Pool2dConfig, PoolKind, Relu, Sigmoid,
};
use proptest::prelude::*;
use tensor::{Init, Rng, Tensor};

const TOL: f64 = 1e-2;

/// Batch norm's, on its smallest channels (64 values): each input moves every
/// output of its channel, so the difference carries the f32 rounding of all
/// of them. Components below 1% of the largest are compared on that floor
/// (`GradCheckOptions::floor`); without it, 2 of 300 random cases reached 2.1-2.7·10⁻².
const BATCH_NORM_TOL: f64 = 2e-2;

fn input(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::from_shape_vec(shape.to_vec(), well_spaced(shape.iter().product(), rng)).unwrap()
}

fn assert_layer(layer: &mut dyn Layer, x: &Tensor, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::seed_from_u64(seed);
    let opts = GradCheckOptions::for_layer(layer.kind(), x.shape());
    let checks =
        check_layer(layer, x, &mut rng, opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let tol = if layer.kind().starts_with("batch_norm") {
        BATCH_NORM_TOL
    } else {
        TOL
    };
    for c in checks {
        prop_assert!(
            c.max_rel_error < tol,
            "{} {}: {} at input {:?}",
            layer.name(),
            c.tensor,
            c.max_rel_error,
            x.shape()
        );
        prop_assert!(c.checked > 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn conv2d(batch in 1usize..3, c in 1usize..4, o in 1usize..4, k in 1usize..4, pad in 0usize..2,
              stride in 1usize..3, h in 3usize..8, w in 3usize..8, seed in any::<u64>()) {
        prop_assume!(h + 2 * pad >= k && w + 2 * pad >= k);
        let mut rng = Rng::seed_from_u64(seed);
        let cfg = Conv2dConfig { pad, stride, init: Init::Uniform { limit: 1.0 }, bias_init: Init::Uniform { limit: 1.0 }, ..Conv2dConfig::new(c, o, k) };
        let mut layer = cfg.build("conv1", &mut rng);
        let x = input(&[batch, c, h, w], &mut rng);
        assert_layer(&mut layer, &x, seed)?;
    }

    #[test]
    fn linear(batch in 1usize..5, i in 1usize..20, o in 1usize..12, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let cfg = LinearConfig { init: Init::Uniform { limit: 1.0 }, bias_init: Init::Uniform { limit: 1.0 }, ..LinearConfig::new(i, o) };
        let mut layer = cfg.build("fc1", &mut rng);
        let x = input(&[batch, i], &mut rng);
        assert_layer(&mut layer, &x, seed)?;
    }

    /// Widths that take the `im2col::dense` kernels on AVX2 machines (in a
    /// multiple of 8, out of 4).
    #[test]
    fn linear_dense_path(batch in 1usize..6, i8 in 1usize..4, o4 in 1usize..4, seed in any::<u64>()) {
        let (i, o) = (8 * i8, 4 * o4);
        let mut rng = Rng::seed_from_u64(seed);
        let cfg = LinearConfig { init: Init::Uniform { limit: 1.0 }, bias_init: Init::Uniform { limit: 1.0 }, ..LinearConfig::new(i, o) };
        let mut layer = cfg.build("fc1", &mut rng);
        let x = input(&[batch, i], &mut rng);
        assert_layer(&mut layer, &x, seed)?;
    }

    #[test]
    fn pooling(batch in 1usize..3, c in 1usize..3, k in 1usize..4, stride in 1usize..3, pad in 0usize..2,
               h in 2usize..8, w in 2usize..8, max in any::<bool>(), seed in any::<u64>()) {
        let pad = pad.min(k - 1);
        prop_assume!(h + 2 * pad >= k && w + 2 * pad >= k);
        let kind = if max { PoolKind::Max } else { PoolKind::Average };
        let mut layer = Pool2d::new("pool1", kind, Pool2dConfig { stride: Some(stride), pad, ..Pool2dConfig::new(k) });
        let mut rng = Rng::seed_from_u64(seed);
        let x = input(&[batch, c, h, w], &mut rng);
        assert_layer(&mut layer, &x, seed)?;
    }

    #[test]
    fn activations_and_flatten(batch in 1usize..3, c in 1usize..3, h in 1usize..6, w in 1usize..6, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = input(&[batch, c, h, w], &mut rng);
        // Spread the inputs over (-4, 4) so the sigmoid's curvature is exercised.
        let wide = x.mapv(|v| 4.0 * v);
        assert_layer(&mut Relu::new("relu1"), &x, seed)?;
        assert_layer(&mut Sigmoid::new("sigmoid1"), &wide, seed)?;
        assert_layer(&mut Flatten::new("flatten1"), &x, seed)?;
    }

    #[test]
    fn dropout(batch in 1usize..3, c in 1usize..3, h in 1usize..6, w in 1usize..6, p in 0.0f32..0.9,
               seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = input(&[batch, c, h, w], &mut rng);
        assert_layer(&mut Dropout::new("dropout1", p), &x, seed)?;
    }

    /// At least 64 values per channel, as `cnn gradcheck` takes them: with
    /// fewer, each input's share of μ and σ² curves L so much that no ε keeps
    /// both the truncation and the rounding error of the difference small.
    #[test]
    fn batch_norm2d(batch in 1usize..4, c in 1usize..4, h in 8usize..12, w in 8usize..12, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let mut layer = batch_norm(c, true, &mut rng);
        let x = per_channel_input(&[batch, c, h, w], &mut rng);
        assert_layer(&mut layer, &x, seed)?;
    }

    #[test]
    fn batch_norm1d(batch in 64usize..100, f in 1usize..12, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let mut layer = batch_norm(f, false, &mut rng);
        let x = per_channel_input(&[batch, f], &mut rng);
        assert_layer(&mut layer, &x, seed)?;
    }

    #[test]
    fn losses(batch in 1usize..5, k in 2usize..12, scale in 0.1f32..20.0, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = input(&[batch, k], &mut rng).mapv(|v| v * scale);
        let labels: Vec<usize> = (0..batch).map(|_| rng.below(k as u64) as usize).collect();
        let mut onehot = Tensor::zeros(vec![0]);
        layers::one_hot_into(&labels, k, &mut onehot);
        let soft = Tensor::from_shape_fn(vec![batch, k], |_| rng.uniform(0.0, 1.0) as f32);
        for (loss, target) in [
            (Loss::SoftmaxCrossEntropy, &onehot),
            (Loss::SoftmaxCrossEntropy, &soft),
            (Loss::Mse, &onehot),
            (Loss::SigmoidBinaryCrossEntropy, &onehot),
            (Loss::SigmoidBinaryCrossEntropy, &soft),
        ] {
            let c = check_loss(loss, &x, target, 1e-3).unwrap();
            prop_assert!(c.max_rel_error < TOL, "{:?}: {}", loss, c.max_rel_error);
        }
    }
}

/// Each channel's values a shuffled grid of [`well_spaced`] on its own: batch
/// norm divides by the channel's spread σ, so a few values drawn close
/// together would make ε large against σ and the difference no derivative.
fn per_channel_input(shape: &[usize], rng: &mut Rng) -> Tensor {
    let (n, c) = (shape[0], shape[1]);
    let s: usize = shape[2..].iter().product();
    let channels: Vec<Vec<f32>> = (0..c).map(|_| well_spaced(n * s, rng)).collect();
    let mut values = vec![0.0; n * c * s];
    for (i, v) in values.iter_mut().enumerate() {
        let (example, channel, pos) = (i / (c * s), i / s % c, i % s);
        *v = channels[channel][example * s + pos];
    }
    Tensor::from_shape_vec(shape.to_vec(), values).unwrap()
}

/// Batch norm with γ in (0.5, 1.5) and β in (−0.5, 0.5), so both are tested away from 1 and 0.
fn batch_norm(c: usize, spatial: bool, rng: &mut Rng) -> BatchNorm {
    let mut layer = BatchNormConfig::new(c).build("bn1", spatial);
    layer
        .weight
        .value
        .mapv_inplace(|_| rng.uniform(0.5, 1.5) as f32);
    layer
        .bias
        .value
        .mapv_inplace(|_| rng.uniform(-0.5, 0.5) as f32);
    layer
}

/// A layer whose backward pass is off by 10%: the input gradient and every
/// parameter's gradient are those of the layer it wraps, times 1.1.
struct TenPercentOff(Box<dyn Layer>, Tensor);

impl Layer for TenPercentOff {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn output_shape(&self, i: &[usize]) -> Result<Vec<usize>, layers::LayerError> {
        self.0.output_shape(i)
    }
    fn forward(&mut self, x: &Tensor) -> Result<&Tensor, layers::LayerError> {
        self.0.forward(x)
    }
    fn forward_train(
        &mut self,
        x: &Tensor,
        noise: &mut Rng,
    ) -> Result<&Tensor, layers::LayerError> {
        self.0.forward_train(x, noise)
    }
    fn backward(&mut self, g: &Tensor) -> Result<&Tensor, layers::LayerError> {
        self.1 = self.0.backward(g)?.mapv(|v| v * 1.1);
        for p in self.0.params_mut() {
            p.grad = p.grad.mapv(|v| v * 1.1);
        }
        Ok(&self.1)
    }
    fn params(&self) -> Vec<&layers::Param> {
        self.0.params()
    }
    fn params_mut(&mut self) -> Vec<&mut layers::Param> {
        self.0.params_mut()
    }
}

/// The layers of the built-in configs at the size `cnn gradcheck` uses (a
/// batch of 2 first-layer activations, 12,544 values, far closer together than
/// 2ε), on plain uniform inputs: right layers pass, and each layer made 10%
/// wrong fails, in its input gradient and in every parameter's.
#[test]
fn full_size_activations_pass_and_a_ten_percent_error_is_caught() {
    fn layers(rng: &mut Rng) -> Vec<Box<dyn Layer>> {
        vec![
            Box::new(Relu::new("relu1")),
            Box::new(Pool2d::new("pool1", PoolKind::Max, Pool2dConfig::new(2))),
            Box::new(Pool2d::new(
                "pool1",
                PoolKind::Average,
                Pool2dConfig::new(2),
            )),
            Box::new(Conv2dConfig::new(8, 4, 3).pad(1).build("conv2", rng)),
            Box::new(Dropout::new("dropout1", 0.3)),
            Box::new(batch_norm(8, true, rng)),
        ]
    }
    for seed in 1..=3 {
        let mut rng = Rng::seed_from_u64(seed);
        let x = Tensor::from_shape_fn(vec![2, 8, 28, 28], |_| rng.uniform(-1.0, 1.0) as f32);
        let right = layers(&mut rng);
        let wrong: Vec<Box<dyn Layer>> = layers(&mut rng)
            .into_iter()
            .map(|l| Box::new(TenPercentOff(l, Tensor::zeros(vec![0]))) as Box<dyn Layer>)
            .collect();
        for (mut right, mut wrong) in right.into_iter().zip(wrong) {
            let opts = GradCheckOptions::for_layer(right.kind(), x.shape());
            for c in check_layer(right.as_mut(), &x, &mut rng, opts).unwrap() {
                assert!(
                    c.max_rel_error < TOL,
                    "seed {seed}, {} {}: {c:?}",
                    right.kind(),
                    c.tensor
                );
                assert_eq!(
                    c.checked,
                    opts.max_components.min(
                        right
                            .params()
                            .iter()
                            .find(|p| p.name == c.tensor)
                            .map_or(x.len(), |p| p.value.len())
                    )
                );
                assert!(c.skipped <= 10, "seed {seed}, {}: {c:?}", right.kind());
            }
            let checks = check_layer(wrong.as_mut(), &x, &mut rng, opts).unwrap();
            assert_eq!(checks.len(), 1 + wrong.params().len());
            for c in checks {
                assert!(
                    c.max_rel_error > 0.05,
                    "seed {seed}: a 10% error in {} {} went unnoticed: {c:?}",
                    wrong.kind(),
                    c.tensor
                );
            }
        }
    }
}

/// At a kink the component is skipped, not failed: a ReLU input within ε of zero.
#[test]
fn a_component_at_a_kink_is_skipped() {
    let x = Tensor::from_shape_vec(vec![1, 4], vec![0.5, 1e-4, -0.3, -2e-4]).unwrap();
    let c = check_layer(
        &mut Relu::new("relu1"),
        &x,
        &mut Rng::seed_from_u64(1),
        GradCheckOptions::default(),
    )
    .unwrap();
    assert_eq!((c[0].checked, c[0].skipped), (2, 2), "{c:?}");
    assert!(c[0].max_rel_error < TOL);
}

/// Only the layers with kinks look for them: a layer linear in each value
/// has none, so a component is never left out of its check as "near a kink"
/// (where its gradient is near zero, rounding alone can make the one-sided
/// differences disagree).
#[test]
fn only_layers_with_kinks_skip_components() {
    use layers::gradcheck::GradCheckOptions;
    for kind in [
        "conv2d",
        "linear",
        "avg_pool2d",
        "flatten",
        "dropout",
        "batch_norm1d",
    ] {
        assert!(
            !GradCheckOptions::for_layer(kind, &[4, 8]).skip_kinks,
            "{kind}"
        );
    }
    for kind in ["relu", "max_pool2d", "sigmoid"] {
        assert!(
            GradCheckOptions::for_layer(kind, &[4, 8]).skip_kinks,
            "{kind}"
        );
    }
}
