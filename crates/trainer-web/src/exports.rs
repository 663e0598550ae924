//! The functions the page's worker calls (`train-worker.js`), around one
//! [`Session`] kept in the module.
//!
//! Only numbers cross the boundary. Bytes go in through the inbox (the
//! worker asks [`inbox`] for room, copies into the module's memory at the
//! address returned, then calls the function that takes them) and come out
//! through [`out_f32`], [`out_bytes`] and [`stats`], read at the addresses
//! those return. A function that fails returns -1 and leaves its message
//! at [`error_ptr`] ([`error_len`] bytes of UTF-8).
//!
//! | call | what |
//! |---|---|
//! | `set_file(slot)` | the inbox is IDX file `slot`: 0 train images, 1 train labels, 2 test images, 3 test labels (gzipped or not) |
//! | `start(limit, batch)` | parses the four files and builds the seed network, to train on the first `limit` images (0: all), `batch` a step (0: the config's 100) |
//! | `train(n)` | up to `n` batches, not past the epoch's end; stats: batches, images, loss, correct, epoch, next batch, batches per epoch |
//! | `next_epoch()` | starts the next epoch |
//! | `evaluate()` | the test accuracy (stats: loss, accuracy, count) |
//! | `set_lr(x)`, `set_momentum(x)` | for the next batches |
//! | `filters()`, `maps(i, k)` | first layer's weights; convolution `k`'s maps of test image `i` (out_f32; stats: shape) |
//! | `predict(width, height)` | the drawing in the inbox (`width * height` grey bytes, 0 background), prepared as `cnn predict` prepares a PNG and classified (out_f32: probabilities) |
//! | `weights()` | the `.safetensors` file of the network as it is (out_bytes) |

use std::cell::RefCell;

use anyhow::{anyhow, Result};

use crate::session::{data_set, Session};

/// Everything the module keeps between calls.
#[derive(Default)]
struct State {
    inbox: Vec<u8>,
    files: [Vec<u8>; 4],
    session: Option<Session>,
    out_f32: Vec<f32>,
    out_bytes: Vec<u8>,
    stats: [f64; 8],
    error: String,
}

thread_local! {
    // WebAssembly here has one thread: this is the module's one state.
    static STATE: RefCell<State> = RefCell::default();
}

/// Runs `f` on the state; an error becomes -1 and the message.
fn with_state(f: impl FnOnce(&mut State) -> Result<i32>) -> i32 {
    STATE.with_borrow_mut(|state| match f(state) {
        Ok(v) => v,
        Err(e) => {
            state.error = format!("{e:#}");
            -1
        }
    })
}

/// The session, or the error of calling too early.
fn session(state: &mut State) -> Result<&mut Session> {
    state
        .session
        .as_mut()
        .ok_or_else(|| anyhow!("no network yet: load the data first"))
}

/// Room for `len` bytes in the inbox; returns its address.
#[no_mangle]
pub extern "C" fn inbox(len: usize) -> *mut u8 {
    STATE.with_borrow_mut(|state| {
        state.inbox = vec![0; len];
        state.inbox.as_mut_ptr()
    })
}

/// The inbox becomes IDX file `slot` (see the module docs).
#[no_mangle]
pub extern "C" fn set_file(slot: u32) -> i32 {
    with_state(|state| {
        let file = state
            .files
            .get_mut(slot as usize)
            .ok_or_else(|| anyhow!("no file slot {slot}: they are 0 to 3"))?;
        *file = std::mem::take(&mut state.inbox);
        Ok(0)
    })
}

/// Parses the four files and builds the network (see the module docs).
#[no_mangle]
pub extern "C" fn start(limit: u32, batch: u32) -> i32 {
    with_state(|state| {
        // Errors name each file by its standard name, as the slots order them.
        let names = mnist_io::MNIST.files.map(|f| f.name);
        let [a, b, c, d] = std::mem::take(&mut state.files);
        let train = data_set((names[0], a), (names[1], b))?;
        let test = data_set((names[2], c), (names[3], d))?;
        let s = Session::new("seed", train, test, limit as usize, batch as usize)?;
        put_stats(state, &[s.train_len() as f64, s.batches_per_epoch() as f64]);
        state.session = Some(s);
        Ok(0)
    })
}

