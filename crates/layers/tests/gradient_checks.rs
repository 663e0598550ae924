//! Every layer and loss against central finite differences, over random
//! shapes that include padding, stride 2, odd sizes and batch 1.
//! The tolerance (1e-2 relative, f32 layers, ε = 1e-3) is justified in `layers::gradcheck`.

use layers::gradcheck::{check_layer, check_loss, well_spaced, GradCheckOptions};
use layers::{
    Conv2dConfig, Flatten, Layer, LinearConfig, Loss, Pool2d, Pool2dConfig, PoolKind, Relu, Sigmoid,
};
use proptest::prelude::*;
use tensor::{Init, Rng, Tensor};

const TOL: f64 = 1e-2;

fn input(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::from_shape_vec(shape.to_vec(), well_spaced(shape.iter().product(), rng)).unwrap()
}

fn assert_layer(layer: &mut dyn Layer, x: &Tensor, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::seed_from_u64(seed);
    let opts = GradCheckOptions::for_kind(layer.kind());
    let checks =
        check_layer(layer, x, &mut rng, opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for c in checks {
        prop_assert!(
            c.max_rel_error < TOL,
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

/// The check itself must be able to fail: a layer whose backward is off by a factor is caught.
#[test]
fn gradient_check_catches_a_wrong_backward() {
    struct Doubling(Relu, Tensor);
    impl Layer for Doubling {
        fn name(&self) -> &str {
            "wrong"
        }
        fn kind(&self) -> &'static str {
            "relu"
        }
        fn output_shape(&self, i: &[usize]) -> Result<Vec<usize>, layers::LayerError> {
            Ok(i.to_vec())
        }
        fn forward(&mut self, x: &Tensor) -> Result<&Tensor, layers::LayerError> {
            self.0.forward(x)
        }
        fn backward(&mut self, g: &Tensor) -> Result<&Tensor, layers::LayerError> {
            self.1 = self.0.backward(g)?.mapv(|v| v * 1.1);
            Ok(&self.1)
        }
    }
    let mut rng = Rng::seed_from_u64(1);
    let x = input(&[2, 3, 4, 4], &mut rng);
    let mut layer = Doubling(Relu::new("r"), Tensor::zeros(vec![0]));
    let c = check_layer(&mut layer, &x, &mut rng, GradCheckOptions::default()).unwrap();
    assert!(
        c[0].max_rel_error > 0.05,
        "a 10% error went unnoticed: {}",
        c[0].max_rel_error
    );
}
