//! The training step: the plain one (micro-batches one after another) and
//! the data-parallel one give the same bits, on any thread count, and the
//! batch gradient is the weighted sum of the micro-batches' in order.

use layers::{count_correct, Loss, Network};
use optim::Optimizer;
use tensor::{Rng, Tensor};
use trainer::batch::TensorBatch;
use trainer::config::TrainConfig;
use trainer::parallel::DataParallel;
use trainer::step::{self, first_non_finite, StepResult};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn seed_network() -> Network {
    TrainConfig::load("seed").unwrap().build_network().unwrap()
}

fn batch(n: usize, seed: u64) -> (Tensor, Vec<usize>) {
    let mut rng = Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * 784).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
    let labels = (0..n).map(|i| (i * 3 + seed as usize) % 10).collect();
    (
        Tensor::from_shape_vec(vec![n, 1, 28, 28], x).unwrap(),
        labels,
    )
}

/// A step without an update: the batch's gradient left in `net`.
fn dp_gradient(
    dp: &mut DataParallel,
    net: &mut Network,
    x: &Tensor,
    labels: &[usize],
) -> StepResult {
    let batch = TensorBatch { images: x, labels };
    dp.forward_backward(net, &Loss::SoftmaxCrossEntropy, &batch, 0)
        .unwrap()
}

fn grads(net: &Network) -> Vec<Vec<f32>> {
    net.params()
        .iter()
        .map(|p| p.grad.iter().copied().collect())
        .collect()
}

/// Every gradient, then every weight.
fn grads_and_values(net: &Network) -> Vec<Vec<f32>> {
    let mut all = grads(net);
    all.extend(
        net.params()
            .iter()
            .map(|p| p.value.iter().copied().collect()),
    );
    all
}

/// The plain path: the whole batch through one network.
fn plain(net: &mut Network, x: &Tensor, labels: &[usize]) -> (f64, usize) {
    let logits = net.forward(x).unwrap().clone();
    let mut target = Tensor::zeros(vec![0]);
    layers::one_hot_into(labels, 10, &mut target);
    let mut grad = Tensor::zeros(vec![0]);
    let loss = Loss::SoftmaxCrossEntropy
        .forward_backward(&logits, &target, &mut grad)
        .unwrap();
    net.backward(&grad).unwrap();
    (loss, count_correct(&logits, labels))
}

#[test]
fn one_micro_batch_is_the_plain_step_bit_for_bit() {
    let (x, labels) = batch(12, 7);
    let mut a = seed_network();
    let (loss, correct) = plain(&mut a, &x, &labels);
    let mut b = seed_network();
    let r = dp_gradient(&mut DataParallel::new(12), &mut b, &x, &labels);
    assert_eq!((r.loss.to_bits(), r.correct), (loss.to_bits(), correct));
    assert_eq!(grads(&a), grads(&b));
}

/// Micro-batches of 5, 5 and 2: the weighted sum is the batch's
/// gradient up to rounding, and the same bits on 1, 2 and 3 threads.
#[test]
fn micro_batches_add_up_to_the_batch_gradient_on_any_thread_count() {
    let (x, labels) = batch(12, 7);
    let mut whole = seed_network();
    let (loss, correct) = plain(&mut whole, &x, &labels);
    let expected = grads(&whole);
    let runs: Vec<(StepResult, Vec<Vec<f32>>)> = (1..=3)
        .map(|threads| {
            pool(threads).install(|| {
                let mut net = seed_network();
                let r = dp_gradient(&mut DataParallel::new(5), &mut net, &x, &labels);
                (r, grads(&net))
            })
        })
        .collect();
    for (r, g) in &runs[1..] {
        assert_eq!(r.loss.to_bits(), runs[0].0.loss.to_bits());
        assert_eq!(g, &runs[0].1);
    }
    let (r, g) = &runs[0];
    assert_eq!(r.correct, correct);
    assert!(
        (r.loss - loss).abs() < 1e-6 * loss.abs(),
        "{} vs {loss}",
        r.loss
    );
    for (got, want) in g.iter().zip(&expected) {
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
        }
    }
}

