//! One training session in the browser: the data sets, the network of a
//! built-in config, its optimizer and the place in the epoch. The step is
//! the library's [`trainer::step::step`], batch by batch as `cnn train`
//! takes them; the test figures are [`trainer::eval::evaluate`]'s, as
//! `cnn eval` computes them.

use std::path::Path;

use anyhow::{bail, Context, Result};
use layers::Network;
use mnist_io::{Dataset, Normalize};
use optim::Optimizer;
use trainer::batch::DatasetBatch;
use trainer::config::{InputScaling, TrainConfig};
use trainer::prepare::{drawing, prepare};
use trainer::step::{step_key, DROPOUT_STREAM};

/// A data set from the bytes of its IDX image and label files (each
/// gzipped or not), named in errors by the files' names.
pub fn data_set(images: (&str, Vec<u8>), labels: (&str, Vec<u8>)) -> Result<Dataset> {
    let (images_name, labels_name) = (Path::new(images.0), Path::new(labels.0));
    let ds = Dataset::from_idx_bytes(images_name, images.1, labels_name, labels.1)?;
    if (ds.rows(), ds.cols()) != (28, 28) {
        bail!(
            "{}: the images are {}x{}; the network takes 28x28 (MNIST's IDX files)",
            images.0,
            ds.cols(),
            ds.rows()
        );
    }
    if ds.is_empty() {
        bail!("{}: the file holds no image", images.0);
    }
    Ok(ds)
}

/// What a run of batches did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    /// Batches run.
    pub batches: usize,
    /// Images in them.
    pub images: usize,
    /// Their mean loss, weighted by their sizes.
    pub loss: f64,
    /// Images classified correctly (before each batch's update).
    pub correct: usize,
}

/// A network learning, one batch at a time.
pub struct Session {
    config: TrainConfig,
    train: Dataset,
    test: Dataset,
    normalize: Option<Normalize>,
    net: Network,
    optimizer: Optimizer,
    order: Vec<usize>,
    /// The epoch under way, from 0.
    epoch: u64,
    /// The next batch of the epoch.
    next: usize,
}

