//! Convolution (correlation, as in every deep-learning library) as a matrix product.
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

use crate::direct::{self, DirectScratch};
use crate::gemm::{sgemm, MatLayout};
use crate::ConvGeometry;

/// How [`conv2d_forward`] and the backward passes compute a convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// [`Direct`](ConvAlgorithm::Direct) where [`direct_available`] says it
    /// runs, [`Im2col`](ConvAlgorithm::Im2col) elsewhere.
    #[default]
    Auto,
    /// im2col / col2im and `matrixmultiply::sgemm`: any geometry, any CPU.
    Im2col,
    /// The implicit GEMM over a padded input of the `direct` module (stride 1,
    /// AVX2 + FMA); falls back to [`Im2col`](ConvAlgorithm::Im2col) where it
    /// is not available.
    Direct,
}

impl ConvAlgorithm {
    /// The algorithm that actually runs geometry `g` on this machine:
    /// `Im2col` or `Direct`, never `Auto`.
    pub fn resolve(self, g: &ConvGeometry) -> ConvAlgorithm {
        match self {
            ConvAlgorithm::Im2col => ConvAlgorithm::Im2col,
            ConvAlgorithm::Auto | ConvAlgorithm::Direct if direct::available(g) => {
                ConvAlgorithm::Direct
            }
            _ => ConvAlgorithm::Im2col,
        }
    }
}

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

/// Whether the direct (implicit GEMM) convolution runs geometry `g` on this
/// machine: x86-64 with AVX2 and FMA, stride 1, padding smaller than the kernel.
pub fn direct_available(g: &ConvGeometry) -> bool {
    direct::available(g)
}

/// Buffers a convolution reuses from step to step, so that a training step
/// allocates nothing once the batch size is fixed.
#[derive(Debug, Default, Clone)]
pub struct ConvScratch {
    /// The batch's im2col matrix, (C·KH·KW) x (N·OH·OW).
    cols: Vec<f32>,
    /// The output gradient regrouped by channel, O x (N·OH·OW).
    grad_output_by_channel: Vec<f32>,
    /// Per-image input-gradient columns, N x (C·KH·KW) x (OH·OW).
    grad_cols: Vec<f32>,
    /// Partial weight gradients, one O x (C·KH·KW) block per batch chunk.
    grad_weight_parts: Vec<f32>,
    /// The geometry, batch size and algorithm of the last [`conv2d_forward`],
    /// while the scratch still holds what its backward pass needs (the im2col
    /// matrix in `cols`, or the padded input in `direct`).
    forward_cols: Option<(ConvGeometry, usize, ConvAlgorithm)>,
    /// Buffers of the direct algorithm.
    direct: DirectScratch,
    /// The algorithm asked for.
    algorithm: ConvAlgorithm,
}

impl ConvScratch {
    /// A scratch whose convolutions use `algorithm` (the default is
    /// [`ConvAlgorithm::Auto`]).
    pub fn with_algorithm(algorithm: ConvAlgorithm) -> ConvScratch {
        ConvScratch {
            algorithm,
            ..ConvScratch::default()
        }
    }
}

/// The weight gradient is a sum over the batch, computed as this many
/// partial products over consecutive chunks of images (in parallel), then
/// added in chunk order. The count depends on nothing but this constant and
/// the batch size, so the grouping of the sum never follows the thread count.
const GRAD_WEIGHT_CHUNKS: usize = 4;

/// Σ `values` in f64, as 16 interleaved partial sums added in a fixed order.
/// A single running sum would be a chain of dependent additions (about 4
/// cycles each: 0.8 ms for conv1's bias gradient); 16 chains vectorise. The
/// AVX version runs the same additions in the same order, so both give the
/// same bits.
pub(crate) fn sum_f64(values: &[f32]) -> f64 {
    const N: usize = 16;
    let chunks = values.chunks_exact(N);
    let mut acc = [0f64; N];
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += v as f64;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX.
        unsafe { add_chunks_avx(chunks, &mut acc) };
        return reduce(acc);
    }
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v as f64;
        }
    }
    reduce(acc)
}