/// The sum is the formula written out: Σ_k (n_k / n) · grad_k in order k,
/// each micro-batch's gradient taken on its own by the plain path.
#[test]
fn the_batch_gradient_is_the_weighted_sum_in_micro_batch_order() {
    let (x, labels) = batch(7, 3);
    let mut net = seed_network();
    dp_gradient(&mut DataParallel::new(3), &mut net, &x, &labels);
    let parts: Vec<(f32, Vec<Vec<f32>>)> = [0..3, 3..6, 6..7]
        .into_iter()
        .map(|r| {
            let mut one = seed_network();
            let pixels = &x.as_slice().unwrap()[r.start * 784..r.end * 784];
            let xs = Tensor::from_shape_vec(vec![r.len(), 1, 28, 28], pixels.to_vec()).unwrap();
            plain(&mut one, &xs, &labels[r.clone()]);
            (r.len() as f32 / 7.0, grads(&one))
        })
        .collect();
    for (j, got) in grads(&net).iter().enumerate() {
        for (i, &g) in got.iter().enumerate() {
            let mut want = parts[0].0 * parts[0].1[j][i];
            for (w, part) in &parts[1..] {
                want += w * part[j][i];
            }
            assert_eq!(g.to_bits(), want.to_bits());
        }
    }
}

/// Replicas take the network's current weights at every step, and are
/// rebuilt for another network.
#[test]
fn replicas_follow_the_networks_weights() {
    let (x, labels) = batch(8, 7);
    let mut dp = DataParallel::new(4);
    let mut net = seed_network();
    dp_gradient(&mut dp, &mut net, &x, &labels);
    for p in net.params_mut() {
        p.value.mapv_inplace(|v| v * 0.5);
    }
    let r = dp_gradient(&mut dp, &mut net, &x, &labels);
    let mut fresh = seed_network();
    for p in fresh.params_mut() {
        p.value.mapv_inplace(|v| v * 0.5);
    }
    let r2 = dp_gradient(&mut DataParallel::new(4), &mut fresh, &x, &labels);
    assert_eq!(r, r2);
    assert_eq!(grads(&net), grads(&fresh));

    let mut mlp = TrainConfig::load("mlp").unwrap().build_network().unwrap();
    let r3 = dp_gradient(&mut dp, &mut mlp, &x, &labels);
    let mut mlp2 = TrainConfig::load("mlp").unwrap().build_network().unwrap();
    let r4 = dp_gradient(&mut DataParallel::new(4), &mut mlp2, &x, &labels);
    assert_eq!(r3, r4);
    assert_eq!(grads(&mlp), grads(&mlp2));
}

/// Steps on 1, 2 and 3 threads: the same weights, gradients, losses
/// and optimizer state, bit for bit, and the same as summing the
/// gradients and then taking a plain optimizer step.
#[test]
fn steps_give_the_same_bits_on_any_thread_count() {
    let batches: Vec<(Tensor, Vec<usize>)> = (0..3).map(|s| batch(30, s)).collect();
    let config = TrainConfig::load("seed").unwrap().optimizer;
    let by_hand = {
        let mut net = seed_network();
        let mut opt = Optimizer::new(config.clone());
        opt.set_lr(0.05);
        let mut dp = DataParallel::new(7);
        for (x, labels) in &batches {
            dp_gradient(&mut dp, &mut net, x, labels);
            opt.step(net.params_mut());
            assert_eq!(first_non_finite(&net), None);
        }
        (grads_and_values(&net), opt.state().clone())
    };
    for threads in [1, 2, 3] {
        let got = pool(threads).install(|| {
            let mut net = seed_network();
            let mut opt = Optimizer::new(config.clone());
            opt.set_lr(0.05);
            let mut dp = DataParallel::new(7);
            for (x, labels) in &batches {
                let batch = TensorBatch { images: x, labels };
                dp.step(&mut net, &Loss::SoftmaxCrossEntropy, &batch, 0, &mut opt)
                    .unwrap();
                assert_eq!(first_non_finite(&net), None);
            }
            (grads_and_values(&net), opt.state().clone())
        });
        assert!(got == by_hand, "{threads} threads");
    }
}

/// Every buffer (batch norm's running statistics), by value.
fn buffers(net: &Network) -> Vec<Vec<f32>> {
    net.buffers()
        .iter()
        .map(|b| b.value.iter().copied().collect())
        .collect()
}

/// With batch norm and dropout (the `modern` network): steps on 1, 2
/// and 3 threads give the same weights, gradients and running
/// statistics, bit for bit; another step key draws other dropout masks.
#[test]
fn batch_norm_and_dropout_give_the_same_bits_on_any_thread_count() {
    let config = TrainConfig::load("modern").unwrap();
    let batches: Vec<(Tensor, Vec<usize>)> = (0..2).map(|s| batch(30, s)).collect();
    let run = |threads: usize, key: u64| {
        pool(threads).install(|| {
            let mut net = config.build_network().unwrap();
            let mut opt = Optimizer::new(config.optimizer.clone());
            opt.set_lr(0.05);
            let mut dp = DataParallel::new(7);
            for (i, (x, labels)) in batches.iter().enumerate() {
                let batch = TensorBatch { images: x, labels };
                dp.step(
                    &mut net,
                    &config.loss_fn(),
                    &batch,
                    key + i as u64,
                    &mut opt,
                )
                .unwrap();
            }
            (grads_and_values(&net), buffers(&net))
        })
    };
    let one = run(1, 10);
    assert_eq!(run(2, 10), one);
    assert_eq!(run(3, 10), one);
    assert_ne!(run(1, 20).0, one.0, "other keys, other dropout masks");
    assert!(one
        .1
        .iter()
        .any(|b| b.iter().any(|&v| v != 0.0 && v != 1.0)));
}

