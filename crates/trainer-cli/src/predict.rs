//! `cnn predict`: classify PNG files with a checkpoint.
//!
//! Each image becomes what the network saw in training, as far as can be
//! told from a file:
//! 1. decoded to 8-bit grey ([`crate::image_io::decode_png_grey`]: any PNG
//!    colour type and bit depth; transparency over white);
//! 2. made ready by [`trainer::prepare::prepare`]: inverted when its border
//!    is mostly bright, then centred as MNIST's digits were (cropped to the
//!    digit, fitted into 20x20, placed by its centre of mass in 28x28;
//!    unless turned off, `--no-preprocess`) or else padded to a square and
//!    resized to the network's input size;
//! 3. scaled as the checkpoint's config scales training pixels.
//!
//! Every step taken besides decoding is reported as a note.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use mnist_io::Normalize;
use serde::Serialize;
use tensor::Tensor;

use crate::image_io::{read_png_grey, GreyImage};
use trainer::checkpoint::Checkpoint;
use trainer::prepare::prepare;

pub use trainer::data::input_norm;

/// The class names of a checkpoint: its image folder's, or its data set's
/// when it names a known one, else `0`..`9`.
pub(crate) fn checkpoint_class_names(ckpt: &Checkpoint, classes: usize) -> Vec<String> {
    if let Some(names) = &ckpt.config.training.class_names {
        return (0..classes)
            .map(|c| names.get(c).cloned().unwrap_or_else(|| c.to_string()))
            .collect();
    }
    let known = ckpt
        .body
        .dataset
        .as_deref()
        .and_then(mnist_io::spec_by_name);
    (0..classes)
        .map(|c| match known {
            Some(spec) if c < spec.class_names.len() => spec.class_names[c].to_string(),
            _ => c.to_string(),
        })
        .collect()
}

/// One image's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The file.
    #[serde(serialize_with = "lossy_path")]
    pub(crate) file: PathBuf,
    /// Index of the most probable class.
    pub class: usize,
    /// Its name.
    pub(crate) class_name: String,
    /// One probability per class (they sum to 1 for softmax cross-entropy).
    pub probabilities: Vec<f32>,
    /// What was done to the image besides decoding it (resized, inverted, ...).
    pub notes: Vec<String>,
}

/// A network ready to classify images.
pub struct Predictor {
    net: Network,
    loss: layers::Loss,
    norm: Option<Normalize>,
    class_names: Vec<String>,
    width: usize,
    height: usize,
    mnist_style: bool,
}

impl Predictor {
    /// Loads a checkpoint. `data` is needed only when its config standardises inputs.
    pub fn load(model: &Path, data: Option<&Path>) -> Result<Self> {
        let ckpt = Checkpoint::load(model)?;
        let net = ckpt
            .network()
            .with_context(|| format!("{}", model.display()))?;
        let norm = input_norm(&ckpt.config, data)?;
        Self::new(net, &ckpt, norm)
    }

    /// A predictor from a network and the checkpoint it came from.
    pub(crate) fn new(net: Network, ckpt: &Checkpoint, norm: Option<Normalize>) -> Result<Self> {
        let [c, h, w] = trainer::config::image_input(net.config())?;
        if c != 1 {
            bail!("the network takes {c}-channel images; `cnn predict` makes 1-channel grey inputs only");
        }
        let class_names = checkpoint_class_names(ckpt, net.outputs());
        Ok(Predictor {
            loss: ckpt.config.network.loss,
            net,
            norm,
            class_names,
            width: w,
            height: h,
            mnist_style: true,
        })
    }

    /// Whether images are centred as MNIST's digits were (on by default; see [`prepare`]).
    pub fn mnist_style(mut self, on: bool) -> Self {
        self.mnist_style = on;
        self
    }