/// `acc[i] += chunk[i]` for every chunk, four lanes per instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn add_chunks_avx(chunks: std::slice::ChunksExact<'_, f32>, acc: &mut [f64; 16]) {
    use std::arch::x86_64::*;
    let p = acc.as_mut_ptr();
    let mut a = [0, 4, 8, 12].map(|i| _mm256_loadu_pd(p.add(i)));
    for chunk in chunks {
        for (j, a) in a.iter_mut().enumerate() {
            let v = _mm256_cvtps_pd(_mm_loadu_ps(chunk.as_ptr().add(4 * j)));
            *a = _mm256_add_pd(*a, v);
        }
    }
    for (j, a) in a.iter().enumerate() {
        _mm256_storeu_pd(p.add(4 * j), *a);
    }
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

fn resize(buf: &mut Vec<f32>, len: usize) {
    if buf.len() != len {
        buf.resize(len, 0.0);
    }
}

/// Fills the im2col row of patch position (`c`, `i`, `j`) for one image:
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

/// Forward pass over a batch: `output[n] = W · im2col(input[n]) + b`.
///
/// `input` is N x C x H x W, `weight` O x C x KH x KW, `bias` O, `output`
/// N x O x OH x OW; all dense, row-major.
pub fn conv2d_forward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    scratch: &mut ConvScratch,
) {
    conv2d_forward_with(
        g,
        batch,
        input,
        weight,
        bias,
        Activation::Identity,
        output,
        scratch,
    );
}

/// [`conv2d_forward`] followed by `activation`, in the same pass.
pub fn conv2d_forward_with(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    activation: Activation,
    output: &mut [f32],
    scratch: &mut ConvScratch,
) {
    assert_eq!(
        input.len(),
        batch * g.in_size(),
        "conv2d_forward: input length"
    );
    assert_eq!(
        weight.len(),
        g.weight_len(),
        "conv2d_forward: weight length"
    );
    assert_eq!(bias.len(), g.out_channels, "conv2d_forward: bias length");
    assert_eq!(
        output.len(),
        batch * g.out_size(),
        "conv2d_forward: output length"
    );
    let algorithm = scratch.algorithm.resolve(g);
    scratch.forward_cols = Some((*g, batch, algorithm));
    if batch == 0 {
        return;
    }
    if algorithm == ConvAlgorithm::Direct {
        direct::forward(
            g,
            batch,
            input,
            weight,
            bias,
            activation,
            output,
            &mut scratch.direct,
        );
        return;
    }
    im2col_batch(g, batch, input, &mut scratch.cols);
    let (l, k, o) = (g.out_plane(), g.patch_len(), g.out_channels);
    let cols = &scratch.cols;
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

/// Backward pass over a batch.
///
/// Writes (overwrites) `grad_weight` (O x C x KH x KW) and `grad_bias` (O),
/// and, when given, `grad_input` (N x C x H x W). `input` and `weight` are the
/// forward pass's. Every reduction runs in a fixed order, so the result does
/// not depend on the number of threads.
///
/// This rebuilds the im2col matrix of `input`; a caller that still has the
/// `scratch` of the forward pass over the same input can skip that with
/// [`conv2d_backward_after_forward`].
pub fn conv2d_backward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    grad_output: &[f32],
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    scratch: &mut ConvScratch,
) {
    assert_eq!(
        input.len(),
        batch * g.in_size(),
        "conv2d_backward: input length"
    );
    // Prepare what a forward pass would have left, then take that path.
    let algorithm = scratch.algorithm.resolve(g);
    if algorithm == ConvAlgorithm::Direct {
        direct::pad_input(g, batch, input, &mut scratch.direct);
    } else if batch > 0 {
        im2col_batch(g, batch, input, &mut scratch.cols);
    }
    scratch.forward_cols = Some((*g, batch, algorithm));
    conv2d_backward_after_forward_with(
        g,
        batch,
        weight,
        None,
        grad_output,
        grad_input,
        grad_weight,
        grad_bias,
        scratch,
    );
    // The scratch holds no forward pass's output to go with these columns.
    scratch.forward_cols = None;
}

