//! The im2col algorithm: convolution (correlation, as in every deep-learning
//! library) as a matrix product.
//!
//! For one image `x` (C x H x W), im2col unrolls every KH x KW patch the
//! kernel visits into a column, giving `cols`: (C·KH·KW) x (OH·OW). The
//! filters, O x C x KH x KW, are read as a matrix `W`: O x (C·KH·KW). Then
//!
//! ```text
//! forward      y = W · cols + b                      O x (OH·OW), i.e. the O output planes
//! input grad   dx = col2im(Wᵀ · dy)                  the full correlation of dy with the
//!                                                    180°-rotated kernel, written as a product
//! weight grad  dW = Σₙ dyₙ · colsₙᵀ                  correlation of the input with dy
//! bias grad    db[o] = Σₙ Σ_pixels dyₙ[o]
//! ```
//!
//! col2im is the adjoint of im2col: it adds each column entry back onto the
//! pixel it was copied from, so a pixel shared by several patches collects
//! the sum of their gradients.
//!
//! Batches: the im2col matrices of the N images of a batch are laid side by
//! side as one (C·KH·KW) x (N·OH·OW) matrix, so the weight gradient is one
//! GEMM whose long inner dimension runs over the whole batch in a fixed order.

use rayon::prelude::*;

use crate::shared::{resize, sum_f64, Activation, GRAD_WEIGHT_CHUNKS};
use crate::simd::{sgemm, MatLayout};
use crate::ConvGeometry;

/// Buffers of the im2col path, reused from step to step.
#[derive(Debug, Default, Clone)]
pub(crate) struct Im2colBuffers {
    /// The batch's im2col matrix, (C·KH·KW) x (N·OH·OW); the backward pass reads it again.
    cols: Vec<f32>,
    /// The output gradient regrouped by channel, O x (N·OH·OW).
    grad_output_by_channel: Vec<f32>,
    /// Per-image input-gradient columns, N x (C·KH·KW) x (OH·OW).
    grad_cols: Vec<f32>,
    /// Partial weight gradients, one O x (C·KH·KW) block per batch chunk.
    grad_weight_parts: Vec<f32>,
}