impl Session {
    /// The built-in config `config`'s network, fresh, to be trained on the
    /// first `limit` images of `train` (all of them when `limit` is 0 or
    /// larger), `batch` images a step (0: the config's batch).
    pub fn new(
        config: &str,
        train: Dataset,
        test: Dataset,
        limit: usize,
        batch: usize,
    ) -> Result<Self> {
        let mut config = TrainConfig::load(config)?;
        if batch > 0 {
            if batch > 1000 {
                bail!("batch {batch}: give 1 to 1000 images a step");
            }
            let t = &mut config.training;
            t.batch = batch;
            t.micro_batch = t.micro_batch.min(batch);
        }
        let train = match limit {
            0 => train,
            n if n >= train.len() => train,
            n => train.subset(&(0..n).collect::<Vec<_>>()),
        };
        let normalize = config.normalize(&train)?;
        let net = config.build_network()?;
        let optimizer = Optimizer::new(config.optimizer.clone());
        let order = mnist_io::epoch_order(train.len(), config.training.seed, 0);
        Ok(Session {
            config,
            train,
            test,
            normalize,
            net,
            optimizer,
            order,
            epoch: 0,
            next: 0,
        })
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.config.training.batch)
    }

    /// The epoch under way (from 0) and its next batch.
    pub fn place(&self) -> (u64, usize) {
        (self.epoch, self.next)
    }

    /// Training images per epoch.
    pub fn train_len(&self) -> usize {
        self.train.len()
    }

    /// The test set.
    pub fn test(&self) -> &Dataset {
        &self.test
    }

    /// Trains on up to `batches` batches, never past the end of the epoch.
    pub fn train(&mut self, batches: usize) -> Result<Progress> {
        let t = &self.config.training;
        let (size, seed) = (t.batch, t.seed);
        let mut done = Progress::default();
        while done.batches < batches && !self.epoch_done() {
            let start = self.next * size;
            let indices = &self.order[start..(start + size).min(self.order.len())];
            let batch = DatasetBatch {
                data: &self.train,
                indices,
                normalize: self.normalize,
                augment: None,
            };
            // Dropout's masks, drawn as `cnn train` draws them at this place.
            let key = step_key(seed, self.epoch, self.next as u64, DROPOUT_STREAM);
            let loss = self.config.loss_fn();
            let result = trainer::step::step(
                &mut self.net,
                &loss,
                &batch,
                t.micro_batch,
                key,
                &mut self.optimizer,
            )?;
            if let Some(name) = trainer::step::first_non_finite(&self.net) {
                bail!("{name} is no longer a finite number: the learning rate is too high");
            }
            let n = indices.len();
            done.loss += result.loss * n as f64;
            done.correct += result.correct;
            done.images += n;
            done.batches += 1;
            self.next += 1;
        }
        if done.images > 0 {
            done.loss /= done.images as f64;
        }
        Ok(done)
    }

    /// Whether every batch of the epoch under way has been trained on.
    pub fn epoch_done(&self) -> bool {
        self.next >= self.batches_per_epoch()
    }

    /// Starts the next epoch, in its own order.
    pub fn next_epoch(&mut self) {
        self.epoch += 1;
        self.next = 0;
        self.order = mnist_io::epoch_order(self.train.len(), self.config.training.seed, self.epoch);
    }

    /// Test loss and accuracy, as `cnn eval` computes them.
    pub fn evaluate(&self) -> Result<trainer::eval::Evaluation> {
        trainer::eval::evaluate(&self.net, &self.test, 100, self.normalize)
    }

    /// The learning rate of the next steps.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0 && lr <= 10.0) {
            bail!("learning rate {lr}: give a number above 0 and at most 10");
        }
        self.optimizer.set_lr(lr);
        Ok(())
    }

    /// SGD's momentum for the next steps, its velocity kept.
    pub fn set_momentum(&mut self, momentum: f32) -> Result<()> {
        if !(0.0..1.0).contains(&momentum) {
            bail!("momentum {momentum}: give a number from 0 up to (not including) 1");
        }
        if !self.optimizer.set_momentum(momentum) {
            bail!("the config's optimizer has no momentum to change");
        }
        Ok(())
    }

    /// The first layer's weights, with their shape (`[out, in, kh, kw]`).
    pub fn filters(&self) -> (Vec<f32>, Vec<usize>) {
        let first = self.net.params()[0];
        (
            first.value.iter().copied().collect(),
            first.value.shape().to_vec(),
        )
    }

    /// The layers whose outputs [`Session::maps`] shows: each convolution's
    /// maps as `cnn visualize` and `cnn serve` show them
    /// ([`Network::maps_of_conv`]).
    fn map_layers(&self) -> Vec<usize> {
        let layers = self.net.layers();
        (0..layers.len())
            .filter(|&i| layers[i].kind() == "conv2d")
            .map(|i| self.net.maps_of_conv(i))
            .collect()
    }

    /// The feature maps of the `which`-th convolution for test image
    /// `index`, with their shape `[channels, height, width]`.
    pub fn maps(&mut self, index: usize, which: usize) -> Result<(Vec<f32>, Vec<usize>)> {
        if index >= self.test.len() {
            bail!("no test image {index}: there are {}", self.test.len());
        }
        let Some(&layer) = self.map_layers().get(which) else {
            bail!("the network has no convolution number {which}");
        };
        let (input, _) = self.test.tensors(&[index], self.normalize);
        let out = self.net.forward_to(&input, layer)?;
        Ok((out.iter().copied().collect(), out.shape()[1..].to_vec()))
    }

    /// The class probabilities of a `width` x `height` drawing (grey
    /// pixels row by row, any size up to [`trainer::prepare::MAX_DRAWING_SIDE`] a side), as
    /// the network is now, in evaluation mode. The drawing is made ready as
    /// `cnn predict` and `cnn serve` make theirs ([`prepare`]), so that the
    /// page reads a digit as they do.
    pub fn probabilities(
        &mut self,
        pixels: Vec<u8>,
        width: usize,
        height: usize,
    ) -> Result<Vec<f32>> {
        let drawing = drawing(width, height, pixels).context("the drawing")?;
        let prepared = prepare(drawing, 28, 28, true);
        let image = Dataset::from_parts(prepared.image.pixels, vec![0], 28, 28)?;
        let (input, _) = image.tensors(&[0], self.normalize);
        let logits = self.net.forward(&input)?;
        let row = logits.as_slice().context("logits are contiguous")?;
        Ok(self.config.loss_fn().probabilities(row))
    }

    /// The weights as a `.safetensors` file that `cnn eval --model FILE`
    /// loads: the config travels in its metadata, as `cnn export` writes it.
    pub fn safetensors(&self) -> Result<Vec<u8>> {
        let mut config = self.config.clone();
        // Measured standardisation constants belong to the weights.
        if matches!(config.training.input_scaling, InputScaling::Standardized) {
            config.training.input_mean_std = self.normalize.map(|n| [n.mean, n.std]);
        }
        let dataset = self.train.spec().map(|spec| spec.name);
        trainer::safetensors_io::model_bytes(&self.net, &config, dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IDX files of `n` made-up 28x28 images, label `i % 10`.
    fn files(n: usize) -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..n * 784).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        (
            mnist_io::encode_images(&pixels, 28, 28).unwrap(),
            mnist_io::encode_labels(&labels).unwrap(),
        )
    }

    /// A data set of `n` made-up images.
    fn set(n: usize) -> Dataset {
        let (images, labels) = files(n);
        data_set(("images", images), ("labels", labels)).unwrap()
    }

    fn session(n: usize, limit: usize, batch: usize) -> Session {
        Session::new("seed", set(n), set(n), limit, batch).unwrap()
    }

    #[test]
    fn an_epoch_is_its_batches_and_then_stops() {
        let mut s = session(120, 100, 30);
        assert_eq!((s.train_len(), s.batches_per_epoch()), (100, 4));
        let p = s.train(3).unwrap();
        assert_eq!((p.batches, p.images, s.place()), (3, 90, (0, 3)));
        assert!(p.loss.is_finite() && p.correct <= 90);
        let p = s.train(10).unwrap();
        assert_eq!((p.batches, p.images), (1, 10), "the last batch only");
        assert!(s.epoch_done());
        assert_eq!(s.train(10).unwrap(), Progress::default());
        s.next_epoch();
        assert_eq!(s.place(), (1, 0));
        assert_eq!(s.evaluate().unwrap().count, 120);
    }

    #[test]
    fn the_downloaded_weights_are_the_network_cnn_eval_loads() {
        let mut s = session(100, 0, 0);
        s.train(1).unwrap();
        let bytes = s.safetensors().unwrap();
        let config = TrainConfig::load("seed").unwrap();
        let (net, tensors) =
            trainer::safetensors_io::network_from(&config, &bytes, Path::new("w.safetensors"))
                .unwrap();
        assert_eq!(tensors, 8);
        let theirs = trainer::eval::evaluate(&net, s.test(), 100, None).unwrap();
        let ours = s.evaluate().unwrap();
        assert_eq!((theirs.loss, theirs.accuracy), (ours.loss, ours.accuracy));
        let (filters, shape) = s.filters();
        assert_eq!((filters.len(), shape), (72, vec![8, 1, 3, 3]));
    }

    #[test]
    fn settings_are_checked_and_momentum_keeps_training() {
        let mut s = session(100, 0, 50);
        for lr in [0.0, -1.0, f32::NAN, f32::INFINITY, 11.0] {
            assert!(s.set_lr(lr).is_err(), "lr {lr}");
        }
        for m in [-0.1, 1.0, f32::NAN] {
            assert!(s.set_momentum(m).is_err(), "momentum {m}");
        }
        s.train(1).unwrap();
        s.set_lr(0.02).unwrap();
        s.set_momentum(0.5).unwrap();
        assert_eq!(s.train(1).unwrap().batches, 1);
        assert!(Session::new("seed", set(10), set(10), 0, 1001).is_err());
    }

    #[test]
    fn maps_and_drawings_are_checked() {
        let mut s = session(20, 0, 0);
        let (maps, shape) = s.maps(3, 1).unwrap();
        assert_eq!((maps.len(), shape), (16 * 14 * 14, vec![16, 14, 14]));
        assert!(s.maps(20, 0).is_err() && s.maps(0, 2).is_err());
        let p = s.probabilities(vec![0; 784], 28, 28).unwrap();
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        for (n, w, h) in [(783, 28, 28), (0, 0, 0), (513, 513, 1), (784, 784, 1)] {
            let err = format!("{:#}", s.probabilities(vec![0; n], w, h).unwrap_err());
            assert!(err.contains("the drawing"), "{n} pixels, {w}x{h}: {err}");
        }
    }

    /// A stroke in the corner of a 280x280 pad is read as `cnn predict` and
    /// `cnn serve` read it: prepared by the library, then classified.
    #[test]
    fn a_drawing_is_prepared_as_cnn_predict_prepares_it() {
        let mut s = session(20, 0, 0);
        let mut pad = vec![0u8; 280 * 280];
        for y in 10..90 {
            for x in 20..32 {
                pad[y * 280 + x] = 255;
            }
        }
        let theirs = {
            let image = trainer::image::GreyImage {
                width: 280,
                height: 280,
                pixels: pad.clone(),
            };
            let prepared = prepare(image, 28, 28, true);
            assert!(prepared.centred);
            let one = Dataset::from_parts(prepared.image.pixels, vec![0], 28, 28).unwrap();
            let (input, _) = one.tensors(&[0], s.normalize);
            let logits = s.net.forward(&input).unwrap();
            s.config.loss_fn().probabilities(logits.as_slice().unwrap())
        };
        assert_eq!(s.probabilities(pad, 280, 280).unwrap(), theirs);
    }

    /// Past a batch norm too: `modern`'s convolutions are shown after
    /// conv, batch_norm2d and relu, as `cnn visualize` shows them.
    #[test]
    fn maps_are_shown_after_a_batch_norm_and_its_relu() {
        let s = Session::new("modern", set(20), set(20), 0, 0).unwrap();
        assert_eq!(s.map_layers(), vec![2, 6]);
    }

    #[test]
    fn bad_files_say_which_file_and_what_is_wrong() {
        let (images, labels) = files(10);
        let err = |r: Result<Dataset>| match r {
            Ok(_) => panic!("bad files accepted"),
            Err(e) => format!("{e:#}"),
        };
        let e = err(data_set(
            ("a.png", b"\x89PNG".to_vec()),
            ("l", labels.clone()),
        ));
        assert!(e.contains("a.png"), "{e}");
        let e = err(data_set(
            ("i", images.clone()),
            ("t10k-labels", images.clone()),
        ));
        assert!(e.contains("t10k-labels"), "{e}");
        let small = mnist_io::encode_images(&[0; 4 * 36], 6, 6).unwrap();
        let e = err(data_set(
            ("i6", small),
            ("l", mnist_io::encode_labels(&[0; 4]).unwrap()),
        ));
        assert!(e.contains("28x28"), "{e}");
        let e = err(data_set(("gz", vec![0x1f, 0x8b, 8, 0, 0]), ("l", labels)));
        assert!(e.contains("gz"), "{e}");
    }
}
