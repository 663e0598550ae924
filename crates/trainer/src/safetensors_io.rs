//! `cnn export` and `cnn import`: weights as a [safetensors] file laid out
//! like PyTorch's `state_dict` of the equivalent module.
//!
//! Every tensor is little-endian f32, row-major, named after the config's
//! layer names (see [`layers::NetworkConfig::layer_names`]), in PyTorch's layout:
//!
//! | tensor | shape | PyTorch |
//! |---|---|---|
//! | `conv1.weight` | `[out, in, kh, kw]` | `nn.Conv2d.weight` |
//! | `conv1.bias` | `[out]` | `nn.Conv2d.bias` |
//! | `fc1.weight` | `[out, in]` | `nn.Linear.weight` |
//! | `fc1.bias` | `[out]` | `nn.Linear.bias` |
//! | `bn1.weight`, `bn1.bias` | `[C]` | `nn.BatchNorm2d` / `nn.BatchNorm1d` γ and β |
//! | `bn1.running_mean`, `bn1.running_var` | `[C]` | the running statistics |
//! | `bn1.num_batches_tracked` | `[]`, int64 | the running statistics' count |
//!
//! Every tensor is f32 but `num_batches_tracked`, which PyTorch keeps as an
//! int64 scalar; it is written so and read back from int64 (or f32).
//!
//! The flatten before `fc1` takes C x H x W in row-major order, as
//! `nn.Flatten` does, so no permutation is needed. For the seed network
//! the PyTorch module is one whose submodules are attributes named like our
//! layers (`xtask/pytorch/reference.py` builds it from any config):
//!
//! ```python
//! class Seed(nn.Module):
//!     def __init__(self):
//!         super().__init__()
//!         self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
//!         self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
//!         self.fc1 = nn.Linear(784, 256)
//!         self.fc2 = nn.Linear(256, 10)
//!     def forward(self, x):
//!         x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
//!         x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
//!         x = F.relu(self.fc1(x.flatten(1)))
//!         return F.relu(self.fc2(x))  # the seed config's final ReLU
//!
//! model = Seed()
//! model.load_state_dict(safetensors.torch.load_file("seed.safetensors"))
//! ```
//!
//! An `nn.Sequential` does **not** match: its parameters are named by
//! position (`0.weight`, `3.weight`, `7.weight`, `9.weight` for the seed
//! network). Rename when loading, e.g.
//! `{ {"conv1": "0", "conv2": "3", "fc1": "7", "fc2": "9"}[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in sd.items() }`,
//! or wrap the layers in an `nn.Sequential(OrderedDict(...))` with our names.
//!
//! The file's metadata (`__metadata__`, ignored by `load_file`) holds
//! `format = pt` (what `safetensors.torch.save_file` writes), and, from
//! `cnn export`, the config as TOML (`cnn.config`) and the data set name
//! (`cnn.dataset`, so an imported model keeps its class names).
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use optim::Optimizer;
use safetensors::{Dtype, SafeTensors};
use tensor::Tensor;

use crate::checkpoint::{check_weights, Checkpoint, PartialEpoch};
use crate::config::TrainConfig;
use crate::files::write_atomic;

/// Metadata key of the config's TOML text (in ONNX files too).
pub(crate) const META_CONFIG: &str = "cnn.config";
/// Metadata key of the data set name (`mnist`, `fashion-mnist`; in ONNX files too).
pub(crate) const META_DATASET: &str = "cnn.dataset";

/// A safetensors file's tensors (as f32) and metadata.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
}

/// Whether `path` names a safetensors file (by its extension).
pub fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Whether PyTorch keeps the tensor `name` as an integer count.
fn is_count(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
}

/// The bytes of a safetensors file holding `tensors` as f32 (row-major,
/// little-endian), counts (`num_batches_tracked`) as int64.
pub fn to_bytes(
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, bytes) = if is_count(name) {
                let counts = t.iter().flat_map(|&v| (v as i64).to_le_bytes());
                (Dtype::I64, counts.collect())
            } else {
                (Dtype::F32, t.iter().flat_map(|v| v.to_le_bytes()).collect())
            };
            (name.clone(), dtype, t.shape().to_vec(), bytes)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| anyhow!("tensor `{name}`: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    safetensors::serialize(views, Some(meta)).map_err(|e| anyhow!("serialising: {e}"))
}

