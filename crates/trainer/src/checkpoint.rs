//! Checkpoints: everything needed to evaluate a network or continue its training.
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! magic    8 bytes   "CNNCKPT\0"
//! version  u32       FORMAT_VERSION
//! length   u64       bytes of the body
//! body     length    bincode (standard config) of `Body`
//! sha256   32 bytes  of the body
//! ```
//!
//! The loader checks magic, version, length against the file size and the
//! checksum before decoding anything, so a truncated, bit-flipped or foreign
//! file is refused with a clear error. Files are written to a temporary
//! name, synced, and renamed over the old one, then the directory is synced:
//! a crash leaves either the old file or the new one, never half of one.
//! Nothing time-dependent goes in, so the same run gives the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use optim::OptimizerState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tensor::Tensor;

use crate::config::{TrainConfig, DEFAULT_MAX_PARAMS};
use crate::files::{write_atomic, CHECKPOINT_MAGIC as MAGIC};

/// Bumped whenever `Body` changes shape.
pub(crate) const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8;
/// A checkpoint body larger than this is refused before reading it (the seed network's is under 2 MB).
const MAX_BODY: u64 = 1 << 30;

/// One parameter tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedTensor {
    /// `conv1.weight`.
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<u64>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Train and test figures of one finished epoch (no timings: those differ between identical runs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: u64,
    /// Training loss (running mean over the epoch, or a full pass with `--eval-train`).
    pub train_loss: f64,
    /// Training accuracy, same source as the loss.
    pub train_acc: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_acc: f64,
}

/// Sums over the batches done so far in an unfinished epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Batches finished in the current epoch.
    pub batches: u64,
    /// Σ batch loss × batch size.
    pub loss_sum: f64,
    /// Correct predictions.
    pub correct: u64,
    /// Examples seen.
    pub seen: u64,
}

/// What a checkpoint holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// The run's config as TOML (bincode cannot carry its tagged enums; TOML is readable anyway).
    pub config_toml: String,
    /// The data set the run trains on, when known (`mnist`, `fashion-mnist`).
    pub dataset: Option<String>,
    /// Every parameter, then every buffer (batch norm's running statistics).
    pub params: Vec<NamedTensor>,
    /// Momentum buffers and step count.
    pub optimizer: OptimizerState,
    /// Epochs finished.
    pub epochs_done: u64,
    /// Progress through the next epoch.
    pub partial: PartialEpoch,
    /// Figures of every finished epoch.
    pub history: Vec<EpochRecord>,
}

/// A loaded checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The parsed config.
    pub config: TrainConfig,
    /// The raw contents.
    pub body: Body,
}

impl Checkpoint {
    /// Captures a network, its optimizer state and the run's progress.
    pub fn capture(
        config: &TrainConfig,
        dataset: Option<String>,
        net: &Network,
        optimizer: &OptimizerState,
        epochs_done: u64,
        partial: PartialEpoch,
        history: Vec<EpochRecord>,
    ) -> Self {
        // The parameters, then the buffers (running statistics), in network order.
        let params = net
            .state_values()
            .into_iter()
            .map(|(name, value)| NamedTensor {
                name: name.to_string(),
                shape: value.shape().iter().map(|&d| d as u64).collect(),
                data: value.iter().copied().collect(),
            })
            .collect();
        Checkpoint {
            config: config.clone(),
            body: Body {
                config_toml: config.to_toml(),
                dataset,
                params,
                optimizer: optimizer.clone(),
                epochs_done,
                partial,
                history,
            },
        }
    }

