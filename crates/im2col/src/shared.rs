//! Helpers both convolution algorithms and the dense kernels use: the fused
//! activation, the fixed-order f64 sum, buffer sizing and per-thread scratch.

use crate::simd;

/// What the forward pass applies to `W·x + b` before storing it.
///
/// A ReLU applied here, and its mask applied to the output gradient at the
/// start of the backward pass, spares a separate ReLU layer two passes over
/// the feature maps. The results are the bits of a convolution followed by a
/// ReLU layer: `max(v, 0)` in the same place, and the mask `y > 0`, which is
/// the same whether `y` is taken before or after the ReLU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// Store `W·x + b` as it is.
    #[default]
    Identity,
    /// Store `max(W·x + b, 0)`.
    Relu,
}

/// The weight gradient is a sum over the batch, computed as this many
/// partial products over consecutive chunks of images (in parallel), then
/// added in chunk order. The count depends on nothing but this constant and
/// the batch size, so the grouping of the sum never follows the thread count.
pub(crate) const GRAD_WEIGHT_CHUNKS: usize = 4;

/// Σ `values` in f64, as 16 interleaved partial sums added in a fixed order.
/// A single running sum would be a chain of dependent additions (about 4
/// cycles each: 0.8 ms for conv1's bias gradient); 16 chains vectorise.
pub(crate) fn sum_f64(values: &[f32]) -> f64 {
    const N: usize = 16;
    let whole = values.len() / N * N;
    let mut acc = [0f64; N];
    for (a, &v) in acc.iter_mut().zip(&values[whole..]) {
        *a += v as f64;
    }
    simd::add_chunks_f64(&values[..whole], &mut acc);
    reduce(acc)
}

/// The 16 partial sums added pairwise: a fixed tree.
fn reduce(mut acc: [f64; 16]) -> f64 {
    let mut width = acc.len();
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

/// Makes `buf` `len` long; new entries are zero (old ones keep their values).
pub(crate) fn resize<T: Clone + Default>(buf: &mut Vec<T>, len: usize) {
    if buf.len() != len {
        buf.resize(len, T::default());
    }
}

thread_local! {
    /// One output tile per worker thread, so the kernels allocate nothing per step.
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// One packing buffer per worker thread, likewise.
    static PACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_buffer<R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() < len {
            t.resize(len, 0.0);
        }
        f(&mut t[..len])
    })
}

/// Runs `f` on this thread's packing buffer, `len` long.
pub(crate) fn with_pack<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&PACK, len, f)
}

/// Runs `f` on this thread's output tile, `len` long.
pub(crate) fn with_tile<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&TILE, len, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sum_f64` (AVX where the CPU has it) gives the bits of the portable
    /// loop it replaces, and the sum itself.
    #[test]
    fn sum_f64_matches_the_portable_order() {
        for n in [0, 1, 15, 16, 17, 100, 784, 1001] {
            let v: Vec<f32> = (0..n)
                .map(|i| (((i + n) * 7919 % 2003) as f32 - 1001.0) / 1001.0)
                .collect();
            let mut portable = [0f64; 16];
            let chunks = v.chunks_exact(16);
            for (a, &x) in portable.iter_mut().zip(chunks.remainder()) {
                *a += x as f64;
            }
            for chunk in chunks {
                for (a, &x) in portable.iter_mut().zip(chunk) {
                    *a += x as f64;
                }
            }
            assert_eq!(sum_f64(&v).to_bits(), reduce(portable).to_bits(), "n = {n}");
            let exact: f64 = v.iter().map(|&x| x as f64).sum();
            assert!((sum_f64(&v) - exact).abs() < 1e-9, "n = {n}");
        }
    }
}
