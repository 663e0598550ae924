//! `Network::backward_each` reports each layer once, from the last to the
//! first, with that layer's parameters, whose gradients are final by then;
//! it computes the gradients of `backward`, and the parameters it hands
//! over, in reverse, are those of `params` in order.

use std::collections::BTreeMap;

use layers::{Loss, Network, NetworkConfig};
use tensor::{Rng, Tensor};

fn seed_network() -> Network {
    let config: NetworkConfig = toml::from_str(include_str!("seed.toml")).unwrap();
    config.build(&mut Rng::seed_from_u64(3)).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn backward_each_hands_over_each_layers_final_gradients_last_layer_first() {
    let mut rng = Rng::seed_from_u64(4);
    let x: Vec<f32> = (0..3 * 784).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
    let x = Tensor::from_shape_vec(vec![3, 1, 28, 28], x).unwrap();
    let mut t = Tensor::zeros(vec![3, 10]);
    for i in 0..3 {
        t[[i, i + 2]] = 1.0;
    }
    let mut plain = seed_network();
    let mut each = seed_network();
    let mut grad = Tensor::zeros(vec![0]);
    for net in [&mut plain, &mut each] {
        let y = net.forward(&x).unwrap();
        Loss::SoftmaxCrossEntropy
            .forward_backward(y, &t, &mut grad)
            .unwrap();
    }
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
