//! What `cnn bench` is asked to do, and what it measures.

use std::path::PathBuf;
use std::time::Duration;

use mnist_io::Dataset;

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
    /// The machine's FMA peak on these threads: the instructions timed,
    /// and the FLOP/s of all threads together.
    pub fma_peak: (&'static str, f64),
}

/// The batches the timed steps cycle through.
pub(crate) struct TimedData<'a> {
    pub(crate) set: &'a Dataset,
    /// Full batches of `set`, by index.
    pub(crate) batches: &'a [&'a [usize]],
    pub(crate) normalize: Option<mnist_io::Normalize>,
}
