//! Stride-1 convolution without an im2col matrix: an implicit GEMM that
//! reads its columns straight out of a zero-padded copy of the input.
//!
//! Pad each input plane to `Hp x Wp` (`Hp = H + 2·PH`, `Wp = W + 2·PW`) and
//! compute the output on an `OH x Wp` grid instead of `OH x OW`: every output
//! row gets `Wp − OW = KW − 1` extra columns, which are thrown away. On that
//! grid output pixel `q = oy·Wp + ox` and kernel tap (`c`, `i`, `j`) read
//!
//! ```text
//! xpad[c][oy + i][ox + j] = xpad[c·Hp·Wp + i·Wp + j + q]
//! ```
//!
//! so row (`c`, `i`, `j`) of the im2col matrix *is* the contiguous slice of
//! the padded image that starts at `c·Hp·Wp + i·Wp + j`. A GEMM kernel given
//! one start offset per row needs no im2col copy and no packing of its
//! right-hand side; only the filters (a few kilobytes) are packed, once per
//! pass. The three products of the im2col algorithm become:
//!
//! ```text
//! forward      y[o][q]  = b[o] + Σ_(c,i,j) W[o][c][i][j] · xpad[off(c,i,j) + q]
//! weight grad  dW[o][c][i][j] = Σ_n Σ_q dyw[o][q] · xpad[off(c,i,j) + q]
//!              (dyw: dy on the same OH x Wp grid, zero in the extra columns)
//! input grad   dx[c][p] = Σ_(o,i,j) W[o][c][KH−1−i][KW−1−j] · dypad[off'(o,i,j) + p]
//!              (dy padded by KH−1−PH, KW−1−PW: the full correlation with the
//!              rotated kernel, on an H x (W + KW − 1) grid)
//! ```
//!
//! The micro-kernels use AVX2 and FMA and are chosen at run time
//! ([`available`]); other machines, other strides and padding wider than
//! the kernel take the im2col path. Each output element is one
//! multiply-add chain in a fixed order, and the weight gradient is summed
//! over the same fixed chunks of the batch as the im2col path, so the
//! determinism rule holds.

use rayon::prelude::*;

use crate::shared::{resize, sum_f64, with_tile, Activation, GRAD_WEIGHT_CHUNKS};
use crate::simd::{self, masked_copy, shifted_dot, shifted_gemm, LANES, MR};
use crate::ConvGeometry;

/// Whether [`forward`] and [`backward`] can run geometry `g` on this machine:
/// x86-64 with AVX2 and FMA, stride 1, and padding smaller than the kernel.
pub fn available(g: &ConvGeometry) -> bool {
    g.stride_h == 1
        && g.stride_w == 1
        && g.pad_h < g.kernel_h
        && g.pad_w < g.kernel_w
        && simd::has_avx2_fma()
}

/// Sizes of the padded grids of one geometry.
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// Padded input plane, Hp x Wp.
    hp: usize,
    wp: usize,
    /// Floats per image in the padded input, slack for the last row's
    /// over-read included.
    x_stride: usize,
    /// Output pixels on the OH x Wp grid, rounded up to whole registers.
    q8: usize,
    /// Output channels rounded up to whole micro-kernel rows.
    o4: usize,
    /// dy padded for the input gradient: Hd x Wd per channel.
    hd: usize,
    wd: usize,
    dy_stride: usize,
    /// Input-gradient pixels on the H x Wd grid, rounded up.
    p8: usize,
    /// Input channels rounded up to whole micro-kernel rows.
    c4: usize,
}

impl Grid {
    fn new(g: &ConvGeometry) -> Grid {
        let (hp, wp) = (g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w);
        let (hd, wd) = (
            g.out_h() + 2 * (g.kernel_h - 1 - g.pad_h),
            g.out_w() + 2 * (g.kernel_w - 1 - g.pad_w),
        );
        // A row read starts at most at (KH−1)·Wp + KW−1 into a plane and runs
        // q8 ≤ OH·Wp + 7 floats, so it ends at most KW + 6 floats past the image.
        let slack = |kw: usize| kw + LANES;
        Grid {
            hp,
            wp,
            x_stride: (g.in_channels * hp * wp + slack(g.kernel_w)).next_multiple_of(LANES),
            q8: (g.out_h() * wp).next_multiple_of(LANES),
            o4: g.out_channels.next_multiple_of(MR),
            hd,
            wd,
            dy_stride: (g.out_channels * hd * wd + slack(g.kernel_w)).next_multiple_of(LANES),
            p8: (g.in_h * wd).next_multiple_of(LANES),
            c4: g.in_channels.next_multiple_of(MR),
        }
    }

