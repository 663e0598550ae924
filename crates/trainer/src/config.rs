//! A training run described as data: network, optimizer, schedule and settings.
//! Built-in configs live in `crates/trainer/configs/*.toml` and are embedded in the binary.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use layers::{ConvAlgorithm, Network, NetworkConfig};
use mnist_io::Normalize;
use optim::{OptimizerConfig, Schedule};
use serde::{Deserialize, Serialize};
use tensor::Rng;

/// Settings of the training loop itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Seeds the initial weights and every epoch's shuffle.
    pub seed: u64,
    /// How pixel bytes become network inputs.
    #[serde(default)]
    pub input_scaling: InputScaling,
    /// Images per micro-batch. Each batch is cut into micro-batches of this
    /// many images, which run forward and backward in parallel on copies of
    /// the network; their gradients are added in order (see `trainer::step`).
    /// The cut depends on nothing else, so neither do the results; a
    /// different value changes the rounding of the gradient sums.
    #[serde(default = "default_micro_batch")]
    pub micro_batch: usize,
    /// Whether each epoch's train loss and accuracy are a full pass over the
    /// training set after it (`cnn train --eval-train`, as the post's figures
    /// are) rather than running means over the epoch's batches. Recorded so
    /// that a run's pages say which. Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eval_train: bool,
    /// The most parameters the network may have; a larger one is refused
    /// before any weight is allocated. Written only when not the default,
    /// 20 million; `cnn train --max-params` sets it.
    #[serde(
        default = "default_max_params",
        skip_serializing_if = "is_default_max_params"
    )]
    pub max_params: usize,
    /// With `input_scaling = "standardized"`: the training set's pixel mean
    /// and std (of `v / 255`), `[mean, std]`. A new run computes and records
    /// them, so that the model carries them (in its checkpoints and
    /// exports) and needs no training set to classify an image.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "exactly_two"
    )]
    pub input_mean_std: Option<[f32; 2]>,
    /// The class names of an image folder (its class folders' names,
    /// sorted), recorded by a run that trains on one, so that `predict`, the
    /// report and exports name the classes without the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// What an image folder's PNG of another size than the network's input
    /// becomes: `"refuse"` (default: an error naming the file) or `"resize"`
    /// (padded to a square with black, then resized by area averaging, as
    /// `cnn predict` does).
    #[serde(default, skip_serializing_if = "OtherSizes::is_refuse")]
    pub other_sizes: OtherSizes,
    /// Random motions of the training images, drawn anew for every image of
    /// every step; none when absent (the test set is never moved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<Augmentation>,
}

/// Data augmentation: each training image is rotated by a uniform angle in
/// `[−rotation, rotation]` degrees and shifted by a whole number of pixels
/// in `−shift..=shift`, rows and columns each (see [`mnist_io::Motion`]).
/// In a config: `augment = { shift = 2, rotation = 10.0 }` under `[training]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augmentation {
    /// Largest shift, in pixels.
    pub shift: u32,
    /// Largest rotation, in degrees.
    pub rotation: f32,
}

/// 20 million parameters (80 MB of weights; the seed network has 0.2 million).
pub(crate) const DEFAULT_MAX_PARAMS: usize = 20_000_000;

fn default_max_params() -> usize {
    DEFAULT_MAX_PARAMS
}

fn is_default_max_params(n: &usize) -> bool {
    *n == DEFAULT_MAX_PARAMS
}

/// The most values a batch's layer outputs may hold in all (the
/// convolutions' im2col columns included): 2^27, 512 MB of f32.
/// The seed network takes batches of up to about 5,000 images.
pub(crate) const MAX_BATCH_VALUES: usize = 1 << 27;

/// 25 images: four micro-batches of the seed's batch of 100, enough to keep
/// two to four threads busy, and each large enough for efficient kernels.
pub(crate) fn default_micro_batch() -> usize {
    25
}

/// What an image folder's image of another size than the network's input becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherSizes {
    /// Refused, with an error naming the file.
    #[default]
    Refuse,
    /// Padded to a square with black, then resized by area averaging.
    Resize,
}

