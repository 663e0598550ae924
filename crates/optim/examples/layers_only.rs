//! A small convolutional network trained with `layers` and `optim` alone: no
//! trainer, no data files. Each 8x8 image holds one noisy bar, horizontal,
//! vertical or diagonal, and the network learns which.
//!
//!     cargo run -p optim --example layers_only

use layers::{Conv2dConfig, LayerError, Loss, Network, NetworkConfig};
use optim::{Optimizer, OptimizerConfig};
use tensor::{Rng, Tensor};

/// `n` images 1x8x8 with Gaussian noise, each with a bar of its class at a
/// random place: 0 horizontal, 1 vertical, 2 diagonal.
fn bars(n: usize, rng: &mut Rng) -> (Tensor, Vec<usize>) {
    let labels: Vec<usize> = (0..n).map(|_| rng.below(3) as usize).collect();
    let places: Vec<usize> = (0..n).map(|_| rng.below(8) as usize).collect();
    let images = Tensor::from_shape_fn(vec![n, 1, 8, 8], |i| {
        let (label, place, y, x) = (labels[i[0]], places[i[0]], i[2], i[3]);
        let on = [y, x, (x + 8 - y) % 8][label] == place;
        f32::from(u8::from(on)) + 0.3 * rng.normal() as f32
    });
    (images, labels)
}

/// The share of `images` whose largest output is their label.
fn accuracy(net: &mut Network, images: &Tensor, labels: &[usize]) -> Result<f64, LayerError> {
    Ok(layers::accuracy(net.forward(images)?, labels))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::seed_from_u64(7);
    let (train_x, train_y) = bars(300, &mut rng);
    let (test_x, test_y) = bars(300, &mut rng);

    let config = NetworkConfig::new([1, 8, 8])
        .conv2d(Conv2dConfig::new(1, 4, 3).pad(1))
        .relu()
        .max_pool2d(2)
        .flatten()
        .linear(3); // 3 classes; its 4 x 4 x 4 inputs are counted when the network is built
    let mut net = config.build(&mut rng)?;
    let loss_fn = Loss::SoftmaxCrossEntropy;
    let mut sgd = Optimizer::new(OptimizerConfig::sgd(0.05, 0.9, 0.0));

    let before = accuracy(&mut net, &test_x, &test_y)?;
    println!("test accuracy before training: {:.1}%", 100.0 * before);
    for step in 0..=100 {
        // One step on the whole training set: forward, loss against the labels, backward, update.
        let logits = net.forward_train(&train_x)?;
        let (loss, grad) = loss_fn.with_labels(logits, &train_y)?;
        net.backward(&grad)?;
        sgd.step(net.params_mut());
        if step % 25 == 0 {
            println!("step {step:3}: training loss {loss:.4}");
        }
    }
    let after = accuracy(&mut net, &test_x, &test_y)?;
    println!("test accuracy after training: {:.1}%", 100.0 * after);
    assert!(after > 0.9 && after > before + 0.3, "{before} -> {after}");
    Ok(())
}