    /// Start of row (`c`, `i`, `j`) of the implicit im2col matrix of the forward pass.
    fn x_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        let mut v = Vec::with_capacity(g.patch_len());
        for c in 0..g.in_channels {
            for i in 0..g.kernel_h {
                for j in 0..g.kernel_w {
                    v.push(c * self.hp * self.wp + i * self.wp + j);
                }
            }
        }
        v
    }

    /// Start of row (`o`, `i`, `j`) of the implicit matrix of the input gradient.
    fn dy_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        let mut v = Vec::with_capacity(g.out_channels * g.kernel_h * g.kernel_w);
        for o in 0..g.out_channels {
            for i in 0..g.kernel_h {
                for j in 0..g.kernel_w {
                    v.push(o * self.hd * self.wd + i * self.wd + j);
                }
            }
        }
        v
    }
}

/// Buffers of the direct path, reused from step to step.
#[derive(Debug, Default, Clone)]
pub(crate) struct DirectBuffers {
    /// The batch's padded input, N x `x_stride`; the backward pass reads it again.
    padded_input: Vec<f32>,
    /// Filters packed for the forward kernel: `o4/4` blocks of K x 4.
    packed_weight: Vec<f32>,
    x_offsets: Vec<usize>,
    /// dy on the OH x Wp grid, zero in the extra columns: N x o4 x q8.
    grad_output_wide: Vec<f32>,
    /// dy padded for the input gradient: N x `dy_stride`.
    padded_grad_output: Vec<f32>,
    /// Rotated, transposed filters for the input gradient: `c4/4` blocks of (O·KH·KW) x 4.
    packed_weight_rotated: Vec<f32>,
    dy_offsets: Vec<usize>,
    /// Partial weight gradients, one o4 x K block per batch chunk.
    grad_weight_parts: Vec<f32>,
    /// Per-image bias-gradient sums, N x O, in f64.
    grad_bias_parts: Vec<f64>,
    /// The geometry `padded_input`, `grad_output_wide` and
    /// `padded_grad_output` are laid out for, and `x_offsets` and
    /// `dy_offsets` computed for. The buffers' padding, extra columns and
    /// slack are zeroed once, when the layout changes, and never written
    /// after that: each pass writes only the interior.
    layout: Option<ConvGeometry>,
}

impl DirectBuffers {
    /// Clears the padded buffers if they were laid out for another geometry,
    /// so that `resize` refills them with zeros, and recomputes the row
    /// offsets (which depend on the geometry alone).
    fn use_layout(&mut self, g: &ConvGeometry) {
        if self.layout != Some(*g) {
            self.padded_input.clear();
            self.grad_output_wide.clear();
            self.padded_grad_output.clear();
            let grid = Grid::new(g);
            self.x_offsets = grid.x_offsets(g);
            self.dy_offsets = grid.dy_offsets(g);
            self.layout = Some(*g);
        }
    }
}

/// Copies one image (C x H x W) into the interior of its padded block
/// (C x Hp x Wp + slack), whose padding is already zero.
fn pad_image(g: &ConvGeometry, grid: &Grid, image: &[f32], dst: &mut [f32]) {
    let (ph, pw) = (g.pad_h, g.pad_w);
    for (c, plane) in image.chunks_exact(g.in_h * g.in_w).enumerate() {
        let padded = &mut dst[c * grid.hp * grid.wp..(c + 1) * grid.hp * grid.wp];
        for (y, row) in plane.chunks_exact(g.in_w).enumerate() {
            let start = (y + ph) * grid.wp + pw;
            padded[start..start + g.in_w].copy_from_slice(row);
        }
    }
}

