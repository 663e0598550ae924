//! `Network::backward_each` reports each layer once, from the last to the
//! first, with that layer's parameters, whose gradients are final by then;
//! it computes the gradients of `backward`, and the parameters it hands
//! over, in reverse, are those of `params` in order.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use layers::{Loss, Network, NetworkConfig};
use tensor::{Rng, Tensor};

fn seed_network() -> Network {
    let config: NetworkConfig = toml::from_str(include_str!("seed.toml")).unwrap();
    config.build(&mut Rng::seed_from_u64(3)).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.iter().map(|v| v.to_bits()).collect()
}

/// `n` random 28 x 28 images.
fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * 784).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
    Tensor::from_shape_vec(vec![n, 1, 28, 28], x).unwrap()
}

/// Two seed networks after the forward pass of `x`, and d(loss)/d(logits)
/// for the one-hot targets `t` (the same for both).
fn two_after_forward(x: &Tensor, t: &Tensor) -> (Network, Network, Tensor) {
    let (mut a, mut b) = (seed_network(), seed_network());
    let mut grad = Tensor::zeros(vec![0]);
    for net in [&mut a, &mut b] {
        let y = net.forward(x).unwrap();
        Loss::SoftmaxCrossEntropy
            .forward_backward(y, t, &mut grad)
            .unwrap();
    }
    (a, b, grad)
}

#[test]
fn backward_each_hands_over_each_layers_final_gradients_last_layer_first() {
    let x = images(3, 4);
    let mut t = Tensor::zeros(vec![3, 10]);
    for i in 0..3 {
        t[[i, i + 2]] = 1.0;
    }
    let (mut plain, mut each, grad) = two_after_forward(&x, &t);
    plain.backward(&grad).unwrap();

    // Each report: the layer, and its parameters' names and gradient bits
    // at the time of the report.
    let mut reports: Vec<(usize, Vec<String>)> = Vec::new();
    let mut at_report: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    each.backward_each(&grad, &mut |i, params| {
        reports.push((i, params.iter().map(|p| p.name.clone()).collect()));
        for p in params.iter() {
            at_report.insert(p.name.clone(), bits(&p.grad));
        }
        ControlFlow::Continue(())
    })
    .unwrap();

    let expected: Vec<(usize, Vec<String>)> = (0..each.layers().len())
        .rev()
        .map(|i| {
            let names = each.layers()[i]
                .params()
                .iter()
                .map(|p| p.name.clone())
                .collect();
            (i, names)
        })
        .collect();
    assert_eq!(reports, expected);
    for p in plain.params() {
        assert_eq!(
            at_report[&p.name],
            bits(&p.grad),
            "{} at its report",
            p.name
        );
    }
    for (a, b) in plain.params().iter().zip(each.params()) {
        assert_eq!(bits(&a.grad), bits(&b.grad), "{}", a.name);
    }

    // Read backwards, the reports list every parameter in `params` order
    // (a data-parallel step finds each parameter's index that way).
    let handed: Vec<String> = reports
        .iter()
        .rev()
        .flat_map(|(_, names)| names.iter().cloned())
        .collect();
    let params: Vec<String> = each.params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(handed, params);
}

/// A `Break` stops back-propagation after that layer: no later report, the
/// layers already reported have their gradients, and the earlier layers
/// keep the gradients they had.
#[test]
fn backward_each_stops_where_it_is_told() {
    let x = images(2, 5);
    let mut t = Tensor::zeros(vec![2, 10]);
    t[[0, 1]] = 1.0;
    t[[1, 7]] = 1.0;
    let (mut plain, mut stopped, grad) = two_after_forward(&x, &t);
    plain.backward(&grad).unwrap();
    for p in stopped.params_mut() {
        p.grad.iter_mut().for_each(|g| *g = 7.0);
    }
    // Stop at the second layer (from the end) that has parameters.
    let mut reported = Vec::new();
    let mut with_params = 0;
    stopped
        .backward_each(&grad, &mut |i, params| {
            reported.push(i);
            with_params += usize::from(!params.is_empty());
            if with_params == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    let last = *reported.last().unwrap();
    assert!(
        last > 0,
        "the seed network has parameters before layer {last}"
    );
    let expected: Vec<usize> = (last..stopped.layers().len()).rev().collect();
    assert_eq!(reported, expected);
    let mut layer_of = BTreeMap::new();
    for (i, layer) in stopped.layers().iter().enumerate() {
        for p in layer.params() {
            layer_of.insert(p.name.clone(), i);
        }
    }
    for (a, b) in plain.params().iter().zip(stopped.params()) {
        if layer_of[&a.name] >= last {
            assert_eq!(bits(&a.grad), bits(&b.grad), "{}", a.name);
        } else {
            assert!(b.grad.iter().all(|&g| g == 7.0), "{} untouched", a.name);
        }
    }
}

/// `forward_each` shows each layer its parameters before it runs: values
/// written there are the ones the layer uses, and a `Break` stops the pass.
#[test]
fn forward_each_lets_the_caller_write_each_layers_weights_first() {
    let x = images(2, 6);
    let source = seed_network();
    let values: Vec<Tensor> = source.params().iter().map(|p| p.value.clone()).collect();
    let want = bits(&seed_network().forward(&x).unwrap().clone());

    // Another draw's weights, replaced layer by layer as the pass goes.
    let config: NetworkConfig = toml::from_str(include_str!("seed.toml")).unwrap();
    let mut other = config.build(&mut Rng::seed_from_u64(99)).unwrap();
    assert_ne!(bits(&other.forward(&x).unwrap().clone()), want);
    let mut next = 0;
    let mut seen = Vec::new();
    let y = other
        .forward_each(&x, &mut |i, params| {
            seen.push(i);
            for p in params.iter_mut() {
                p.value = values[next].clone();
                next += 1;
            }
            ControlFlow::Continue(())
        })
        .unwrap()
        .expect("not stopped");
    assert_eq!(bits(y), want);
    assert_eq!(next, values.len());
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");

    let mut calls = 0;
    let stopped = other
        .forward_each(&x, &mut |_, _| {
            calls += 1;
            if calls == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert!(stopped.is_none());
    assert_eq!(calls, 2);
}