    /// The parameters and buffers as tensors, by name.
    pub fn tensors(&self) -> Result<BTreeMap<String, Tensor>> {
        self.body
            .params
            .iter()
            .map(|t| {
                let shape: Vec<usize> = t
                    .shape
                    .iter()
                    .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
                    .collect();
                let fits =
                    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) == Some(t.data.len());
                if !fits {
                    bail!(
                        "tensor `{}`: shape {:?} does not hold {} values",
                        t.name,
                        t.shape,
                        t.data.len()
                    );
                }
                Tensor::from_shape_vec(shape, t.data.clone())
                    .map(|v| (t.name.clone(), v))
                    .map_err(|_| {
                        anyhow!(
                            "tensor `{}`: shape {:?} does not hold {} values",
                            t.name,
                            t.shape,
                            t.data.len()
                        )
                    })
            })
            .collect()
    }

    /// The network with the checkpoint's weights.
    pub fn network(&self) -> Result<Network> {
        let mut net = self.config.build_network()?;
        net.load_state_dict(&self.tensors()?)
            .map_err(|e| anyhow!("the stored weights do not fit the stored config: {e}"))?;
        Ok(net)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = bincode::serde::encode_to_vec(&self.body, bincode::config::standard())
            .expect("a checkpoint always encodes");
        let mut out = Vec::with_capacity(HEADER + body.len() + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&Sha256::digest(&body));
        out
    }

    /// Parses and checks a checkpoint's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let p = path.display();
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            bail!(
                "{p}: not a checkpoint of this program (the file does not start with {:?})",
                String::from_utf8_lossy(MAGIC)
            );
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            bail!("{p}: checkpoint format version {version}; this program reads version {FORMAT_VERSION}");
        }
        let length = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let available = (bytes.len() - HEADER) as u64;
        if length > MAX_BODY || length.checked_add(32) != Some(available) {
            bail!("{p}: truncated or padded checkpoint: header declares a body of {length} bytes plus a 32-byte checksum, the file holds {available} bytes after the header");
        }
        let body = &bytes[HEADER..HEADER + length as usize];
        let stored = &bytes[HEADER + length as usize..];
        let actual = Sha256::digest(body);
        if stored != actual.as_slice() {
            bail!(
                "{p}: checksum mismatch (file corrupt): stored {}, computed {}",
                hex(stored),
                hex(&actual)
            );
        }
        check_stored_config_length(body, path)?;
        let (body, used): (Body, usize) = bincode::serde::decode_from_slice(
            body,
            bincode::config::standard().with_limit::<{ 1 << 30 }>(),
        )
        .map_err(|e| anyhow!("{p}: checkpoint body does not decode: {e}"))?;
        if used != length as usize {
            bail!(
                "{p}: checkpoint body has {} trailing bytes",
                length as usize - used
            );
        }
        let source = format!("stored in {p}");
        let config = TrainConfig::parse(&body.config_toml, &source)?;
        check_weights(
            &config,
            body.params.iter().map(|t| (t.name.as_str(), &t.data[..])),
            path,
        )?;
        config.check().with_context(|| format!("config {source}"))?;
        Ok(Checkpoint { config, body })
    }

    /// Reads and checks a checkpoint file.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read checkpoint", path.display()))?;
        if meta.is_dir() {
            let ckpts: Vec<String> = ["best.ckpt", "last.ckpt"]
                .iter()
                .map(|f| path.join(f))
                .filter(|f| f.exists())
                .map(|f| f.display().to_string())
                .collect();
            bail!(
                "{}: a directory; expected a checkpoint file{}",
                path.display(),
                if ckpts.is_empty() {
                    " (a run directory's best.ckpt or last.ckpt)".to_string()
                } else {
                    format!(", e.g. {}", ckpts.join(" or "))
                }
            );
        }
        let bytes = crate::files::read_limited(path, MAX_BODY + 64, "a checkpoint")?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename, directory fsync).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes())
    }
}

/// Checks weights read from a file (`path`, named in errors) before the
/// network of `config` is built for them: every value finite, and a network
/// larger than [`DEFAULT_MAX_PARAMS`] only with as many weights in the file.
/// The second check comes before anything is allocated for the network, so
/// a config forged to describe a huge network is refused instead of built:
/// the file's size bounds what it holds. (Which tensor is missing or of the
/// wrong shape is told when the weights are loaded into the network.)
pub(crate) fn check_weights<'a>(
    config: &TrainConfig,
    tensors: impl IntoIterator<Item = (&'a str, &'a [f32])>,
    path: &Path,
) -> Result<()> {
    let p = path.display();
    let mut stored = 0usize;
    for (name, values) in tensors {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{p}: tensor `{name}` holds {} at index {i}; weights must be finite numbers",
                values[i]
            );
        }
        stored += values.len();
    }
    check_param_budget(config, stored, path)
}

/// Refuses to build the network of `config` for a file of `stored` values
/// when the network is larger than [`DEFAULT_MAX_PARAMS`] and than the file.
pub(crate) fn check_param_budget(config: &TrainConfig, stored: usize, path: &Path) -> Result<()> {
    let p = path.display();
    let wanted = config
        .network
        .param_count()
        .map_err(|e| anyhow!("{p}: stored config: network: {e}"))?;
    if wanted > stored.max(DEFAULT_MAX_PARAMS) {
        bail!(
            "{p}: holds {stored} weights, but the network of config `{}` has {wanted} parameters",
            config.name
        );
    }
    Ok(())
}

/// The body starts with the config's TOML, a string whose length bincode
/// writes first (a varint: one byte below 251, else 251/252/253 then a
/// u16/u32/u64). A length over [`crate::files::MAX_CONFIG_BYTES`] is refused
/// before anything is decoded, as a config file of that size would be.
fn check_stored_config_length(body: &[u8], path: &Path) -> Result<()> {
    let int = |n: usize| -> Option<u64> {
        let b = body.get(1..1 + n)?;
        Some(
            b.iter()
                .rev()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
        )
    };
    let length = match body.first() {
        Some(&b) if b < 251 => Some(u64::from(b)),
        Some(251) => int(2),
        Some(252) => int(4),
        Some(253) => int(8),
        _ => None,
    };
    let limit = crate::files::MAX_CONFIG_BYTES;
    match length {
        Some(n) if n <= limit => Ok(()),
        Some(n) => bail!(
            "{}: the stored config is {n} bytes, more than the {} accepted for a config",
            path.display(),
            crate::files::human_bytes(limit)
        ),
        None => bail!(
            "{}: checkpoint body does not decode: no config length",
            path.display()
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
