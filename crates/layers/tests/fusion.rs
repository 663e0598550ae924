//! A ReLU fused into the convolution before it (the default) gives the bits
//! of the two layers run apart: outputs, every gradient, and the feature
//! maps `forward_to` returns before and after the ReLU.

use layers::{Loss, Network, NetworkConfig};
use tensor::{Rng, Tensor};

fn seed_network() -> Network {
    seed_network_fused(true)
}

fn seed_network_fused(fuse_relu: bool) -> Network {
    let config: NetworkConfig = toml::from_str(include_str!("seed.toml")).unwrap();
    config
        .fuse_relu(fuse_relu)
        .build(&mut Rng::seed_from_u64(3))
        .unwrap()
}

fn batch(rng: &mut Rng) -> (Tensor, Tensor) {
    let n = 5;
    let x: Vec<f32> = (0..n * 784).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
    let mut t = Tensor::zeros(vec![n, 10]);
    for i in 0..n {
        t[[i, (i * 7) % 10]] = 1.0;
    }
    (Tensor::from_shape_vec(vec![n, 1, 28, 28], x).unwrap(), t)
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.iter().map(|v| v.to_bits()).collect()
}

/// Output bits and every parameter gradient's bits after one forward and backward pass.
fn step(net: &mut Network, x: &Tensor, target: &Tensor) -> Vec<Vec<u32>> {
    let y = net.forward(x).unwrap().clone();
    let mut grad = Tensor::zeros(y.shape());
    Loss::SoftmaxCrossEntropy
        .forward_backward(&y, target, &mut grad)
        .unwrap();
    net.backward(&grad).unwrap();
    let mut out = vec![bits(&y)];
    net.params()
        .into_iter()
        .for_each(|p| out.push(bits(&p.grad)));
    out
}

#[test]
fn fused_and_separate_relu_give_the_same_bits() {
    let mut fused = seed_network();
    let mut apart = seed_network_fused(false);
    assert_eq!(fused.fused_layers(), ["relu1", "relu2"]);
    assert!(apart.fused_layers().is_empty());
    let summary = fused.summary();
    let relu1 = summary.lines().find(|l| l.contains("relu1")).unwrap();
    assert!(relu1.ends_with("fused into conv1"), "{summary}");
    assert!(!apart.summary().contains("fused"));

    let mut rng = Rng::seed_from_u64(11);
    for _ in 0..3 {
        let (x, t) = batch(&mut rng);
        assert_eq!(step(&mut fused, &x, &t), step(&mut apart, &x, &t));
    }
}

#[test]
fn forward_to_a_fused_convolution_returns_its_maps_before_the_relu() {
    let mut fused = seed_network();
    let mut apart = seed_network_fused(false);
    let (x, t) = batch(&mut Rng::seed_from_u64(12));
    for last in 0..4 {
        let a = fused.forward_to(&x, last).unwrap().clone();
        let b = apart.forward_to(&x, last).unwrap().clone();
        assert_eq!(bits(&a), bits(&b), "layer {last}");
        if last == 0 {
            assert!(a.iter().any(|&v| v < 0.0), "conv1's maps before the ReLU");
        } else if last == 1 {
            assert!(a.iter().all(|&v| v >= 0.0), "relu1's maps");
        }
    }
    // A full training pass after stopping early is unaffected.
    fused.forward_to(&x, 0).unwrap();
    assert_eq!(step(&mut fused, &x, &t), step(&mut apart, &x, &t));
}