impl OtherSizes {
    fn is_refuse(&self) -> bool {
        *self == OtherSizes::Refuse
    }
}

/// How a pixel byte `v` becomes an input value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputScaling {
    /// `v / 255`, in [0, 1].
    #[default]
    Unit,
    /// `(v − 128) / 255`, in [−0.5, 0.5]: what the course code behind the
    /// post loads (its `load_mnist_4d`).
    Centered,
    /// `(v / 255 − mean) / std` with the training set's pixel mean and std.
    Standardized,
}

/// Everything a run needs besides the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Short name (`seed`).
    pub name: String,
    /// One line saying what it is.
    #[serde(default)]
    pub description: String,
    /// Loop settings.
    pub training: TrainingConfig,
    /// The optimizer and its base learning rate.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over epochs.
    #[serde(default)]
    pub schedule: Schedule,
    /// The network.
    pub network: NetworkConfig,
}

/// The built-in configs: (name, TOML text).
pub const BUILTIN: [(&str, &str); 4] = [
    ("seed", include_str!("../configs/seed.toml")),
    ("mlp", include_str!("../configs/mlp.toml")),
    ("improved", include_str!("../configs/improved.toml")),
    ("modern", include_str!("../configs/modern.toml")),
];

impl TrainConfig {
    /// Parses and checks a config; `source` names it in errors (a path or `built-in seed`).
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        let config = Self::parse(text, source)?;
        config.check().with_context(|| format!("config {source}"))?;
        Ok(config)
    }

    /// Parses a config without [checking](Self::check) it (nothing is
    /// allocated for its network); `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| match diagnosis(text) {
            Some(layer) => anyhow!("config {source}: {layer}\n{e}"),
            None => anyhow!("config {source}: {e}"),
        })
    }

    /// A built-in config by name, or a TOML file by path, checked.
    pub fn load(name_or_path: &str) -> Result<Self> {
        let config = Self::read(name_or_path)?;
        config
            .check()
            .with_context(|| format!("config {name_or_path}"))?;
        Ok(config)
    }

    /// [`TrainConfig::load`] without the check, for a caller that changes
    /// settings (`--epochs`, `--max-params`) and checks the result.
    pub fn read(name_or_path: &str) -> Result<Self> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, &format!("built-in `{name_or_path}`"));
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            return Err(anyhow!(
                "config `{name_or_path}`: no such file, and not a built-in config (built-in: {})",
                names.join(", ")
            ));
        }
        let text =
            crate::files::read_text_limited(path, crate::files::MAX_CONFIG_BYTES, "a config")?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The TOML text of this config.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Checks the settings and that the network's shapes chain.
    pub fn check(&self) -> Result<()> {
        let t = &self.training;
        if t.batch == 0 || t.epochs == 0 || t.micro_batch == 0 {
            return Err(anyhow!(
                "training: batch, epochs and micro_batch must be at least 1 (batch {}, epochs {}, micro_batch {})",
                t.batch,
                t.epochs,
                t.micro_batch
            ));
        }
        if let Some(a) = &t.augment {
            if a.shift > 8 || !(0.0..=45.0).contains(&a.rotation) {
                return Err(anyhow!(
                    "training.augment: shift must be at most 8 pixels and rotation between 0 and 45 degrees, got shift {} and rotation {}",
                    a.shift,
                    a.rotation
                ));
            }
        }
        if let Some([mean, std]) = t.input_mean_std {
            if !(mean.is_finite() && std.is_finite() && std > 0.0) {
                return Err(anyhow!(
                    "training: input_mean_std must be [mean, std] with a positive std, got [{mean}, {std}]"
                ));
            }
        }
        self.optimizer
            .check()
            .map_err(|e| anyhow!("optimizer: {e}"))?;
        self.schedule
            .check(self.optimizer.lr())
            .map_err(|e| anyhow!("schedule: {e}"))?;
        image_input(&self.network)?;
        let params = self
            .network
            .param_count()
            .map_err(|e| anyhow!("network: {e}"))?;
        if params > t.max_params {
            return Err(anyhow!(
                "network: {params} parameters, more than the {} allowed by training.max_params; raise it (cnn train --max-params N) if the machine has the memory",
                t.max_params
            ));
        }
        if params > DEFAULT_MAX_PARAMS {
            // A raised limit may ask for more than the machine has: ask for the
            // memory of the weights, their gradients and the optimizer's buffer
            // first, so that it fails with a message rather than an abort.
            let mut probe: Vec<f32> = Vec::new();
            if params
                .checked_mul(3)
                .is_none_or(|n| probe.try_reserve_exact(n).is_err())
            {
                return Err(anyhow!(
                    "network: {params} parameters: this machine cannot allocate the memory for them"
                ));
            }
        }
        let net = self
            .network
            .build(&mut Rng::seed_from_u64(0))
            .map_err(|e| anyhow!("network: {e}"))?;
        let per_example = values_per_example(&net)
            .ok_or_else(|| anyhow!("network: its layer outputs do not fit in 64 bits"))?;
        let batch_values = per_example.saturating_mul(t.batch);
        if batch_values > MAX_BATCH_VALUES {
            return Err(anyhow!(
                "training: batch {} needs {batch_values} values of layer outputs, more than the {MAX_BATCH_VALUES} allowed; this network takes batches of up to {}",
                t.batch,
                MAX_BATCH_VALUES / per_example.max(1)
            ));
        }
        Ok(())
    }

    /// What [`mnist_io::Dataset::fill_batch`] does after dividing by 255,
    /// for this config's scaling. Standardised inputs use the recorded
    /// [`TrainingConfig::input_mean_std`], else `train`'s.
    pub fn normalize(&self, train: &mnist_io::Dataset) -> Result<Option<Normalize>> {
        Ok(match self.training.input_scaling {
            InputScaling::Unit => None,
            InputScaling::Centered => Some(Normalize {
                mean: 128.0 / 255.0,
                std: 1.0,
            }),
            InputScaling::Standardized => match self.training.input_mean_std {
                Some([mean, std]) => Some(Normalize { mean, std }),
                None => {
                    let measured = train.pixel_mean_std();
                    if measured.std.is_nan() || measured.std <= 0.0 {
                        return Err(anyhow!("input_scaling = \"standardized\" with no recorded input_mean_std: the training set has the same value in every pixel (or no image), a standard deviation of 0 to divide by"));
                    }
                    Some(measured)
                }
            },
        })
    }

    /// The training loss.
    pub fn loss_fn(&self) -> layers::Loss {
        self.network.loss
    }

    /// The network with its initial weights, drawn from the config's seed.
    pub fn build_network(&self) -> Result<Network> {
        self.network
            .build(&mut Rng::seed_from_u64(self.training.seed))
            .map_err(|e| anyhow!("network: {e}"))
    }
}