/// Parses a safetensors file's bytes; every tensor must be f32, but counts
/// (`num_batches_tracked`) may be int64. `path` names it in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<TensorFile> {
    let p = path.display();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{p}: not a valid safetensors file: {e}"))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{p}: not a valid safetensors file: {e}"))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::I64 if is_count(name) => view
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => bail!(
                "{p}: tensor `{name}` is {other:?}; only f32 tensors (and int64 num_batches_tracked) are read (convert with `t.float()` in PyTorch before saving)"
            ),
        };
        let t = Tensor::from_shape_vec(view.shape().to_vec(), values)
            .map_err(|e| anyhow!("{p}: tensor `{name}`: {e}"))?;
        tensors.insert(name.to_string(), t);
    }
    let metadata = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(TensorFile { tensors, metadata })
}

/// The `__metadata__` strings of a safetensors file's bytes, without
/// converting any tensor.
fn metadata_of(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{}: not a valid safetensors file: {e}", path.display()))?;
    Ok(meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// The network of `config` holding the weights of a safetensors file's
/// `bytes`, and the number of its tensors. Before any tensor is converted,
/// the file's element count is compared with the network's size (so a
/// config forged to describe a huge network is not built) and every name and
/// shape with the network's ([`Network::check_state_shapes`]): memory stays
/// within the file and the network, whatever the file holds.
pub fn network_from(config: &TrainConfig, bytes: &[u8], path: &Path) -> Result<(Network, usize)> {
    let p = path.display();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{p}: not a valid safetensors file: {e}"))?;
    let views = st.tensors();
    let stored = views
        .iter()
        .map(|(_, v)| v.shape().iter().product::<usize>());
    crate::checkpoint::check_param_budget(config, stored.sum(), path)?;
    config
        .check()
        .with_context(|| format!("{p}: config `{}`", config.name))?;
    let mut net = config.build_network()?;
    let does_not_fit = |e| {
        anyhow!(
            "{p}: does not fit the network of config `{}`: {e}",
            config.name
        )
    };
    net.check_state_shapes(views.iter().map(|(n, v)| (n.as_str(), v.shape())))
        .map_err(does_not_fit)?;
    let file = from_bytes(bytes, path)?;
    let values = file.tensors.iter();
    check_weights(
        config,
        values.map(|(n, t)| (n.as_str(), t.as_slice().unwrap_or(&[]))),
        path,
    )?;
    net.load_state_dict(&file.tensors).map_err(does_not_fit)?;
    Ok((net, file.tensors.len()))
}

/// Reads a safetensors file (see [`from_bytes`]).
pub fn read(path: &Path) -> Result<TensorFile> {
    from_bytes(&read_bytes(path)?, path)
}

/// A safetensors file's bytes, within [`crate::files::MAX_SAFETENSORS_BYTES`].
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    crate::files::read_limited(
        path,
        crate::files::MAX_SAFETENSORS_BYTES,
        "a safetensors file",
    )
}

/// Writes `tensors` to `path` atomically.
pub fn write(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let bytes = to_bytes(tensors, metadata).with_context(|| format!("{}", path.display()))?;
    write_atomic(path, &bytes)
}

/// `config` given for a file's weights, with the standardisation constants
/// the file's stored config records when `config` has none: they belong to
/// the weights, not to the network's description.
fn with_stored_constants(
    mut config: TrainConfig,
    metadata: &BTreeMap<String, String>,
) -> TrainConfig {
    if config.training.input_mean_std.is_none() {
        config.training.input_mean_std = metadata
            .get(META_CONFIG)
            .and_then(|text| TrainConfig::parse(text, "metadata").ok())
            .and_then(|stored| stored.training.input_mean_std);
    }
    config
}

/// A checkpoint holding `net` with no training behind it: epoch 0, empty optimizer state, no history.
pub fn fresh_checkpoint(
    config: &TrainConfig,
    dataset: Option<String>,
    net: &Network,
) -> Checkpoint {
    let optimizer = Optimizer::new(config.optimizer.clone());
    Checkpoint::capture(
        config,
        dataset,
        net,
        optimizer.state(),
        0,
        PartialEpoch::default(),
        Vec::new(),
    )
}

/// Reads a model: a checkpoint, or a `.safetensors` file with the weights of
/// the network of `config` (a TOML file or a built-in name; required unless
/// the file was written by `cnn export`, which stores the config in its metadata).
/// With a checkpoint, a given `config` must describe the checkpoint's network.
pub fn load_checkpoint(path: &Path, config: Option<&str>) -> Result<Checkpoint> {
    if is_safetensors(path) {
        let bytes = read_bytes(path)?;
        let metadata = metadata_of(&bytes, path)?;
        let config = match (config, metadata.get(META_CONFIG)) {
            (Some(name), _) => with_stored_constants(TrainConfig::load(name)?, &metadata),
            // Written by `cnn export`: the config travels in the metadata.
            // Checked by `network_from`, after its size is compared with the file's.
            (None, Some(text)) => TrainConfig::parse(text, &format!("stored in {}", path.display()))?,
            (None, None) => bail!(
                "{}: a safetensors file holds weights only; pass --config <file|name> with the network they belong to",
                path.display()
            ),
        };
        let (net, _) = network_from(&config, &bytes, path)?;
        let dataset = metadata.get(META_DATASET).cloned();
        return Ok(fresh_checkpoint(&config, dataset, &net));
    }
    let ckpt = Checkpoint::load(path)?;
    if let Some(name) = config {
        let given = TrainConfig::load(name)?;
        if given.network != ckpt.config.network {
            bail!(
                "{}: the checkpoint's network (config `{}`) differs from the network of config `{}` given with --config; leave --config out for a checkpoint",
                path.display(),
                ckpt.config.name,
                given.name
            );
        }
    }
    Ok(ckpt)
}

/// The network and config of a model file (see [`load_checkpoint`]).
pub fn load_model(path: &Path, config: Option<&str>) -> Result<(Network, TrainConfig)> {
    let ckpt = load_checkpoint(path, config)?;
    let net = ckpt
        .network()
        .with_context(|| format!("{}", path.display()))?;
    Ok((net, ckpt.config))
}

/// `cnn export`: writes a checkpoint's weights as a safetensors file; returns the number of tensors.
pub fn export(model: &Path, out: &Path, force: bool) -> Result<usize> {
    if !is_safetensors(out) {
        bail!("{}: give a file name ending in .safetensors", out.display());
    }
    crate::files::check_output(out, &[model], force)?;
    let ckpt = Checkpoint::load(model)?;
    let net = ckpt
        .network()
        .with_context(|| format!("{}", model.display()))?;
    let bytes = model_bytes(&net, &ckpt.config, ckpt.body.dataset.as_deref())
        .with_context(|| format!("{}", out.display()))?;
    write_atomic(out, &bytes)?;
    Ok(net.state_dict().len())
}

/// `net`'s weights as the bytes of a `.safetensors` file that `cnn eval
/// --model` and `cnn import` read back whole: the metadata holds `format =
/// pt`, `config` as TOML and the data set's name, when known.
pub fn model_bytes(net: &Network, config: &TrainConfig, dataset: Option<&str>) -> Result<Vec<u8>> {
    let mut metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (META_CONFIG.to_string(), config.to_toml()),
    ]);
    if let Some(d) = dataset {
        metadata.insert(META_DATASET.to_string(), d.to_string());
    }
    to_bytes(&net.state_dict(), &metadata)
}