/// The running statistics after a step are those of one network running
/// the micro-batches one after another in training mode (what PyTorch
/// does), and each micro-batch's dropout masks come from its own
/// stream `Rng::from_keys(&[key, k])`: the step's gradient is the
/// weighted sum of those sequential runs' gradients.
#[test]
fn running_statistics_take_the_micro_batches_in_order() {
    let config = TrainConfig::load("modern").unwrap();
    let (x, labels) = batch(12, 3);
    let mut net = config.build_network().unwrap();
    let batch_ref = TensorBatch {
        images: &x,
        labels: &labels,
    };
    DataParallel::new(5)
        .forward_backward(&mut net, &config.loss_fn(), &batch_ref, 99)
        .unwrap();

    let mut one = config.build_network().unwrap();
    let mut want: Vec<Vec<f32>> = Vec::new();
    for (k, r) in [0..5, 5..10, 10..12].into_iter().enumerate() {
        let pixels = &x.as_slice().unwrap()[r.start * 784..r.end * 784];
        let xs = Tensor::from_shape_vec(vec![r.len(), 1, 28, 28], pixels.to_vec()).unwrap();
        let logits = one
            .forward_train_with_noise(&xs, &mut Rng::from_keys(&[99, k as u64]))
            .unwrap()
            .clone();
        let mut grad = Tensor::zeros(vec![0]);
        config
            .loss_fn()
            .with_labels_into(&logits, &labels[r.clone()], &mut grad)
            .unwrap();
        one.backward(&grad).unwrap();
        let w = r.len() as f32 / 12.0;
        for (j, g) in grads(&one).into_iter().enumerate() {
            if k == 0 {
                want.push(g.iter().map(|v| w * v).collect());
            } else {
                want[j].iter_mut().zip(&g).for_each(|(a, b)| *a += w * b);
            }
        }
    }
    assert_eq!(buffers(&net), buffers(&one));
    assert_eq!(grads(&net), want);
}

/// A weight pushed to infinity by the update is named: the first such
/// parameter in the network's order.
#[test]
fn a_step_names_a_parameter_that_overflows() {
    let (x, labels) = batch(4, 7);
    let mut net = seed_network();
    let mut opt = Optimizer::new(optim::OptimizerConfig::sgd(1.0, 0.0, 0.0));
    let batch = TensorBatch {
        images: &x,
        labels: &labels,
    };
    opt.set_lr(f32::INFINITY);
    DataParallel::new(2)
        .step(&mut net, &Loss::SoftmaxCrossEntropy, &batch, 0, &mut opt)
        .unwrap();
    assert_eq!(first_non_finite(&net), Some(net.params()[0].name.as_str()));
}

/// A batch the network cannot take fails: the step returns the error,
/// on any thread count, and updates nothing.
#[test]
fn a_failing_step_returns_its_error_and_updates_nothing() {
    let x = Tensor::zeros(vec![6, 1, 20, 20]);
    let labels = [1usize; 6];
    for threads in [1, 2] {
        pool(threads).install(|| {
            let mut net = seed_network();
            let before = grads_and_values(&net);
            let mut opt = Optimizer::new(optim::OptimizerConfig::sgd(0.1, 0.9, 0.0));
            let batch = TensorBatch {
                images: &x,
                labels: &labels,
            };
            let err = DataParallel::new(2)
                .step(&mut net, &Loss::SoftmaxCrossEntropy, &batch, 0, &mut opt)
                .unwrap_err();
            assert!(err.to_string().contains("expected a batch"), "{err}");
            assert_eq!(grads_and_values(&net), before);
            assert_eq!(opt.state().steps, 0);
        });
    }
}

#[test]
fn an_empty_batch_is_an_error() {
    let x = Tensor::zeros(vec![0, 1, 28, 28]);
    let batch = TensorBatch {
        images: &x,
        labels: &[],
    };
    let mut net = seed_network();
    let err = DataParallel::new(4)
        .forward_backward(&mut net, &Loss::SoftmaxCrossEntropy, &batch, 0)
        .unwrap_err();
    assert!(err.to_string().contains("at least one example"), "{err}");
}