/// Forward pass: `output[n][o] = bias[o] + Σ W[o] ⋆ input[n]`, shapes as in
/// [`crate::Convolution::forward`]. Leaves the padded input in `s` for [`backward`].
///
/// # Panics
/// If `!available(g)`, or on a slice of the wrong length.
pub(crate) fn forward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    activation: Activation,
    output: &mut [f32],
    s: &mut DirectBuffers,
) {
    assert!(
        available(g),
        "direct convolution is not available for {g:?}"
    );
    let grid = Grid::new(g);
    pad_input(g, batch, input, s);
    let k = g.patch_len();
    pack_rows(
        g.out_channels,
        k,
        grid.o4,
        |o, kk| weight[o * k + kk],
        &mut s.packed_weight,
    );
    let (packed, offsets) = (&s.packed_weight, &s.x_offsets);
    let (oh, ow, l) = (g.out_h(), g.out_w(), g.out_plane());
    s.padded_input
        .par_chunks(grid.x_stride)
        .zip(output.par_chunks_mut(g.out_size()))
        .for_each(|(xp, y)| {
            with_tile(MR * grid.q8, |tile| {
                for (block, a) in packed.chunks_exact(MR * k).enumerate() {
                    shifted_gemm(a, xp, offsets, grid.q8, tile);
                    for r in 0..MR.min(g.out_channels - block * MR) {
                        let o = block * MR + r;
                        let plane = &mut y[o * l..(o + 1) * l];
                        let wide = &tile[r * grid.q8..];
                        for oy in 0..oh {
                            let src = &wide[oy * grid.wp..oy * grid.wp + ow];
                            let dst = plane[oy * ow..(oy + 1) * ow].iter_mut().zip(src);
                            match activation {
                                Activation::Identity => dst.for_each(|(d, &v)| *d = v + bias[o]),
                                Activation::Relu => {
                                    dst.for_each(|(d, &v)| *d = (v + bias[o]).max(0.0))
                                }
                            }
                        }
                    }
                }
            });
        });
}

/// Pads every image of the batch into `s.padded_input`, in parallel: what
/// [`backward`] needs of the input.
fn pad_input(g: &ConvGeometry, batch: usize, input: &[f32], s: &mut DirectBuffers) {
    let grid = &Grid::new(g);
    assert_eq!(
        input.len(),
        batch * g.in_size(),
        "direct conv: input length"
    );
    s.use_layout(g);
    resize(&mut s.padded_input, batch * grid.x_stride);
    s.padded_input
        .par_chunks_mut(grid.x_stride)
        .zip(input.par_chunks(g.in_size()))
        .for_each(|(dst, image)| pad_image(g, grid, image, dst));
}

/// Packs an R x K matrix, given by `at(r, k)`, for the micro-kernel: blocks
/// of MR rows, each stored k-major (`[k][r]`), rows past R zero.
fn pack_rows(
    rows: usize,
    k: usize,
    rows4: usize,
    at: impl Fn(usize, usize) -> f32,
    dst: &mut Vec<f32>,
) {
    resize(dst, rows4 * k);
    for (block, packed) in dst.chunks_exact_mut(MR * k).enumerate() {
        for kk in 0..k {
            for r in 0..MR {
                let row = block * MR + r;
                packed[kk * MR + r] = if row < rows { at(row, kk) } else { 0.0 };
            }
        }
    }
}

