//! `cnn bench`: time training steps and evaluation, layer by layer.
//!
//! A run builds the config's network and times two things, each after
//! `warmup` untimed steps (so that every buffer has its final size and the
//! thread pool is awake), over `steps` steps:
//!
//! 1. The layers: the whole batch through one network, each layer's forward
//!    and backward pass timed on its own (`forward_timed`, `backward_timed`,
//!    over [`Network::layers_to_run`]; kernels parallel inside), with the batch
//!    fill, the loss and the optimizer step timed apart.
//! 2. The training step, exactly what `cnn train` does to a batch: fill it,
//!    run its micro-batches in parallel on copies of the network
//!    ([`trainer::step::DataParallel`]), sum their gradients, optimizer step.
//!    Its median gives images per second and the projected epoch.
//!
//! Then it times
//! the evaluation of `eval_images` images (the test set's 10,000 by default),
//! forward only, in batches of the same size, as `cnn train` evaluates.
//!
//! FLOPs: [`layers::flops::train_flops`], the forward pass's multiply-adds (×2)
//! plus, per layer with a matrix product, the same count again for the
//! weight gradient and again for the input gradient, except the first layer,
//! which is never asked for its input gradient (`3·F − F₁`; 2.80 MFLOP per
//! image for the seed network, 168 GFLOP per 60,000-image epoch).
//!
//! Without `--data` the images and labels are random bytes (a pool of eight
//! batches, reused), so the timings are those of real data: the network does
//! the same work whatever the pixel values.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use layers::{one_hot_into, Network};
use mnist_io::Dataset;
use optim::Optimizer;
use tensor::{Rng, Tensor};

use trainer::batch::{BatchTensors, DatasetBatch};
use trainer::config::TrainConfig;
use trainer::data::DataSets;
use trainer::parallel::DataParallel;
use trainer::step::first_non_finite;

/// What `cnn bench` was asked to do.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// A TOML file or a built-in config name.
    pub config: String,
    /// Mini-batch size (default: the config's).
    pub batch: Option<usize>,
    /// Timed training steps.
    pub steps: usize,
    /// Untimed training steps first.
    pub warmup: usize,
    /// Folder of IDX files; random data when `None`.
    pub data: Option<PathBuf>,
    /// Images to evaluate (forward only) after the training steps.
    pub eval_images: usize,
    /// The convolution algorithm of every conv layer (default: the config's).
    pub conv: Option<layers::ConvAlgorithm>,
}

/// One layer's mean times per step.
#[derive(Clone, Debug)]
pub struct LayerTiming {
    /// The layer's name (`conv1`).
    pub name: String,
    /// Its kind (`conv2d`), with the algorithm that ran a convolution
    /// (`conv2d/im2col`, `conv2d/direct`).
    pub kind: String,
    /// Mean forward time per step.
    pub forward: Duration,
    /// Mean backward time per step.
    pub backward: Duration,
    /// Forward FLOPs per image.
    pub forward_flops: u64,
    /// Whether the layer before applies this one (a fused ReLU), so that its
    /// time is inside that layer's.
    pub fused: bool,
}

