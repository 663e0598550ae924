//! The timed passes of `cnn bench`: layer by layer on one network, whole
//! training steps as `cnn train` runs them, and the evaluation.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use layers::{one_hot_into, Network};
use mnist_io::Dataset;
use optim::Optimizer;
use tensor::Tensor;

use trainer::batch::{BatchTensors, DatasetBatch};
use trainer::config::TrainConfig;
use trainer::parallel::DataParallel;
use trainer::step::first_non_finite;

use super::figures::{BenchOptions, LayerTiming, TimedData};

/// What the layer-by-layer pass measured, summed over the timed steps.
pub(crate) struct LayerPass {
    /// Per layer, forward and backward.
    pub(crate) forward: Vec<Duration>,
    pub(crate) backward: Vec<Duration>,
    /// Filling the batch, the loss, the optimizer.
    pub(crate) data: Duration,
    pub(crate) loss: Duration,
    pub(crate) optimizer: Duration,
}

/// The whole batch through one network, `opts.warmup` steps untimed and
/// then `opts.steps` timed: each layer's forward and backward pass, the
/// batch fill, the loss and the optimizer, each timed on its own.
pub(crate) fn time_layers(
    net: &mut Network,
    config: &TrainConfig,
    data: &TimedData,
    opts: &BenchOptions,
) -> Result<LayerPass> {
    let n_layers = net.layers().len();
    let zero = || LayerPass {
        forward: vec![Duration::ZERO; n_layers],
        backward: vec![Duration::ZERO; n_layers],
        data: Duration::ZERO,
        loss: Duration::ZERO,
        optimizer: Duration::ZERO,
    };
    let mut pass = zero();
    let loss_fn = config.loss_fn();
    let mut optimizer = Optimizer::new(config.optimizer.clone());
    let mut buf = BatchTensors::default();
    let mut grad = Tensor::zeros(vec![0]);
    for s in 0..opts.warmup + opts.steps {
        if s == opts.warmup {
            pass = zero();
        }
        let idx = data.batches[s % data.batches.len()];
        let start = Instant::now();
        let batch = DatasetBatch {
            data: data.set,
            indices: idx,
            normalize: data.normalize,
            augment: None,
        };
        buf.fill(&batch, 0..idx.len());
        let t0 = Instant::now();
        let logits =
            forward_timed(net, &buf.images, &mut pass.forward).map_err(|e| anyhow!("{e}"))?;
        let t1 = Instant::now();
        let loss = loss_fn
            .with_labels_into(logits, &buf.labels, &mut grad)
            .map_err(|e| anyhow!("{e}"))?;
        let t2 = Instant::now();
        backward_timed(net, &grad, &mut pass.backward).map_err(|e| anyhow!("{e}"))?;
        let t3 = Instant::now();
        optimizer.step(net.params_mut());
        let end = Instant::now();
        if !loss.is_finite() {
            bail!("step {}: the loss became {loss}", s + 1);
        }
        pass.data += t0 - start;
        pass.loss += t2 - t1;
        pass.optimizer += end - t3;
    }
    Ok(pass)
}

/// The training step itself, as `cnn train` runs it: micro-batches in
/// parallel on copies of the network ([`DataParallel`]). The timed steps'
/// wall-clock times.
pub(crate) fn time_steps(
    config: &TrainConfig,
    data: &TimedData,
    opts: &BenchOptions,
) -> Result<Vec<Duration>> {
    let mut parallel = DataParallel::new(config.training.micro_batch);
    let mut net = config.build_network()?;
    let mut optimizer = Optimizer::new(config.optimizer.clone());
    let loss_fn = config.loss_fn();
    let mut steps = Vec::with_capacity(opts.steps);
    for s in 0..opts.warmup + opts.steps {
        let batch = DatasetBatch {
            data: data.set,
            indices: data.batches[s % data.batches.len()],
            normalize: data.normalize,
            augment: config.training.augment.as_ref().map(|a| (a, s as u64)),
        };
        let start = Instant::now();
        let result = parallel
            .step(&mut net, &loss_fn, &batch, s as u64, &mut optimizer)
            .map_err(|e| anyhow!("{e}"))?;
        let took = start.elapsed();
        if !result.loss.is_finite() {
            bail!("step {}: the loss became {}", s + 1, result.loss);
        } else if let Some(name) = first_non_finite(&net) {
            bail!("step {}: parameter `{name}` became NaN or infinite", s + 1);
        }
        if s >= opts.warmup {
            steps.push(took);
        }
    }
    Ok(steps)
}