/// Trains on up to `batches` batches (see the module docs).
#[no_mangle]
pub extern "C" fn train(batches: u32) -> i32 {
    with_state(|state| {
        let s = session(state)?;
        let p = s.train(batches as usize)?;
        let (epoch, next) = s.place();
        let per_epoch = s.batches_per_epoch();
        put_stats(
            state,
            &[
                p.batches as f64,
                p.images as f64,
                p.loss,
                p.correct as f64,
                epoch as f64,
                next as f64,
                per_epoch as f64,
            ],
        );
        Ok(p.batches as i32)
    })
}

/// Starts the next epoch.
#[no_mangle]
pub extern "C" fn next_epoch() -> i32 {
    with_state(|state| {
        session(state)?.next_epoch();
        Ok(0)
    })
}

/// Evaluates on the test set; stats: loss, accuracy, count.
#[no_mangle]
pub extern "C" fn evaluate() -> i32 {
    with_state(|state| {
        let e = session(state)?.evaluate()?;
        put_stats(state, &[e.loss, e.accuracy, e.count as f64]);
        Ok(0)
    })
}

/// Sets the learning rate of the next batches.
#[no_mangle]
pub extern "C" fn set_lr(lr: f32) -> i32 {
    with_state(|state| session(state)?.set_lr(lr).map(|()| 0))
}

/// Sets the momentum of the next batches.
#[no_mangle]
pub extern "C" fn set_momentum(momentum: f32) -> i32 {
    with_state(|state| session(state)?.set_momentum(momentum).map(|()| 0))
}

/// Puts `values` first in stats, zeros after them.
fn put_stats(state: &mut State, values: &[f64]) {
    state.stats = [0.0; 8];
    state.stats[..values.len()].copy_from_slice(values);
}

/// Puts `values` in out_f32 and `shape` in stats; returns the count.
fn put_f32(state: &mut State, (values, shape): (Vec<f32>, Vec<usize>)) -> Result<i32> {
    let shape: Vec<f64> = shape.iter().map(|&d| d as f64).collect();
    put_stats(state, &shape);
    state.out_f32 = values;
    Ok(state.out_f32.len() as i32)
}

/// The first layer's weights (out_f32; stats: their shape).
#[no_mangle]
pub extern "C" fn filters() -> i32 {
    with_state(|state| {
        let f = session(state)?.filters();
        put_f32(state, f)
    })
}

/// Convolution `which`'s maps of test image `index` (out_f32; stats: shape).
#[no_mangle]
pub extern "C" fn maps(index: u32, which: u32) -> i32 {
    with_state(|state| {
        let m = session(state)?.maps(index as usize, which as usize)?;
        put_f32(state, m)
    })
}

/// Classifies the `width` x `height` drawing in the inbox (out_f32: probabilities).
#[no_mangle]
pub extern "C" fn predict(width: u32, height: u32) -> i32 {
    with_state(|state| {
        let pixels = std::mem::take(&mut state.inbox);
        let p = session(state)?.probabilities(pixels, width as usize, height as usize)?;
        put_f32(state, (p, vec![10]))
    })
}

/// The `.safetensors` bytes of the network as it is (out_bytes); returns their count.
#[no_mangle]
pub extern "C" fn weights() -> i32 {
    with_state(|state| {
        state.out_bytes = session(state)?.safetensors()?;
        Ok(state.out_bytes.len() as i32)
    })
}

/// Address of out_f32.
#[no_mangle]
pub extern "C" fn out_f32() -> *const f32 {
    STATE.with_borrow(|state| state.out_f32.as_ptr())
}

/// Address of out_bytes.
#[no_mangle]
pub extern "C" fn out_bytes() -> *const u8 {
    STATE.with_borrow(|state| state.out_bytes.as_ptr())
}

/// Address of the 8 stats (f64).
#[no_mangle]
pub extern "C" fn stats() -> *const f64 {
    STATE.with_borrow(|state| state.stats.as_ptr())
}

/// Address of the last error's message.
#[no_mangle]
pub extern "C" fn error_ptr() -> *const u8 {
    STATE.with_borrow(|state| state.error.as_ptr())
}

/// Length of the last error's message, in bytes.
#[no_mangle]
pub extern "C" fn error_len() -> usize {
    STATE.with_borrow(|state| state.error.len())
}