/// The values one example's pass holds: the input, every layer's output,
/// and each convolution's im2col columns. `None` on overflow.
fn values_per_example(net: &Network) -> Option<usize> {
    let inputs = std::iter::once(&net.config().input).chain(net.output_shapes());
    let mut total = net.config().input.iter().product::<usize>();
    for ((layer, input), output) in net
        .config()
        .layers
        .iter()
        .zip(inputs)
        .zip(net.output_shapes())
    {
        let out = output.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        total = total.checked_add(out)?;
        if let layers::LayerConfig::Conv2d(c) = layer {
            // One column of C x K x K values per output position.
            let positions = out / c.out_channels.max(1);
            let cols = positions
                .checked_mul(input[0])?
                .checked_mul(c.kernel * c.kernel)?;
            total = total.checked_add(cols)?;
        }
    }
    Some(total)
}

/// Parses a `--conv` value: `auto`, `im2col` or `direct`.
pub fn parse_conv_algorithm(text: &str) -> std::result::Result<ConvAlgorithm, String> {
    [
        ConvAlgorithm::Auto,
        ConvAlgorithm::Im2col,
        ConvAlgorithm::Direct,
    ]
    .into_iter()
    .find(|a| a.name() == text)
    .ok_or_else(|| format!("`{text}` is not a convolution algorithm (auto, im2col, direct)"))
}