    /// The network's input size, width x height.
    pub(crate) fn input_size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// The class names, in class order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The network, to look at the output of any layer ([`Network::forward_to`]).
    pub(crate) fn network(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Class probabilities of an image already of the input size (white on black).
    pub fn probabilities(&mut self, img: &GreyImage) -> Result<Vec<f32>> {
        let input = self.input_tensor(img)?;
        let out = self.net.forward(&input).map_err(|e| anyhow!("{e}"))?;
        let row = out
            .as_slice()
            .ok_or_else(|| anyhow!("network output is not contiguous"))?;
        Ok(self.loss.probabilities(row))
    }

    /// The network's input for an image already of the input size (white on
    /// black): a batch of one, pixels scaled as in training.
    pub(crate) fn input_tensor(&self, img: &GreyImage) -> Result<Tensor> {
        if (img.width, img.height) != (self.width, self.height) {
            bail!(
                "image is {}x{}, the network takes {}x{}",
                img.width,
                img.height,
                self.width,
                self.height
            );
        }
        let values: Vec<f32> = img
            .pixels
            .iter()
            .map(|&v| {
                let x = f32::from(v) / 255.0;
                match self.norm {
                    Some(mnist_io::Normalize { mean, std }) => (x - mean) / std,
                    None => x,
                }
            })
            .collect();
        Tensor::from_shape_vec(vec![1, 1, self.height, self.width], values)
            .map_err(|e| anyhow!("input tensor: {e}"))
    }

    /// Reads, prepares and classifies one PNG file.
    pub fn predict_file(&mut self, path: &Path) -> Result<Prediction> {
        let decoded = read_png_grey(path)?;
        // A picture of one grey level holds no digit: any class would be a guess.
        let pixels = &decoded.image.pixels;
        if let Some(&v) = pixels.first().filter(|&&v| pixels.iter().all(|&p| p == v)) {
            bail!(
                "{}: every pixel has the grey level {v}: there is no digit to classify",
                path.display()
            );
        }
        let mut notes = Vec::new();
        if decoded.had_alpha {
            notes.push(format!(
                "{}: transparency composited over white",
                decoded.source_format
            ));
        }
        let mut prepared = prepare(decoded.image, self.width, self.height, self.mnist_style);
        if let (true, Some(note)) = (prepared.centred, prepared.notes.last_mut()) {
            note.push_str(" (--no-preprocess turns this off)");
        }
        notes.extend(prepared.notes);
        let probabilities = self
            .probabilities(&prepared.image)
            .with_context(|| format!("{}: classifying", path.display()))?;
        let class = tensor::argmax(&probabilities);
        Ok(Prediction {
            file: path.to_path_buf(),
            class,
            class_name: self
                .class_names
                .get(class)
                .cloned()
                .unwrap_or_else(|| class.to_string()),
            probabilities,
            notes,
        })
    }
}

impl Prediction {
    /// A readable block: file, class, notes, and a table of the probabilities.
    pub(crate) fn text(&self, class_names: &[String]) -> String {
        let mut s = format!(
            "{}: {} ({:.1}%)\n",
            self.file.display(),
            self.class_name,
            100.0 * self.probabilities.get(self.class).copied().unwrap_or(0.0)
        );
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        let name = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let width = (0..self.probabilities.len())
            .map(|c| name(c).chars().count())
            .max()
            .unwrap_or(1);
        for (c, p) in self.probabilities.iter().enumerate() {
            let bar = "#".repeat((p.clamp(0.0, 1.0) * 40.0).round() as usize);
            s.push_str(&format!(
                "  {}{:>width$} {:>6.2}% {bar}\n",
                if c == self.class { '>' } else { ' ' },
                name(c),
                100.0 * p
            ));
        }
        s
    }
}

/// A path as JSON text: bytes that are not UTF-8 become U+FFFD, as
/// `Path::display` shows them, instead of failing the whole document.
fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// What `cnn predict` prints for one file in `--json` mode: a prediction or the error.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum JsonResult {
    /// The file was classified.
    Ok(Prediction),
    /// It could not be read or classified.
    Err {
        /// The file.
        #[serde(serialize_with = "lossy_path")]
        file: PathBuf,
        /// Why.
        error: String,
    },
}

/// Classifies every file, printing a block (or, with `json`, one JSON document
/// listing every file) to standard output. A file that cannot be read is
/// reported and skipped; the error returned at the end counts them.
/// With `mnist_style`, images are centred as MNIST's digits were (see [`prepare`]).
pub(crate) fn run(
    model: &Path,
    data: Option<&Path>,
    images: &[PathBuf],
    json: bool,
    mnist_style: bool,
) -> Result<()> {
    let predictor = Predictor::load(model, data)?.mnist_style(mnist_style);
    classify_files(predictor, model, images, json)
}

/// [`run`]'s loop, for a predictor however it was loaded (`model` names it in the output).
pub(crate) fn classify_files(
    mut predictor: Predictor,
    model: &Path,
    images: &[PathBuf],
    json: bool,
) -> Result<()> {
    let mut failed = 0;
    let mut results = Vec::new();
    for (i, path) in images.iter().enumerate() {
        match predictor.predict_file(path) {
            Ok(p) => {
                if json {
                    results.push(JsonResult::Ok(p));
                } else {
                    if i > 0 {
                        println!();
                    }
                    print!("{}", p.text(predictor.class_names()));
                }
            }
            Err(e) => {
                failed += 1;
                if json {
                    results.push(JsonResult::Err {
                        file: path.clone(),
                        error: format!("{e:#}"),
                    });
                } else {
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
    if json {
        let doc = serde_json::json!({
            "model": model.to_string_lossy(),
            "classes": predictor.class_names(),
            "results": results,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("formatting JSON")?
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be classified",
            images.len()
        );
    }
    Ok(())
}

/// `cnn predict` for any model file: a checkpoint alone goes through
/// `run`; a `.safetensors` file (or a checkpoint with a
/// `--config` to check it against) is loaded by [`trainer::safetensors_io::load_checkpoint`] and
/// classified the same way, with the same output.
pub fn run_any_model(
    model: &Path,
    config: Option<&str>,
    data: Option<&Path>,
    images: &[PathBuf],
    json: bool,
    mnist_style: bool,
) -> Result<()> {
    if config.is_none() && !trainer::safetensors_io::is_safetensors(model) {
        return run(model, data, images, json, mnist_style);
    }
    let ckpt = trainer::safetensors_io::load_checkpoint(model, config)?;
    let net = ckpt
        .network()
        .with_context(|| format!("{}", model.display()))?;
    let norm = input_norm(&ckpt.config, data)?;
    let predictor = Predictor::new(net, &ckpt, norm)?.mnist_style(mnist_style);
    classify_files(predictor, model, images, json)
}
