//! The update of every element, checked against the formula written out,
//! and a parameter that overflows named.

use layers::Param;
use optim::{Optimizer, OptimizerConfig};
use proptest::prelude::*;
use tensor::{Rng, Tensor};

/// Parameters of the given lengths, with random values and gradients.
fn model(lengths: &[usize], seed: u64) -> Vec<Param> {
    let mut rng = Rng::seed_from_u64(seed);
    lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let v = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let mut p = Param::new(format!("p{i}"), Tensor::from_shape_vec(vec![n], v).unwrap());
            for g in p.grad.iter_mut() {
                *g = rng.uniform(-1.0, 1.0) as f32;
            }
            p
        })
        .collect()
}

fn values(m: &[Param]) -> Vec<Vec<u32>> {
    m.iter()
        .map(|p| p.value.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// The update of one element, written out: SGD as the seed defines it.
fn sgd_by_hand(w: f32, g: f32, d: f32, lr: f32, mu: f32, wd: f32) -> (f32, f32) {
    let d = mu * d + (g + wd * w);
    (w - lr * d, d)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Two steps of SGD give, bit for bit, the formula applied twice to each element.
    #[test]
    fn two_sgd_steps_match_the_formula_elementwise(
        lengths in prop::collection::vec(1usize..5000, 1..5),
        seed in 0u64..1000,
    ) {
        let (lr, mu, wd) = (0.1, 0.9, 1e-3);
        let mut m = model(&lengths, seed);
        let start: Vec<Vec<f32>> = m.iter().map(|p| p.value.iter().copied().collect()).collect();
        let grads: Vec<Vec<f32>> = m.iter().map(|p| p.grad.iter().copied().collect()).collect();
        let mut opt = Optimizer::new(OptimizerConfig::sgd(lr, mu, wd));
        opt.step(&mut m);
        opt.step(&mut m);
        prop_assert_eq!(opt.state().steps, 2);
        for ((p, w0), g) in m.iter().zip(&start).zip(&grads) {
            for ((&got, &w), &g) in p.value.iter().zip(w0).zip(g) {
                let (w, d) = sgd_by_hand(w, g, 0.0, lr, mu, wd);
                let (w, _) = sgd_by_hand(w, g, d, lr, mu, wd);
                prop_assert_eq!(got.to_bits(), w.to_bits(), "{} got {} want {}", p.name, got, w);
            }
        }
    }

    /// State is kept by name: the order the parameters are listed in changes no bits.
    #[test]
    fn the_order_of_the_parameters_changes_nothing(
        lengths in prop::collection::vec(1usize..3000, 2..5),
        seed in 0u64..1000,
        adam in any::<bool>(),
    ) {
        let config = if adam {
            OptimizerConfig::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-4 }
        } else {
            OptimizerConfig::sgd(0.1, 0.9, 1e-3)
        };
        let (mut a, mut b) = (model(&lengths, seed), model(&lengths, seed));
        let (mut oa, mut ob) = (Optimizer::new(config.clone()), Optimizer::new(config));
        oa.set_lr(0.05);
        ob.set_lr(0.05);
        for _ in 0..3 {
            oa.step(&mut a);
            ob.step(b.iter_mut().rev());
        }
        prop_assert_eq!(values(&a), values(&b));
        prop_assert_eq!(oa.state(), ob.state());
    }
}
