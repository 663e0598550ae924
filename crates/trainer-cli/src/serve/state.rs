//! What `cnn serve`'s workers share, read-only: the checkpoint, the test
//! set, and the `GET /api/model` document, made once at start.

use std::path::Path;

use anyhow::{bail, Context, Result};
use mnist_io::{Dataset, Split};
use serde_json::json;
use trainer::checkpoint::Checkpoint;

use super::train_routes::TrainFiles;
use crate::predict::Predictor;
use crate::report::{evaluate_with_mistakes, png_uri};
use crate::visualize::filters_figure;

/// What the workers share, read-only.
pub(crate) struct Shared {
    /// The model; each worker builds its own network from it.
    pub(crate) ckpt: Checkpoint,
    /// Its input standardisation.
    pub(crate) norm: Option<mnist_io::Normalize>,
    /// The test set, with `--data`.
    pub(crate) test: Option<Dataset>,
    /// The `GET /api/model` document.
    pub(crate) model: String,
    /// What the training page reads.
    pub(crate) train: TrainFiles,
}

impl Shared {
    /// Loads the model (a checkpoint, or a `.safetensors` file with its
    /// `config`) and, from `data`, the test set; evaluates the model on it.
    pub(crate) fn load(
        model: &Path,
        config: Option<&str>,
        data: Option<&Path>,
        web: &Path,
    ) -> Result<Self> {
        let ckpt = trainer::safetensors_io::load_checkpoint(model, config)?;
        let norm = crate::predict::input_norm(&ckpt.config, data)?;
        let mut predictor = Predictor::new(ckpt.network()?, &ckpt, norm)?;
        let test = match data {
            Some(dir) => Some(test_set(dir, predictor.input_size())?),
            None => None,
        };
        let document = model_document(model, &ckpt, &mut predictor, test.as_ref(), norm)?;
        Ok(Shared {
            ckpt,
            norm,
            test,
            model: document,
            train: TrainFiles {
                web: web.to_path_buf(),
                data: data.map(Path::to_path_buf),
            },
        })
    }
}

/// The test set in `dir`, refused when its images are not the network's input size.
fn test_set(dir: &Path, (width, height): (usize, usize)) -> Result<Dataset> {
    let ds = Dataset::load(dir, Split::Test)
        .with_context(|| format!("loading the test set from {}", dir.display()))?;
    if (ds.cols(), ds.rows()) != (width, height) {
        bail!(
            "{}: the test images are {}x{}, the network takes {width}x{height}",
            dir.display(),
            ds.cols(),
            ds.rows()
        );
    }
    if ds.is_empty() {
        bail!(
            "{}: the test set holds no image; `cnn serve --data` needs at least one to evaluate and draw from",
            dir.display()
        );
    }
    Ok(ds)
}

/// The `GET /api/model` document (see the `serve` module docs).
fn model_document(
    model: &Path,
    ckpt: &Checkpoint,
    predictor: &mut Predictor,
    test: Option<&Dataset>,
    norm: Option<mnist_io::Normalize>,
) -> Result<String> {
    let (accuracy, mistakes) = match test {
        Some(ds) => {
            let (e, m) = evaluate_with_mistakes(predictor.network(), ds, 100, norm)?;
            tracing::info!(
                "test set: {} images, accuracy {:.2}%, {} mistakes",
                ds.len(),
                100.0 * e.accuracy,
                m.len()
            );
            (Some(e.accuracy), m.iter().map(|m| m.index).collect())
        }
        None => (None, Vec::new()),
    };
    let kernels = filters_figure(predictor.network(), 16, 2, None).ok();
    let (width, height) = predictor.input_size();
    Ok(json!({
        "model": model.file_name().map(|n| n.to_string_lossy()),
        "config": ckpt.config.name,
        "classes": predictor.class_names(),
        "input": [width, height],
        "kernels": kernels.as_ref().map(|f| png_uri(&f.png)),
        "kernels_caption": kernels.as_ref().map(|f| &f.description),
        "test_images": test.map_or(0, |t| t.len()),
        "test_accuracy": accuracy,
        "mistakes": mistakes,
    })
    .to_string())
}