/// Checks that `--conv conv` leaves the network of the run being resumed,
/// `running` (its checkpoint's), as it is. The two algorithms add the same
/// products in different orders, so switching would make a run that is
/// neither; `source` names the checkpoint in the error.
pub(crate) fn check_resumed_conv(
    running: &NetworkConfig,
    conv: ConvAlgorithm,
    source: &Path,
) -> Result<()> {
    let mut asked = running.clone();
    asked.set_conv_algorithm(conv);
    if &asked == running {
        return Ok(());
    }
    let mut kept: Vec<&str> = running
        .layers
        .iter()
        .filter_map(|l| match l {
            layers::LayerConfig::Conv2d(c) => Some(c.algorithm.name()),
            _ => None,
        })
        .collect();
    kept.dedup();
    Err(anyhow!(
        "{}: --conv {conv} cannot change a run being resumed: its convolutions use `{}`, and another algorithm rounds differently, so the result would match neither run (resume without --conv, or start a new run)",
        source.display(),
        kept.join("`, `")
    ))
}

/// The network's input as `[C, H, W]`. The trainer feeds images, so an
/// input of another rank (e.g. `[20]` features) is an error saying so.
pub fn image_input(network: &NetworkConfig) -> Result<[usize; 3]> {
    match network.input[..] {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(anyhow!(
            "network: input {:?} is not an image; the trainer feeds images and needs input = [C, H, W], e.g. [1, 28, 28]",
            network.input
        )),
    }
}

/// Finds the first layer table that does not parse on its own, to name its index and kind.
fn layer_diagnosis(doc: &toml::Table) -> Option<String> {
    let layers = doc.get("network")?.get("layers")?.as_array()?;
    layers.iter().enumerate().find_map(|(i, item)| {
        let kind = item
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("(no kind)");
        let e = layers::LayerConfig::deserialize(item.clone()).err()?;
        let key = culprit_key::<layers::LayerConfig>(item).or_else(|| {
            // An unknown or mistyped layer kind.
            e.message().contains("variant").then(|| "kind".to_string())
        });
        Some(match key {
            Some(key) => format!("layer {} ({kind}), key `{key}`: {}", i + 1, e.message()),
            None => format!("layer {} ({kind}): {}", i + 1, e.message()),
        })
    })
}

/// Which key of a config is wrong, for the errors serde gives without one:
/// inside a layer, or in `[optimizer]` or `[schedule]` (tables whose `kind`
/// chooses the other keys).
fn diagnosis(text: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    fn section<T: serde::de::DeserializeOwned>(doc: &toml::Table, name: &str) -> Option<String> {
        let item = doc.get(name)?;
        T::deserialize(item.clone()).err()?;
        culprit_key::<T>(item).map(|k| format!("{name}.{k}"))
    }
    layer_diagnosis(&doc)
        .or_else(|| section::<OptimizerConfig>(&doc, "optimizer"))
        .or_else(|| section::<Schedule>(&doc, "schedule"))
}

/// The key of a layer's table whose value is wrong (serde's message for a
/// value of the wrong type names no key): the one whose removal makes the
/// layer either load (an optional key) or miss just that key (a required
/// one); inside an inline table (`init = { .. }`) as `init.std`.
fn culprit_key<T: serde::de::DeserializeOwned>(item: &toml::Value) -> Option<String> {
    let loads_or_misses = |doc: toml::Value, k: &str| match T::deserialize(doc) {
        Ok(_) => true,
        Err(e) => e.message().contains(&format!("missing field `{k}`")),
    };
    let table = item.as_table()?;
    let key = table.keys().filter(|k| *k != "kind").find(|k| {
        let mut without = table.clone();
        without.remove(*k);
        loads_or_misses(toml::Value::Table(without), k)
    })?;
    let Some(inner) = table[key].as_table() else {
        return Some(key.clone());
    };
    let sub = inner.keys().filter(|k| *k != "kind").find(|k| {
        let (mut without, mut inner) = (table.clone(), inner.clone());
        inner.remove(*k);
        without.insert(key.clone(), toml::Value::Table(inner));
        loads_or_misses(toml::Value::Table(without), k)
    });
    Some(sub.map_or(key.clone(), |s| format!("{key}.{s}")))
}