/// The figures of a bench run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// The config's name.
    pub config: String,
    /// Images per step.
    pub batch: usize,
    /// rayon worker threads.
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// Whether the data was real (`--data`) or random.
    pub real_data: bool,
    /// Per layer, in order.
    pub layers: Vec<LayerTiming>,
    /// Mean time per step filling the batch from the data set.
    pub data: Duration,
    /// Mean time per step of the loss and its gradient.
    pub loss: Duration,
    /// Mean time per step of the optimizer.
    pub optimizer: Duration,
    /// Images per micro-batch of the training step.
    pub micro_batch: usize,
    /// Median wall-clock time of a whole training step.
    pub step_median: Duration,
    /// Fastest step.
    pub step_min: Duration,
    /// Mean step.
    pub step_mean: Duration,
    /// Training FLOPs per image ([`layers::flops::train_flops`]).
    pub train_flops_per_image: u64,
    /// Images evaluated.
    pub eval_images: usize,
    /// Wall-clock time of that evaluation.
    pub eval: Duration,
    /// Peak resident memory of the process (VmHWM), bytes, if known.
    pub peak_rss: Option<u64>,
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Random images (bytes) and labels: `count` images of `rows x cols`.
fn synthetic(count: usize, rows: usize, cols: usize, classes: usize, seed: u64) -> Result<Dataset> {
    let mut rng = Rng::seed_from_u64(seed);
    let pixels = (0..count * rows * cols)
        .map(|_| rng.below(256) as u8)
        .collect();
    let labels = (0..count)
        .map(|_| rng.below(classes.clamp(1, 10) as u64) as u8)
        .collect();
    Dataset::from_parts(pixels, labels, rows, cols).map_err(|e| anyhow!("{e}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The most timed (or warm-up) steps `cnn bench` takes; it evaluates at most a hundred times as many images.
pub const MAX_STEPS: usize = 10_000;

/// Runs the benchmark.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let mut config = TrainConfig::load(&opts.config)?;
    if let Some(b) = opts.batch {
        config.training.batch = b;
    }
    if let Some(conv) = opts.conv {
        config.network.set_conv_algorithm(conv);
    }
    config.check()?;
    if !(1..=MAX_STEPS).contains(&opts.steps)
        || opts.warmup > MAX_STEPS
        || opts.eval_images > MAX_STEPS * 100
    {
        bail!(
            "--steps must be 1 to {MAX_STEPS}, --warmup at most {MAX_STEPS}, --eval-images at most {}",
            MAX_STEPS * 100
        );
    }
    let batch = config.training.batch;
    let mut net = config.build_network()?;
    let input = trainer::config::image_input(&config.network)?;
    if input[0] != 1 {
        bail!(
            "cnn bench feeds grey images; the config's input has {} channels",
            input[0]
        );
    }
    let classes = net.outputs();
    let (train, test) = match &opts.data {
        Some(dir) => {
            let d = DataSets::load(dir)?;
            trainer::data::check_fits(
                &net,
                &d.train,
                &format!("the training set in {}", dir.display()),
            )?;
            trainer::data::check_fits(
                &net,
                &d.test,
                &format!("the test set in {}", dir.display()),
            )?;
            (d.train, d.test)
        }
        None => {
            let pool = synthetic(8 * batch, input[1], input[2], classes, 1)?;
            (pool.clone(), pool)
        }
    };
    if (train.rows(), train.cols()) != (input[1], input[2]) {
        bail!(
            "the data's images are {}x{}, the network takes {}x{}",
            train.rows(),
            train.cols(),
            input[1],
            input[2]
        );
    }
    let normalize = config.normalize(&train);
    let loss_fn = config.loss_fn();
    let mut optimizer = Optimizer::new(config.optimizer.clone());
    let order = mnist_io::epoch_order(train.len(), config.training.seed, 0);
    let batches: Vec<&[usize]> = mnist_io::batches(&order, batch)
        .map(|(_, idx)| idx)
        .filter(|idx| idx.len() == batch)
        .collect();
    if batches.is_empty() {
        bail!(
            "the data set has {} images, fewer than one batch of {batch}",
            train.len()
        );
    }

    let n_layers = net.layers().len();
    let mut fwd = vec![Duration::ZERO; n_layers];
    let mut bwd = vec![Duration::ZERO; n_layers];
    let (mut t_data, mut t_loss, mut t_opt) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut steps = Vec::with_capacity(opts.steps);
    let mut buf = BatchTensors::default();
    let mut grad = Tensor::zeros(vec![0]);
    for s in 0..opts.warmup + opts.steps {
        let timed = s >= opts.warmup;
        if s == opts.warmup {
            fwd.fill(Duration::ZERO);
            bwd.fill(Duration::ZERO);
            (t_data, t_loss, t_opt) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        }
        let idx = batches[s % batches.len()];
        let start = Instant::now();
        let batch = DatasetBatch {
            data: &train,
            indices: idx,
            normalize,
            augment: None,
        };
        buf.fill(&batch, 0..idx.len());
        let t0 = Instant::now();
        let logits = forward_timed(&mut net, &buf.images, &mut fwd).map_err(|e| anyhow!("{e}"))?;
        let t1 = Instant::now();
        let loss = loss_fn
            .with_labels_into(logits, &buf.labels, &mut grad)
            .map_err(|e| anyhow!("{e}"))?;
        let t2 = Instant::now();
        backward_timed(&mut net, &grad, &mut bwd).map_err(|e| anyhow!("{e}"))?;
        let t3 = Instant::now();
        optimizer.step(net.params_mut());
        let end = Instant::now();
        if !loss.is_finite() {
            bail!("step {}: the loss became {loss}", s + 1);
        }
        if timed {
            t_data += t0 - start;
            t_loss += t2 - t1;
            t_opt += end - t3;
        }
    }

    // The training step itself, as `cnn train` runs it: micro-batches in
    // parallel on copies of the network (trainer::step).
    let mut parallel = DataParallel::new(config.training.micro_batch);
    let mut net_dp = config.build_network()?;
    let mut optimizer_dp = Optimizer::new(config.optimizer.clone());
    for s in 0..opts.warmup + opts.steps {
        let batch = DatasetBatch {
            data: &train,
            indices: batches[s % batches.len()],
            normalize,
            augment: config.training.augment.as_ref().map(|a| (a, s as u64)),
        };
        let start = Instant::now();
        let result = parallel
            .step(&mut net_dp, &loss_fn, &batch, s as u64, &mut optimizer_dp)
            .map_err(|e| anyhow!("{e}"))?;
        let took = start.elapsed();
        if !result.loss.is_finite() {
            bail!("step {}: the loss became {}", s + 1, result.loss);
        } else if let Some(name) = first_non_finite(&net_dp) {
            bail!("step {}: parameter `{name}` became NaN or infinite", s + 1);
        }
        if s >= opts.warmup {
            steps.push(took);
        }
    }
    let n = opts.steps as u32;
    let flops = layers::flops::layer_forward_flops(&net);
    let fused = net
        .fused_layers()
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    let algorithms = conv_algorithms(&net);
    let layers = net
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| LayerTiming {
            name: l.name().to_string(),
            kind: match algorithms[i] {
                Some(a) => format!("{}/{a}", l.kind()),
                None => l.kind().to_string(),
            },
            forward: fwd[i] / n,
            backward: bwd[i] / n,
            forward_flops: flops[i],
            fused: fused.iter().any(|f| f == l.name()),
        })
        .collect();
    let step_mean = steps.iter().sum::<Duration>() / n;
    steps.sort();
    let step_median = steps[steps.len() / 2];
    let step_min = steps[0];

    let eval_started = Instant::now();
    let eval_images = evaluate_images(&mut net, &test, batch, normalize, opts.eval_images)?;
    let eval = eval_started.elapsed();

    Ok(BenchReport {
        config: config.name.clone(),
        batch,
        threads: rayon::current_num_threads(),
        steps: opts.steps,
        real_data: opts.data.is_some(),
        layers,
        data: t_data / n,
        loss: t_loss / n,
        optimizer: t_opt / n,
        micro_batch: config.training.micro_batch,
        step_median,
        step_min,
        step_mean,
        train_flops_per_image: layers::flops::train_flops(&net),
        eval_images,
        eval,
        peak_rss: peak_rss(),
    })
}

/// Forward passes and the loss over `count` images of `ds` (cycled when it
/// holds fewer), `batch` at a time, as evaluation does. Returns the count.
fn evaluate_images(
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

impl BenchReport {
    /// Images per second of training.
    pub fn images_per_second(&self) -> f64 {
        self.batch as f64 / self.step_median.as_secs_f64()
    }

    /// Projected seconds of training per 60,000-image epoch (median step).
    pub fn epoch_seconds(&self) -> f64 {
        60_000.0 / self.images_per_second()
    }

    /// Achieved GFLOP/s of training (median step).
    pub fn gflops(&self) -> f64 {
        self.train_flops_per_image as f64 * self.images_per_second() / 1e9
    }

    /// The report as text: a per-layer table, then the totals.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "config {}, batch {}, {} thread{}, {} timed steps, {} data",
            self.config,
            self.batch,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.steps,
            if self.real_data { "real" } else { "random" }
        );
        let _ = writeln!(
            s,
            "\nper layer, the whole batch through one network:\n{:<10} {:<13} {:>10} {:>10} {:>10} {:>9}",
            "layer", "kind", "fwd ms", "bwd ms", "MFLOP/img", "fwd GF/s"
        );
        let (mut f, mut b) = (Duration::ZERO, Duration::ZERO);
        for l in &self.layers {
            f += l.forward;
            b += l.backward;
            let gf = if l.forward_flops > 0 && !l.forward.is_zero() {
                format!(
                    "{:.1}",
                    l.forward_flops as f64 * self.batch as f64 / l.forward.as_secs_f64() / 1e9
                )
            } else {
                String::new()
            };
            if l.fused {
                let _ = writeln!(
                    s,
                    "{:<10} {:<13} {:>21}",
                    l.name, l.kind, "(fused, in the layer above)"
                );
                continue;
            }
            let _ = writeln!(
                s,
                "{:<10} {:<13} {:>10.3} {:>10.3} {:>10.3} {:>9}",
                l.name,
                l.kind,
                ms(l.forward),
                ms(l.backward),
                l.forward_flops as f64 / 1e6,
                gf
            );
        }
        let _ = writeln!(
            s,
            "{:<10} {:<13} {:>10.3} {:>10.3}",
            "layers",
            "",
            ms(f),
            ms(b)
        );
        let _ = writeln!(
            s,
            "data {:.3} ms, loss {:.3} ms, optimizer {:.3} ms per step",
            ms(self.data),
            ms(self.loss),
            ms(self.optimizer)
        );
        let _ = writeln!(
            s,
            "\ntraining step (micro-batches of {} in parallel, as in cnn train): median {:.3} ms (min {:.3}, mean {:.3})",
            self.micro_batch,
            ms(self.step_median),
            ms(self.step_min),
            ms(self.step_mean)
        );
        let _ = writeln!(
            s,
            "training: {:.0} images/s, {:.2} s per 60,000-image epoch, {:.2} GFLOP/s",
            self.images_per_second(),
            self.epoch_seconds(),
            self.gflops()
        );
        let _ = writeln!(
            s,
            "  (FLOPs: {:.3} MFLOP per image = forward + weight gradients + input gradients but the first layer's; {:.1} GFLOP per epoch)",
            self.train_flops_per_image as f64 / 1e6,
            self.train_flops_per_image as f64 * 60_000.0 / 1e9
        );
        let _ = writeln!(
            s,
            "evaluation: {} images in {:.3} s ({:.0} images/s)",
            self.eval_images,
            self.eval.as_secs_f64(),
            self.eval_images as f64 / self.eval.as_secs_f64().max(1e-12)
        );
        match self.peak_rss {
            Some(b) => {
                let _ = writeln!(s, "peak resident memory: {:.1} MB", b as f64 / 1e6);
            }
            None => {
                let _ = writeln!(s, "peak resident memory: unknown (no /proc/self/status)");
            }
        }
        s
    }
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