/// `cnn import`: builds the network of `config`, loads the weights of
/// `weights` and saves it as a checkpoint (epoch 0, empty optimizer state);
/// returns the number of tensors.
pub fn import(config: &str, weights: &Path, out: &Path, force: bool) -> Result<usize> {
    crate::files::check_output(out, &[weights], force)?;
    let bytes = read_bytes(weights)?;
    let metadata = metadata_of(&bytes, weights)?;
    let config = with_stored_constants(TrainConfig::load(config)?, &metadata);
    let (net, tensors) = network_from(&config, &bytes, weights)?;
    let dataset = metadata.get(META_DATASET).cloned();
    fresh_checkpoint(&config, dataset, &net).save(out)?;
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_statistics_travel_with_pytorch_names_and_dtypes() {
        let config = TrainConfig::load("modern").unwrap();
        let mut net = config.build_network().unwrap();
        for b in net.buffers_mut() {
            b.value.mapv_inplace(|v| v + 3.0);
        }
        let tensors = net.state_dict();
        for name in [
            "bn1.running_mean",
            "bn1.running_var",
            "bn3.num_batches_tracked",
        ] {
            assert!(tensors.contains_key(name), "{name}");
        }
        let bytes = to_bytes(&tensors, &BTreeMap::new()).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let count = st.tensor("bn2.num_batches_tracked").unwrap();
        assert_eq!((count.dtype(), count.shape()), (Dtype::I64, &[][..]));
        assert_eq!(count.data(), 3i64.to_le_bytes());
        assert_eq!(st.tensor("bn2.running_var").unwrap().dtype(), Dtype::F32);
        let path = Path::new("modern.safetensors");
        let (back, _) = network_from(&config, &bytes, path).unwrap();
        assert_eq!(back.state_dict(), tensors);
    }

    #[test]
    fn round_trip_and_errors_name_the_tensor() {
        let config = TrainConfig::load("seed").unwrap();
        let net = config.build_network().unwrap();
        let tensors = net.state_dict();
        let path = Path::new("w.safetensors");
        let bytes = to_bytes(&tensors, &BTreeMap::new()).unwrap();
        let file = from_bytes(&bytes, path).unwrap();
        assert_eq!(file.tensors, tensors);
        network_from(&config, &bytes, path).unwrap();

        let mut missing = tensors.clone();
        missing.remove("fc2.bias");
        let bytes = to_bytes(&missing, &BTreeMap::new()).unwrap();
        let err = format!("{:#}", network_from(&config, &bytes, path).err().unwrap());
        assert!(
            err.contains("w.safetensors") && err.contains("missing tensor `fc2.bias`"),
            "{err}"
        );

        let mut extra = tensors.clone();
        extra.insert("fc3.weight".into(), Tensor::zeros(vec![2, 2]));
        let bytes = to_bytes(&extra, &BTreeMap::new()).unwrap();
        let err = format!("{:#}", network_from(&config, &bytes, path).err().unwrap());
        assert!(err.contains("unexpected tensor `fc3.weight`"), "{err}");

        let mut shaped = tensors.clone();
        shaped.insert("conv1.weight".into(), Tensor::zeros(vec![8, 9]));
        let bytes = to_bytes(&shaped, &BTreeMap::new()).unwrap();
        let err = format!("{:#}", network_from(&config, &bytes, path).err().unwrap());
        assert!(err.contains("`conv1.weight` has shape [8, 9]"), "{err}");

        let f64_bytes = vec![0u8; 16];
        let view = safetensors::tensor::TensorView::new(Dtype::F64, vec![2], &f64_bytes).unwrap();
        let bytes = safetensors::serialize([("conv1.bias", view)], None).unwrap();
        let err = format!("{:#}", from_bytes(&bytes, path).unwrap_err());
        assert!(
            err.contains("w.safetensors") && err.contains("`conv1.bias` is F64"),
            "{err}"
        );

        let err = format!("{:#}", from_bytes(b"garbage", path).unwrap_err());
        assert!(
            err.contains("w.safetensors: not a valid safetensors file"),
            "{err}"
        );
    }

    /// A file with every tensor of the network and a large one besides is
    /// refused by the shape check, before any tensor is converted, naming
    /// the extra tensor; the same file without it loads.
    #[test]
    fn the_layout_is_checked_before_any_tensor_is_converted() {
        let config = TrainConfig::load("seed").unwrap();
        let net = config.build_network().unwrap();
        let mut tensors = net.state_dict();
        let path = Path::new("w.safetensors");
        let fits = to_bytes(&tensors, &BTreeMap::new()).unwrap();
        network_from(&config, &fits, path).unwrap();
        tensors.insert("junk".into(), Tensor::zeros(vec![1 << 22]));
        let bytes = to_bytes(&tensors, &BTreeMap::new()).unwrap();
        let err = format!("{:#}", network_from(&config, &bytes, path).err().unwrap());
        assert!(err.contains("unexpected tensor `junk`"), "{err}");
        tensors.remove("junk");
        tensors.insert("fc1.bias".into(), Tensor::zeros(vec![255]));
        let bytes = to_bytes(&tensors, &BTreeMap::new()).unwrap();
        let err = format!("{:#}", network_from(&config, &bytes, path).err().unwrap());
        assert!(err.contains("tensor `fc1.bias` has shape [255]"), "{err}");
    }
}
