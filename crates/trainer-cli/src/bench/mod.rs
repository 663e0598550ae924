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
//!    ([`trainer::parallel::DataParallel`]), sum their gradients, optimizer step.
//!    Its median gives images per second and the projected epoch.
//!
//! Then it times
//! the evaluation of `eval_images` images (the test set's 10,000 by default),
//! forward only, in batches of the same size, as `cnn train` evaluates.
//!
//! Last, the machine's FMA peak on the same threads
//! ([`im2col::fma_peak_one_thread`]: nothing but independent FMAs, widest
//! vectors), so that the step's GFLOP/s can be read as a share of what the
//! cores can do.
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

mod figures;
mod passes;
mod table;

use figures::TimedData;
pub use figures::{BenchOptions, BenchReport, LayerTiming};

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use layers::Network;
use mnist_io::Dataset;
use tensor::Rng;

use trainer::config::TrainConfig;
use trainer::data::{check_fits, DataSets};

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

/// The most timed (or warm-up) steps `cnn bench` takes; it evaluates at most a hundred times as many images.
pub const MAX_STEPS: usize = 10_000;

/// Runs the benchmark.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let config = bench_config(opts)?;
    let batch = config.training.batch;
    let mut net = config.build_network()?;
    let (train, test) = bench_data(opts, &config, &net)?;
    let normalize = config.normalize(&train)?;
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
    let data = TimedData {
        set: &train,
        batches: &batches,
        normalize,
    };
    let pass = passes::time_layers(&mut net, &config, &data, opts)?;
    let mut steps = passes::time_steps(&config, &data, opts)?;
    let n = opts.steps as u32;
    let step_mean = steps.iter().sum::<Duration>() / n;
    steps.sort();

    let eval_started = Instant::now();
    let eval_images = passes::evaluate_images(&mut net, &test, batch, normalize, opts.eval_images)?;
    let eval = eval_started.elapsed();

    Ok(BenchReport {
        config: config.name.clone(),
        batch,
        threads: rayon::current_num_threads(),
        steps: opts.steps,
        real_data: opts.data.is_some(),
        layers: passes::layer_timings(&net, &pass, n),
        data: pass.data / n,
        loss: pass.loss / n,
        optimizer: pass.optimizer / n,
        micro_batch: config.training.micro_batch,
        step_median: steps[steps.len() / 2],
        step_min: steps[0],
        step_mean,
        train_flops_per_image: layers::flops::train_flops(&net),
        eval_images,
        eval,
        peak_rss: peak_rss(),
        fma_peak: fma_peak(),
    })
}

/// The FMA peak of every worker thread at once (each thread's probe running
/// while the others run theirs, as the step's kernels do), summed.
fn fma_peak() -> (&'static str, f64) {
    let per_thread = rayon::broadcast(|_| im2col::fma_peak_one_thread(Duration::from_millis(40)));
    let total = per_thread.iter().map(|p| p.flops_per_second).sum();
    (per_thread[0].isa, total)
}

/// The config to time: `opts`'s, with its batch size and convolution
/// algorithm, checked, and the step counts within their limits.
fn bench_config(opts: &BenchOptions) -> Result<TrainConfig> {
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
    Ok(config)
}

/// The training and test sets: `--data`'s, checked against the network,
/// or one pool of random images for both.
fn bench_data(
    opts: &BenchOptions,
    config: &TrainConfig,
    net: &Network,
) -> Result<(Dataset, Dataset)> {
    let input = trainer::config::image_input(&config.network)?;
    if input[0] != 1 {
        bail!(
            "cnn bench feeds grey images; the config's input has {} channels",
            input[0]
        );
    }
    let (train, test) = match &opts.data {
        Some(dir) => {
            let d = DataSets::load(dir)?;
            let shown = dir.display();
            check_fits(net, &d.train, &format!("the training set in {shown}"))?;
            check_fits(net, &d.test, &format!("the test set in {shown}"))?;
            (d.train, d.test)
        }
        None => {
            let batch = config.training.batch;
            let pool = synthetic(8 * batch, input[1], input[2], net.outputs(), 1)?;
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
    Ok((train, test))
}
