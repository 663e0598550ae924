//! The seed network trained in a browser: this project's `tensor`, `im2col`,
//! `layers`, `optim`, `mnist-io` and `trainer` crates compiled to
//! `wasm32-unknown-unknown`, for the `/train` page of `cnn serve`.
//!
//! The page's Web Worker loads the `.wasm` with a few lines of JavaScript
//! and calls the plain `extern "C"` functions of [`exports`]: numbers in and
//! out, and bytes through buffers in the module's memory. There is no
//! wasm-bindgen and no JavaScript import: the module needs nothing from
//! its host. Built by `cargo xtask web`.
//!
//! | module | what |
//! |---|---|
//! | [`session`] | one training session: data, network, optimizer, its place in the epoch |
//! | [`exports`] | the functions the worker calls, around one session |
#![deny(missing_docs)]

pub mod exports;
pub mod session;