/// [`conv2d_backward`] for the input of the last [`conv2d_forward`] that used
/// this `scratch`: its im2col matrix is still in the scratch, so it is not
/// built again. Results are bit-identical to [`conv2d_backward`]'s with that input.
///
/// # Panics
/// If the last use of `scratch` was not a forward pass of geometry `g` and
/// batch size `batch`.
pub fn conv2d_backward_after_forward(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    scratch: &mut ConvScratch,
) {
    conv2d_backward_after_forward_with(
        g,
        batch,
        weight,
        None,
        grad_output,
        grad_input,
        grad_weight,
        grad_bias,
        scratch,
    );
}

/// [`conv2d_backward_after_forward`] for a forward pass run with
/// [`Activation::Relu`]: `relu_output` is that pass's output, and the
/// gradient flows only where it is positive. `None` for [`Activation::Identity`].
pub fn conv2d_backward_after_forward_with(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    relu_output: Option<&[f32]>,
    grad_output: &[f32],
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let Some((fg, fbatch, algorithm)) = scratch.forward_cols else {
        panic!(
            "conv2d_backward_after_forward: the scratch does not hold this forward pass's columns"
        )
    };
    assert!(
        (fg, fbatch) == (*g, batch),
        "conv2d_backward_after_forward: the scratch does not hold this forward pass's columns"
    );
    assert_eq!(
        weight.len(),
        g.weight_len(),
        "conv2d_backward: weight length"
    );
    assert_eq!(
        grad_output.len(),
        batch * g.out_size(),
        "conv2d_backward: grad_output length"
    );
    assert_eq!(
        grad_weight.len(),
        g.weight_len(),
        "conv2d_backward: grad_weight length"
    );
    assert_eq!(
        grad_bias.len(),
        g.out_channels,
        "conv2d_backward: grad_bias length"
    );
    if let Some(dx) = &grad_input {
        assert_eq!(
            dx.len(),
            batch * g.in_size(),
            "conv2d_backward: grad_input length"
        );
    }
    if let Some(y) = relu_output {
        assert_eq!(
            y.len(),
            grad_output.len(),
            "conv2d_backward: relu_output length"
        );
    }
    if algorithm == ConvAlgorithm::Direct {
        direct::backward(
            g,
            batch,
            weight,
            relu_output,
            grad_output,
            grad_input,
            grad_weight,
            grad_bias,
            &mut scratch.direct,
        );
        return;
    }
    backward_from_cols(
        g,
        batch,
        weight,
        relu_output,
        grad_output,
        grad_input,
        grad_weight,
        grad_bias,
        scratch,
    );
}