/// Each layer's row of the report: its mean times over `n` steps, its
/// FLOPs, the algorithm of a convolution, and whether it is fused.
pub(crate) fn layer_timings(net: &Network, pass: &LayerPass, n: u32) -> Vec<LayerTiming> {
    let flops = layers::flops::layer_forward_flops(net);
    let fused = net.fused_layers();
    let algorithms = conv_algorithms(net);
    net.layers()
        .iter()
        .enumerate()
        .map(|(i, l)| LayerTiming {
            name: l.name().to_string(),
            kind: match algorithms[i] {
                Some(a) => format!("{}/{a}", l.kind()),
                None => l.kind().to_string(),
            },
            forward: pass.forward[i] / n,
            backward: pass.backward[i] / n,
            forward_flops: flops[i],
            fused: fused.iter().any(|f| *f == l.name()),
        })
        .collect()
}

/// Forward passes and the loss over `count` images of `ds` (cycled when it
/// holds fewer), `batch` at a time, as evaluation does. Returns the count.
pub(crate) fn evaluate_images(
    net: &mut Network,
    ds: &Dataset,
    batch: usize,
    normalize: Option<mnist_io::Normalize>,
    count: usize,
) -> Result<usize> {
    let classes = net.outputs();
    let loss = net.config().loss;
    let order: Vec<usize> = (0..count).map(|i| i % ds.len()).collect();
    let mut buf = BatchTensors::default();
    let mut target = Tensor::zeros(vec![0]);
    let mut sink = 0f64;
    for (_, idx) in mnist_io::batches(&order, batch.max(1)) {
        let batch = DatasetBatch {
            data: ds,
            indices: idx,
            normalize,
            augment: None,
        };
        buf.fill(&batch, 0..idx.len());
        let logits = net.forward(&buf.images).map_err(|e| anyhow!("{e}"))?;
        one_hot_into(&buf.labels, classes, &mut target);
        sink += loss.forward(logits, &target).map_err(|e| anyhow!("{e}"))?;
        sink += trainer::eval::predictions(logits).len() as f64;
    }
    std::hint::black_box(sink);
    Ok(count)
}

/// [`Network::forward`], adding each layer's wall-clock time to `times[i]`
/// (one slot per layer). The timing changes nothing in the results.
fn forward_timed<'a>(
    net: &'a mut Network,
    input: &'a Tensor,
    times: &mut [Duration],
) -> Result<&'a Tensor, layers::LayerError> {
    let mut x = input;
    for (i, layer) in net.layers_to_run() {
        let start = Instant::now();
        x = layer.forward(x)?;
        times[i] += start.elapsed();
    }
    Ok(x)
}

/// [`Network::backward`], adding each layer's wall-clock time to `times[i]`.
fn backward_timed(
    net: &mut Network,
    grad_output: &Tensor,
    times: &mut [Duration],
) -> Result<(), layers::LayerError> {
    let mut g = grad_output;
    for (i, layer) in net.layers_to_run().rev() {
        let start = Instant::now();
        g = layer.backward(g)?;
        times[i] += start.elapsed();
    }
    Ok(())
}

/// Per layer, the algorithm that computes it on this machine when it is a
/// convolution (`Im2col` or `Direct`), `None` for other layers.
fn conv_algorithms(net: &Network) -> Vec<Option<layers::ConvAlgorithm>> {
    let inputs = std::iter::once(&net.config().input).chain(net.output_shapes());
    net.layers()
        .iter()
        .zip(inputs)
        .map(|(layer, input)| layer.downcast_ref::<layers::Conv2d>()?.algorithm_for(input))
        .collect()
}