/// `input_mean_std`: exactly two numbers. (Serde's `[f32; 2]` would take the
/// first two of a longer array and drop the rest without a word.)
fn exactly_two<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<[f32; 2]>, D::Error> {
    let Some(values) = Option::<Vec<f32>>::deserialize(d)? else {
        return Ok(None);
    };
    <[f32; 2]>::try_from(values.as_slice())
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "input_mean_std must be [mean, std], two numbers; got {}",
                values.len()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_build() {
        for (name, _) in BUILTIN {
            let c = TrainConfig::load(name).unwrap();
            assert_eq!(c.name, name);
            c.build_network().unwrap();
        }
        let seed = TrainConfig::load("seed").unwrap();
        assert_eq!((seed.training.epochs, seed.training.batch), (100, 100));
        assert_eq!(seed.optimizer, OptimizerConfig::sgd(0.01, 0.9, 1e-4));
        assert_eq!(seed.network.layers.len(), 11);
    }

    #[test]
    fn bad_configs_name_the_source_layer_and_mismatch() {
        let text = BUILTIN[0]
            .1
            .replacen("in_channels = 8", "in_channels = 3", 1);
        let err = format!(
            "{:#}",
            TrainConfig::from_toml(&text, "my.toml").unwrap_err()
        );
        assert!(
            err.contains("my.toml")
                && err.contains("layer 4 (conv2d)")
                && err.contains("[N, 3, H, W]")
                && err.contains("[N, 8, 14, 14]"),
            "{err}"
        );

        let text = BUILTIN[0]
            .1
            .replacen("kind = \"relu\"", "kind = \"swish\"", 1);
        let err = format!(
            "{:#}",
            TrainConfig::from_toml(&text, "my.toml").unwrap_err()
        );
        assert!(
            err.contains("my.toml") && err.contains("layer 2 (swish)"),
            "{err}"
        );

        let text = BUILTIN[0].1.replacen("kernel = 3\n", "", 1);
        let err = format!(
            "{:#}",
            TrainConfig::from_toml(&text, "my.toml").unwrap_err()
        );
        assert!(
            err.contains("my.toml") && err.contains("layer 1 (conv2d)") && err.contains("kernel"),
            "{err}"
        );

        let err = format!("{:#}", TrainConfig::load("no-such-config").unwrap_err());
        assert!(err.contains("seed, mlp, improved, modern"), "{err}");
    }

    #[test]
    fn a_feature_input_is_refused_as_not_an_image() {
        // The MLP config on 784 features instead of 1 x 28 x 28 images.
        let text = BUILTIN[1]
            .1
            .replacen("input = [1, 28, 28]", "input = [784]", 1);
        let err = format!(
            "{:#}",
            TrainConfig::from_toml(&text, "mlp784.toml").unwrap_err()
        );
        assert_eq!(
            err,
            "config mlp784.toml: network: input [784] is not an image; the trainer feeds images and needs input = [C, H, W], e.g. [1, 28, 28]"
        );
    }

    #[test]
    fn toml_round_trip() {
        let c = TrainConfig::load("improved").unwrap();
        assert_eq!(TrainConfig::from_toml(&c.to_toml(), "again").unwrap(), c);
    }

    /// A resumed run keeps its convolution algorithm: `--conv` may repeat
    /// it, and is refused, naming the run's, when it would change it.
    #[test]
    fn a_resumed_run_keeps_its_conv_algorithm() {
        let mut network = TrainConfig::load("seed").unwrap().network;
        let path = Path::new("run/last.ckpt");
        check_resumed_conv(&network, ConvAlgorithm::Auto, path).unwrap();
        let err = check_resumed_conv(&network, ConvAlgorithm::Im2col, path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("run/last.ckpt")
                && err.contains("--conv im2col cannot change a run being resumed")
                && err.contains("`auto`"),
            "{err}"
        );
        network.set_conv_algorithm(ConvAlgorithm::Direct);
        check_resumed_conv(&network, ConvAlgorithm::Direct, path).unwrap();
        assert!(check_resumed_conv(&network, ConvAlgorithm::Auto, path).is_err());
    }
}