/// `dst[oy·OW + ox] = x[c, oy·SH + i − PH, ox·SW + j − PW]`, or 0 in the padding.
fn im2col_row(g: &ConvGeometry, image: &[f32], c: usize, i: usize, j: usize, dst: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let plane = &image[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
    for oy in 0..oh {
        let out_row = &mut dst[oy * ow..(oy + 1) * ow];
        let iy = (oy * g.stride_h + i) as isize - g.pad_h as isize;
        if iy < 0 || iy >= g.in_h as isize {
            out_row.fill(0.0);
            continue;
        }
        let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
        if g.stride_w == 1 {
            // ix = ox + j − PW is inside [0, W) for ox in [lo, hi).
            let lo = g.pad_w.saturating_sub(j).min(ow);
            let hi = (g.in_w + g.pad_w).saturating_sub(j).min(ow).max(lo);
            out_row[..lo].fill(0.0);
            if lo < hi {
                // (When the row lies wholly in the padding, lo + j − PW can be negative.)
                out_row[lo..hi].copy_from_slice(&src[lo + j - g.pad_w..hi + j - g.pad_w]);
            }
            out_row[hi..].fill(0.0);
        } else {
            for (ox, v) in out_row.iter_mut().enumerate() {
                let ix = (ox * g.stride_w + j) as isize - g.pad_w as isize;
                *v = if ix < 0 || ix >= g.in_w as isize {
                    0.0
                } else {
                    src[ix as usize]
                };
            }
        }
    }
}

/// Unrolls one image (C x H x W) into `cols`, (C·KH·KW) x (OH·OW), row-major.
pub fn im2col(g: &ConvGeometry, image: &[f32], cols: &mut [f32]) {
    assert_eq!(image.len(), g.in_size(), "im2col: image length");
    assert_eq!(
        cols.len(),
        g.patch_len() * g.out_plane(),
        "im2col: cols length"
    );
    let l = g.out_plane();
    for (r, row) in cols.chunks_exact_mut(l).enumerate() {
        let (c, i, j) = (
            r / (g.kernel_h * g.kernel_w),
            r / g.kernel_w % g.kernel_h,
            r % g.kernel_w,
        );
        im2col_row(g, image, c, i, j, row);
    }
}

/// Adds `cols`, (C·KH·KW) x (OH·OW), back onto the pixels they came from
/// (the adjoint of [`im2col`]). `image` is accumulated into, not cleared.
pub fn col2im(g: &ConvGeometry, cols: &[f32], image: &mut [f32]) {
    assert_eq!(image.len(), g.in_size(), "col2im: image length");
    assert_eq!(
        cols.len(),
        g.patch_len() * g.out_plane(),
        "col2im: cols length"
    );
    let (oh, ow) = (g.out_h(), g.out_w());
    let plane_len = g.in_h * g.in_w;
    for (r, row) in cols.chunks_exact(oh * ow).enumerate() {
        let (c, i, j) = (
            r / (g.kernel_h * g.kernel_w),
            r / g.kernel_w % g.kernel_h,
            r % g.kernel_w,
        );
        let plane = &mut image[c * plane_len..(c + 1) * plane_len];
        for oy in 0..oh {
            let iy = (oy * g.stride_h + i) as isize - g.pad_h as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            let dst = &mut plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
            let src = &row[oy * ow..(oy + 1) * ow];
            if g.stride_w == 1 {
                let lo = g.pad_w.saturating_sub(j).min(ow);
                let hi = (g.in_w + g.pad_w).saturating_sub(j).min(ow).max(lo);
                if lo < hi {
                    for (d, s) in dst[lo + j - g.pad_w..hi + j - g.pad_w]
                        .iter_mut()
                        .zip(&src[lo..hi])
                    {
                        *d += s;
                    }
                }
            } else {
                for (ox, s) in src.iter().enumerate() {
                    let ix = (ox * g.stride_w + j) as isize - g.pad_w as isize;
                    if ix >= 0 && ix < g.in_w as isize {
                        dst[ix as usize] += s;
                    }
                }
            }
        }
    }
}

/// Builds the batch's im2col matrix, (C·KH·KW) x (N·OH·OW), one row per task.
fn im2col_batch(g: &ConvGeometry, batch: usize, input: &[f32], cols: &mut Vec<f32>) {
    let l = g.out_plane();
    resize(cols, g.patch_len() * batch * l);
    cols.par_chunks_mut(batch * l)
        .enumerate()
        .for_each(|(r, row)| {
            let (c, i, j) = (
                r / (g.kernel_h * g.kernel_w),
                r / g.kernel_w % g.kernel_h,
                r % g.kernel_w,
            );
            for (n, dst) in row.chunks_exact_mut(l).enumerate() {
                im2col_row(
                    g,
                    &input[n * g.in_size()..(n + 1) * g.in_size()],
                    c,
                    i,
                    j,
                    dst,
                );
            }
        });
}

/// Forward pass over a batch: `output[n] = W · im2col(input[n]) + b`, then
/// `activation`. Leaves the batch's im2col matrix in `bufs` for [`backward`].
/// (Slice lengths checked by the caller; `batch` > 0.)
pub(crate) fn forward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    activation: Activation,
    output: &mut [f32],
    bufs: &mut Im2colBuffers,
) {
    im2col_batch(g, batch, input, &mut bufs.cols);
    let (l, k, o) = (g.out_plane(), g.patch_len(), g.out_channels);
    let cols = &bufs.cols;
    output
        .par_chunks_mut(o * l)
        .enumerate()
        .for_each(|(n, out)| {
            for (plane, &b) in out.chunks_exact_mut(l).zip(bias) {
                plane.fill(b);
            }
            // Image n's columns are the column block [n·L, (n+1)·L) of the batch matrix.
            let cols_n = MatLayout {
                rows: k,
                cols: l,
                row_stride: batch * l,
                col_stride: 1,
            };
            sgemm(
                1.0,
                weight,
                MatLayout::row_major(o, k),
                &cols[n * l..],
                cols_n,
                1.0,
                out,
                MatLayout::row_major(o, l),
            );
            if activation == Activation::Relu {
                for v in out.iter_mut() {
                    *v = v.max(0.0);
                }
            }
        });
}

/// The backward pass of the last [`forward`] that used `bufs`, whose im2col
/// matrix is still in `bufs.cols` (slice lengths checked by the caller).
pub(crate) fn backward(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    mask: Option<&[f32]>,
    grad_output: &[f32],
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    bufs: &mut Im2colBuffers,
) {
    if batch == 0 {
        grad_weight.fill(0.0);
        grad_bias.fill(0.0);
        return;
    }
    regroup_grad_output(g, batch, mask, grad_output, grad_bias, bufs);
    weight_grad(g, batch, grad_weight, bufs);
    if let Some(grad_input) = grad_input {
        input_grad(g, batch, weight, grad_input, bufs);
    }
}

