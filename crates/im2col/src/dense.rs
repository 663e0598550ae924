//! The fully connected layer's three products with the `simd` module's
//! micro-kernels, without matrixmultiply's per-call packing.
//!
//! `x` is N x I, `W` is O x I, `y` and `dy` are N x O, all row-major:
//!
//! ```text
//! forward      yᵀ[o][n] = Σ_i W[o][i] · x[n][i]       dot products of rows (shifted_dot)
//! input grad   dx[n][i] = Σ_o dy[n][o] · W[o][i]      4 images at a time (shifted_gemm)
//! weight grad  dW[o][i] = Σ_n dy[n][o] · x[n][i]      4 features at a time (shifted_gemm)
//! ```
//!
//! Every row the kernels read is a whole row of `x` or `W`, so no copy of
//! either is made; only 4-row slices of `dy` are packed. Each output element
//! is one chain in a fixed order, so the results do not depend on the number
//! of threads. Runs where [`dense_available`] says so (AVX2 and FMA, I a
//! multiple of 8 and O of 4: 784 -> 256 qualifies); the caller takes the GEMM
//! path otherwise.

use rayon::prelude::*;

use crate::shared::{resize, with_pack, with_tile};
use crate::simd::{has_avx2_fma, shifted_dot, shifted_gemm, MR};

/// Output rows per forward task.
const ROWS_PER_TASK: usize = 8;

/// Whether [`dense_forward`] and [`dense_backward`] run I -> O on this machine.
pub fn dense_available(inputs: usize, outputs: usize) -> bool {
    inputs > 0
        && outputs > 0
        && inputs.is_multiple_of(8)
        && outputs.is_multiple_of(MR)
        && has_avx2_fma()
}

/// Buffers reused from step to step.
#[derive(Clone, Debug, Default)]
pub struct DenseScratch {
    /// yᵀ, O x N.
    output_t: Vec<f32>,
    /// Row offsets: `k·I` for k < max(N, O).
    offsets: Vec<usize>,
}

/// `offsets[k] = k·stride` for k < count (kept from the last call when it fits).
fn row_offsets(offsets: &mut Vec<usize>, count: usize, stride: usize) -> &[usize] {
    if offsets.len() < count || offsets.get(1).is_some_and(|&o| o != stride) {
        *offsets = (0..count).map(|k| k * stride).collect();
    }
    &offsets[..count]
}

fn check(n: usize, i: usize, o: usize, x: &[f32], w: &[f32]) {
    assert!(
        dense_available(i, o),
        "dense kernels are not available for {i} -> {o}"
    );
    assert_eq!(x.len(), n * i, "dense: x length");
    assert_eq!(w.len(), o * i, "dense: weight length");
}

/// `y = x · Wᵀ + b`: N x I times (O x I)ᵀ, plus the bias on every row.
pub fn dense_forward(
    n: usize,
    i: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    s: &mut DenseScratch,
) {
    check(n, i, o, x, w);
    assert_eq!(b.len(), o, "dense: bias length");
    assert_eq!(y.len(), n * o, "dense: output length");
    if n == 0 {
        return;
    }
    let DenseScratch { output_t, offsets } = s;
    resize(output_t, o * n);
    let offs = &row_offsets(offsets, n, i)[..n];
    // yᵀ rows are independent: ROWS_PER_TASK features per task, each a dot
    // product of W's rows with every image's row.
    output_t
        .par_chunks_mut(ROWS_PER_TASK * n)
        .zip(w.par_chunks(ROWS_PER_TASK * i))
        .for_each(|(yt, w_rows)| shifted_dot(x, n * i, w_rows, w_rows.len() / i, i, offs, yt));
    for (k, row) in y.chunks_exact_mut(o).enumerate() {
        for (j, (v, &bias)) in row.iter_mut().zip(b).enumerate() {
            *v = output_t[j * n + k] + bias;
        }
    }
}

/// The gradients of [`dense_forward`]: overwrites `dw` (O x I) and, when
/// given, `dx` (N x I). (The bias gradient, dy's column sums, is the caller's.)
pub fn dense_backward(
    n: usize,
    i: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    s: &mut DenseScratch,
) {
    check(n, i, o, x, w);
    assert_eq!(dy.len(), n * o, "dense: output gradient length");
    assert_eq!(dw.len(), o * i, "dense: weight gradient length");
    if n == 0 {
        dw.fill(0.0);
        return;
    }
    let offs = row_offsets(&mut s.offsets, n.max(o), i);
    let (by_image, by_feature) = (&offs[..n], &offs[..o]);
    let mut weight_grad = || {
        // dW rows 4b..4b+4: k runs over the images, A[k][r] = dy[k][4b + r].
        dw.par_chunks_mut(MR * i).enumerate().for_each(|(blk, dw)| {
            with_pack(n * MR, |a| {
                for (k, a) in a.chunks_exact_mut(MR).enumerate() {
                    a.copy_from_slice(&dy[k * o + blk * MR..][..MR]);
                }
                shifted_gemm(a, x, by_image, i, dw);
            });
        });
    };
    match dx {
        Some(dx) => {
            assert_eq!(dx.len(), n * i, "dense: input gradient length");
            let input_grad = || {
                // dx rows 4b..4b+4: k runs over the features, A[k][r] = dy[4b + r][k].
                dx.par_chunks_mut(MR * i).enumerate().for_each(|(blk, dx)| {
                    let rows = dx.len() / i;
                    with_pack(o * MR, |a| {
                        for (k, a) in a.chunks_exact_mut(MR).enumerate() {
                            for (r, a) in a.iter_mut().enumerate() {
                                *a = if r < rows {
                                    dy[(blk * MR + r) * o + k]
                                } else {
                                    0.0
                                };
                            }
                        }
                        if rows == MR {
                            shifted_gemm(a, w, by_feature, i, dx);
                        } else {
                            with_tile(MR * i, |tile| {
                                shifted_gemm(a, w, by_feature, i, tile);
                                dx.copy_from_slice(&tile[..rows * i]);
                            });
                        }
                    });
                });
            };
            rayon::join(weight_grad, input_grad);
        }
        None => weight_grad(),
    }
}
