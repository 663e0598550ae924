//! `cnn predict`: classify PNG files with a checkpoint.
//!
//! Each image becomes what the network saw in training, as far as can be
//! told from a file:
//! 1. decoded to 8-bit grey ([`crate::image_io::decode_png_grey`]: any PNG
//!    colour type and bit depth; transparency over white);
//! 2. inverted when its border is mostly bright (more than half of the
//!    outermost pixels above mid-grey): MNIST digits are white on black, a
//!    photo or scan of a digit is usually dark on white paper;
//! 3. made as MNIST's digits were made (unless turned off, `--no-preprocess`):
//!    cropped to the digit's bounding box (the pixels brighter than a quarter
//!    of the way from the darkest to the brightest), padded to a square with
//!    black and resized by area averaging into a 20x20 box (the aspect ratio
//!    kept; 20/28 of the input side for other square inputs), then pasted on
//!    a black 28x28 canvas so that its centre of mass lies at the centre. A
//!    small digit in the corner of a large drawing then looks like the
//!    training digits;
//! 4. otherwise, when not already the network's input size: padded to a
//!    square with black (keeping the aspect ratio), then resized by area
//!    averaging;
//! 5. scaled as the checkpoint's config scales training pixels.
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

/// An image made ready for the network, and what was done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// Grey image of the network's input size, white digit on black.
    pub image: GreyImage,
    /// The steps taken, in words.
    pub(crate) notes: Vec<String>,
    /// Whether the digit was centred as MNIST's were (the last note says how).
    pub(crate) centred: bool,
}

/// The side of the box a digit is fitted into on a `side` x `side` input:
/// 20 for MNIST's 28, the same proportion for other sizes.
pub(crate) fn digit_box(side: usize) -> usize {
    ((side * 20 + 14) / 28).max(1)
}

/// Inverts a mostly-bright-bordered image, then either centres the digit as
/// MNIST's were (`mnist_style`, square inputs only) or pads it to a square,
/// and resizes it to `width` x `height` (see the module docs).
pub fn prepare(mut img: GreyImage, width: usize, height: usize, mnist_style: bool) -> Prepared {
    let mut notes = Vec::new();
    let bright = img.bright_border_fraction();
    if bright > 0.5 {
        img.invert();
        notes.push(format!(
            "inverted: {:.0}% of the border is bright, so this looks like a dark digit on a light background; the network was trained on light digits on black",
            100.0 * bright
        ));
    }
    if mnist_style && width == height {
        let lo = img.pixels.iter().copied().min().unwrap_or(0);
        let hi = img.pixels.iter().copied().max().unwrap_or(0);
        match img.bounding_box(lo + (hi - lo) / 4).filter(|_| hi > lo) {
            Some(bbox) => {
                let (x0, y0, x1, y1) = bbox;
                let side = digit_box(width);
                let digit = img.crop(bbox).pad_to_square(0).resize_area(side, side);
                let half = side as f64 / 2.0;
                let (cx, cy) = digit.centre_of_mass().unwrap_or((half, half));
                let at = |centre: usize, c: f64| (centre as f64 / 2.0 - c).round() as i64;
                notes.push(format!(
                    "centred as MNIST's digits are: cropped to the digit ({}x{} at column {x0}, row {y0} of {}x{}), fitted into {side}x{side} keeping the aspect ratio, placed by its centre of mass in {width}x{height}",
                    x1 - x0,
                    y1 - y0,
                    img.width,
                    img.height
                ));
                return Prepared {
                    image: digit.paste_on_black(width, height, at(width, cx), at(height, cy)),
                    notes,
                    centred: true,
                };
            }
            None => notes.push(
                "no digit found to centre (every pixel has the same value): only resized".into(),
            ),
        }
    }
    if (img.width, img.height) != (width, height) {
        let (w0, h0) = (img.width, img.height);
        if img.width != img.height && width == height {
            img = img.pad_to_square(0);
            notes.push(format!(
                "padded from {w0}x{h0} to {s}x{s} with black to keep the aspect ratio",
                s = img.width
            ));
        }
        let (w1, h1) = (img.width, img.height);
        img = img.resize_area(width, height);
        notes.push(format!(
            "resized from {w1}x{h1} to {width}x{height} by area averaging"
        ));
    }
    Prepared {
        image: img,
        notes,
        centred: false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_inverts_pads_and_resizes() {
        // A dark bar on white paper, 40 wide and 20 high.
        let mut img = GreyImage::filled(40, 20, 255);
        for y in 5..15 {
            for x in 10..30 {
                img.pixels[y * 40 + x] = 0;
            }
        }
        let p = prepare(img, 28, 28, false);
        assert_eq!((p.image.width, p.image.height), (28, 28));
        assert_eq!(p.notes.len(), 3, "{:?}", p.notes);
        assert!(p.notes[0].starts_with("inverted"));
        assert!(p.notes[1].contains("40x20 to 40x40"));
        assert!(p.notes[2].contains("resized from 40x40 to 28x28"));
        // The bar is now bright in the middle, the padding black.
        assert_eq!(p.image.get(14, 14), 255);
        assert_eq!(p.image.get(14, 0), 0);
        let same = prepare(GreyImage::filled(28, 28, 0), 28, 28, false);
        assert!(same.notes.is_empty());
        let flat = prepare(GreyImage::filled(28, 28, 0), 28, 28, true);
        assert_eq!(flat.image, GreyImage::filled(28, 28, 0));
        assert!(
            flat.notes[0].starts_with("no digit found"),
            "{:?}",
            flat.notes
        );
    }

    /// An L, 12 wide and 30 high, drawn dark at the bottom right of a white
    /// 200x150 canvas: it comes out 8x20 (aspect kept) with its centre of mass
    /// within half a pixel of the centre of the 28x28 input.
    #[test]
    fn mnist_style_crops_fits_in_20x20_and_centres_by_mass() {
        let mut img = GreyImage::filled(200, 150, 255);
        for y in 110..140 {
            for x in 170..182 {
                if x < 174 || y >= 136 {
                    img.pixels[y * 200 + x] = 0;
                }
            }
        }
        let p = prepare(img, 28, 28, true);
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        assert!(p.notes[0].starts_with("inverted"));
        assert!(
            p.notes[1].contains(
                "cropped to the digit (12x30 at column 170, row 110 of 200x150), fitted into 20x20"
            ),
            "{:?}",
            p.notes
        );
        let (x0, y0, x1, y1) = p.image.bounding_box(0).unwrap();
        assert_eq!((x1 - x0, y1 - y0), (8, 20));
        let (cx, cy) = p.image.centre_of_mass().unwrap();
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{cx} {cy}"
        );
        // The bar of the L is on the left, its foot at the bottom.
        assert_eq!(p.image.get(x0, y0), 255);
        assert_eq!(p.image.get(x1 - 1, y1 - 1), 255);
        assert_eq!(p.image.get(x1 - 1, y0), 0);
    }
}