/// dy regrouped channel-major, O x (N·L), into `bufs.grad_output_by_channel`,
/// masked by the fused ReLU if any, and db as its row sums (f64, image by
/// image in order).
fn regroup_grad_output(
    g: &ConvGeometry,
    batch: usize,
    mask: Option<&[f32]>,
    grad_output: &[f32],
    grad_bias: &mut [f32],
    bufs: &mut Im2colBuffers,
) {
    let (l, o) = (g.out_plane(), g.out_channels);
    resize(&mut bufs.grad_output_by_channel, o * batch * l);
    bufs.grad_output_by_channel
        .par_chunks_mut(batch * l)
        .zip(grad_bias.par_iter_mut())
        .enumerate()
        .for_each(|(ch, (row, db))| {
            let mut sum = 0f64;
            for (n, dst) in row.chunks_exact_mut(l).enumerate() {
                let src = &grad_output[n * o * l + ch * l..][..l];
                match mask {
                    Some(y) => {
                        let y = &y[n * o * l + ch * l..][..l];
                        for ((d, &s), &y) in dst.iter_mut().zip(src).zip(y) {
                            *d = if y > 0.0 { s } else { 0.0 };
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
                sum += sum_f64(dst);
            }
            *db = sum as f32;
        });
}

/// dW = dy (O x N·L) · colsᵀ (N·L x C·KH·KW), as GRAD_WEIGHT_CHUNKS partial
/// products over consecutive image ranges (in parallel), added in order.
fn weight_grad(g: &ConvGeometry, batch: usize, grad_weight: &mut [f32], bufs: &mut Im2colBuffers) {
    let (l, k, o) = (g.out_plane(), g.patch_len(), g.out_channels);
    let per_chunk = batch.div_ceil(GRAD_WEIGHT_CHUNKS);
    let chunks = batch.div_ceil(per_chunk);
    resize(&mut bufs.grad_weight_parts, chunks * o * k);
    let (dy_by_channel, cols) = (&bufs.grad_output_by_channel, &bufs.cols);
    bufs.grad_weight_parts
        .par_chunks_mut(o * k)
        .enumerate()
        .for_each(|(c, part)| {
            let first = c * per_chunk * l;
            let len = (per_chunk * l).min(batch * l - first);
            sgemm(
                1.0,
                &dy_by_channel[first..],
                MatLayout {
                    rows: o,
                    cols: len,
                    row_stride: batch * l,
                    col_stride: 1,
                },
                &cols[first..],
                MatLayout {
                    rows: len,
                    cols: k,
                    row_stride: 1,
                    col_stride: batch * l,
                },
                0.0,
                part,
                MatLayout::row_major(o, k),
            );
        });
    let mut parts = bufs.grad_weight_parts.chunks_exact(o * k);
    grad_weight.copy_from_slice(parts.next().expect("at least one chunk"));
    for part in parts {
        for (dw, &p) in grad_weight.iter_mut().zip(part) {
            *dw += p;
        }
    }
}

/// dx[n] = col2im(Wᵀ · dy[n]), image by image; dy[n] is the column block
/// [n·L, (n+1)·L) of the regrouped (and masked) gradient.
fn input_grad(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    grad_input: &mut [f32],
    bufs: &mut Im2colBuffers,
) {
    let (l, k, o) = (g.out_plane(), g.patch_len(), g.out_channels);
    resize(&mut bufs.grad_cols, batch * k * l);
    let dy_by_channel = &bufs.grad_output_by_channel;
    grad_input
        .par_chunks_mut(g.in_size())
        .zip(bufs.grad_cols.par_chunks_mut(k * l))
        .enumerate()
        .for_each(|(n, (gx, gcols))| {
            sgemm(
                1.0,
                weight,
                MatLayout::row_major(o, k).t(),
                &dy_by_channel[n * l..],
                MatLayout {
                    rows: o,
                    cols: l,
                    row_stride: batch * l,
                    col_stride: 1,
                },
                0.0,
                gcols,
                MatLayout::row_major(k, l),
            );
            gx.fill(0.0);
            col2im(g, gcols, gx);
        });
}