/// Backward pass for the input of the last [`forward`] that used `s`:
/// overwrites `grad_weight` and `grad_bias`, and `grad_input` when given.
/// Slice lengths are checked by the caller, [`crate::Convolution::backward`].
/// With `mask` (a fused ReLU's output), dy counts only where the mask is positive.
pub(crate) fn backward(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    mask: Option<&[f32]>,
    grad_output: &[f32],
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    s: &mut DirectBuffers,
) {
    assert!(
        available(g),
        "direct convolution is not available for {g:?}"
    );
    let grid = Grid::new(g);
    assert_eq!(
        s.padded_input.len(),
        batch * grid.x_stride,
        "direct conv: no forward pass"
    );
    if batch == 0 {
        grad_weight.fill(0.0);
        grad_bias.fill(0.0);
        return;
    }
    s.use_layout(g);
    spread_grad_output(
        g,
        &grid,
        batch,
        mask,
        grad_output,
        grad_input.is_some(),
        grad_bias,
        s,
    );

    let per_chunk = batch.div_ceil(GRAD_WEIGHT_CHUNKS);
    let chunks = batch.div_ceil(per_chunk);
    resize(&mut s.grad_weight_parts, chunks * grid.o4 * g.patch_len());
    let weight_parts = WeightParts {
        per_chunk,
        x_offsets: &s.x_offsets,
        padded_input: &s.padded_input,
        dy_wide: &s.grad_output_wide,
    };
    let parts = &mut s.grad_weight_parts;
    if let Some(grad_input) = grad_input {
        // W'[c][(o, i, j)] = W[o][c][KH−1−i][KW−1−j].
        let (kh, kw, ks, k) = (
            g.kernel_h,
            g.kernel_w,
            g.kernel_h * g.kernel_w,
            g.patch_len(),
        );
        pack_rows(
            g.in_channels,
            g.out_channels * ks,
            grid.c4,
            |c, r| {
                let (oo, i, j) = (r / ks, r / kw % kh, r % kw);
                weight[oo * k + c * ks + (kh - 1 - i) * kw + (kw - 1 - j)]
            },
            &mut s.packed_weight_rotated,
        );
        let (packed, offsets, dy_padded) = (
            &s.packed_weight_rotated,
            &s.dy_offsets,
            &s.padded_grad_output,
        );
        rayon::join(
            || weight_parts.compute(g, &grid, batch, parts),
            || input_grad(g, &grid, packed, offsets, dy_padded, grad_input),
        );
    } else {
        weight_parts.compute(g, &grid, batch, parts);
    }
    sum_weight_parts(g, &grid, &s.grad_weight_parts, grad_weight);
}

/// Image by image, in parallel: dy masked onto the wide OH x Wp grid (for
/// dW), into the padded planes of the input gradient when it is wanted (for
/// dx), and the per-channel sums into `s.grad_bias_parts`, then db as their
/// sums over the batch. Only interiors are written; the zeros around them
/// stay from `use_layout`.
fn spread_grad_output(
    g: &ConvGeometry,
    grid: &Grid,
    batch: usize,
    mask: Option<&[f32]>,
    grad_output: &[f32],
    want_dx: bool,
    grad_bias: &mut [f32],
    s: &mut DirectBuffers,
) {
    let (o, l, ow) = (g.out_channels, g.out_plane(), g.out_w());
    resize(&mut s.grad_output_wide, batch * grid.o4 * grid.q8);
    resize(&mut s.grad_bias_parts, batch * o);
    resize(
        &mut s.padded_grad_output,
        if want_dx { batch * grid.dy_stride } else { 0 },
    );
    let (qd, kh1, kw1) = (grid.wd, g.kernel_h - 1 - g.pad_h, g.kernel_w - 1 - g.pad_w);
    // Image n's dy, masked, onto the wide grid; db sums over that grid (its
    // extra entries are 0), so a fused and an unfused ReLU give the same bits.
    let widen = |n: usize, wide: &mut [f32], db: &mut [f64]| {
        let at = n * g.out_size();
        let dy = &grad_output[at..at + g.out_size()];
        let y = mask.map(|y| &y[at..at + g.out_size()]);
        for ch in 0..o {
            for oy in 0..g.out_h() {
                let start = ch * grid.q8 + oy * grid.wp;
                let from = ch * l + oy * ow;
                let dst = &mut wide[start..start + ow];
                match y {
                    Some(y) => masked_copy(dst, &dy[from..from + ow], &y[from..from + ow]),
                    None => dst.copy_from_slice(&dy[from..from + ow]),
                }
            }
            db[ch] = sum_f64(&wide[ch * grid.q8..(ch + 1) * grid.q8]);
        }
    };
    // The same rows, moved into the padded planes of the input gradient.
    let pad = |wide: &[f32], dst: &mut [f32]| {
        for ch in 0..o {
            let padded = &mut dst[ch * grid.hd * qd..(ch + 1) * grid.hd * qd];
            for oy in 0..g.out_h() {
                let start = (oy + kh1) * qd + kw1;
                let src = ch * grid.q8 + oy * grid.wp;
                padded[start..start + ow].copy_from_slice(&wide[src..src + ow]);
            }
        }
    };
    let wide_chunks = s.grad_output_wide.par_chunks_mut(grid.o4 * grid.q8);
    let db_chunks = s.grad_bias_parts.par_chunks_mut(o);
    if want_dx {
        wide_chunks
            .zip(db_chunks)
            .zip(s.padded_grad_output.par_chunks_mut(grid.dy_stride))
            .enumerate()
            .for_each(|(n, ((wide, db), padded))| {
                widen(n, wide, db);
                pad(wide, padded);
            });
    } else {
        wide_chunks
            .zip(db_chunks)
            .enumerate()
            .for_each(|(n, (wide, db))| widen(n, wide, db));
    }
    for (ch, db) in grad_bias.iter_mut().enumerate() {
        *db = s.grad_bias_parts.iter().skip(ch).step_by(o).sum::<f64>() as f32;
    }
}

