//! Values computed by hand.

use layers::{Loss, Network, NetworkConfig};
use tensor::{Rng, Tensor};

fn row(v: &[f32]) -> Tensor {
    Tensor::from_shape_vec(vec![1, v.len()], v.to_vec()).unwrap()
}

#[test]
fn softmax_cross_entropy_by_hand() {
    // logits (1, 2, 3), label 2: loss = ln(e + e² + e³) − 3 = ln(1 + e⁻¹ + e⁻²) = 0.40760596...
    let logits = row(&[1.0, 2.0, 3.0]);
    let target = row(&[0.0, 0.0, 1.0]);
    let mut grad = Tensor::zeros(vec![0]);
    let loss = Loss::SoftmaxCrossEntropy
        .forward_backward(&logits, &target, &mut grad)
        .unwrap();
    assert!((loss - 0.407_605_964_444_380_9).abs() < 1e-7, "{loss}");
    // softmax = (0.09003057, 0.24472847, 0.66524096); gradient = softmax − target.
    let expected = [0.090_030_57, 0.244_728_47, 0.665_240_96 - 1.0];
    for (g, e) in grad.iter().zip(expected) {
        assert!((g - e).abs() < 1e-6, "{g} vs {e}");
    }
}

#[test]
fn batch_mean_and_mse_by_hand() {
    // Two rows: MSE = mean of ½Σ(t − y)²: row 1: ½(0.25 + 1) = 0.625, row 2: ½(4) = 2 → 1.3125.
    let y = Tensor::from_shape_vec(vec![2, 2], vec![0.5, 1.0, 2.0, 0.0]).unwrap();
    let t = Tensor::from_shape_vec(vec![2, 2], vec![1.0, 0.0, 0.0, 0.0]).unwrap();
    let mut grad = Tensor::zeros(vec![0]);
    assert_eq!(
        Loss::Mse.forward_backward(&y, &t, &mut grad).unwrap(),
        1.3125
    );
    // (y − t) / N
    assert_eq!(
        grad.iter().copied().collect::<Vec<_>>(),
        vec![-0.25, 0.5, 1.0, 0.0]
    );
}

#[test]
fn softmax_cross_entropy_is_finite_for_huge_logits() {
    let logits = row(&[1e4, -1e4, 0.0]);
    let mut grad = Tensor::zeros(vec![0]);
    for (label, expected) in [(0, 0.0), (1, 2e4), (2, 1e4)] {
        let mut t = Tensor::zeros(vec![0]);
        layers::one_hot_into(&[label], 3, &mut t);
        let loss = Loss::SoftmaxCrossEntropy
            .forward_backward(&logits, &t, &mut grad)
            .unwrap();
        assert!(
            loss.is_finite() && (loss - expected).abs() < 1e-3,
            "label {label}: {loss}"
        );
        assert!(grad.iter().all(|g| g.is_finite()));
    }
    let bce = Loss::SigmoidBinaryCrossEntropy
        .forward_backward(&logits, &row(&[0.0, 1.0, 1.0]), &mut grad)
        .unwrap();
    assert!(
        bce.is_finite() && (bce - (1e4 + 1e4 + 2f64.ln()) / 1.0).abs() < 1e-3,
        "{bce}"
    );
}

fn seed_config() -> NetworkConfig {
    toml::from_str(include_str!("seed.toml")).unwrap()
}

#[test]
fn seed_network_shapes_and_sizes() {
    let net: Network = seed_config().build(&mut Rng::seed_from_u64(0)).unwrap();
    let shapes: Vec<Vec<usize>> = net.output_shapes().to_vec();
    assert_eq!(
        shapes,
        vec![
            vec![8, 28, 28],
            vec![8, 28, 28],
            vec![8, 14, 14],
            vec![16, 14, 14],
            vec![16, 14, 14],
            vec![16, 7, 7],
            vec![784],
            vec![256],
            vec![256],
            vec![10],
            vec![10]
        ]
    );
    // 8·9+8 + 16·72+16 + 784·256+256 + 256·10+10
    assert_eq!(net.param_count(), 80 + 1168 + 200_960 + 2570);
    let names: Vec<String> = net.state_dict().into_keys().collect();
    assert_eq!(
        names,
        [
            "conv1.bias",
            "conv1.weight",
            "conv2.bias",
            "conv2.weight",
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight"
        ]
    );
    // Forward FLOPs: conv1 2·8·9·784, conv2 2·16·72·196, fc1 2·784·256, fc2 2·256·10.
    assert_eq!(
        layers::flops::forward_flops(&net),
        2 * (8 * 9 * 784 + 16 * 72 * 196 + 784 * 256 + 2560)
    );
}