/// The backward pass, given the batch's im2col matrix in `scratch.cols`
/// (slice lengths checked by the caller).
fn backward_from_cols(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    mask: Option<&[f32]>,
    grad_output: &[f32],
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let (l, k, o) = (g.out_plane(), g.patch_len(), g.out_channels);
    if batch == 0 {
        grad_weight.fill(0.0);
        grad_bias.fill(0.0);
        return;
    }

    // dy regrouped channel-major, O x (N·L), masked by the fused ReLU if any,
    // and db as its row sums (f64, image by image in order).
    resize(&mut scratch.grad_output_by_channel, o * batch * l);
    scratch
        .grad_output_by_channel
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

    // dW = dy (O x N·L) · colsᵀ (N·L x C·KH·KW), as GRAD_WEIGHT_CHUNKS partial
    // products over consecutive image ranges (in parallel), added in order.
    let per_chunk = batch.div_ceil(GRAD_WEIGHT_CHUNKS);
    let chunks = batch.div_ceil(per_chunk);
    resize(&mut scratch.grad_weight_parts, chunks * o * k);
    let (dy_by_channel, cols) = (&scratch.grad_output_by_channel, &scratch.cols);
    scratch
        .grad_weight_parts
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
    let mut parts = scratch.grad_weight_parts.chunks_exact(o * k);
    grad_weight.copy_from_slice(parts.next().expect("at least one chunk"));
    for part in parts {
        for (dw, &p) in grad_weight.iter_mut().zip(part) {
            *dw += p;
        }
    }

    // dx[n] = col2im(Wᵀ · dy[n]), image by image; dy[n] is the column block
    // [n·L, (n+1)·L) of the regrouped (and masked) gradient.
    if let Some(grad_input) = grad_input {
        resize(&mut scratch.grad_cols, batch * k * l);
        let dy_by_channel = &scratch.grad_output_by_channel;
        grad_input
            .par_chunks_mut(g.in_size())
            .zip(scratch.grad_cols.par_chunks_mut(k * l))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sum_f64` (AVX where the CPU has it) gives the bits of the portable
    /// loop it replaces, and the sum itself.
    #[test]
    fn sum_f64_matches_the_portable_order() {
        for n in [0, 1, 15, 16, 17, 100, 784, 1001] {
            let v = values(n, n);
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

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919 % 2003) as f32 - 1001.0) / 1001.0)
            .collect()
    }

    /// Reusing the forward pass's columns gives the bits of a backward pass
    /// that rebuilds them.
    #[test]
    fn backward_after_forward_is_bit_identical() {
        for (g, batch) in [
            (
                ConvGeometry::builder(1, 8, 3)
                    .input(28, 28)
                    .pad(1)
                    .build()
                    .unwrap(),
                7,
            ),
            (
                ConvGeometry::builder(8, 16, 3)
                    .input(14, 14)
                    .pad(1)
                    .build()
                    .unwrap(),
                5,
            ),
            (
                ConvGeometry::builder(3, 4, 3)
                    .input(9, 7)
                    .stride(2)
                    .build()
                    .unwrap(),
                1,
            ),
        ] {
            let x = values(batch * g.in_size(), 1);
            let w = values(g.weight_len(), 2);
            let b = values(g.out_channels, 3);
            let dy = values(batch * g.out_size(), 4);
            let mut y = vec![0.0; dy.len()];
            let mut s = ConvScratch::default();
            conv2d_forward(&g, batch, &x, &w, &b, &mut y, &mut s);
            let (mut dx1, mut dw1, mut db1) =
                (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
            conv2d_backward_after_forward(
                &g,
                batch,
                &w,
                &dy,
                Some(&mut dx1),
                &mut dw1,
                &mut db1,
                &mut s,
            );
            let (mut dx2, mut dw2, mut db2) =
                (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
            conv2d_backward(
                &g,
                batch,
                &x,
                &w,
                &dy,
                Some(&mut dx2),
                &mut dw2,
                &mut db2,
                &mut ConvScratch::default(),
            );
            assert_eq!((dx1, dw1, db1), (dx2, dw2, db2), "{g:?}");
        }
    }

    #[test]
    #[should_panic(expected = "does not hold this forward pass's columns")]
    fn backward_after_forward_needs_the_forward() {
        let g = ConvGeometry::builder(1, 2, 3)
            .input(4, 4)
            .pad(1)
            .build()
            .unwrap();
        let mut s = ConvScratch::default();
        let (w, dy) = (vec![0.0; g.weight_len()], vec![0.0; g.out_size()]);
        let (mut dw, mut db) = (vec![0.0; g.weight_len()], vec![0.0; 2]);
        conv2d_backward_after_forward(&g, 1, &w, &dy, None, &mut dw, &mut db, &mut s);
    }
}
