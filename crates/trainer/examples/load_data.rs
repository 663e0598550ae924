//! Loads a data set folder (IDX files or an image folder) as `cnn train`
//! does, and prints how long it took and what it holds:
//!
//!     cargo run --release -p trainer --example load_data -- data/mnist
//!     cargo run --release -p trainer --example load_data -- data/mnist-png

use std::time::Instant;

use anyhow::{Context, Result};
use trainer::data::DataSets;

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .context("usage: load_data DIR (IDX files, or DIR/train/<class>/*.png and DIR/test/...)")?;
    let started = Instant::now();
    let sets = DataSets::load(&dir)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{dir}: {} training and {} test images of {}x{}, {} classes, loaded in {seconds:.2} s on {} threads",
        sets.train.len(),
        sets.test.len(),
        sets.train.cols(),
        sets.train.rows(),
        sets.train.classes(),
        rayon::current_num_threads()
    );
    Ok(())
}