/// The weight gradient's partial sums, one per chunk of consecutive images
/// (the same chunks as the im2col path), from the padded input and the wide dy.
struct WeightParts<'a> {
    per_chunk: usize,
    x_offsets: &'a [usize],
    padded_input: &'a [f32],
    dy_wide: &'a [f32],
}

impl WeightParts<'_> {
    /// Writes each chunk's partial dW (o4 x K) into its block of `parts`, in parallel.
    fn compute(&self, g: &ConvGeometry, grid: &Grid, batch: usize, parts: &mut [f32]) {
        let (k, per_chunk) = (g.patch_len(), self.per_chunk);
        parts
            .par_chunks_mut(grid.o4 * k)
            .enumerate()
            .for_each(|(c, part)| {
                let images = c * per_chunk..((c + 1) * per_chunk).min(batch);
                let xs =
                    &self.padded_input[images.start * grid.x_stride..images.end * grid.x_stride];
                let dys =
                    &self.dy_wide[images.start * grid.o4 * grid.q8..images.end * grid.o4 * grid.q8];
                shifted_dot(
                    xs,
                    grid.x_stride,
                    dys,
                    grid.o4,
                    grid.q8,
                    self.x_offsets,
                    part,
                );
            });
    }
}

/// dx of every image, in parallel: the rotated filters `packed` over the
/// padded dy, on the H x Wd grid, cut to H x W.
fn input_grad(
    g: &ConvGeometry,
    grid: &Grid,
    packed: &[f32],
    offsets: &[usize],
    dy_padded: &[f32],
    grad_input: &mut [f32],
) {
    let (o, ks, qd) = (g.out_channels, g.kernel_h * g.kernel_w, grid.wd);
    let plane = g.in_h * g.in_w;
    grad_input
        .par_chunks_mut(g.in_size())
        .zip(dy_padded.par_chunks(grid.dy_stride))
        .for_each(|(dx, dyp)| {
            with_tile(MR * grid.p8, |tile| {
                for (block, a) in packed.chunks_exact(MR * o * ks).enumerate() {
                    shifted_gemm(a, dyp, offsets, grid.p8, tile);
                    for r in 0..MR.min(g.in_channels - block * MR) {
                        let c = block * MR + r;
                        let wide = &tile[r * grid.p8..];
                        for y in 0..g.in_h {
                            dx[c * plane + y * g.in_w..c * plane + (y + 1) * g.in_w]
                                .copy_from_slice(&wide[y * qd..y * qd + g.in_w]);
                        }
                    }
                }
            });
        });
}

/// dW as the sum of its per-chunk parts, in chunk order.
fn sum_weight_parts(g: &ConvGeometry, grid: &Grid, parts: &[f32], grad_weight: &mut [f32]) {
    let (o, k) = (g.out_channels, g.patch_len());
    let mut parts = parts.chunks_exact(grid.o4 * k);
    let first = parts.next().expect("at least one chunk");
    grad_weight.copy_from_slice(&first[..o * k]);
    for part in parts {
        for (dw, &p) in grad_weight.iter_mut().zip(part) {
            *dw += p;
        }
    }
}
