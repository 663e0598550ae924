//! PNG reading and writing and grey-image operations, from the trainer
//! library ([`trainer::image`]), where image-folder data sets use them too.

pub use trainer::image::*;