/// The plain step and the data-parallel one, on 1, 2 and 3 threads, give
/// the same losses, weights, gradients, running statistics and optimizer
/// state, bit for bit: for the seed network, and for the `modern` one
/// (batch norm, dropout), over micro-batch sizes that divide the batch and
/// that do not.
#[test]
fn the_plain_step_and_the_parallel_step_give_the_same_bits() {
    for name in ["seed", "modern"] {
        let config = TrainConfig::load(name).unwrap();
        let batches: Vec<(Tensor, Vec<usize>)> = (0..2).map(|s| batch(30, s)).collect();
        for micro_batch in [2, 7, 10, 30, 40] {
            let plain = {
                let mut net = config.build_network().unwrap();
                let mut opt = Optimizer::new(config.optimizer.clone());
                let mut results = Vec::new();
                for (i, (x, labels)) in batches.iter().enumerate() {
                    let batch = TensorBatch { images: x, labels };
                    let r = step::step(
                        &mut net,
                        &config.loss_fn(),
                        &batch,
                        micro_batch,
                        5 + i as u64,
                        &mut opt,
                    )
                    .unwrap();
                    results.push(r);
                }
                (
                    results,
                    grads_and_values(&net),
                    buffers(&net),
                    opt.state().clone(),
                )
            };
            for threads in [1, 2, 3] {
                let parallel = pool(threads).install(|| {
                    let mut net = config.build_network().unwrap();
                    let mut opt = Optimizer::new(config.optimizer.clone());
                    let mut dp = DataParallel::new(micro_batch);
                    let mut results = Vec::new();
                    for (i, (x, labels)) in batches.iter().enumerate() {
                        let batch = TensorBatch { images: x, labels };
                        let r = dp
                            .step(&mut net, &config.loss_fn(), &batch, 5 + i as u64, &mut opt)
                            .unwrap();
                        results.push(r);
                    }
                    (
                        results,
                        grads_and_values(&net),
                        buffers(&net),
                        opt.state().clone(),
                    )
                });
                let same =
                    parallel.0.iter().zip(&plain.0).all(|(a, b)| {
                        a.loss.to_bits() == b.loss.to_bits() && a.correct == b.correct
                    });
                assert!(
                    same,
                    "{name}, micro-batch {micro_batch}, {threads} threads: losses"
                );
                assert!(
                    parallel.1 == plain.1,
                    "{name}, micro-batch {micro_batch}, {threads} threads: weights"
                );
                assert!(
                    parallel.2 == plain.2,
                    "{name}, micro-batch {micro_batch}, {threads} threads: statistics"
                );
                assert!(
                    parallel.3 == plain.3,
                    "{name}, micro-batch {micro_batch}, {threads} threads: optimizer"
                );
            }
        }
    }
}

/// The plain step's micro-batches: the cut depends on n and the size only.
#[test]
fn micro_batches_cut_the_batch_in_order() {
    let cut: Vec<_> = step::micro_batches(12, 5).collect();
    assert_eq!(cut, [0..5, 5..10, 10..12]);
    assert_eq!(
        step::micro_batches(4, 0).count(),
        4,
        "a size of 0 is taken as 1"
    );
    assert_eq!(step::micro_batches(0, 5).count(), 0);
}

/// The plain step refuses an empty batch as the parallel one does.
#[test]
fn the_plain_step_refuses_an_empty_batch() {
    let x = Tensor::zeros(vec![0, 1, 28, 28]);
    let batch = TensorBatch {
        images: &x,
        labels: &[],
    };
    let mut net = seed_network();
    let err =
        step::forward_backward(&mut net, &Loss::SoftmaxCrossEntropy, &batch, 4, 0).unwrap_err();
    assert!(err.to_string().contains("at least one example"), "{err}");
}

/// The first parameter, in the network's order, that holds a NaN or an
/// infinity is named; a network of finite values has none.
#[test]
fn a_parameter_that_becomes_nan_is_named() {
    let mut net = seed_network();
    assert_eq!(first_non_finite(&net), None);
    let names: Vec<String> = net.params().iter().map(|p| p.name.clone()).collect();
    net.params_mut()[2].value.as_slice_mut().unwrap()[5] = f32::INFINITY;
    net.params_mut()[3].value.as_slice_mut().unwrap()[0] = f32::NAN;
    assert_eq!(first_non_finite(&net), Some(names[2].as_str()));
}
